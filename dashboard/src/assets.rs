//! The page, its script and its style, embedded in the binary (no CDN, no build step: plain JS and CSS).

/// `/`: the page, which loads the two below.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// `/assets/app.js`: the script that draws every view from the stream and the inspect and trace endpoints.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// `/assets/app.css`: the style.
pub const APP_CSS: &str = include_str!("../assets/app.css");
