//! Starting and stopping the delivery engine: one arbiter (thread) runs the
//! scheduler, the janitor, the registry listener, the email notifier and
//! every endpoint deliverer, each under an actix `Supervisor`.
//!
//! Stopping ([`Engine::shutdown`]): no claim is taken once it begins (a
//! claiming round under way is waited for), queued deliveries go back to the
//! schedule at once, sends under way get the grace period, the rest are
//! abandoned, and every claim still held is handed back due now with no
//! attempt spent. The SMTP pool is dropped on the engine's thread before
//! that thread's runtime stops.

use std::num::NonZeroUsize;

use crate::clock::Clock;
use crate::delivery::resolve::TargetResolver;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Notify;

use super::breaker::BreakerConfig;
use super::claims::{HeldClaims, HeldMessages};
use super::decision::FollowUpConfig;
use super::janitor::Janitor;
use super::registry::{Registry, RegistryListener};
use super::retry::RetryPolicy;
use super::scheduler::{Scheduler, Shutdown};
use crate::domain::delivery::Outcome;
use crate::domain::subscription::Subscription;
use crate::email::notifier::{self, Close, EmailNotifier};
use crate::email::Mailer;
use crate::metrics as m;
use crate::settings::Settings;
use crate::store::{Attempt, Claimed, LeaseMs, MessageRef, Store, StoreError};

/// The email notifier as the engine runs it.
pub type Notifier = EmailNotifier<EngineCtx>;

/// The engine's tuning, from configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: RetryPolicy,
    pub breaker: BreakerConfig,
    /// One webhook request's deadline.
    pub timeout: Duration,
    /// How long a delivery's claim is leased (`delivery.lease_secs`, for
    /// both channels); the process renews it every [`Self::renew_every`]
    /// while it holds the claim. Past it the delivery is claimed again.
    pub lease: LeaseMs,
    /// How long a digest's or an operational email's claim is leased: the
    /// email lease (`delivery.lease_secs`), renewed the same way while the
    /// message is written and sent.
    pub message_lease_ms: i64,
    /// Most deliveries claimed per shard per round.
    pub batch: usize,
    /// Most deliveries claimed and not finished in this process.
    pub max_in_flight: usize,
    /// Concurrent requests to one endpoint.
    pub endpoint_concurrency: usize,
    /// Open connections of the engine's client, all endpoints together.
    pub max_connections: NonZeroUsize,
    /// How long an endpoint's deliverer lives without deliveries.
    pub deliverer_idle: Duration,
    /// Most deliveries an endpoint may hold queued; the queue is also
    /// bounded by time (see `backlog`). More are handed back to the
    /// schedule, no attempt spent.
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
    /// Event types with an index of their own (the catalogue's), for
    /// the janitor's trim.
    pub event_types: Vec<String>,
    /// How often the janitor trims the indexes, ms.
    pub index_trim_ms: i64,
}

impl EngineConfig {
    /// One request's deadline and a margin: how long a probe holds the
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
    /// request starts: twice one request's deadline (the claim is renewed
    /// meanwhile; a longer wait is better spent back in the schedule).
    pub fn queue_budget_ms(&self) -> f64 {
        (2 * self.timeout.as_millis()) as f64
    }

    /// How often held claims are renewed: a quarter of the lease.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis((self.lease.webhook / 4).max(100) as u64)
    }

    pub fn from_settings(s: &Settings) -> Self {
        let d = &s.delivery;
        let timeout = d.timeout_ms.get();
        Self {
            policy: RetryPolicy::new(s.retry_schedule(), d.jitter),
            breaker: BreakerConfig {
                failure_threshold: d.breaker_failure_threshold.get(),
                base_cooldown_ms: d.breaker_cooldown_ms.as_millis() as i64,
                max_cooldown_ms: d.breaker_max_cooldown_ms.as_millis() as i64,
            },
            timeout,
            lease: LeaseMs {
                webhook: d.lease_secs.get().saturating_mul(1_000) as i64,
                email: d.lease_secs.get().saturating_mul(1_000) as i64,
            },
            message_lease_ms: d.lease_secs.get().saturating_mul(1_000) as i64,
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
            event_types: crate::domain::catalog::Catalog::new(&s.events.catalog_extras())
                .map(|c| c.iter().map(|t| t.name.clone()).collect())
                .unwrap_or_default(),
            index_trim_ms: d.index_trim_secs.get().saturating_mul(1_000) as i64,
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
    /// Held by a claiming round from its claim until its claims are in
    /// `claims`, so shutdown can wait for a round under way.
    pub claiming: tokio::sync::Mutex<()>,
    /// Every claim of this process not yet finished.
    pub claims: HeldClaims,
    /// Every digest and notice the email notifier claimed and still works
    /// on, renewed with the deliveries' claims.
    pub messages: HeldMessages,
    /// How often the scheduler was restarted by its supervisor.
    pub scheduler_restarts: AtomicUsize,
    /// The time the engine runs on.
    pub clock: Clock,
    /// Endpoint deliverers alive in this process.
    pub deliverers: AtomicUsize,
    /// The dashboard's statistics.
    pub stats: Arc<crate::stats::Stats>,
    /// When the janitor last trimmed the indexes (engine clock, ms).
    pub trimmed_at_ms: std::sync::atomic::AtomicI64,
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
    /// Once recorded (or superseded) the claim is no longer held.
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
        self.claims.let_go(claimed);
        if let (true, Some(a)) = (recorded, attempt) {
            let succeeded = matches!(outcome, Outcome::Success);
            self.stats.attempt(
                claimed.shard,
                claimed.subscription_id,
                succeeded,
                a.duration_ms,
            );
        }
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

/// What the email notifier may ask of the engine: it is handed claimed
/// deliveries and gives them back through here, so they are recorded,
/// counted and released like the webhooks' (the notifier itself imports
/// nothing from `delivery`).
impl notifier::Owner for EngineCtx {
    fn now_ms(&self) -> i64 {
        EngineCtx::now_ms(self)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn lease_ms(&self) -> i64 {
        self.cfg.message_lease_ms
    }

    fn hold_message(&self, claim: MessageRef) {
        self.messages.hold([claim], self.now_ms());
    }

    fn message_live(&self, claim: &MessageRef) -> bool {
        self.messages
            .is_live(claim, self.now_ms(), self.cfg.message_lease_ms / 2)
    }

    fn let_go_message(&self, claim: &MessageRef) {
        self.messages.let_go(claim);
    }

    fn claim_live(&self, claimed: &Claimed) -> bool {
        self.claims
            .is_live(claimed, self.now_ms(), self.cfg.lease.email / 2)
    }

    fn poll_interval(&self) -> Duration {
        self.cfg.poll_interval
    }

    fn retry_delay(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        self.cfg.policy.delay_after(attempts_made, unit)
    }

    async fn subscription(
        &self,
        shard: u16,
        id: &uuid::Uuid,
    ) -> Result<Option<Arc<Subscription>>, StoreError> {
        self.registry.get(shard, id).await
    }

    async fn finish(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        attempt: Option<&Attempt>,
    ) -> Result<bool, StoreError> {
        EngineCtx::finish(self, claimed, outcome, attempt).await
    }

    fn let_go(&self, claimed: &Claimed) {
        self.claims.let_go(claimed);
    }

    fn release(&self) {
        EngineCtx::release(self, 1);
    }

    fn log_attempt(
        &self,
        target: impl FnOnce() -> String,
        claimed: &Claimed,
        attempt: &Attempt,
        outcome: &Outcome,
    ) {
        log_attempt(target, None, claimed, attempt, outcome);
    }
}

/// Renews the lease of every claim this process holds (deliveries, and the
/// notifier's digests and notices), every quarter of the lease, for as long
/// as the engine's thread runs: a send that takes longer than the lease
/// keeps its claim, and a process that dies stops renewing, so its claims
/// return to the schedule within one lease.
async fn renew_claims(ctx: Arc<EngineCtx>) {
    let mut tick = tokio::time::interval(ctx.cfg.renew_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (shard, claims) in ctx.claims.by_shard() {
            let until = ctx.now_ms() + ctx.cfg.lease.webhook;
            match ctx.store.renew(shard, &claims, until).await {
                Ok(renewed) => ctx.claims.renewed(&renewed, until),
                Err(e) => {
                    tracing::warn!(shard, error = %e, "could not renew leases; their deliveries may be claimed again")
                }
            }
        }
        for (shard, claims) in ctx.messages.by_shard() {
            let until = ctx.now_ms() + ctx.cfg.message_lease_ms;
            match ctx.store.renew_messages(shard, &claims, until).await {
                Ok(renewed) => ctx.messages.renewed(&renewed, until),
                Err(e) => {
                    tracing::warn!(shard, error = %e, "could not renew leases; their digests and notices may be claimed again")
                }
            }
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

/// One line per attempt, so a failing endpoint shows in the console without
/// a dashboard. `target` names the endpoint (a URL without credentials or
/// query, or the recipient's mail domain); it is made only when the line is
/// logged. `account` is given where the caller knows it.
pub fn log_attempt(
    target: impl FnOnce() -> String,
    account: Option<&uuid::Uuid>,
    claimed: &Claimed,
    a: &Attempt,
    outcome: &Outcome,
) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let (result, next) = match outcome {
        Outcome::Success => ("delivered", None),
        Outcome::Retry { due_ms } => ("attempt failed; will retry", Some(*due_ms)),
        Outcome::Fail { .. } => ("attempt failed; no retries left", None),
        Outcome::Wait { due_ms } => ("not sent; waiting", Some(*due_ms)),
        Outcome::Drop { .. } => ("dropped", None),
    };
    tracing::info!(
        delivery = %claimed.delivery_id,
        event = %claimed.event_id,
        subscription = %claimed.subscription_id,
        account = account.map(tracing::field::display),
        event_type = %claimed.event_type,
        endpoint = %target(),
        status = a.status_code.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        duration_ms = a.duration_ms,
        error = a.error.as_deref().unwrap_or("-"),
        next_attempt = next.map(crate::domain::event::format_ms).unwrap_or_else(|| "-".into()),
        "{result}"
    );
}

/// A running engine; dropping it stops the engine's thread.
pub struct Engine {
    arbiter: Arbiter,
    scheduler: Addr<Scheduler>,
    /// Closed before the engine's thread stops (the SMTP pool must go first).
    notifier: Addr<Notifier>,
    ctx: Arc<EngineCtx>,
}

impl Engine {
    /// Starts the engine on a thread of its own.
    pub fn start(
        store: Store,
        settings: &Settings,
        wake: Arc<Notify>,
        clock: Clock,
        stats: Arc<crate::stats::Stats>,
    ) -> Self {
        let registry = Registry::new(store.clone(), clock.clone());
        let ctx = Arc::new(EngineCtx {
            store: store.clone(),
            cfg: EngineConfig::from_settings(settings),
            registry: registry.clone(),
            in_flight: AtomicUsize::new(0),
            wake,
            stopping: AtomicBool::new(false),
            claiming: tokio::sync::Mutex::new(()),
            claims: HeldClaims::default(),
            messages: HeldMessages::default(),
            scheduler_restarts: AtomicUsize::new(0),
            clock,
            deliverers: AtomicUsize::new(0),
            stats,
            trimmed_at_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
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
            let notifier = notifier.clone();
            Supervisor::start_in_arbiter(&handle, move |_| Scheduler::new(ctx, notifier))
        };
        {
            let ctx = ctx.clone();
            Supervisor::start_in_arbiter(&handle, move |_| Janitor::new(ctx));
        }
        handle.spawn(renew_claims(ctx.clone()));
        let target = store.target().clone();
        let channel = store.keys().subscription_changes();
        Supervisor::start_in_arbiter(&handle, move |_| {
            RegistryListener::new(registry, target, channel)
        });
        Self {
            arbiter,
            scheduler,
            notifier,
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
    /// waits up to `deadline` for sends under way to finish. Then sends still
    /// under way are abandoned, the SMTP pool is closed, and every claim this
    /// process still holds goes back to the schedule due now, no attempt
    /// spent (a request cut off may have reached its receiver: it is sent
    /// again under the same `webhook-id`).
    pub async fn shutdown(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        self.ctx.stopping.store(true, Ordering::SeqCst);
        // A round claiming right now finishes and registers its claims;
        // no round claims after this.
        drop(self.ctx.claiming.lock().await);
        let _ = self.scheduler.send(Shutdown).await;
        while self.ctx.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.notifier.send(Close).await;
        let held = self.ctx.claims.take_all();
        if held.is_empty() {
            return;
        }
        match self.ctx.store.release(&held, self.ctx.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "deliveries still in flight at shutdown were handed back, due now"
            ),
            Err(e) => tracing::error!(
                held = held.len(),
                error = %e,
                "could not hand back the deliveries in flight; they are retried when their leases run out"
            ),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        // The notifier closes its SMTP pool on the engine's thread, inside
        // its runtime (the pool's drop spawns a task); then the thread stops.
        let notifier = self.notifier.clone();
        let stopped = self.arbiter.spawn(async move {
            let _ = notifier.send(Close).await;
            Arbiter::current().stop();
        });
        if !stopped {
            self.arbiter.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_digests_and_notices_are_all_leased_for_lease_secs() {
        let mut s = Settings::load_from(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            "test",
        )
        .unwrap();
        s.delivery.timeout_ms = crate::settings::PositiveDuration::from_millis(1_000).unwrap();
        s.smtp.timeout_ms = crate::settings::PositiveDuration::from_millis(30_000).unwrap();
        s.delivery.lease_secs = 8.try_into().unwrap();
        let cfg = EngineConfig::from_settings(&s);
        assert_eq!(
            cfg.lease,
            LeaseMs {
                webhook: 8_000,
                email: 8_000
            }
        );
        assert_eq!(cfg.renew_every(), Duration::from_secs(2));
        // Renewed like the deliveries' (not three times the SMTP timeout
        // plus 2 s, 92 s here, as when these leases were not renewed).
        assert_eq!(cfg.message_lease_ms, 8_000);
        s.delivery.lease_secs = 2.try_into().unwrap();
        let cfg = EngineConfig::from_settings(&s);
        assert_eq!(cfg.message_lease_ms, 2_000);
        assert_eq!(cfg.renew_every(), Duration::from_millis(500));
        // A slow SMTP server does not lengthen the time a webhook may wait
        // in its endpoint's queue.
        assert_eq!(cfg.queue_budget_ms(), 2_000.0);
    }

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
