//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`
//! keyed by the base64-decoded part of the `whsec_` secret. During a secret
//! rotation both secrets sign, the signatures separated by a space.
//! [`SigningKey::verify`] is the receiving side (`courier listen` uses it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a `webhook-timestamp` may lie from the receiver's clock, either
/// way, before the notification is refused (a replayed old message): the
/// Standard Webhooks default of five minutes.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a received notification does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp {0:?} is not a number of seconds")]
    BadTimestamp(String),
    #[error(
        "webhook-timestamp is {0} s old, more than the {TIMESTAMP_TOLERANCE_SECS} s tolerated"
    )]
    TooOld(i64),
    #[error("webhook-timestamp is {0} s ahead of this clock, more than the {TIMESTAMP_TOLERANCE_SECS} s tolerated")]
    TooNew(i64),
    #[error("webhook-signature holds no v1 signature")]
    NoSignature,
    #[error("no signature matches the secret")]
    Mismatch,
}

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
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(msg_id, &timestamp.to_string(), body))
        )
    }

    /// Checks a received notification, as a receiver must: `timestamp` (the
    /// `webhook-timestamp` header) lies within [`TIMESTAMP_TOLERANCE_SECS`]
    /// of `now_secs`, and one of the space-separated `v1,` signatures of
    /// `signatures` (the `webhook-signature` header) is this key's signature
    /// of `msg_id`, `timestamp` and `body`. Signatures of other versions are
    /// skipped; the comparison takes constant time.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
        if now_secs - ts > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::TooOld(now_secs - ts));
        }
        if ts - now_secs > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::TooNew(ts - now_secs));
        }
        let expected = self.mac(msg_id, timestamp.trim(), body);
        let mut seen = false;
        let mut matched = false;
        for sig in signatures.split_whitespace() {
            if let Some(b64) = sig.strip_prefix("v1,") {
                seen = true;
                if let Ok(given) = STANDARD.decode(b64) {
                    matched |= bool::from(given.ct_eq(&expected));
                }
            }
        }
        match (seen, matched) {
            (_, true) => Ok(()),
            (false, false) => Err(VerifyError::NoSignature),
            (true, false) => Err(VerifyError::Mismatch),
        }
    }

    /// HMAC-SHA256 of `"{msg_id}.{timestamp}.{body}"`.
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
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

    const REF_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const REF_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const REF_TS: i64 = 1_614_265_330;
    const REF_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const REF_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verify_ref(signatures: &str, now: i64) -> Result<(), VerifyError> {
        let key = SigningKey::from_secret(REF_SECRET).unwrap();
        key.verify(REF_ID, &REF_TS.to_string(), signatures, REF_BODY, now)
    }

    #[test]
    fn verify_accepts_the_standard_webhooks_reference_vector() {
        assert_eq!(verify_ref(REF_SIG, REF_TS), Ok(()));
    }

    #[test]
    fn verify_accepts_a_timestamp_within_the_tolerance_either_way() {
        assert_eq!(
            verify_ref(REF_SIG, REF_TS + TIMESTAMP_TOLERANCE_SECS),
            Ok(())
        );
        assert_eq!(
            verify_ref(REF_SIG, REF_TS - TIMESTAMP_TOLERANCE_SECS),
            Ok(())
        );
    }

    #[test]
    fn verify_refuses_a_timestamp_outside_the_tolerance() {
        let late = REF_TS + TIMESTAMP_TOLERANCE_SECS + 1;
        assert_eq!(
            verify_ref(REF_SIG, late),
            Err(VerifyError::TooOld(TIMESTAMP_TOLERANCE_SECS + 1))
        );
        let early = REF_TS - TIMESTAMP_TOLERANCE_SECS - 1;
        assert_eq!(
            verify_ref(REF_SIG, early),
            Err(VerifyError::TooNew(TIMESTAMP_TOLERANCE_SECS + 1))
        );
        let key = SigningKey::from_secret(REF_SECRET).unwrap();
        assert_eq!(
            key.verify(REF_ID, "yesterday", REF_SIG, REF_BODY, REF_TS),
            Err(VerifyError::BadTimestamp("yesterday".into()))
        );
    }

    #[test]
    fn verify_accepts_any_matching_v1_signature_among_several() {
        let other = SigningKey::from_secret(&crate::domain::api_key::new_signing_secret()).unwrap();
        let other_sig = other.sign(REF_ID, REF_TS, REF_BODY);
        for header in [
            format!("{other_sig} {REF_SIG}"),
            format!("{REF_SIG} {other_sig}"),
            format!("v1a,c29tZXRoaW5nIGVsc2U= {REF_SIG}"),
            format!("v1,not-base64!! {REF_SIG}"),
        ] {
            assert_eq!(verify_ref(&header, REF_TS), Ok(()), "{header}");
        }
        assert_eq!(verify_ref(&other_sig, REF_TS), Err(VerifyError::Mismatch));
    }

    #[test]
    fn verify_refuses_a_changed_body_id_or_timestamp() {
        let key = SigningKey::from_secret(REF_SECRET).unwrap();
        let ts = REF_TS.to_string();
        let changed_body = key.verify(REF_ID, &ts, REF_SIG, br#"{"test": 2432232315}"#, REF_TS);
        assert_eq!(changed_body, Err(VerifyError::Mismatch));
        let changed_id = key.verify("msg_other", &ts, REF_SIG, REF_BODY, REF_TS);
        assert_eq!(changed_id, Err(VerifyError::Mismatch));
        let next = (REF_TS + 1).to_string();
        let changed_ts = key.verify(REF_ID, &next, REF_SIG, REF_BODY, REF_TS);
        assert_eq!(changed_ts, Err(VerifyError::Mismatch));
    }

    #[test]
    fn verify_without_a_v1_signature_says_so() {
        assert_eq!(verify_ref("", REF_TS), Err(VerifyError::NoSignature));
        assert_eq!(
            verify_ref("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", REF_TS),
            Err(VerifyError::NoSignature)
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(SigningKey::from_secret("whsec_!!!").is_none());
        assert!(SigningKey::from_secret("whsec_").is_none());
    }
}
