//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`
//! keyed by the base64-decoded part of the `whsec_` secret. During a secret
//! rotation both secrets sign, the signatures separated by a space.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A decoded signing key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// From a `whsec_<base64>` secret (the prefix is optional).
    pub fn from_secret(secret: &str) -> Option<Self> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        STANDARD
            .decode(b64)
            .ok()
            .filter(|k| !k.is_empty())
            .map(Self)
    }

    /// `v1,<signature>` of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: one signature per key.
pub fn signature_header(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| k.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Standard Webhooks headers of one notification sent at `now_ms`:
/// `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature`,
/// signed with every secret of `sub` in force then.
pub fn webhook_headers(
    sub: &crate::domain::subscription::Subscription,
    msg_id: &str,
    now_ms: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = now_ms / 1000;
    let keys: Vec<SigningKey> = sub
        .signing_secrets(now_ms)
        .into_iter()
        .filter_map(SigningKey::from_secret)
        .collect();
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            signature_header(&keys, msg_id, timestamp, body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's test suite.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_both_keys() {
        let a = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = SigningKey::from_secret(&crate::domain::api_key::new_signing_secret()).unwrap();
        let header = signature_header(&[b.clone(), a.clone()], "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [b.sign("id", 1, b"{}"), a.sign("id", 1, b"{}")]);
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(SigningKey::from_secret("whsec_!!!").is_none());
        assert!(SigningKey::from_secret("whsec_").is_none());
    }
}
