//! Stream keys and app names as they may appear in URLs and paths.
//!
//! A key is checked for shape before anything else looks at it (the stream-service, the
//! registry, the file system): it must be short and made of RFC 3986 unreserved characters
//! only, so it can go into a URL path unescaped and into a file name without meaning
//! anything to the file system.

use std::fmt;

/// Longest stream key accepted. Platform keys are UUID-like (36 characters) or shorter;
/// 128 leaves room for any real scheme while keeping paths short.
pub const MAX_KEY_LEN: usize = 128;

/// RFC 3986 §2.3 unreserved characters: `A-Z a-z 0-9 - . _ ~`.
pub fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("stream key is empty")]
    Empty,
    #[error("stream key is {0} bytes long (at most {MAX_KEY_LEN})")]
    TooLong(usize),
    #[error("stream key contains a character outside A-Z a-z 0-9 - . _ ~")]
    BadCharacter,
    #[error("stream key starts with '.'")]
    LeadingDot,
}

/// A stream key (or public playback name) of a valid shape: safe in a URL path segment and
/// as a folder name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn parse(text: &str) -> Result<StreamKey, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(text.len()));
        }
        if !text.bytes().all(is_key_byte) {
            return Err(KeyError::BadCharacter);
        }
        // "." and ".." are path components, and dot-files are hidden; none is a stream.
        if text.starts_with('.') {
            return Err(KeyError::LeadingDot);
        }
        Ok(StreamKey(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as logs show it: its first four characters and its length, enough to tell
    /// keys apart without handing the secret to whoever reads the logs.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(&self.0)
    }
}

/// A stream key shown without its secret part; see [`StreamKey::redacted`].
pub struct Redacted<'a>(&'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(4).collect();
        write!(f, "{shown}…({})", self.0.len())
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_keys_keep_four_characters_and_the_length() {
        let key = StreamKey::parse("550e8400-e29b-41d4").unwrap();
        assert_eq!(key.redacted().to_string(), "550e…(18)");
        assert_eq!(
            StreamKey::parse("ab").unwrap().redacted().to_string(),
            "ab…(2)"
        );
    }

    #[test]
    fn accepts_url_safe_keys() {
        for k in [
            "abc",
            "A-b_c.d~e",
            "550e8400-e29b-41d4-a716-446655440000",
            "a..b",
        ] {
            assert_eq!(StreamKey::parse(k).unwrap().as_str(), k);
        }
        assert!(StreamKey::parse(&"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn refuses_anything_a_path_or_url_could_misread() {
        assert_eq!(StreamKey::parse(""), Err(KeyError::Empty));
        assert_eq!(StreamKey::parse(".."), Err(KeyError::LeadingDot));
        assert_eq!(StreamKey::parse("."), Err(KeyError::LeadingDot));
        assert_eq!(StreamKey::parse(".hidden"), Err(KeyError::LeadingDot));
        for k in [
            "../etc", "a/b", "a\\b", "a%2fb", "a\0b", "a b", "ключ", "a?b", "a#b",
        ] {
            assert_eq!(StreamKey::parse(k), Err(KeyError::BadCharacter), "{k:?}");
        }
        assert_eq!(
            StreamKey::parse(&"k".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong(MAX_KEY_LEN + 1))
        );
    }
}
