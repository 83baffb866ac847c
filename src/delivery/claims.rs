//! The claims this process holds, with each one's current lease deadline:
//! the engine renews them every quarter of the lease while they are held
//! (so a slow send keeps its claim and a dead process's claims come back
//! within one lease), and a stopping process hands every one of them back
//! (due now, no attempt spent) instead of leaving them to their leases. A
//! claim is held from the round that claimed it until its outcome is
//! recorded; the store's renewal and release are fenced by the claim token,
//! so touching a claim that was finished or superseded meanwhile does
//! nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::store::{ClaimRef, Claimed};

#[derive(Debug, Default)]
pub struct HeldClaims {
    /// By delivery id: a delivery is claimed at most once at a time here.
    held: Mutex<HashMap<Uuid, ClaimRef>>,
}

impl HeldClaims {
    /// Records new claims; forgets those whose lease ran out before `now_ms`
    /// (their outcome could not be recorded; someone else may claim them).
    pub fn hold<'a>(&self, claims: impl IntoIterator<Item = &'a Claimed>, now_ms: i64) {
        let mut held = self.lock();
        held.retain(|_, c| c.lease_until_ms > now_ms);
        for c in claims {
            held.insert(c.delivery_id, c.claim_ref());
        }
    }

    /// The claim's outcome is recorded (or it was superseded): it is no
    /// longer this process's to hand back.
    pub fn let_go(&self, claimed: &Claimed) {
        let mut held = self.lock();
        if held
            .get(&claimed.delivery_id)
            .is_some_and(|c| c.token == claimed.token)
        {
            held.remove(&claimed.delivery_id);
        }
    }

    /// Whether `claimed` is still this process's with at least
    /// `min_left_ms` of its lease left (renewals are keeping up): a send
    /// may start on it.
    pub fn is_live(&self, claimed: &Claimed, now_ms: i64, min_left_ms: i64) -> bool {
        self.lock()
            .get(&claimed.delivery_id)
            .is_some_and(|c| c.token == claimed.token && c.lease_until_ms - now_ms >= min_left_ms)
    }

    /// The claims held now, by shard, to renew.
    pub fn by_shard(&self) -> HashMap<u16, Vec<ClaimRef>> {
        let mut out: HashMap<u16, Vec<ClaimRef>> = HashMap::new();
        for c in self.lock().values() {
            out.entry(c.shard).or_default().push(c.clone());
        }
        out
    }

    /// The leases of `renewed` (delivery id and token) now run until
    /// `until_ms`.
    pub fn renewed(&self, renewed: &[(Uuid, String)], until_ms: i64) {
        let mut held = self.lock();
        for (id, token) in renewed {
            if let Some(c) = held.get_mut(id).filter(|c| c.token == *token) {
                c.lease_until_ms = c.lease_until_ms.max(until_ms);
            }
        }
    }

    /// Every claim still held, leaving none.
    pub fn take_all(&self) -> Vec<ClaimRef> {
        self.lock().drain().map(|(_, c)| c).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ClaimRef>> {
        // A panic while holding the lock leaves the map usable.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(id: Uuid, token: &str, lease_until_ms: i64) -> Claimed {
        Claimed {
            shard: 3,
            lease_until_ms,
            delivery_id: id,
            token: token.into(),
            event_id: Uuid::nil(),
            subscription_id: Uuid::nil(),
            attempts: 0,
            event_type: "customer.created".into(),
            occurred_at_ms: 0,
            payload: "{}".into(),
        }
    }

    #[test]
    fn finished_claims_are_not_handed_back() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        claims.hold([&claimed(a, "1", 10_000), &claimed(b, "4", 10_000)], 0);
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
        claims.hold([&claimed(a, "1", 10_000)], 0);
        claims.hold([&claimed(a, "2", 20_000)], 15_000);
        claims.let_go(&claimed(a, "1", 10_000));
        assert_eq!(claims.take_all()[0].token, "2");
    }

    #[test]
    fn claims_past_their_lease_are_forgotten() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        claims.hold([&claimed(a, "1", 10_000)], 0);
        claims.hold([&claimed(b, "1", 30_000)], 10_001);
        let left = claims.take_all();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].delivery_id, b);
    }

    #[test]
    fn a_renewed_claim_stays_live_and_an_unrenewed_one_does_not() {
        let claims = HeldClaims::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ca = Claimed {
            shard: 0,
            ..claimed(a, "1", 8_000)
        };
        let cb = Claimed {
            shard: 5,
            ..claimed(b, "1", 8_000)
        };
        claims.hold([&ca, &cb], 0);
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
}
