//! `EndpointDeliverer`: one actor per endpoint (webhook URL). It owns the
//! endpoint's concurrency limit, queue, circuit breaker and per-subscription
//! rate limits, sends with at most `endpoint_concurrency` requests at a time
//! through the engine's shared client (one bounded pool, connections kept
//! per endpoint), and records every outcome. A slow endpoint fills only its
//! own slots and queue, so it never delays another.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Bytes;
use futures_util::FutureExt;
use rand::Rng;
use uuid::Uuid;

use super::backlog::{self, Latency};
use super::breaker::{Admission, BreakerState};
use super::engine::EngineCtx;
use super::notification::{self, judge, next_step, Verdict};
use super::ratelimit::TokenBucket;
use super::retry::parse_retry_after;
use super::sender::{HttpResult, Sender};
use super::signing::webhook_headers;
use crate::domain::event::format_ms;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::subscription::{Channel, Subscription};
use crate::metrics as m;
use crate::store::{Attempt, Claimed, Outcome};

/// Assumed request duration of an endpoint not heard from yet, ms.
const INITIAL_LATENCY_MS: f64 = 100.0;
/// Longest a delivery handed back by a busy endpoint waits, ms.
const MAX_HAND_BACK_MS: i64 = 5_000;

/// A claimed delivery and its subscription.
pub struct Job {
    pub claimed: Claimed,
    pub sub: Arc<Subscription>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Job);

/// Shutdown: hand queued deliveries back, finish the in-flight ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

pub struct EndpointDeliverer {
    /// The endpoint.
    url: String,
    ctx: Arc<EngineCtx>,
    /// The engine's HTTP client, shared by every deliverer of the arbiter
    /// (one bounded connection pool; connections are kept per endpoint).
    sender: Rc<Sender>,
    /// Claimed deliveries waiting for a free connection.
    queue: VecDeque<Job>,
    /// Requests under way.
    in_flight: usize,
    breaker: BreakerState,
    /// Responses judged so far, so a breaker read from Redis never replaces
    /// a newer local one.
    outcomes: u64,
    /// Per-subscription token buckets (only for subscriptions with a limit).
    buckets: HashMap<Uuid, TokenBucket>,
    /// A delayed pump is pending (rate limit), so another is not needed.
    pump_pending: bool,
    /// Recent request durations, to bound the queue by time.
    latency: Latency,
    /// When a success was last written to the endpoint's shared state.
    success_written: Option<Instant>,
    draining: bool,
}

impl EndpointDeliverer {
    pub fn new(url: String, ctx: Arc<EngineCtx>, sender: Rc<Sender>) -> Self {
        // A first guess; the average follows the endpoint within a few
        // requests (a hanging one reaches its timeout after a handful).
        let latency = Latency::new(INITIAL_LATENCY_MS);
        Self {
            url,
            ctx,
            sender,
            queue: VecDeque::new(),
            in_flight: 0,
            breaker: BreakerState::default(),
            outcomes: 0,
            buckets: HashMap::new(),
            pump_pending: false,
            latency,
            success_written: None,
            draining: false,
        }
    }

    /// Shutting down: nothing new starts, what is queued goes back.
    fn draining(&self) -> bool {
        self.draining || self.ctx.stopping.load(Ordering::SeqCst)
    }

    /// Records `outcome` for `job` in the background (the task outlives a
    /// restart of this actor) and frees its slot.
    fn finish(&self, job: Job, outcome: Outcome, attempt: Option<Attempt>) {
        finish_in_background(self.ctx.clone(), job, outcome, attempt, None);
    }

    /// Starts as many queued deliveries as the limits allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let sender = self.sender.clone();
        let probe_timeout = self.ctx.cfg.timeout.as_millis() as i64 + 1_000;
        while self.in_flight < self.ctx.cfg.endpoint_concurrency && !self.draining() {
            let Some(job) = self.queue.front() else { break };
            let now = self.ctx.now_ms();
            if let Some(rate) = job.sub.rate_limit {
                let bucket = self
                    .buckets
                    .entry(job.sub.id)
                    .or_insert_with(|| TokenBucket::new(rate, now));
                if let Err(wait_ms) = bucket.take(now) {
                    if !self.pump_pending {
                        self.pump_pending = true;
                        ctx.run_later(Duration::from_millis(wait_ms.max(1) as u64), |act, ctx| {
                            act.pump_pending = false;
                            act.pump(ctx);
                        });
                    }
                    break;
                }
            }
            // Never start a request the claim's lease cannot cover: the
            // delivery might be claimed again meanwhile and sent twice.
            let lease_left = job.claimed.lease_until_ms - now;
            if lease_left < self.ctx.cfg.timeout.as_millis() as i64 + 1_000 {
                if let Some(job) = self.queue.pop_front() {
                    self.finish(job, Outcome::Wait { due_ms: now }, None);
                }
                continue;
            }
            let admission = self.breaker.admit(now, probe_timeout);
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            if let Admission::WaitUntil(until) = admission {
                // The circuit is open: wait without spending an attempt.
                self.finish(job, Outcome::Wait { due_ms: until }, None);
                continue;
            }
            self.in_flight += 1;
            let (headers, body) = build_request(&job, now);
            let url = self.url.clone();
            let sender = sender.clone();
            let send = async move { sender.post(&url, &headers, body).await };
            ctx.spawn(
                AssertUnwindSafe(send)
                    .catch_unwind()
                    .into_actor(self)
                    .map(move |result, act, ctx| {
                        act.in_flight -= 1;
                        match result {
                            Ok(r) => act.complete(job, r),
                            Err(_) => {
                                tracing::error!(url = %act.url, "a delivery panicked; restarting the deliverer");
                                // The lease returns the delivery to the schedule.
                                act.ctx.release(1);
                                ctx.stop();
                                return;
                            }
                        }
                        act.pump(ctx);
                    }),
            );
        }
    }

    /// Judges a response, updates the breaker and records the outcome.
    fn complete(&mut self, job: Job, r: HttpResult) {
        let now = self.ctx.now_ms();
        self.latency.record(r.duration_ms as f64);
        let retry_after = r
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let verdict = if r.error.is_some() {
            Verdict::Failed
        } else {
            judge(r.status, retry_after)
        };
        let endpoint_ok = matches!(verdict, Verdict::Delivered | Verdict::Gone);
        let was_open = self.breaker.is_open();
        let before = self.breaker.clone();
        self.outcomes += 1;
        if endpoint_ok {
            self.breaker.on_success();
        } else {
            self.breaker.on_failure(now, &self.ctx.cfg.breaker);
        }
        match (was_open, self.breaker.is_open()) {
            (false, true) => metrics::gauge!(m::OPEN_CIRCUITS).increment(1.0),
            (true, false) => metrics::gauge!(m::OPEN_CIRCUITS).decrement(1.0),
            _ => {}
        }
        let attempts_made = job.claimed.attempts + 1;
        let unit: f64 = rand::thread_rng().gen();
        let outcome = next_step(verdict, attempts_made, &self.ctx.cfg.policy, now, unit);
        let result_label = match verdict {
            Verdict::Delivered => "success",
            Verdict::Gone => "gone",
            _ => "failure",
        };
        metrics::counter!(m::ATTEMPTS, "result" => result_label).increment(1);
        metrics::histogram!(m::ATTEMPT_DURATION).record(r.duration_ms as f64 / 1000.0);
        let attempt = Attempt {
            at: format_ms(r.started_ms),
            duration_ms: r.duration_ms,
            status_code: r.status,
            response: r.response,
            error: r.error,
            next_attempt_at: match outcome {
                Outcome::Retry { due_ms } => Some(format_ms(due_ms)),
                _ => None,
            },
        };
        // Successes on a healthy endpoint are written at most once a second;
        // failures and breaker changes always (other replicas and the
        // days-of-failure rule depend on them).
        let recently_written = self
            .success_written
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        let write =
            !endpoint_ok || before != self.breaker || verdict == Verdict::Gone || !recently_written;
        if endpoint_ok && write {
            self.success_written = Some(Instant::now());
        }
        let endpoint = write.then(|| EndpointUpdate {
            url: self.url.clone(),
            breaker: self.breaker.clone(),
            success: endpoint_ok,
            gone: verdict == Verdict::Gone,
        });
        finish_in_background(self.ctx.clone(), job, outcome, Some(attempt), endpoint);
    }
}

/// The endpoint state to store after an attempt.
struct EndpointUpdate {
    url: String,
    breaker: BreakerState,
    success: bool,
    gone: bool,
}

fn finish_in_background(
    ctx: Arc<EngineCtx>,
    job: Job,
    outcome: Outcome,
    attempt: Option<Attempt>,
    endpoint: Option<EndpointUpdate>,
) {
    actix::spawn(async move {
        let now = ctx.now_ms();
        match ctx.finish(&job.claimed, &outcome, attempt.as_ref()).await {
            Ok(true) => match &outcome {
                Outcome::Success => {
                    metrics::counter!(m::DELIVERIES_FINISHED, "outcome" => "succeeded").increment(1)
                }
                Outcome::Fail { .. } => {
                    metrics::counter!(m::DELIVERIES_FINISHED, "outcome" => "failed").increment(1)
                }
                Outcome::Drop { .. } => {
                    metrics::counter!(m::DELIVERIES_FINISHED, "outcome" => "dropped").increment(1)
                }
                _ => {}
            },
            Ok(false) => {
                tracing::debug!(delivery = %job.claimed.delivery_id, "claim superseded; outcome not recorded")
            }
            // The lease will expire and the delivery will be claimed again.
            Err(e) => {
                tracing::warn!(delivery = %job.claimed.delivery_id, error = %e, "could not record a delivery outcome")
            }
        }
        if let Some(ep) = endpoint {
            let success = Some(ep.success);
            match ctx
                .store
                .record_endpoint(&ep.url, &ep.breaker, success, now)
                .await
            {
                Ok(failing_since) => {
                    let stale =
                        failing_since.is_some_and(|since| now - since >= ctx.cfg.disable_after_ms);
                    if ep.gone {
                        super::disable::disable(
                            &ctx,
                            &job.sub,
                            "the endpoint answered 410 Gone",
                            now,
                        )
                        .await;
                    } else if stale {
                        let hours = ctx.cfg.disable_after_ms / 3_600_000;
                        let reason =
                            format!("no successful delivery to the endpoint for {hours} hours");
                        super::disable::disable(&ctx, &job.sub, &reason, now).await;
                    } else if let Some(since) = failing_since.filter(|since| {
                        ep.breaker.is_open() && now - since >= ctx.cfg.circuit_alert_ms
                    }) {
                        report_circuit(&ctx, &job, &ep.url, since, now).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(url = %ep.url, error = %e, "could not record endpoint state")
                }
            }
        }
        ctx.release(1);
    });
}

/// Tells the account that `url` has been failing since `since` with its
/// circuit open: once per failure streak, whichever replica sees it first.
async fn report_circuit(ctx: &EngineCtx, job: &Job, url: &str, since: i64, now: i64) {
    let mut notice = Notice::new(job.sub.account_id, NoticeKind::CircuitOpen, now);
    notice.subscription_id = Some(job.sub.id);
    notice.endpoint = Some(url.to_owned());
    notice.failing_since_ms = Some(since);
    let once = (format!("circuit:{url}"), since.to_string());
    if let Err(e) = ctx
        .store
        .add_notice(&notice, Some((&once.0, &once.1)), now)
        .await
    {
        tracing::warn!(url, error = %e, "could not record a circuit notice");
    }
}

/// Headers and body of a notification at `now_ms`.
fn build_request(job: &Job, now_ms: i64) -> (Vec<(&'static str, String)>, Bytes) {
    let c = &job.claimed;
    let body = notification::body(
        &job.sub.id,
        &c.event_id,
        &c.event_type,
        c.occurred_at_ms,
        &c.delivery_id,
        &c.payload,
    );
    let headers = webhook_headers(
        &job.sub,
        &c.delivery_id.to_string(),
        now_ms,
        body.as_bytes(),
    );
    (headers, Bytes::from(body))
}

impl Actor for EndpointDeliverer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Agree with the other replicas: start from the stored breaker and
        // refresh it while the circuit is open.
        self.refresh_breaker(ctx);
        ctx.run_interval(Duration::from_secs(2), |act, ctx| {
            if act.breaker.is_open() {
                act.refresh_breaker(ctx);
            }
        });
    }
}

impl EndpointDeliverer {
    fn refresh_breaker(&mut self, ctx: &mut Context<Self>) {
        let store = self.ctx.store.clone();
        let url = self.url.clone();
        let seen = self.outcomes;
        ctx.spawn(
            async move { store.endpoint_state(&url).await }
                .into_actor(self)
                .map(move |state, act, ctx| {
                    // An outcome recorded here meanwhile is newer than what
                    // was read: keep the local breaker then.
                    if act.outcomes != seen {
                        return;
                    }
                    if let Ok(state) = state {
                        if act.breaker.is_open() != state.breaker.is_open() {
                            let delta = if state.breaker.is_open() { 1.0 } else { -1.0 };
                            metrics::gauge!(m::OPEN_CIRCUITS).increment(delta);
                        }
                        act.breaker = state.breaker;
                        act.pump(ctx);
                    }
                }),
        );
    }
}

impl Supervised for EndpointDeliverer {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Fresh state; the queued and in-flight deliveries go back to the
        // schedule when their leases expire (or when this process stops).
        self.ctx.release(self.queue.len() + self.in_flight);
        self.queue.clear();
        self.in_flight = 0;
        self.buckets.clear();
        self.pump_pending = false;
    }
}

impl Handler<Deliver> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, Deliver(job): Deliver, ctx: &mut Self::Context) {
        if self.draining() {
            let now = self.ctx.now_ms();
            self.finish(job, Outcome::Wait { due_ms: now }, None);
            return;
        }
        let cfg = &self.ctx.cfg;
        if !backlog::admit(
            &self.latency,
            self.queue.len(),
            cfg.endpoint_concurrency,
            cfg.queue_budget_ms(),
            cfg.endpoint_queue,
        ) {
            // Busy endpoint: hand it back until the queue should have room,
            // rather than let its lease run out in memory.
            let wait = self
                .latency
                .wait_ms(self.queue.len(), cfg.endpoint_concurrency)
                / 2.0;
            let due_ms = self.ctx.now_ms() + (wait as i64).clamp(100, MAX_HAND_BACK_MS);
            self.finish(job, Outcome::Wait { due_ms }, None);
            return;
        }
        debug_assert!(matches!(job.sub.channel, Channel::Webhook { .. }));
        self.queue.push_back(job);
        self.pump(ctx);
    }
}

impl Handler<Drain> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.draining = true;
        let now = self.ctx.now_ms();
        while let Some(job) = self.queue.pop_front() {
            self.finish(job, Outcome::Wait { due_ms: now }, None);
        }
    }
}
