//! The page, its script and its style, embedded in the binary (no CDN, no build step: plain JS and CSS).

pub const INDEX_HTML: &str = include_str!("../assets/index.html");
pub const APP_JS: &str = include_str!("../assets/app.js");
pub const APP_CSS: &str = include_str!("../assets/app.css");
