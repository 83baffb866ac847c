//! Starting and stopping the delivery engine: one arbiter (thread) runs the
//! scheduler, the janitor, the registry listener, the email notifier and
//! every endpoint deliverer, each under an actix `Supervisor`.

use std::num::NonZeroUsize;

use crate::clock::Clock;
use crate::delivery::resolve::TargetResolver;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Notify;

use super::breaker::BreakerConfig;
use super::decision::FollowUpConfig;
use super::janitor::Janitor;
use super::registry::{Registry, RegistryListener};
use super::retry::RetryPolicy;
use super::scheduler::{Scheduler, Shutdown};
use crate::email::notifier::EmailNotifier;
use crate::email::Mailer;
use crate::metrics as m;
use crate::settings::Settings;
use crate::store::{Attempt, Claimed, Outcome, Store, StoreError};

/// The engine's tuning, from configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: RetryPolicy,
    pub breaker: BreakerConfig,
    /// One webhook request's deadline.
    pub timeout: Duration,
    /// How long a claim is held; past it the delivery is claimed again.
    pub lease_ms: i64,
    /// Most deliveries claimed per shard per round.
    pub batch: usize,
    /// Most deliveries claimed and not finished in this process.
    pub max_in_flight: usize,
    /// Concurrent requests to one endpoint.
    pub endpoint_concurrency: usize,
    /// Open connections of the engine's client, all endpoints together.
    pub max_connections: NonZeroUsize,
    /// Most deliveries an endpoint may hold queued; the queue is also
    /// bounded by time (see `backlog`). More are handed back to the
    /// schedule, no attempt spent.
    /// How long an endpoint's deliverer lives without deliveries.
    pub deliverer_idle: Duration,
    pub endpoint_queue: usize,
    pub allow_private_targets: bool,
    /// Judges where webhook host names may be sent.
    pub resolver: TargetResolver,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_ms: i64,
    /// Longest sleep between schedule checks when not woken.
    pub poll_interval: Duration,
    /// The account is emailed when an endpoint has been failing this long
    /// with its circuit open.
    pub circuit_alert_ms: i64,
}

impl EngineConfig {
    /// One request's deadline and a margin: the least lease a claim must
    /// have left for a request to start, and how long a probe holds the
    /// circuit's half-open lease (unanswered by then, it counts as lost).
    pub fn request_budget_ms(&self) -> i64 {
        self.timeout.as_millis() as i64 + 1_000
    }

    pub fn follow_up(&self) -> FollowUpConfig {
        FollowUpConfig {
            disable_after_ms: self.disable_after_ms,
            circuit_alert_ms: self.circuit_alert_ms,
        }
    }

    /// How long a delivery may wait in an endpoint's queue before its
    /// request starts: what the lease leaves after one request and a margin.
    pub fn queue_budget_ms(&self) -> f64 {
        (self.lease_ms - self.timeout.as_millis() as i64 - 1_000).max(0) as f64
    }

    pub fn from_settings(s: &Settings) -> Self {
        let d = &s.delivery;
        let timeout = d.timeout_ms.get();
        let longest_timeout_ms = d.timeout_ms.max(s.smtp.timeout_ms).as_millis();
        Self {
            policy: RetryPolicy::new(s.retry_schedule(), d.jitter),
            breaker: BreakerConfig {
                failure_threshold: d.breaker_failure_threshold.get(),
                base_cooldown_ms: d.breaker_cooldown_ms.as_millis() as i64,
                max_cooldown_ms: d.breaker_max_cooldown_ms.as_millis() as i64,
            },
            timeout,
            // One request's (or email's) timeout, twice that for waiting in
            // the endpoint's queue (see `backlog`), and a margin.
            lease_ms: (longest_timeout_ms * 3 + 2_000) as i64,
            batch: d.claim_batch.get(),
            max_in_flight: d.max_in_flight.get(),
            endpoint_concurrency: d.endpoint_concurrency.get(),
            max_connections: d.max_connections,
            endpoint_queue: d.endpoint_queue.get(),
            deliverer_idle: Duration::from_secs(d.deliverer_idle_secs.get()),
            allow_private_targets: d.allow_private_targets,
            resolver: TargetResolver::new(d.allow_private_targets, &d.hosts),
            disable_after_ms: d.disable_after_hours.get() as i64 * 3_600_000,
            poll_interval: d.poll_interval_ms.get(),
            circuit_alert_ms: s.email.circuit_alert_minutes as i64 * 60_000,
        }
    }
}

/// The `outcome` label of `courier_deliveries_finished_total` for a final
/// outcome; None for one that leaves the delivery pending.
fn finished_label(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Success => Some("succeeded"),
        Outcome::Fail { .. } => Some("failed"),
        Outcome::Drop { .. } => Some("dropped"),
        Outcome::Retry { .. } | Outcome::Wait { .. } => None,
    }
}

/// What every engine actor shares.
pub struct EngineCtx {
    pub store: Store,
    pub cfg: EngineConfig,
    pub registry: Registry,
    /// Claimed deliveries not yet finished in this process.
    pub in_flight: AtomicUsize,
    /// Wakes the scheduler: new work (ingest on this replica) or freed
    /// capacity.
    pub wake: Arc<Notify>,
    /// Set on shutdown: claim nothing more.
    pub stopping: AtomicBool,
    /// How often the scheduler was restarted by its supervisor.
    pub scheduler_restarts: AtomicUsize,
    /// The time the engine runs on.
    pub clock: Clock,
    /// Endpoint deliverers alive in this process.
    pub deliverers: AtomicUsize,
}

impl EngineCtx {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What the engine holds in memory now.
    pub fn held(&self) -> Held {
        Held {
            deliverers: self.deliverers.load(Ordering::SeqCst),
            cached_subscriptions: self.registry.len(),
        }
    }

    /// Records `outcome` of a claimed delivery (with the attempt made, if
    /// any) and counts it in `courier_deliveries_finished_total` when it is
    /// final. Every finish of a claimed delivery goes through here, so each
    /// final outcome is counted once. `Ok(false)`: the claim was superseded
    /// (someone else holds the delivery now) and nothing was recorded.
    pub async fn finish(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        attempt: Option<&Attempt>,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .store
            .finish(claimed, outcome, attempt, self.now_ms())
            .await?;
        if let (true, Some(label)) = (recorded, finished_label(outcome)) {
            metrics::counter!(m::DELIVERIES_FINISHED, "outcome" => label).increment(1);
        }
        Ok(recorded)
    }

    /// A claimed delivery was finished (or abandoned to its lease).
    pub fn release(&self, n: usize) {
        if n > 0 {
            let _ = self
                .in_flight
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                    Some(v.saturating_sub(n))
                });
            self.wake.notify_one();
        }
    }
}

/// The engine's in-memory state, by size: each is bounded by what is in
/// recent use and returns to zero when nothing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Endpoint deliverers (stopped after `delivery.deliverer_idle_secs`).
    pub deliverers: usize,
    /// Cached subscriptions (dropped when older than the cache's TTL).
    pub cached_subscriptions: usize,
}

/// A running engine; dropping it stops the engine's thread.
pub struct Engine {
    arbiter: Arbiter,
    scheduler: Addr<Scheduler>,
    ctx: Arc<EngineCtx>,
}

impl Engine {
    /// Starts the engine on a thread of its own.
    pub fn start(store: Store, settings: &Settings, wake: Arc<Notify>, clock: Clock) -> Self {
        let registry = Registry::new(store.clone(), clock.clone());
        let ctx = Arc::new(EngineCtx {
            store: store.clone(),
            cfg: EngineConfig::from_settings(settings),
            registry: registry.clone(),
            in_flight: AtomicUsize::new(0),
            wake,
            stopping: AtomicBool::new(false),
            scheduler_restarts: AtomicUsize::new(0),
            clock,
            deliverers: AtomicUsize::new(0),
        });
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let notifier = {
            let ctx = ctx.clone();
            let settings = settings.clone();
            // Built on the engine's thread: the SMTP pool's reaper task
            // lives there. The settings were validated at start-up.
            Supervisor::start_in_arbiter(&handle, move |_| {
                let mailer = Mailer::from_settings(&settings)
                    .unwrap_or_else(|e| panic!("email settings were validated: {e}"));
                EmailNotifier::new(ctx, mailer)
            })
        };
        let scheduler = {
            let ctx = ctx.clone();
            Supervisor::start_in_arbiter(&handle, move |_| Scheduler::new(ctx, notifier))
        };
        {
            let ctx = ctx.clone();
            Supervisor::start_in_arbiter(&handle, move |_| Janitor::new(ctx));
        }
        let target = store.target().clone();
        let channel = store.keys().subscription_changes();
        Supervisor::start_in_arbiter(&handle, move |_| {
            RegistryListener::new(registry, target, channel)
        });
        Self {
            arbiter,
            scheduler,
            ctx,
        }
    }

    pub fn scheduler(&self) -> &Addr<Scheduler> {
        &self.scheduler
    }

    pub fn context(&self) -> &Arc<EngineCtx> {
        &self.ctx
    }

    /// Stops claiming, hands queued deliveries back to the schedule and
    /// waits up to `deadline` for in-flight requests to finish. What is still
    /// in flight after that is redelivered when its lease expires.
    pub async fn shutdown(&self, deadline: Duration) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        let _ = self.scheduler.send(Shutdown).await;
        let until = tokio::time::Instant::now() + deadline;
        while self.ctx.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.ctx.in_flight.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(left, "deliveries still in flight at shutdown; their leases will expire and they will be retried");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        self.arbiter.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_outcomes_are_counted_by_their_label_and_pending_ones_not() {
        let error = || "e".to_owned();
        assert_eq!(finished_label(&Outcome::Success), Some("succeeded"));
        assert_eq!(
            finished_label(&Outcome::Fail { error: error() }),
            Some("failed")
        );
        assert_eq!(
            finished_label(&Outcome::Drop { error: error() }),
            Some("dropped")
        );
        assert_eq!(finished_label(&Outcome::Retry { due_ms: 1 }), None);
        assert_eq!(finished_label(&Outcome::Wait { due_ms: 1 }), None);
    }
}
