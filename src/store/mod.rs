//! Redis, the only store. [`keys`] names every key; the Lua scripts in
//! `lua/` make every multi-key change atomic; this module and its children
//! turn domain values into commands and back. Every round trip is bounded by
//! `redis.command_timeout_ms`, so a dead Redis surfaces as
//! [`StoreError::Unavailable`] (a 503) instead of a hang.

mod accounts;
mod conn;
mod dashboard;
mod deliveries;
mod email;
mod endpoints;
mod events;
pub mod keys;
mod ops;
pub mod page;
mod scripts;
mod stats;
mod subscriptions;
mod trim;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, RedisError, RedisResult};

use crate::secrets::SecretBox;
use scripts::Scripts;

pub use accounts::{AccountRecord, RotateOutcome};
pub use conn::{RedisConn, RedisTarget};
pub use dashboard::ShardQueues;
pub use deliveries::{
    Attempt, ClaimRef, Claimed, DeliveryFilter, DeliveryRecord, LeaseMs, Replayed, Requeued,
};
pub use email::{ClaimedDigest, ClaimedNotice, MessageKind, MessageRef};
pub use endpoints::{EndpointState, ENDPOINT_TTL_MS};
pub use events::{EventFilter, EventRecord, IngestOutcome};
pub use keys::Keys;
pub use ops::Recovered;
pub use page::{Cursor, Page};
pub use stats::ShardStats;
pub use subscriptions::PutOutcome;

use crate::settings::Settings;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached or did not answer in time: 503, retry later.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something courier did not expect: a bug.
    #[error("unexpected redis reply: {0}")]
    Internal(String),
    /// Data in Redis was written with another layout (e.g. shard count).
    #[error("{0}")]
    Incompatible(String),
}

impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(
                e.code(),
                Some("LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY")
            );
        if transient {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Internal(e.to_string())
        }
    }
}

/// Retention and expiry settings the scripts apply.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events_ms: i64,
    pub idempotency_ms: i64,
}

/// Handle to the store; cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Store {
    /// Multiplexed connection; clones share one socket per node.
    conn: RedisConn,
    /// Where `conn` goes, for connections of another kind (pub/sub).
    target: RedisTarget,
    /// Key names of this deployment.
    keys: Keys,
    /// Upper bound of one store operation.
    timeout: Duration,
    retention: Retention,
    scripts: Arc<Scripts>,
    /// Seals subscription signing secrets before they reach Redis.
    sealer: SecretBox,
}

impl Store {
    /// Connects to `target` (lazily for a single Redis) as configured.
    pub async fn connect(settings: &Settings, target: &RedisTarget) -> Result<Self, StoreError> {
        let r = &settings.redis;
        let command_timeout = r.command_timeout_ms.get();
        let connect_timeout = r.connect_timeout_ms.get();
        let sealer = SecretBox::new(&settings.auth.encryption_keys)
            .map_err(|e| StoreError::Incompatible(format!("auth.encryption_keys: {e}")))?;
        let conn = RedisConn::connect(target, command_timeout, connect_timeout).await?;
        Ok(Self {
            sealer,
            conn,
            target: target.clone(),
            keys: Keys::new(r.key_prefix.clone(), r.shards),
            // One operation may reconnect once and then run its command.
            timeout: command_timeout + connect_timeout,
            retention: Retention {
                events_ms: settings.retention().as_millis() as i64,
                idempotency_ms: settings.idempotency_ttl().as_millis() as i64,
            },
            scripts: Arc::new(Scripts::new()),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Where this store's Redis is (TLS settings included).
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// Runs one store operation under the deadline.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// A fresh handle on the shared connection.
    fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Readiness: Redis answers PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        self.run(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }

    /// Records the shard count on first use and refuses to run with another
    /// one later (the account → shard mapping depends on it).
    pub async fn check_layout(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let meta = self.keys.meta();
        let shards = self.keys.shards();
        let stored: u16 = self
            .run(async move {
                let _: bool = conn.hset_nx(&meta, "shards", shards).await?;
                conn.hget(&meta, "shards").await
            })
            .await?;
        if stored != shards {
            return Err(StoreError::Incompatible(format!(
                "redis.shards is {shards} but the data under prefix `{}` was written with {stored} shards",
                self.keys.prefix()
            )));
        }
        Ok(())
    }
}

impl Store {
    /// Runs `pipeline(shard)` for every shard, concurrently: one pipeline per
    /// shard, so that each stays in its shard's slot on a cluster (a
    /// pipeline across slots is refused there). Replies in shard order.
    async fn each_shard<T>(
        &self,
        pipeline: impl Fn(u16) -> redis::Pipeline,
    ) -> Result<Vec<T>, StoreError>
    where
        T: redis::FromRedisValue + Send,
    {
        futures_util::future::try_join_all((0..self.keys.shards()).map(|shard| {
            let pipe = pipeline(shard);
            let mut conn = self.conn();
            self.run(async move { pipe.query_async::<T>(&mut conn).await })
        }))
        .await
    }

    /// One page of ids from a time-ordered index, newest first, within
    /// `[min, max]` (ms), resuming after `cursor`.
    async fn page_ids(
        &self,
        index: String,
        min: Option<i64>,
        max: Option<i64>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<(String, i64)>, StoreError> {
        let mut max_arg = max.map_or_else(|| "+inf".to_owned(), |m| m.to_string());
        let mut cursor_id = String::new();
        if let Some(c) = cursor {
            if max.is_none_or(|m| c.score <= m) {
                max_arg = c.score.to_string();
                cursor_id = c.id.clone();
            }
        }
        let min_arg = min.map_or_else(|| "-inf".to_owned(), |m| m.to_string());
        let mut items = self
            .call(&scripts::PageOf {
                index,
                max: max_arg,
                min: min_arg,
                after: cursor_id,
                count: limit + 1,
            })
            .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = match (more, items.last()) {
            (true, Some((id, score))) => Some(Cursor {
                score: *score,
                id: id.clone(),
            }),
            _ => None,
        };
        Ok(Page { items, next })
    }
}
