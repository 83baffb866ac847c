//! The subscription registry: an in-memory cache of subscriptions for the
//! delivery engine, kept fresh through Redis pub/sub.
//!
//! Routing (which subscriptions get an event) happens inside the ingest
//! script from Redis' routing sets, so it is never stale. The cache serves
//! the deliverers, which need a subscription's URL and secrets for every
//! notification: a change made on any replica is published on
//! `<prefix>:subscription-changes` and evicts the entry everywhere. Entries
//! also expire after a short time, and a lost pub/sub connection clears the
//! cache, so a missed message cannot keep stale data for long.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::subscription::Subscription;
use crate::store::{RedisTarget, Store, StoreError};

/// How long a cached entry is trusted without a pub/sub message.
const ENTRY_TTL: Duration = Duration::from_secs(30);

struct Entry {
    sub: Option<Arc<Subscription>>,
    /// When it was read from Redis (engine clock, ms).
    loaded_ms: i64,
}

/// Cheap to clone; shared by every actor of the engine.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    cache: Arc<RwLock<HashMap<Uuid, Entry>>>,
    clock: Clock,
}

impl Registry {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self {
            store,
            cache: Arc::default(),
            clock,
        }
    }

    fn fresh(&self, e: &Entry) -> bool {
        self.clock.now_ms() - e.loaded_ms < ENTRY_TTL.as_millis() as i64
    }

    /// The subscription `id` of shard `shard` (None when deleted).
    pub async fn get(
        &self,
        shard: u16,
        id: &Uuid,
    ) -> Result<Option<Arc<Subscription>>, StoreError> {
        if let Ok(cache) = self.cache.read() {
            if let Some(e) = cache.get(id) {
                if self.fresh(e) {
                    return Ok(e.sub.clone());
                }
            }
        }
        let sub = self
            .store
            .subscription_in_shard(shard, id)
            .await?
            .map(Arc::new);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(
                *id,
                Entry {
                    sub: sub.clone(),
                    loaded_ms: self.clock.now_ms(),
                },
            );
        }
        Ok(sub)
    }

    pub fn invalidate(&self, id: &Uuid) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(id);
        }
    }

    /// Drops entries no longer trusted (older than the entry TTL), so the
    /// cache holds only subscriptions in recent use.
    pub fn purge_stale(&self) {
        if let Ok(mut cache) = self.cache.write() {
            let now = self.clock.now_ms();
            cache.retain(|_, e| now - e.loaded_ms < ENTRY_TTL.as_millis() as i64);
        }
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.cache.read().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }
}

/// Listens for subscription changes; supervised: a lost connection stops
/// it, and the restart clears the cache and subscribes again.
pub struct RegistryListener {
    /// The cache to evict from.
    registry: Registry,
    /// Where Redis is; pub/sub goes to a single node (its messages reach
    /// every node of a cluster).
    target: RedisTarget,
    /// Channel name.
    channel: String,
}

impl RegistryListener {
    pub fn new(registry: Registry, target: RedisTarget, channel: String) -> Self {
        Self {
            registry,
            target,
            channel,
        }
    }
}

async fn listen(
    target: RedisTarget,
    channel: String,
    registry: Registry,
) -> Result<(), redis::RedisError> {
    let client = target.node_client()?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    // Anything cached before the subscription took effect may be stale.
    registry.clear();
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = msg.get_payload()?;
        if let Some(id) = payload
            .split_whitespace()
            .nth(1)
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            registry.invalidate(&id);
        }
    }
    Ok(())
}

impl Actor for RegistryListener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let fut = listen(
            self.target.clone(),
            self.channel.clone(),
            self.registry.clone(),
        );
        ctx.spawn(
            async move {
                if let Err(e) = fut.await {
                    tracing::warn!(error = %e, "subscription change listener lost its connection");
                }
                // Do not spin while Redis is away.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }
}

impl Supervised for RegistryListener {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.registry.clear();
    }
}
