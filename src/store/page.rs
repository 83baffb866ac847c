//! Cursor pagination over time-ordered indexes: a cursor is the last
//! (time, id) of the previous page, opaque to clients.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub score: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.score, self.id))
    }

    /// `None` for anything that is not a cursor courier issued.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (score, id) = raw.split_once(':')?;
        let id = crate::domain::parse_id(id)?;
        Some(Self {
            score: score.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            score: 1_714_653_086_257,
            id: uuid::Uuid::now_v7().to_string(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    #[test]
    fn foreign_cursors_are_rejected() {
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("12:not-a-uuid")),
            None
        );
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("x:0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70")),
            None
        );
    }
}
