//! Dashboard sign-in: one-time links and browser sessions.
//!
//! Both are bearer tokens of 256 random bits (base64url). Redis only ever
//! holds their SHA-256: a copy of the store (a backup, a `MONITOR`) does not
//! let anyone sign in. A plain hash is right for the same reason as for API
//! keys: the secret is random, not a password.
//!
//! A session ends when it has been idle for too long or when it reaches its
//! absolute age, whichever comes first ([`Session::ttl_ms`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::api_key::secrets_equal;

/// What a dashboard session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every page, no forms; the server refuses its writes.
    Read,
    /// Every page and every form.
    Manage,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "manage" => Some(Scope::Manage),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Manage => "manage",
        }
    }
}

/// What a one-time link grants once followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub account_id: Uuid,
    pub scope: Scope,
}

/// A fresh random token (link, session id or CSRF token): 256 bits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token: what Redis keys are named by.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` looks like a token [`new_token`] made (so junk never
/// reaches Redis).
pub fn is_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Who a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// An account's developers: the account pages.
    Account(Uuid),
    /// The platform's operators (signed in with an admin key): the queue
    /// page, no account's pages.
    Operator,
}

impl Holder {
    /// As stored: the account id, or `operator`.
    pub fn encode(&self) -> String {
        match self {
            Holder::Account(id) => id.to_string(),
            Holder::Operator => "operator".into(),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        match text {
            "operator" => Some(Holder::Operator),
            id => Uuid::parse_str(id).ok().map(Holder::Account),
        }
    }
}

/// A signed-in browser, as stored (under the hash of its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub holder: Holder,
    pub scope: Scope,
    /// Sent back in a hidden field by every form; a POST without it is
    /// refused, so another site cannot post on the user's behalf.
    pub csrf: String,
    pub created_at_ms: i64,
    /// The absolute end, ms.
    pub expires_at_ms: i64,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle_ms: i64,
    pub max_ms: i64,
}

impl Session {
    pub fn new(holder: Holder, scope: Scope, now_ms: i64, limits: SessionLimits) -> Self {
        Self {
            holder,
            scope,
            csrf: new_token(),
            created_at_ms: now_ms,
            expires_at_ms: now_ms + limits.max_ms,
        }
    }

    /// How long the session may stay idle from `now_ms` on, or None when it
    /// has reached its absolute end.
    pub fn ttl_ms(&self, now_ms: i64, limits: SessionLimits) -> Option<i64> {
        let left = self.expires_at_ms - now_ms;
        (left > 0).then(|| left.min(limits.idle_ms))
    }

    /// Whether the account's API key was rotated after this session began:
    /// then the session ends, whichever way it was started.
    pub fn predates_rotation(&self, key_rotated_at_ms: Option<i64>) -> bool {
        key_rotated_at_ms.is_some_and(|r| r > self.created_at_ms)
    }

    /// Whether a form's CSRF field is this session's (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && secrets_equal(presented, &self.csrf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits {
        idle_ms: 30 * 60_000,
        max_ms: 12 * 3_600_000,
    };

    fn session(now: i64) -> Session {
        Session::new(Holder::Account(Uuid::nil()), Scope::Read, now, LIMITS)
    }

    #[test]
    fn tokens_are_random_256_bit_and_recognised() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(is_token(&a), "{a}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(!is_token("short"));
        assert!(!is_token(&format!("{}!", &a[..42])));
    }

    #[test]
    fn only_the_hash_names_a_token_and_it_is_stable() {
        let t = new_token();
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_eq!(hash_token(&t).len(), 64);
        assert!(!hash_token(&t).contains(&t));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_session_lives_idle_minutes_at_a_time_up_to_its_absolute_end() {
        let s = session(0);
        assert_eq!(s.ttl_ms(0, LIMITS), Some(LIMITS.idle_ms));
        let near_end = LIMITS.max_ms - 60_000;
        assert_eq!(s.ttl_ms(near_end, LIMITS), Some(60_000));
        assert_eq!(s.ttl_ms(LIMITS.max_ms, LIMITS), None);
    }

    #[test]
    fn a_key_rotation_after_sign_in_ends_the_session() {
        let s = session(1_000);
        assert!(!s.predates_rotation(None));
        assert!(!s.predates_rotation(Some(999)));
        assert!(!s.predates_rotation(Some(1_000)));
        assert!(s.predates_rotation(Some(1_001)));
    }

    #[test]
    fn csrf_needs_the_sessions_token() {
        let s = session(0);
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches(""));
        assert!(!s.csrf_matches(&new_token()));
    }

    #[test]
    fn holders_are_stored_as_an_account_id_or_operator() {
        let id = Uuid::now_v7();
        for h in [Holder::Account(id), Holder::Operator] {
            assert_eq!(Holder::decode(&h.encode()), Some(h));
        }
        assert_eq!(Holder::decode("someone"), None);
    }

    #[test]
    fn scopes_parse_from_their_names_only() {
        assert_eq!(Scope::parse("read"), Some(Scope::Read));
        assert_eq!(Scope::parse("manage"), Some(Scope::Manage));
        assert_eq!(Scope::parse("admin"), None);
        assert_eq!(Scope::Manage.as_str(), "manage");
    }
}
