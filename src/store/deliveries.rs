//! Deliveries: the schedule, leases, outcomes and history.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{scripts, Cursor, Page, Store, StoreError};
use crate::domain::delivery::{DeliveryStatus, Outcome};

/// How many index entries a status-filtered page may read per result.
const SCAN_FACTOR: usize = 20;

/// A delivery handed to this process by [`Store::claim`].
#[derive(Debug, Clone)]
pub struct Claimed {
    pub shard: u16,
    /// When the claim's lease runs out, ms: past it the delivery may be
    /// claimed again.
    pub lease_until_ms: i64,
    pub delivery_id: Uuid,
    /// Fencing token: only the latest claim may record the outcome.
    pub token: String,
    pub event_id: Uuid,
    pub subscription_id: Uuid,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event_type: String,
    pub occurred_at_ms: i64,
    /// The event payload's JSON text.
    pub payload: String,
    /// The delivery has a `next_attempt_at` of its own (it was retried,
    /// postponed or handed back), which its outcome clears.
    pub rescheduled: bool,
}

impl Claimed {
    /// What identifies the claim, to hand it back.
    pub fn claim_ref(&self) -> ClaimRef {
        ClaimRef {
            shard: self.shard,
            delivery_id: self.delivery_id,
            token: self.token.clone(),
            lease_until_ms: self.lease_until_ms,
        }
    }
}

/// A claim without its work: enough to hand it back with [`Store::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub shard: u16,
    pub delivery_id: Uuid,
    /// The claim's fencing token.
    pub token: String,
    pub lease_until_ms: i64,
}

/// How long a claim holds a delivery, by the subscription's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseMs {
    pub webhook: i64,
    pub email: i64,
}

/// One attempt, as shown in a delivery's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// RFC 3339 time the request started.
    pub at: String,
    pub duration_ms: u64,
    /// HTTP status (webhooks) or SMTP reply code (email), if one came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The start of the response body (at most 4 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Timeout, connection error, blocked target, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due, if there will be one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub event_id: Uuid,
    pub subscription_id: Uuid,
    pub account_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: Option<i64>,
    pub last_attempt_at_ms: Option<i64>,
    pub replay: bool,
    pub error: Option<String>,
    /// Filled by [`Store::get_delivery`] only.
    pub history: Vec<Attempt>,
}

impl DeliveryRecord {
    fn from_hash(id: Uuid, mut h: HashMap<String, String>) -> Option<Self> {
        let mut take = |k: &str| h.remove(k);
        let created_at_ms: i64 = take("created_at")?.parse().ok()?;
        Some(Self {
            id,
            event_id: Uuid::parse_str(&take("event_id")?).ok()?,
            subscription_id: Uuid::parse_str(&take("sub_id")?).ok()?,
            account_id: Uuid::parse_str(&take("account_id")?).ok()?,
            event_type: take("event_type")?,
            // An unknown status makes the record unreadable, like any
            // other field that cannot be read.
            status: DeliveryStatus::parse(&take("status")?)?,
            attempts: take("attempts").and_then(|v| v.parse().ok()).unwrap_or(0),
            created_at_ms,
            // Absent until the first reschedule: due when created.
            next_attempt_at_ms: take("next_attempt_at")
                .and_then(|v| v.parse().ok())
                .or(Some(created_at_ms)),
            last_attempt_at_ms: take("last_attempt_at").and_then(|v| v.parse().ok()),
            replay: take("replay").as_deref() == Some("1"),
            error: take("error"),
            history: vec![],
        })
    }
}

/// A delivery's first attempt as its hash holds it (no list of its own,
/// so a delivery that succeeds at once costs one HSET): `a1` is
/// `at ms|duration ms|status|next due ms` (empty parts for none), `a1r` the
/// response and `a1e` the error, each left out when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FirstAttempt {
    pub a1: String,
    pub response: String,
    pub error: String,
}

/// Milliseconds of an RFC 3339 time written by `format_ms`.
fn parse_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl FirstAttempt {
    pub fn of(a: &Attempt) -> Result<Self, StoreError> {
        let at = parse_ms(&a.at)
            .ok_or_else(|| StoreError::Internal(format!("attempt time {:?}", a.at)))?;
        let code = a.status_code.map(|c| c.to_string()).unwrap_or_default();
        let next = a
            .next_attempt_at
            .as_deref()
            .and_then(parse_ms)
            .map(|n| n.to_string())
            .unwrap_or_default();
        Ok(Self {
            a1: format!("{at}|{}|{code}|{next}", a.duration_ms),
            response: a.response.clone().unwrap_or_default(),
            error: a.error.clone().unwrap_or_default(),
        })
    }

    /// The attempt back from the hash's fields; None when there is none
    /// (or it cannot be read).
    pub fn read(
        a1: Option<&str>,
        response: Option<String>,
        error: Option<String>,
    ) -> Option<Attempt> {
        let mut parts = a1?.split('|');
        let at: i64 = parts.next()?.parse().ok()?;
        let duration_ms: u64 = parts.next()?.parse().ok()?;
        let status_code = parts.next().and_then(|c| c.parse().ok());
        let next = parts.next().and_then(|n| n.parse::<i64>().ok());
        Some(Attempt {
            at: crate::domain::event::format_ms(at),
            duration_ms,
            status_code,
            response,
            error,
            next_attempt_at: next.map(crate::domain::event::format_ms),
        })
    }
}

/// An attempt as the scripts take it: its JSON, or '' for none.
pub(super) fn attempt_json(attempt: Option<&Attempt>) -> Result<String, StoreError> {
    attempt.map_or(Ok(String::new()), |a| {
        serde_json::to_string(a).map_err(|e| StoreError::Internal(e.to_string()))
    })
}

/// Which of a subscription's deliveries a listing returns.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFilter<'a> {
    /// None for all.
    pub status: Option<DeliveryStatus>,
    /// Created at or after / at or before (ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub cursor: Option<&'a Cursor>,
    pub limit: usize,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// The new deliveries' ids.
    Created(Vec<Uuid>),
    /// The event is no longer archived (or is not the account's).
    EventGone,
    /// A subscription was deleted meanwhile (or is not the account's);
    /// nothing was created.
    SubscriptionGone,
}

/// What a manual retry did to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeued {
    Queued,
    InFlight,
    Missing,
}

impl Store {
    /// Claims up to `max` due deliveries of `shard`, each leased for as
    /// long as `lease` gives its subscription's channel.
    pub async fn claim(
        &self,
        shard: u16,
        now_ms: i64,
        lease: LeaseMs,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.call(&scripts::Claim {
            shard,
            now_ms,
            lease,
            max,
        })
        .await
    }

    /// Hands claims back: each delivery still leased under its claim's
    /// token goes back to the schedule, due at `now_ms`, no attempt spent.
    /// Claims already finished or superseded are left alone. Returns how
    /// many deliveries went back.
    pub async fn release(&self, claims: &[ClaimRef], now_ms: i64) -> Result<u64, StoreError> {
        let mut by_shard: HashMap<u16, Vec<&ClaimRef>> = HashMap::new();
        for c in claims {
            by_shard.entry(c.shard).or_default().push(c);
        }
        let mut released = 0;
        for (shard, claims) in by_shard {
            released += self
                .call(&scripts::Release {
                    shard,
                    now_ms,
                    claims,
                })
                .await?;
        }
        Ok(released)
    }

    /// Renews the leases of `claims` (all of `shard`) to `until_ms`; returns
    /// those renewed (delivery id, token): the others were finished, handed
    /// back or superseded meanwhile.
    pub async fn renew(
        &self,
        shard: u16,
        claims: &[ClaimRef],
        until_ms: i64,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut renewed = Vec::new();
        for chunk in claims.chunks(500) {
            let ids = self
                .call(&scripts::Renew {
                    shard,
                    until_ms,
                    claims: chunk,
                })
                .await?;
            let tokens: HashMap<Uuid, &str> = chunk
                .iter()
                .map(|c| (c.delivery_id, c.token.as_str()))
                .collect();
            renewed.extend(
                ids.iter()
                    .filter_map(|id| Some((*id, tokens.get(id)?.to_string()))),
            );
        }
        Ok(renewed)
    }

    /// Records the outcome of a claim; false when the claim was superseded.
    pub async fn finish(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        attempt: Option<&Attempt>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.call(&scripts::Finish::new(claimed, outcome, attempt, now_ms)?)
            .await
    }

    /// Returns `shard`'s expired leases to its schedule; how many.
    pub async fn reclaim(&self, shard: u16, now_ms: i64) -> Result<u64, StoreError> {
        self.call(&scripts::Reclaim { shard, now_ms }).await
    }

    /// The earliest due time over all shards.
    pub async fn next_due_any(&self) -> Result<Option<i64>, StoreError> {
        // One pipeline per shard: a cluster refuses one across slots.
        let firsts: Vec<(Vec<(String, f64)>,)> = self
            .each_shard(|shard| {
                let mut pipe = redis::pipe();
                pipe.zrange_withscores(self.keys.schedule(shard), 0, 0);
                pipe
            })
            .await?;
        Ok(firsts
            .iter()
            .filter_map(|(f,)| f.first().map(|(_, s)| *s as i64))
            .min())
    }

    /// The earliest due time in `shard`'s schedule.
    pub async fn next_due(&self, shard: u16) -> Result<Option<i64>, StoreError> {
        let key = self.keys.schedule(shard);
        let mut conn = self.conn();
        let first: Vec<(String, f64)> = self
            .run(async move { conn.zrange_withscores(key, 0, 0).await })
            .await?;
        Ok(first.first().map(|(_, s)| *s as i64))
    }

    /// Waiting and in-flight deliveries over all shards.
    pub async fn queue_depths(&self) -> Result<(u64, u64), StoreError> {
        // One pipeline per shard: a cluster refuses one across slots.
        let counts: Vec<(u64, u64)> = self
            .each_shard(|shard| {
                let mut pipe = redis::pipe();
                pipe.zcard(self.keys.schedule(shard))
                    .zcard(self.keys.leases(shard));
                pipe
            })
            .await?;
        let waiting = counts.iter().map(|c| c.0).sum();
        let leased = counts.iter().map(|c| c.1).sum();
        Ok((waiting, leased))
    }

    /// One delivery of `account` with its attempt history.
    pub async fn get_delivery(
        &self,
        account: &Uuid,
        id: &Uuid,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(self.keys.delivery(account, id)).lrange(
            self.keys.delivery_attempts(account, id),
            0,
            -1,
        );
        let mut conn = self.conn();
        let (h, history): (HashMap<String, String>, Vec<String>) = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        let first = FirstAttempt::read(
            h.get("a1").map(String::as_str),
            h.get("a1r").cloned(),
            h.get("a1e").cloned(),
        );
        let Some(mut d) = DeliveryRecord::from_hash(*id, h).filter(|d| d.account_id == *account)
        else {
            return Ok(None);
        };
        // The first attempt from the hash (deliveries written before it was
        // kept there have it in the list), then the list.
        d.history = first
            .into_iter()
            .chain(history.iter().filter_map(|a| serde_json::from_str(a).ok()))
            .collect();
        Ok(Some(d))
    }

    async fn load_deliveries(
        &self,
        account: &Uuid,
        ids: &[String],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<Uuid> = ids.iter().filter_map(|i| Uuid::parse_str(i).ok()).collect();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.delivery(account, id));
        }
        let mut conn = self.conn();
        let rows: Vec<HashMap<String, String>> = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, h)| DeliveryRecord::from_hash(id, h))
            .filter(|d| d.account_id == *account)
            .collect())
    }

    /// A page of a subscription's deliveries, newest first, optionally of
    /// one status. Failed deliveries have an index of their own; the other
    /// statuses are found by reading the subscription's index, at most
    /// `SCAN_FACTOR` × `limit` entries per page (a page may then come back
    /// short, with a cursor to continue).
    pub async fn list_deliveries(
        &self,
        account: &Uuid,
        subscription: &Uuid,
        f: &DeliveryFilter<'_>,
    ) -> Result<Page<DeliveryRecord>, StoreError> {
        let (cursor, limit) = (f.cursor, f.limit);
        let (min, max) = (f.from_ms, f.to_ms);
        let (index, filter) = match f.status {
            Some(DeliveryStatus::Failed) => {
                (self.keys.failed_deliveries(account, subscription), None)
            }
            None => (
                self.keys.subscription_deliveries(account, subscription),
                None,
            ),
            Some(other) => (
                self.keys.subscription_deliveries(account, subscription),
                Some(other),
            ),
        };
        let Some(wanted_status) = filter else {
            let ids = self.page_ids(index, min, max, cursor, limit).await?;
            let wanted: Vec<String> = ids.items.iter().map(|(id, _)| id.clone()).collect();
            return Ok(Page {
                items: self.load_deliveries(account, &wanted).await?,
                next: ids.next,
            });
        };
        let mut items = Vec::new();
        let mut cursor = cursor.cloned();
        let mut scanned = 0;
        loop {
            let chunk = self
                .page_ids(index.clone(), min, max, cursor.as_ref(), limit)
                .await?;
            scanned += chunk.items.len();
            let ids: Vec<String> = chunk.items.iter().map(|(id, _)| id.clone()).collect();
            let mut found: HashMap<Uuid, DeliveryRecord> = self
                .load_deliveries(account, &ids)
                .await?
                .into_iter()
                .filter(|d| d.status == wanted_status)
                .map(|d| (d.id, d))
                .collect();
            // Matches are taken in index order; when the page fills before
            // the chunk ends, the cursor stops at the last one taken so the
            // rest of the chunk is read again by the next page.
            cursor = chunk.next.clone();
            for (position, (id, score)) in chunk.items.iter().enumerate() {
                let Some(d) = Uuid::parse_str(id).ok().and_then(|id| found.remove(&id)) else {
                    continue;
                };
                items.push(d);
                if items.len() == limit {
                    if position + 1 < chunk.items.len() {
                        cursor = Some(Cursor {
                            score: *score,
                            id: id.clone(),
                        });
                    }
                    break;
                }
            }
            if items.len() >= limit || cursor.is_none() || scanned >= limit * SCAN_FACTOR {
                return Ok(Page {
                    items,
                    next: cursor,
                });
            }
        }
    }

    /// Every delivery of one event.
    pub async fn event_deliveries(
        &self,
        account: &Uuid,
        event: &Uuid,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let key = self.keys.event(account, event);
        let mut conn = self.conn();
        let ids: Option<String> = self
            .run(async move { conn.hget(key, "deliveries").await })
            .await?;
        let ids: Vec<String> = ids
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        self.load_deliveries(account, &ids).await
    }

    /// Ids of a subscription's failed deliveries created at or after `since_ms`.
    pub async fn failed_since(
        &self,
        account: &Uuid,
        subscription: &Uuid,
        since_ms: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let key = self.keys.failed_deliveries(account, subscription);
        let mut conn = self.conn();
        let ids: Vec<String> = self
            .run(async move { conn.zrangebyscore(key, since_ms, "+inf").await })
            .await?;
        Ok(ids.iter().filter_map(|i| Uuid::parse_str(i).ok()).collect())
    }

    /// Ids of a subscription's pending deliveries (reads all of its
    /// deliveries; used when a subscription is disabled).
    pub async fn pending_of(
        &self,
        account: &Uuid,
        subscription: &Uuid,
    ) -> Result<Vec<Uuid>, StoreError> {
        let key = self.keys.subscription_deliveries(account, subscription);
        let mut conn = self.conn();
        let ids: Vec<String> = self
            .run(async move { conn.zrange(key, 0, -1).await })
            .await?;
        let mut pending = Vec::new();
        for chunk in ids.chunks(1_000) {
            for d in self.load_deliveries(account, chunk).await? {
                if d.status == DeliveryStatus::Pending {
                    pending.push(d.id);
                }
            }
        }
        Ok(pending)
    }

    /// Makes deliveries of `account` due now.
    pub async fn requeue(
        &self,
        account: &Uuid,
        ids: &[Uuid],
        now_ms: i64,
    ) -> Result<Vec<Requeued>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        self.call(&scripts::Requeue {
            account,
            now_ms,
            ids,
        })
        .await
    }

    /// New replay deliveries of `event` to `subscriptions` (all of them
    /// `account`'s), due now.
    pub async fn replay(
        &self,
        account: &Uuid,
        event: &Uuid,
        subscriptions: &[Uuid],
        now_ms: i64,
    ) -> Result<Replayed, StoreError> {
        self.call(&scripts::Replay {
            account,
            event,
            now_ms,
            retention_ms: self.retention.events_ms,
            deliveries: subscriptions
                .iter()
                .map(|sub| (Uuid::now_v7(), *sub))
                .collect(),
        })
        .await
    }

    /// Ids of the account's enabled subscriptions that receive `event_type`.
    pub async fn routes_for(
        &self,
        account: &Uuid,
        event_type: &str,
    ) -> Result<Vec<Uuid>, StoreError> {
        let (a, b) = (
            self.keys.route(account, event_type),
            self.keys.route(account, "*"),
        );
        let mut conn = self.conn();
        let ids: Vec<String> = self.run(async move { conn.sunion(&[a, b]).await }).await?;
        let mut ids: Vec<Uuid> = ids.iter().filter_map(|i| Uuid::parse_str(i).ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// A subscription by shard and id (the delivery engine's lookup).
    pub async fn subscription_in_shard(
        &self,
        shard: u16,
        id: &Uuid,
    ) -> Result<Option<crate::domain::subscription::Subscription>, StoreError> {
        let key = self.keys.subscription_in_shard(shard, id);
        let mut conn = self.conn();
        let data: Option<String> = self
            .run(async move { conn.hget(key, "data").await })
            .await?;
        data.map(|d| self.subscription_from_json(&d)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::format_ms;

    #[test]
    fn a_first_attempt_survives_the_trip_through_the_hash_fields() {
        let full = Attempt {
            at: format_ms(1_764_446_202_552),
            duration_ms: 12,
            status_code: Some(500),
            response: Some("busy | try later".into()),
            error: None,
            next_attempt_at: Some(format_ms(1_764_446_262_552)),
        };
        let bare = Attempt {
            at: format_ms(1_764_446_202_000),
            duration_ms: 30_000,
            status_code: None,
            response: None,
            error: Some("timed out".into()),
            next_attempt_at: None,
        };
        for a in [full, bare] {
            let f = FirstAttempt::of(&a).unwrap();
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            let back = FirstAttempt::read(Some(&f.a1), some(&f.response), some(&f.error));
            assert_eq!(back.as_ref(), Some(&a), "{f:?}");
        }
        assert_eq!(FirstAttempt::read(None, None, None), None);
        assert_eq!(FirstAttempt::read(Some("x|1||"), None, None), None);
    }
}
