//! The dashboard's access token: 256 bits from the operating system's RNG, shown once in the URL that
//! `rkube dashboard` prints (as `kubectl proxy` and notebook servers do), compared in constant time.

use rand::TryRngCore;

/// Bytes of randomness in a token (hex-encoded in the URL: 64 characters).
pub const TOKEN_BYTES: usize = 32;

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The operating system's RNG failed (the message is its error).
    #[error("read {TOKEN_BYTES} random bytes from the operating system for the dashboard's token: {0}")]
    Rng(String),
}

/// A secret that grants access to the dashboard. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh token from the OS RNG (getrandom(2)); fails rather than fall back to anything weaker.
    pub fn generate() -> Result<Token, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| TokenError::Rng(e.to_string()))?;
        Ok(Token(hex::encode(bytes)))
    }

    /// The token as it goes in the URL and the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token. The time taken depends on the lengths only, never on where the
    /// first differing byte is.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

/// Byte-wise equality that reads every byte of both inputs' common length whatever they hold.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_characters_and_differ() {
        let a = Token::generate().expect("os rng");
        let b = Token::generate().expect("os rng");
        assert_eq!(a.as_str().len(), 2 * TOKEN_BYTES);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::generate().expect("os rng");
        assert!(t.matches(t.as_str()));
        assert!(!t.matches(""));
        assert!(!t.matches(&t.as_str()[1..]));
        let mut flipped = t.as_str().to_string().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
        assert!(!t.matches(&String::from_utf8(flipped).expect("ascii")));
        assert!(!t.matches(&format!("{}0", t.as_str())));
        assert!(!format!("{t:?}").contains(t.as_str()));
    }
}
