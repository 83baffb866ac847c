//! `Janitor`: every second, returns expired leases to the schedule (a
//! process died mid-delivery), drops stale entries of the subscription
//! cache and refreshes the gauges; every `delivery.index_trim_secs` it runs
//! the retention pass (`Store::trim_indexes`): archived events past the
//! retention go with their deliveries, then the time indexes are trimmed
//! (every replica does, which is harmless: the pass is idempotent).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::engine::EngineCtx;
use crate::metrics as m;

pub struct Janitor {
    ctx: Arc<EngineCtx>,
    /// A sweep is under way (sweeps never overlap).
    busy: bool,
}

impl Janitor {
    pub fn new(ctx: Arc<EngineCtx>) -> Self {
        Self { ctx, busy: false }
    }
}

async fn sweep(c: Arc<EngineCtx>) {
    let now = c.now_ms();
    let mut returned = 0;
    for shard in 0..c.store.keys().shards() {
        match c.store.reclaim(shard, now).await {
            Ok(n) => returned += n,
            Err(e) => {
                tracing::debug!(error = %e, "janitor could not reach redis");
                return;
            }
        }
    }
    if returned > 0 {
        tracing::info!(returned, "expired leases returned to the schedule");
        c.wake.notify_one();
    }
    if let Ok((waiting, leased)) = c.store.queue_depths().await {
        metrics::gauge!(m::SCHEDULE_DEPTH).set(waiting as f64);
        metrics::gauge!(m::LEASES_DEPTH).set(leased as f64);
    }
    metrics::gauge!(m::IN_FLIGHT).set(c.in_flight.load(Ordering::SeqCst) as f64);
    let trimmed = c.trimmed_at_ms.load(Ordering::SeqCst);
    // Due after the interval, or when the clock went back.
    if now < trimmed || now.saturating_sub(trimmed) >= c.cfg.index_trim_ms {
        let mut removed = 0;
        let mut complete = true;
        for shard in 0..c.store.keys().shards() {
            match c.store.trim_indexes(shard, now, &c.cfg.event_types).await {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::debug!(error = %e, "janitor could not trim the indexes");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            c.trimmed_at_ms.store(now, Ordering::SeqCst);
            tracing::debug!(removed, "indexes trimmed to the retention");
        }
    }
    c.registry.purge_stale();
    metrics::gauge!(m::CACHED_SUBSCRIPTIONS).set(c.registry.len() as f64);
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.busy {
                return;
            }
            act.busy = true;
            ctx.spawn(
                sweep(act.ctx.clone())
                    .into_actor(act)
                    .map(|_, act, _| act.busy = false),
            );
        });
    }
}

impl Supervised for Janitor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.busy = false;
    }
}
