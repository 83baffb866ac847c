//! A new account's validated fields.

use super::{check_text, Invalid};

/// Longest email address, in bytes (RFC 5321's limit on a path).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest account name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// An email address courier may write to: syntactically valid, no control
/// characters, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(field: &str, value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        if value.len() > MAX_EMAIL_BYTES {
            return Err(Invalid::new(
                field,
                format!("must be at most {MAX_EMAIL_BYTES} bytes"),
            ));
        }
        check_text(field, value, MAX_EMAIL_BYTES)?;
        if !email_address::EmailAddress::is_valid(value) {
            return Err(Invalid::new(field, "is not a valid email address"));
        }
        // Display names and comments are valid RFC 5322 but not an address.
        if value.contains(['<', '>', ' ', '"', '(', ')']) {
            return Err(Invalid::new(
                field,
                "must be a bare address like ops@example.com",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated `POST /v1/accounts` request.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub contact_email: EmailAddress,
}

impl NewAccount {
    pub fn parse(name: &str, contact_email: &str) -> Result<Self, Invalid> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Invalid::new("name", "must not be empty"));
        }
        check_text("name", name, MAX_NAME_CHARS)?;
        Ok(Self {
            name: name.to_owned(),
            contact_email: EmailAddress::parse("contact_email", contact_email)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_plain_account() {
        let a = NewAccount::parse("  Acme Energy ", "ops@acme.example").unwrap();
        assert_eq!(a.name, "Acme Energy");
        assert_eq!(a.contact_email.as_str(), "ops@acme.example");
    }

    #[test]
    fn rejects_bad_names_and_addresses() {
        assert_eq!(
            NewAccount::parse("", "a@b.example").unwrap_err().field,
            "name"
        );
        assert_eq!(
            NewAccount::parse("x\ny", "a@b.example").unwrap_err().field,
            "name"
        );
        for bad in [
            "",
            "nope",
            "a@",
            "a b@c.example",
            "Ops <ops@x.example>",
            "a@b.example\r\nBcc: c@d",
        ] {
            assert_eq!(
                NewAccount::parse("Acme", bad).unwrap_err().field,
                "contact_email",
                "{bad:?}"
            );
        }
    }
}
