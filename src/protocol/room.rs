//! Room names (PROTOCOL §1): one path segment, percent-decoded, 1..=128 bytes of UTF-8.

use std::fmt;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

/// A validated room name. Cheap to clone: sessions and the registry share one allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("the room name is empty")]
    Empty,
    #[error("the room name must be one path segment")]
    NotOneSegment,
    #[error("the room name is not UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("the room name is {0} bytes; the limit is 128")]
    TooLong(usize),
    #[error("the room name contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
}

impl RoomName {
    pub const MAX_LEN: usize = 128;

    /// Parses the raw (still percent-encoded) `{room}` segment of a request path.
    pub fn from_path_segment(raw: &str) -> Result<Self, RoomNameError> {
        if raw.contains('/') {
            return Err(RoomNameError::NotOneSegment);
        }
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| RoomNameError::NotUtf8)?;
        Self::new(&decoded)
    }

    /// Checks an already decoded name. Control characters are refused: a name reaches logs
    /// and terminals, where a newline could forge a log line and an escape sequence could
    /// rewrite the screen.
    pub fn new(name: &str) -> Result<Self, RoomNameError> {
        match name.len() {
            0 => Err(RoomNameError::Empty),
            len if len > Self::MAX_LEN => Err(RoomNameError::TooLong(len)),
            _ => match name.chars().find(|c| c.is_control()) {
                Some(c) => Err(RoomNameError::ControlCharacter(u32::from(c))),
                None => Ok(Self(name.into())),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_checks_length() {
        assert_eq!(
            RoomName::from_path_segment("a%20b").unwrap().as_str(),
            "a b"
        );
        assert_eq!(
            RoomName::from_path_segment("caf%C3%A9").unwrap().as_str(),
            "café"
        );
        assert_eq!(
            RoomName::from_path_segment("a%2Fb").unwrap().as_str(),
            "a/b"
        );
        assert_eq!(RoomName::from_path_segment(""), Err(RoomNameError::Empty));
        assert_eq!(
            RoomName::from_path_segment("a/b"),
            Err(RoomNameError::NotOneSegment)
        );
        assert_eq!(
            RoomName::from_path_segment("%FF"),
            Err(RoomNameError::NotUtf8)
        );
        assert!(RoomName::from_path_segment(&"x".repeat(128)).is_ok());
        assert_eq!(
            RoomName::from_path_segment(&"%41".repeat(129)),
            Err(RoomNameError::TooLong(129))
        );
        for (raw, c) in [
            ("a%0Ab", 0x0a),
            ("%00", 0),
            ("%1B%5B2J", 0x1b),
            ("%7F", 0x7f),
            ("%C2%85", 0x85),
        ] {
            assert_eq!(
                RoomName::from_path_segment(raw),
                Err(RoomNameError::ControlCharacter(c)),
                "{raw}"
            );
        }
    }
}
