//! The email side of the store: operational notices and their outbox, and
//! digests (deliveries held per subscription until the period ends).

use uuid::Uuid;

use super::{scripts, Attempt, Claimed, Store, StoreError};
use crate::domain::delivery::Outcome;
use crate::domain::notice::Notice;

/// A notice claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub shard: u16,
    /// When the claim's lease runs out as claimed, ms (the notice's score in
    /// the outbox while it is claimed; renewals push it on).
    pub lease_until_ms: i64,
    /// Fencing token: only the latest claim may renew, hand back or finish
    /// the notice.
    pub token: String,
    pub notice: Notice,
    /// Attempts including this one.
    pub attempts: u32,
}

impl ClaimedNotice {
    /// What identifies the claim, to renew it.
    pub fn claim_ref(&self) -> MessageRef {
        MessageRef {
            shard: self.shard,
            kind: MessageKind::Notice,
            id: self.notice.id,
            token: self.token.clone(),
            lease_until_ms: self.lease_until_ms,
        }
    }
}

/// A digest claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedDigest {
    pub shard: u16,
    /// When the claim's lease runs out, ms.
    pub lease_until_ms: i64,
    pub subscription_id: Uuid,
    pub token: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When its first and its last event arrived (ms).
    pub first_ms: i64,
    pub last_ms: i64,
    pub total: u64,
    /// Events per type, sorted by type.
    pub counts: Vec<(String, u64)>,
    /// The newest events: (event id, type, occurred ms), newest first.
    pub latest: Vec<(Uuid, String, i64)>,
}

impl ClaimedDigest {
    /// What identifies the claim, to renew it.
    pub fn claim_ref(&self) -> MessageRef {
        MessageRef {
            shard: self.shard,
            kind: MessageKind::Digest,
            id: self.subscription_id,
            token: self.token.clone(),
            lease_until_ms: self.lease_until_ms,
        }
    }
}

/// What an email message claim holds: a digest (of a subscription) or an
/// operational notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Digest,
    Notice,
}

/// A digest or notice claim without its message: enough to renew it, like
/// [`super::ClaimRef`] for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub shard: u16,
    pub kind: MessageKind,
    /// The digest's subscription, or the notice.
    pub id: Uuid,
    /// The claim's fencing token.
    pub token: String,
    /// When the claim's lease runs out, ms.
    pub lease_until_ms: i64,
}

/// How long a "this was reported" marker is kept.
const REPORTED_TTL_MS: i64 = 30 * 86_400_000;

impl Store {
    /// The shards with email work due at `now_ms`: (shard, notices due,
    /// digests due). One read-only pipeline per shard (one slot each), sent
    /// at once, so an idle poll costs no scripts.
    pub async fn email_due(&self, now_ms: i64) -> Result<Vec<(u16, bool, bool)>, StoreError> {
        let shards = self.keys.shards();
        let firsts: Vec<Vec<Vec<String>>> = self
            .each_shard(|shard| {
                let mut pipe = redis::pipe();
                for key in [
                    self.keys.outbox(shard),
                    self.keys.digests(shard),
                    self.keys.digests_sending(shard),
                ] {
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(key)
                        .arg("-inf")
                        .arg(now_ms)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1);
                }
                pipe
            })
            .await?;
        Ok(firsts
            .iter()
            .filter(|due| due.len() == 3)
            .zip(0..shards)
            .filter_map(|(due, shard)| {
                let notices = !due[0].is_empty();
                let digests = !due[1].is_empty() || !due[2].is_empty();
                (notices || digests).then_some((shard, notices, digests))
            })
            .collect())
    }

    /// Records `notice` and queues it for email. With `once_per`, a notice
    /// whose (name, value) was already recorded is skipped; returns whether
    /// it was recorded.
    pub async fn add_notice(
        &self,
        notice: &Notice,
        once_per: Option<(&str, &str)>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::AddNotice {
            notice,
            once_per,
            now_ms,
            reported_ttl_ms: REPORTED_TTL_MS,
        })
        .await
    }

    /// Claims up to `max` due notices of `shard` for `lease_ms` (renewed
    /// with [`Store::renew_messages`] while they are sent).
    pub async fn claim_notices(
        &self,
        shard: u16,
        now_ms: i64,
        lease_ms: i64,
        max: usize,
    ) -> Result<Vec<ClaimedNotice>, StoreError> {
        let claimed = self
            .call(&scripts::OutboxClaim {
                shard,
                now_ms,
                lease_ms,
                max,
            })
            .await?;
        let mut out = Vec::new();
        for c in claimed {
            match c {
                Ok(notice) => out.push(notice),
                Err(unreadable) => {
                    tracing::error!(
                        notice = %unreadable.id,
                        error = %unreadable.error,
                        "unreadable notice dropped"
                    );
                    if let Ok(id) = Uuid::parse_str(&unreadable.id) {
                        if let Err(e) = self.notice_done(shard, &id, &unreadable.token, None).await
                        {
                            tracing::warn!(notice = %id, error = %e, "could not drop a notice");
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Ends a notice claimed under `token` (`retry_at` None: sent or
    /// refused for good) or makes it due again at `retry_at`. False when
    /// the claim was superseded: nothing changed.
    pub async fn notice_done(
        &self,
        shard: u16,
        id: &Uuid,
        token: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::OutboxDone {
            shard,
            id,
            token,
            retry_at,
        })
        .await
    }

    /// Renews the leases of digest and notice claims (all of `shard`) to
    /// `until_ms`; returns those renewed ((kind, id), token): the others
    /// were finished, handed back or superseded meanwhile.
    pub async fn renew_messages(
        &self,
        shard: u16,
        claims: &[MessageRef],
        until_ms: i64,
    ) -> Result<Vec<((MessageKind, Uuid), String)>, StoreError> {
        let mut renewed = Vec::new();
        for kind in [MessageKind::Digest, MessageKind::Notice] {
            let of_kind: Vec<&MessageRef> = claims.iter().filter(|c| c.kind == kind).collect();
            for chunk in of_kind.chunks(500) {
                let refs = match kind {
                    MessageKind::Digest => {
                        self.call(&scripts::DigestRenew {
                            shard,
                            until_ms,
                            claims: chunk,
                        })
                        .await?
                    }
                    MessageKind::Notice => {
                        self.call(&scripts::OutboxRenew {
                            shard,
                            until_ms,
                            claims: chunk,
                        })
                        .await?
                    }
                };
                renewed.extend(refs.into_iter().map(|c| ((kind, c.id), c.token.clone())));
            }
        }
        Ok(renewed)
    }

    /// Hands a claimed notice back unsent: due at `now_ms`, its claim's
    /// attempt not counted, the claim fenced off. False when the claim was
    /// superseded or finished.
    pub async fn release_notice(
        &self,
        claimed: &ClaimedNotice,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::OutboxRelease { claimed, now_ms }).await
    }

    /// Moves a claimed delivery of a digest subscription into the
    /// subscription's open digest, due at `due_ms` (sooner when the digest
    /// reaches `max_events`). False when the claim was superseded.
    pub async fn hold_for_digest(
        &self,
        claimed: &Claimed,
        due_ms: i64,
        max_events: usize,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::DigestHold {
            claimed,
            due_ms,
            max_events,
            now_ms,
        })
        .await
    }

    /// Claims up to `max` due digests of `shard` for `lease_ms` (renewed
    /// with [`Store::renew_messages`] while they are sent), each with its
    /// `latest` newest events.
    pub async fn claim_digests(
        &self,
        shard: u16,
        now_ms: i64,
        lease_ms: i64,
        max: usize,
        latest: usize,
    ) -> Result<Vec<ClaimedDigest>, StoreError> {
        self.call(&scripts::DigestClaim {
            shard,
            now_ms,
            lease_ms,
            max,
            latest,
            retention_ms: self.retention.events_ms,
        })
        .await
    }

    /// Hands a claimed digest back unsent: due at `now_ms`, no attempt
    /// spent, the claim fenced off. False when the claim was superseded.
    pub async fn release_digest(
        &self,
        claimed: &ClaimedDigest,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::DigestRelease { claimed, now_ms }).await
    }

    /// Records the outcome of sending a digest on each of its deliveries
    /// (`Success`, `Retry` or `Fail`). False when the claim was superseded.
    pub async fn finish_digest(
        &self,
        claimed: &ClaimedDigest,
        outcome: &Outcome,
        attempt: Option<&Attempt>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::DigestFinish::new(
            claimed,
            outcome,
            attempt,
            now_ms,
            self.retention.events_ms,
        )?)
        .await
    }
}
