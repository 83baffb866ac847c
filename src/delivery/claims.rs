//! The claims this process holds, so that a stopping process can hand every
//! one of them back (due now, no attempt spent) instead of leaving them to
//! their leases. A claim is held from the round that claimed it until its
//! outcome is recorded; the store's release is fenced by the claim token, so
//! handing back a claim that was finished meanwhile does nothing.

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
}
