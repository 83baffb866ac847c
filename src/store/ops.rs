//! Operators' bulk reads and writes (`courier queues`, and the recovery the
//! API and the dashboard share): each runs in one shard, or once per shard
//! for a lookup by id alone, never one pipeline across shards.

use futures_util::future::try_join_all;
use redis::AsyncCommands;
use uuid::Uuid;

use super::{Requeued, Store, StoreError};
use crate::domain::subscription::Subscription;

/// What a recovery of failed deliveries did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Failed deliveries found.
    pub failed: u64,
    /// Made due now.
    pub queued: u64,
    /// Skipped: an attempt was under way.
    pub in_flight: u64,
}

impl Store {
    /// The shard count recorded under the prefix (`None` before the first
    /// `courier serve`), read without writing anything.
    pub async fn stored_shards(&self) -> Result<Option<u16>, StoreError> {
        let meta = self.keys.meta();
        let mut conn = self.conn();
        self.run(async move { conn.hget(meta, "shards").await })
            .await
    }

    /// A subscription by id alone, whichever account it belongs to: one
    /// lookup per shard, concurrently.
    pub async fn find_subscription(&self, id: &Uuid) -> Result<Option<Subscription>, StoreError> {
        let found = try_join_all(
            (0..self.keys.shards()).map(|shard| self.subscription_in_shard(shard, id)),
        )
        .await?;
        Ok(found.into_iter().flatten().next())
    }

    /// Re-queues every failed delivery of `account`'s `subscription` created
    /// at or after `since_ms`, due at `now_ms`, 500 per script run.
    pub async fn recover_failed(
        &self,
        account: &Uuid,
        subscription: &Uuid,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Recovered, StoreError> {
        let failed = self.failed_since(account, subscription, since_ms).await?;
        let mut done = Recovered {
            failed: failed.len() as u64,
            ..Recovered::default()
        };
        for chunk in failed.chunks(500) {
            for r in self.requeue(account, chunk, now_ms).await? {
                match r {
                    Requeued::Queued => done.queued += 1,
                    Requeued::InFlight => done.in_flight += 1,
                    Requeued::Missing => {}
                }
            }
        }
        Ok(done)
    }

    /// Up to `limit` of `account`'s archived events (of `event_type`, or
    /// all) that occurred at or after `from_ms`, oldest first: (id,
    /// occurred_at ms, type). Events past retention are left out.
    pub async fn events_since(
        &self,
        account: &Uuid,
        event_type: Option<&str>,
        from_ms: i64,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<(Uuid, i64, String)>, StoreError> {
        let from = from_ms.max(now_ms - self.retention.events_ms);
        let index = self.keys.events(account, event_type);
        let mut conn = self.conn();
        let ids: Vec<(String, f64)> = self
            .run(async move {
                redis::cmd("ZRANGE")
                    .arg(index)
                    .arg(from)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let ids: Vec<(Uuid, i64)> = ids
            .iter()
            .filter_map(|(id, at)| Some((Uuid::parse_str(id).ok()?, *at as i64)))
            .collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // The event hashes share the index's shard: one pipeline.
        let mut pipe = redis::pipe();
        for (id, _) in &ids {
            pipe.hget(self.keys.event(account, id), "type");
        }
        let mut conn = self.conn();
        let types: Vec<Option<String>> = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        // An event that expired since its index entry was written is gone.
        Ok(ids
            .into_iter()
            .zip(types)
            .filter_map(|((id, at), t)| Some((id, at, t?)))
            .collect())
    }
}
