//! What the dashboard keeps in Redis: one-time sign-in links and sessions,
//! both named by the SHA-256 of their token (see `domain::session`), and
//! the reading of an account's notice list.

use std::collections::HashMap;

use futures_util::future::try_join_all;
use redis::AsyncCommands;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::notice::Notice;
use crate::domain::session::{Grant, Holder, Scope, Session};

impl Store {
    /// Stores a one-time link's grant under its token's hash for `ttl_ms`.
    pub async fn put_dashboard_link(
        &self,
        token_hash: &str,
        grant: &Grant,
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        let key = self.keys.dashboard_link(token_hash);
        let json = serde_json::to_string(grant).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut conn = self.conn();
        self.run(async move { conn.pset_ex::<_, _, ()>(key, json, ttl_ms).await })
            .await
    }

    /// Takes a link's grant: the first caller gets it, every later one (and
    /// every caller after it expired) gets None. `GETDEL` makes the read and
    /// the removal one step, so two replicas cannot both honour a link.
    pub async fn take_dashboard_link(&self, token_hash: &str) -> Result<Option<Grant>, StoreError> {
        let key = self.keys.dashboard_link(token_hash);
        let mut conn = self.conn();
        let json: Option<String> = self
            .run(async move { redis::cmd("GETDEL").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Stores a new session under its id's hash, expiring after `ttl_ms`.
    pub async fn put_session(
        &self,
        id_hash: &str,
        s: &Session,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("account", s.holder.encode()),
                    ("scope", s.scope.as_str().to_owned()),
                    ("csrf", s.csrf.clone()),
                    ("created_at", s.created_at_ms.to_string()),
                    ("expires_at", s.expires_at_ms.to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl_ms)
            .ignore();
        let mut conn = self.conn();
        self.run(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// The session stored under `id_hash`, if it still lives.
    pub async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        let mut h: HashMap<String, String> =
            self.run(async move { conn.hgetall(key).await }).await?;
        let mut take = |k: &str| h.remove(k);
        Ok((|| {
            Some(Session {
                holder: Holder::decode(&take("account")?)?,
                scope: Scope::parse(&take("scope")?)?,
                csrf: take("csrf")?,
                created_at_ms: take("created_at")?.parse().ok()?,
                expires_at_ms: take("expires_at")?.parse().ok()?,
            })
        })())
    }

    /// Sets how long the session may stay idle from now (each request
    /// extends it). A session deleted meanwhile stays deleted.
    pub async fn touch_session(&self, id_hash: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        self.run(async move { conn.pexpire::<_, ()>(key, ttl_ms).await })
            .await
    }

    /// Ends a session (sign-out, or found past its absolute end).
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        self.run(async move { conn.del::<_, ()>(key).await }).await
    }

    /// The account's newest `limit` operational notices, newest first (the
    /// list keeps the last 1,000).
    pub async fn list_notices(
        &self,
        account: &Uuid,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        let key = self.keys.notices(account);
        let stop = limit.max(1) as isize - 1;
        let mut conn = self.conn();
        let rows: Vec<String> = self
            .run(async move { conn.lrange(key, 0, stop).await })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Notice>(r).ok())
            .filter(|n| n.account_id == *account)
            .collect())
    }
}

/// One shard's queues, as the operator page shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardQueues {
    pub shard: u16,
    /// Deliveries due now, and waiting for a later time.
    pub due: u64,
    pub later: u64,
    /// Due time of the oldest waiting delivery, ms.
    pub oldest_due_ms: Option<i64>,
    /// Deliveries in flight, and those whose lease has run out (their
    /// process is gone; the next claim takes them back).
    pub leased: u64,
    pub lease_expired: u64,
    /// Subscriptions with an open digest; digests being sent or retried.
    pub digests: u64,
    pub digests_sending: u64,
    /// Operational emails waiting to be sent.
    pub outbox: u64,
}

impl ShardQueues {
    /// The sum over `shards`; the oldest due time is the earliest among
    /// the shards with deliveries due.
    pub fn total(shards: &[ShardQueues]) -> ShardQueues {
        let mut total = ShardQueues::default();
        for q in shards {
            total.due += q.due;
            total.later += q.later;
            total.leased += q.leased;
            total.lease_expired += q.lease_expired;
            total.digests += q.digests;
            total.digests_sending += q.digests_sending;
            total.outbox += q.outbox;
            if q.due > 0 {
                total.oldest_due_ms = match (total.oldest_due_ms, q.oldest_due_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        total
    }
}

impl Store {
    /// Every shard's queues at `now_ms`, read straight from Redis (so the
    /// whole fleet's, whichever replica asks): one pipeline per shard (its
    /// keys share one hash tag, so each pipeline stays in one slot of a
    /// cluster), run concurrently.
    pub async fn shard_queues(&self, now_ms: i64) -> Result<Vec<ShardQueues>, StoreError> {
        try_join_all((0..self.keys.shards()).map(|shard| {
            let schedule = self.keys.schedule(shard);
            let leases = self.keys.leases(shard);
            let mut pipe = redis::pipe();
            pipe.zcount(&schedule, "-inf", now_ms)
                .zcard(&schedule)
                .zrange_withscores(&schedule, 0, 0)
                .zcard(&leases)
                .zcount(&leases, "-inf", now_ms)
                .zcard(self.keys.digests(shard))
                .zcard(self.keys.digests_sending(shard))
                .zcard(self.keys.outbox(shard));
            let mut conn = self.conn();
            async move {
                #[allow(clippy::type_complexity)]
                let (due, all, first, leased, expired, digests, sending, outbox): (
                    u64,
                    u64,
                    Vec<(String, f64)>,
                    u64,
                    u64,
                    u64,
                    u64,
                    u64,
                ) = self
                    .run(async move { pipe.query_async(&mut conn).await })
                    .await?;
                Ok::<_, StoreError>(ShardQueues {
                    shard,
                    due,
                    later: all.saturating_sub(due),
                    oldest_due_ms: first.first().map(|(_, score)| *score as i64),
                    leased,
                    lease_expired: expired,
                    digests,
                    digests_sending: sending,
                    outbox,
                })
            }
        }))
        .await
    }
}
