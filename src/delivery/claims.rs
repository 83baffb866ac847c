//! The claims this process holds, with each one's current lease deadline:
//! the engine renews them every quarter of the lease while they are held
//! (so a slow send keeps its claim and a dead process's claims come back
//! within one lease), and a stopping process hands every one of them back
//! (due now, no attempt spent) instead of leaving them to their leases. A
//! claim is held from the round that claimed it until its outcome is
//! recorded; the store's renewal and release are fenced by the claim token,
//! so touching a claim that was finished or superseded meanwhile does
//! nothing.
//!
//! Deliveries ([`HeldClaims`]) and the email notifier's digests and notices
//! ([`HeldMessages`]) are kept apart (a stopping process hands the former
//! back itself; the notifier hands back its own), by the same rules.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use uuid::Uuid;

use crate::store::{ClaimRef, Claimed, MessageKind, MessageRef};

/// What names a claim: what it holds ([`ClaimId::Key`]; one claim at a
/// time per key) and its fencing token.
pub trait ClaimId {
    type Key: Eq + Hash + Clone;
    fn key(&self) -> Self::Key;
    fn token(&self) -> &str;
}

/// A claim as held here: its name, its shard and its lease deadline.
pub trait Lease: ClaimId + Clone {
    fn shard(&self) -> u16;
    fn lease_until_ms(&self) -> i64;
    /// The lease now runs until `until_ms` (never shortened).
    fn extend_to(&mut self, until_ms: i64);
}

impl ClaimId for Claimed {
    type Key = Uuid;
    fn key(&self) -> Uuid {
        self.delivery_id
    }
    fn token(&self) -> &str {
        &self.token
    }
}

impl ClaimId for ClaimRef {
    type Key = Uuid;
    fn key(&self) -> Uuid {
        self.delivery_id
    }
    fn token(&self) -> &str {
        &self.token
    }
}

impl Lease for ClaimRef {
    fn shard(&self) -> u16 {
        self.shard
    }
    fn lease_until_ms(&self) -> i64 {
        self.lease_until_ms
    }
    fn extend_to(&mut self, until_ms: i64) {
        self.lease_until_ms = self.lease_until_ms.max(until_ms);
    }
}

impl ClaimId for MessageRef {
    /// A digest by its subscription, a notice by its id.
    type Key = (MessageKind, Uuid);
    fn key(&self) -> (MessageKind, Uuid) {
        (self.kind, self.id)
    }
    fn token(&self) -> &str {
        &self.token
    }
}

impl Lease for MessageRef {
    fn shard(&self) -> u16 {
        self.shard
    }
    fn lease_until_ms(&self) -> i64 {
        self.lease_until_ms
    }
    fn extend_to(&mut self, until_ms: i64) {
        self.lease_until_ms = self.lease_until_ms.max(until_ms);
    }
}

/// Claimed deliveries not yet finished in this process.
pub type HeldClaims = Held<ClaimRef>;

/// Digests and notices the email notifier claimed and is still working on.
pub type HeldMessages = Held<MessageRef>;

#[derive(Debug)]
pub struct Held<L: Lease> {
    held: Mutex<HashMap<L::Key, L>>,
}

impl<L: Lease> Default for Held<L> {
    fn default() -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
        }
    }
}

impl<L: Lease> Held<L> {
    /// Records new claims; forgets those whose lease ran out before `now_ms`
    /// (their outcome could not be recorded; someone else may claim them).
    pub fn hold(&self, claims: impl IntoIterator<Item = L>, now_ms: i64) {
        let mut held = self.lock();
        held.retain(|_, c| c.lease_until_ms() > now_ms);
        for c in claims {
            held.insert(c.key(), c);
        }
    }

    /// The claim's outcome is recorded (or it was superseded): it is no
    /// longer this process's to renew or hand back. A newer claim of the
    /// same key (another token) is kept.
    pub fn let_go(&self, claim: &impl ClaimId<Key = L::Key>) {
        let mut held = self.lock();
        let key = claim.key();
        if held.get(&key).is_some_and(|c| c.token() == claim.token()) {
            held.remove(&key);
        }
    }

    /// Whether `claim` is still this process's with at least `min_left_ms`
    /// of its lease left (renewals are keeping up): a send may start on it.
    pub fn is_live(
        &self,
        claim: &impl ClaimId<Key = L::Key>,
        now_ms: i64,
        min_left_ms: i64,
    ) -> bool {
        self.lock().get(&claim.key()).is_some_and(|c| {
            c.token() == claim.token() && c.lease_until_ms() - now_ms >= min_left_ms
        })
    }

    /// The claims held now, by shard, to renew.
    pub fn by_shard(&self) -> HashMap<u16, Vec<L>> {
        let mut out: HashMap<u16, Vec<L>> = HashMap::new();
        for c in self.lock().values() {
            out.entry(c.shard()).or_default().push(c.clone());
        }
        out
    }

    /// The leases of `renewed` (key and token) now run until `until_ms`.
    pub fn renewed(&self, renewed: &[(L::Key, String)], until_ms: i64) {
        let mut held = self.lock();
        for (key, token) in renewed {
            if let Some(c) = held.get_mut(key).filter(|c| c.token() == token) {
                c.extend_to(until_ms);
            }
        }
    }

    /// Every claim still held, leaving none.
    pub fn take_all(&self) -> Vec<L> {
        self.lock().drain().map(|(_, c)| c).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<L::Key, L>> {
        // A panic while holding the lock leaves the map usable.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(id: Uuid, token: &str, lease_until_ms: i64) -> ClaimRef {
        ClaimRef {
            shard: 3,
            lease_until_ms,
            delivery_id: id,
            token: token.into(),
        }
    }

    #[test]
    fn finished_claims_are_not_handed_back() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        claims.hold([claimed(a, "1", 10_000), claimed(b, "4", 10_000)], 0);
        claims.let_go(&claimed(a, "1", 10_000));
        let left = claims.take_all();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].delivery_id, left[0].token.as_str()), (b, "4"));
        assert_eq!(left[0].shard, 3);
        assert!(claims.is_empty());
    }

    #[test]
    fn an_older_claims_outcome_does_not_let_go_of_a_newer_claim() {
        let claims = HeldClaims::default();
        let a = Uuid::now_v7();
        claims.hold([claimed(a, "1", 10_000)], 0);
        claims.hold([claimed(a, "2", 20_000)], 15_000);
        claims.let_go(&claimed(a, "1", 10_000));
        assert_eq!(claims.take_all()[0].token, "2");
    }

    #[test]
    fn claims_past_their_lease_are_forgotten() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        claims.hold([claimed(a, "1", 10_000)], 0);
        claims.hold([claimed(b, "1", 30_000)], 10_001);
        let left = claims.take_all();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].delivery_id, b);
    }

    #[test]
    fn a_renewed_claim_stays_live_and_an_unrenewed_one_does_not() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ca = ClaimRef {
            shard: 0,
            ..claimed(a, "1", 8_000)
        };
        let cb = ClaimRef {
            shard: 5,
            ..claimed(b, "1", 8_000)
        };
        claims.hold([ca.clone(), cb.clone()], 0);
        assert!(claims.is_live(&ca, 0, 4_000));
        let shards = claims.by_shard();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[&5][0].delivery_id, b);
        // At 6 s only `a` was renewed (to 14 s); `b` still ends at 8 s.
        claims.renewed(&[(a, "1".into()), (b, "other token".into())], 14_000);
        assert!(claims.is_live(&ca, 6_000, 4_000));
        assert!(
            !claims.is_live(&cb, 6_000, 4_000),
            "too little lease left to start a send"
        );
        // A renewal answered late never shortens a lease.
        claims.renewed(&[(a, "1".into())], 10_000);
        assert!(claims.is_live(&ca, 9_000, 4_000));
        // A claim that is not ours (another token) or let go is not live.
        assert!(!claims.is_live(&claimed(a, "2", 8_000), 0, 0));
        claims.let_go(&ca);
        assert!(!claims.is_live(&ca, 0, 0));
    }

    fn message(kind: MessageKind, id: Uuid, token: &str, lease_until_ms: i64) -> MessageRef {
        MessageRef {
            shard: 2,
            kind,
            id,
            token: token.into(),
            lease_until_ms,
        }
    }

    #[test]
    fn digests_and_notices_are_held_renewed_and_let_go_by_kind_id_and_token() {
        let held = HeldMessages::default();
        let id = Uuid::now_v7();
        // A digest and a notice may share an id: they are different claims.
        let digest = message(MessageKind::Digest, id, "7", 2_000);
        let notice = message(MessageKind::Notice, id, "1", 2_000);
        held.hold([digest.clone(), notice.clone()], 0);
        assert_eq!(held.len(), 2);
        assert_eq!(held.by_shard()[&2].len(), 2);
        // Renewed at 1.5 s (a quarter lease late, say): both live at 2.5 s
        // with half a lease left, where the claimed deadline had passed.
        held.renewed(
            &[
                ((MessageKind::Digest, id), "7".into()),
                ((MessageKind::Notice, id), "1".into()),
            ],
            3_500,
        );
        assert!(held.is_live(&digest, 2_500, 1_000));
        assert!(held.is_live(&notice, 2_500, 1_000));
        // A renewal of an older claim of the digest changes nothing.
        held.renewed(&[((MessageKind::Digest, id), "6".into())], 9_000);
        assert!(!held.is_live(&digest, 3_000, 1_000));
        // Nor is an older or newer claim of it live, nor let go of.
        assert!(!held.is_live(&message(MessageKind::Digest, id, "8", 9_000), 0, 0));
        held.let_go(&message(MessageKind::Digest, id, "6", 2_000));
        assert_eq!(held.len(), 2);
        // Finished: no longer renewed (nor live).
        held.let_go(&digest);
        assert!(!held.is_live(&digest, 0, 0));
        assert!(held.is_live(&notice, 0, 0));
        let left = held.take_all();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kind, MessageKind::Notice);
    }
}
