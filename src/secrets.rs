//! Encryption of secrets at rest: subscription signing secrets are stored in
//! Redis sealed with AES-256-GCM under a key from `auth.encryption_keys`.
//! The first key seals; every listed key opens, so a key is rotated by
//! putting the new one first and keeping the old one until nothing sealed
//! with it is left (`courier reencrypt` rewrites everything).
//!
//! A sealed value reads `enc:v1:<key id>:<nonce + ciphertext, base64url>`;
//! the key id is the start of the key's SHA-256 (it names the key without
//! revealing it), and the owner's id (the subscription) is bound in as
//! associated data, so a sealed secret cannot be moved to another
//! subscription. Values without the prefix are plaintext written before
//! encryption existed; they are read as they are and sealed on the next
//! write.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// Why a configured key cannot be used, or a stored value not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "key {0} is not 32 bytes of standard base64 (make one with `openssl rand -base64 32`)"
    )]
    BadKey(usize),
    #[error("no key is configured")]
    NoKey,
    #[error("sealed with key {0}, which is not among the configured keys")]
    UnknownKey(String),
    #[error("the sealed value is damaged or was sealed for another owner")]
    Damaged,
}

/// The configured keys.
#[derive(Clone)]
pub struct SecretBox {
    /// (key id, cipher); the first seals.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretBox").field("key_ids", &ids).finish()
    }
}

impl SecretBox {
    /// Keys as standard base64 of 32 bytes each; at least one.
    pub fn new(keys: &[SecretString]) -> Result<Self, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKey);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let raw = STANDARD
                    .decode(k.expose_secret().trim())
                    .ok()
                    .filter(|raw| raw.len() == 32)
                    .ok_or(SealError::BadKey(i + 1))?;
                let id = hex8(&Sha256::digest(&raw));
                let cipher =
                    Aes256Gcm::new_from_slice(&raw).map_err(|_| SealError::BadKey(i + 1))?;
                Ok((id, cipher))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plain` for `owner` with the first key.
    pub fn seal(&self, plain: &str, owner: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value [`SecretBox::seal`] made for `owner`; plaintext (no
    /// prefix) comes back as it is.
    pub fn open(&self, stored: &str, owner: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, data) = rest.split_once(':').ok_or(SealError::Damaged)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let raw = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::Damaged)?;
        if raw.len() <= NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }

    /// Whether `stored` is sealed with the current key (nothing to rewrite).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current_key_id())
    }
}

fn hex8(digest: &[u8]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretString {
        SecretString::from(STANDARD.encode([byte; 32]))
    }

    #[test]
    fn a_sealed_secret_opens_for_its_owner_only() {
        let b = SecretBox::new(&[key(1)]).unwrap();
        let sealed = b.seal("whsec_abc", "sub-1");
        assert!(sealed.starts_with("enc:v1:"));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            b.seal("whsec_abc", "sub-1"),
            "fresh nonce each time"
        );
        assert_eq!(b.open(&sealed, "sub-1").unwrap(), "whsec_abc");
        assert_eq!(b.open(&sealed, "sub-2"), Err(SealError::Damaged));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            b.open(std::str::from_utf8(&flipped).unwrap(), "sub-1"),
            Err(SealError::Damaged)
        );
    }

    #[test]
    fn old_keys_open_and_the_first_seals() {
        let old = SecretBox::new(&[key(1)]).unwrap();
        let sealed_old = old.seal("whsec_old", "s");
        let rotated = SecretBox::new(&[key(2), key(1)]).unwrap();
        assert_eq!(rotated.open(&sealed_old, "s").unwrap(), "whsec_old");
        assert!(!rotated.is_current(&sealed_old));
        let sealed_new = rotated.seal("whsec_new", "s");
        assert!(rotated.is_current(&sealed_new));
        assert!(matches!(
            old.open(&sealed_new, "s"),
            Err(SealError::UnknownKey(id)) if id == rotated.current_key_id()
        ));
    }

    #[test]
    fn plaintext_from_before_encryption_is_read_as_it_is() {
        let b = SecretBox::new(&[key(1)]).unwrap();
        assert_eq!(b.open("whsec_plain", "s").unwrap(), "whsec_plain");
        assert!(!b.is_current("whsec_plain"));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(SecretBox::new(&[]).unwrap_err(), SealError::NoKey);
        let short = SecretString::from(STANDARD.encode([0u8; 16]));
        assert_eq!(
            SecretBox::new(&[key(1), short]).unwrap_err(),
            SealError::BadKey(2)
        );
        let not_b64 = SecretString::from("not base64!".to_owned());
        assert_eq!(
            SecretBox::new(&[not_b64]).unwrap_err(),
            SealError::BadKey(1)
        );
        let dbg = format!("{:?}", SecretBox::new(&[key(7)]).unwrap());
        assert!(!dbg.contains(&STANDARD.encode([7u8; 32])), "{dbg}");
    }
}
