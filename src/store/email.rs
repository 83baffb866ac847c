//! The email side of the store: operational notices and their outbox, and
//! digests (deliveries held per subscription until the period ends).

use uuid::Uuid;

use super::{Attempt, Claimed, Store, StoreError};
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
        let shard = self.keys.shard_of(&notice.account_id);
        let (name, value) = once_per.unwrap_or(("", ""));
        let mut inv = self.scripts.notice.key(self.keys.outbox(shard));
        inv.arg(self.keys.shard_base(shard))
            .arg(notice.account_id.to_string())
            .arg(notice.id.to_string())
            .arg(notice.to_json())
            .arg(now_ms)
            .arg(name)
            .arg(value)
            .arg(REPORTED_TTL_MS);
        let mut conn = self.conn();
        let recorded: i64 = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(recorded == 1)
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
        let mut inv = self.scripts.outbox_claim.key(self.keys.outbox(shard));
        inv.arg(self.keys.shard_base(shard))
            .arg(now_ms)
            .arg(lease_ms)
            .arg(max);
        let mut conn = self.conn();
        let flat: Vec<String> = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        let mut out = Vec::new();
        for c in flat.chunks_exact(4) {
            match serde_json::from_str::<Notice>(&c[1]) {
                Ok(notice) => out.push(ClaimedNotice {
                    shard,
                    lease_until_ms: now_ms + lease_ms,
                    token: c[3].clone(),
                    notice,
                    attempts: c[2].parse().unwrap_or(1),
                }),
                Err(e) => {
                    tracing::error!(notice = %c[0], error = %e, "unreadable notice dropped");
                    if let Ok(id) = Uuid::parse_str(&c[0]) {
                        if let Err(e) = self.notice_done(shard, &id, &c[3], None).await {
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
        let mut inv = self.scripts.outbox_done.key(self.keys.outbox(shard));
        inv.arg(self.keys.shard_base(shard))
            .arg(id.to_string())
            .arg(token)
            .arg(if retry_at.is_some() { "retry" } else { "done" })
            .arg(retry_at.unwrap_or(0));
        let mut conn = self.conn();
        let reply: String = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(reply == "ok")
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
                let mut inv = match kind {
                    MessageKind::Digest => self
                        .scripts
                        .digest_renew
                        .key(self.keys.digests_sending(shard)),
                    MessageKind::Notice => self.scripts.outbox_renew.key(self.keys.outbox(shard)),
                };
                inv.arg(self.keys.shard_base(shard)).arg(until_ms);
                for c in chunk {
                    inv.arg(c.id.to_string()).arg(&c.token);
                }
                let mut conn = self.conn();
                let ids: Vec<String> = self
                    .run(async move { inv.invoke_async(&mut conn).await })
                    .await?;
                renewed.extend(ids.iter().filter_map(|id| {
                    let id = Uuid::parse_str(id).ok()?;
                    let c = chunk.iter().find(|c| c.id == id)?;
                    Some(((kind, id), c.token.clone()))
                }));
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
        let mut inv = self
            .scripts
            .outbox_release
            .key(self.keys.outbox(claimed.shard));
        inv.arg(self.keys.shard_base(claimed.shard))
            .arg(claimed.notice.id.to_string())
            .arg(&claimed.token)
            .arg(now_ms);
        let mut conn = self.conn();
        let released: i64 = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(released == 1)
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
        let mut inv = self
            .scripts
            .digest_hold
            .key(self.keys.schedule(claimed.shard));
        inv.key(self.keys.leases(claimed.shard))
            .arg(self.keys.shard_base(claimed.shard))
            .arg(claimed.delivery_id.to_string())
            .arg(&claimed.token)
            .arg(now_ms)
            .arg(claimed.subscription_id.to_string())
            .arg(due_ms)
            .arg(&claimed.event_type)
            .arg(max_events);
        let mut conn = self.conn();
        let reply: String = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(reply == "ok")
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
        let mut inv = self.scripts.digest_claim.key(self.keys.schedule(shard));
        inv.arg(self.keys.shard_base(shard))
            .arg(now_ms)
            .arg(lease_ms)
            .arg(max)
            .arg(latest)
            .arg(self.retention.events_ms);
        let mut conn = self.conn();
        let flat: Vec<String> = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        let bad = |what: &str| StoreError::Internal(format!("digest claim reply: bad {what}"));
        flat.chunks_exact(8)
            .map(|c| {
                let words: Vec<&str> = c[6].split_whitespace().collect();
                let mut counts: Vec<(String, u64)> = words
                    .chunks_exact(2)
                    .map(|p| (p[0].to_owned(), p[1].parse().unwrap_or(0)))
                    .collect();
                counts.sort();
                let words: Vec<&str> = c[7].split_whitespace().collect();
                let latest = words
                    .chunks_exact(3)
                    .filter_map(|p| {
                        Some((
                            Uuid::parse_str(p[0]).ok()?,
                            p[1].to_owned(),
                            p[2].parse().ok()?,
                        ))
                    })
                    .collect();
                Ok(ClaimedDigest {
                    shard,
                    lease_until_ms: now_ms + lease_ms,
                    subscription_id: Uuid::parse_str(&c[0]).map_err(|_| bad("subscription"))?,
                    token: c[1].clone(),
                    attempts: c[2].parse().map_err(|_| bad("attempts"))?,
                    first_ms: c[3].parse().map_err(|_| bad("first"))?,
                    last_ms: c[4].parse().map_err(|_| bad("last"))?,
                    total: c[5].parse().map_err(|_| bad("total"))?,
                    counts,
                    latest,
                })
            })
            .collect()
    }

    /// Hands a claimed digest back unsent: due at `now_ms`, no attempt
    /// spent, the claim fenced off. False when the claim was superseded.
    pub async fn release_digest(
        &self,
        claimed: &ClaimedDigest,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut inv = self
            .scripts
            .digest_release
            .key(self.keys.digests_sending(claimed.shard));
        inv.arg(self.keys.shard_base(claimed.shard))
            .arg(claimed.subscription_id.to_string())
            .arg(&claimed.token)
            .arg(now_ms);
        let mut conn = self.conn();
        let released: i64 = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(released == 1)
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
        let (name, due, error) = match outcome {
            Outcome::Success => ("success", 0, ""),
            Outcome::Retry { due_ms } | Outcome::Wait { due_ms } => ("retry", *due_ms, ""),
            Outcome::Fail { error } | Outcome::Drop { error } => ("fail", 0, error.as_str()),
        };
        let attempt_json = super::deliveries::attempt_json(attempt)?;
        let mut inv = self
            .scripts
            .digest_finish
            .key(self.keys.schedule(claimed.shard));
        inv.arg(self.keys.shard_base(claimed.shard))
            .arg(claimed.subscription_id.to_string())
            .arg(&claimed.token)
            .arg(name)
            .arg(now_ms)
            .arg(due)
            .arg(attempt_json)
            .arg(error)
            .arg(self.retention.events_ms);
        let mut conn = self.conn();
        let reply: String = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(reply == "ok")
    }
}
