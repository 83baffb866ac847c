//! Domain types that validate when they are made: once a handler holds one,
//! it is valid and nothing re-checks it. Everything here is pure (no I/O) and
//! unit-tested beside the code.

pub mod account;
pub mod api_key;
pub mod catalog;
pub mod delivery;
pub mod event;
pub mod notice;
pub mod session;
pub mod stats;
pub mod subscription;
pub mod target;

/// A rejected input value: which field, and why. Becomes a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a UUID as courier prints it (lower-case, hyphenated). Anything else
/// is simply "not found" for path parameters.
pub fn parse_id(text: &str) -> Option<uuid::Uuid> {
    if text.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(text).ok()
}

/// Rejects control characters (CR/LF among them) in free text, so a value
/// can never split a header or a log line.
pub fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), Invalid> {
    if value.chars().count() > max_chars {
        return Err(Invalid::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_in_canonical_form() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(parse_id(&id.to_string()), Some(id));
        assert_eq!(parse_id(&id.simple().to_string()), None);
        assert_eq!(parse_id("not-an-id"), None);
    }

    #[test]
    fn text_rejects_control_characters_and_overlong_values() {
        assert!(check_text("d", "hello", 10).is_ok());
        assert!(check_text("d", "héllo wörld", 11).is_ok());
        assert!(check_text("d", "a\r\nBcc: x", 100).is_err());
        assert!(check_text("d", "abc", 2).is_err());
    }
}
