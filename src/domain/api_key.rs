//! Account API keys and webhook signing secrets.
//!
//! An account key reads `ck_<account id, 32 hex>_<43 chars of base64url>`:
//! the account id in the key lets authentication fetch exactly one record,
//! and the 32 random bytes make the key unguessable. Only the SHA-256 of a
//! key is stored; comparison is constant-time. A plain hash (no slow KDF) is
//! right here because the secret part is 256 random bits, not a password.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const KEY_PREFIX: &str = "ck_";

/// A freshly issued key: shown to the client once, then only its hash is kept.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub plaintext: String,
    pub hash: String,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Issues a new key for `account`.
pub fn issue(account: Uuid) -> IssuedKey {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let plaintext = format!("{KEY_PREFIX}{}_{secret}", account.simple());
    let hash = hash_key(&plaintext);
    IssuedKey { plaintext, hash }
}

/// Hex SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The account a presented key claims to belong to, if it is well-formed.
pub fn account_of(key: &str) -> Option<Uuid> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (account, secret) = rest.split_once('_')?;
    if account.len() != 32 || secret.len() != 43 {
        return None;
    }
    Uuid::try_parse(account).ok()
}

/// Constant-time check of a presented key against a stored hash.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    let presented = hash_key(presented);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Constant-time comparison of two secrets of any length (admin keys):
/// both sides are hashed first so lengths leak nothing.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(b.as_bytes()).as_slice())
        .into()
}

/// A webhook signing secret in the Standard Webhooks form: `whsec_` and the
/// base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<32>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_name_their_account_and_verify() {
        let account = Uuid::now_v7();
        let key = issue(account);
        assert!(key.plaintext.starts_with("ck_"));
        assert_eq!(account_of(&key.plaintext), Some(account));
        assert!(verify(&key.plaintext, &key.hash));
        assert_ne!(key.hash, key.plaintext);
        assert_eq!(key.hash.len(), 64);
    }

    #[test]
    fn tampered_or_foreign_keys_fail() {
        let key = issue(Uuid::now_v7());
        let mut tampered = key.plaintext.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!verify(&tampered, &key.hash));
        assert!(!verify(&issue(Uuid::now_v7()).plaintext, &key.hash));
        assert_eq!(account_of("ck_short_x"), None);
        assert_eq!(account_of("Bearer xyz"), None);
    }

    #[test]
    fn two_keys_for_one_account_differ() {
        let account = Uuid::now_v7();
        assert_ne!(issue(account).plaintext, issue(account).plaintext);
    }

    #[test]
    fn signing_secrets_hold_at_least_24_random_bytes() {
        let secret = new_signing_secret();
        let raw = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert!(raw.len() >= 24);
        assert_ne!(secret, new_signing_secret());
    }

    #[test]
    fn admin_secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
