//! `EndpointDeliverer`: one actor per endpoint (webhook URL). It owns the
//! endpoint's concurrency limit and queue, sends with at most
//! `endpoint_concurrency` requests at a time through the engine's shared
//! client (one bounded pool, connections kept per endpoint), and carries out
//! what `decision` says follows each attempt. A slow endpoint fills only its
//! own slots and queue, so it never delays another.
//!
//! The circuit breaker and the rate limits are shared by the fleet in Redis:
//! the deliverer admits requests on a copy of the circuit at most
//! `VIEW_MAX_AGE_MS` old (refreshed by every recorded attempt), takes the
//! one probe lease from Redis when the cooldown is over, and takes each send
//! of a rate-limited subscription from its shared limit.

use std::collections::{BTreeMap, VecDeque};
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
use super::breaker::{Admission, Circuit, Signal, VIEW_MAX_AGE_MS};
use super::decision::{decide, follow_up, Attempted, Effects, FollowUp};
use super::engine::log_attempt;
use super::engine::EngineCtx;
use super::notification::{self, judge, Verdict};
use super::ratelimit::Gcra;
use super::retry::parse_retry_after;
use super::sender::{HttpResult, Sender};
use super::signing::webhook_headers;
use crate::domain::delivery::Outcome;
use crate::domain::event::format_ms;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::subscription::{Channel, Subscription};
use crate::domain::target::redact_url;
use crate::metrics as m;
use crate::store::{Attempt, Claimed, EndpointState};

/// Assumed request duration of an endpoint not heard from yet, ms.
const INITIAL_LATENCY_MS: f64 = 100.0;
/// Longest a delivery handed back by a busy endpoint waits, ms.
const MAX_HAND_BACK_MS: i64 = 5_000;
/// Pause before asking Redis again after it failed to answer, ms.
const STORE_RETRY_MS: u64 = 1_000;

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

/// The endpoint has been idle: the scheduler has dropped this deliverer's
/// address (nothing new arrives), so stop once the in-flight requests are
/// done; anything still queued goes back to the schedule.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// What an attempt said about the endpoint was recorded (or not).
#[derive(Message)]
#[rtype(result = "()")]
struct Recorded {
    /// Which of the deliverer's unanswered signals this answers.
    seq: u64,
    /// The endpoint's shared state after it; `None` when Redis failed.
    state: Option<EndpointState>,
    /// When it was recorded, ms.
    at_ms: i64,
}

/// A signal sent to Redis whose answer has not come back.
struct Unanswered {
    signal: Signal,
    probe: Option<String>,
    at_ms: i64,
}

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
    /// This replica's copy of the endpoint's circuit, shared in Redis.
    circuit: Circuit,
    /// Version of that copy, so an older one never replaces a newer one.
    circuit_version: u64,
    /// When the copy was read (ms); one older than `VIEW_MAX_AGE_MS` is read
    /// again before anything is sent, so a circuit another replica opened
    /// stops this one within that time.
    circuit_read_ms: Option<i64>,
    /// Signals of this replica's attempts on their way to Redis, in order.
    /// They are applied again on top of every copy read, so that a copy
    /// read before they arrived does not undo them (a replica whose own
    /// failures opened the circuit never sends on a copy that forgot them).
    unanswered: BTreeMap<u64, Unanswered>,
    /// Number of the next signal.
    next_seq: u64,
    /// The probe lease this replica took and has not used yet: its token
    /// and when it runs out (ms).
    probe_permit: Option<(String, i64)>,
    /// The delivery at the head of the queue that its subscription's rate
    /// limit already let through.
    rate_passed: Option<Uuid>,
    /// The head of the queue waits: for Redis (circuit, probe lease, rate
    /// limit) or for its rate limit's next free slot.
    waiting: bool,
    /// Recent request durations, to bound the queue by time.
    latency: Latency,
    /// When a success was last written to the endpoint's shared state.
    success_written: Option<Instant>,
    draining: bool,
    /// Stop when the last in-flight request is done ([`Retire`]).
    retiring: bool,
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
            circuit: Circuit::default(),
            circuit_version: 0,
            circuit_read_ms: None,
            unanswered: BTreeMap::new(),
            next_seq: 0,
            probe_permit: None,
            rate_passed: None,
            waiting: false,
            latency,
            success_written: None,
            draining: false,
            retiring: false,
        }
    }

    /// Shutting down: nothing new starts, what is queued goes back.
    fn draining(&self) -> bool {
        self.draining || self.ctx.stopping.load(Ordering::SeqCst)
    }

    /// Hands `job` back to the schedule, due at `due_ms`, no attempt spent.
    fn hand_back(&self, job: Job, due_ms: i64) {
        let ctx = self.ctx.clone();
        actix::spawn(async move {
            record_outcome(&ctx, &job, &Outcome::Wait { due_ms }, None).await;
            ctx.release(1);
        });
    }

    /// Starts as many queued deliveries as the limits allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.ctx.cfg.endpoint_concurrency
            && !self.draining()
            && !self.waiting
        {
            let Some(job) = self.queue.front() else { break };
            let now = self.ctx.now_ms();
            // Never start a request on a claim whose renewals are not
            // keeping up (Redis unreachable): the delivery might be claimed
            // again meanwhile and sent twice.
            if !self
                .ctx
                .claims
                .is_live(&job.claimed, now, self.ctx.cfg.lease.webhook / 2)
            {
                if let Some(job) = self.queue.pop_front() {
                    self.hand_back(job, now);
                }
                continue;
            }
            if self
                .circuit_read_ms
                .is_none_or(|read| now - read >= VIEW_MAX_AGE_MS)
            {
                self.read_circuit(ctx, now);
                break;
            }
            // An unused probe lease that ran out may be someone else's now.
            self.probe_permit = self.probe_permit.take().filter(|(_, until)| now < *until);
            let probe = self.probe_permit.is_some();
            if !probe {
                match self.circuit.admit(now) {
                    Admission::Send => {}
                    Admission::WaitUntil(until) => {
                        // The circuit is open: wait without spending an attempt.
                        if let Some(job) = self.queue.pop_front() {
                            self.hand_back(job, until);
                        }
                        continue;
                    }
                    Admission::Probe => {
                        self.ask_for_probe(ctx, now);
                        break;
                    }
                }
            }
            if let Some(rate) = job.sub.rate_limit {
                if self.rate_passed != Some(job.claimed.delivery_id) {
                    let (account, sub, delivery) =
                        (job.sub.account_id, job.sub.id, job.claimed.delivery_id);
                    self.take_rate(ctx, account, sub, delivery, rate, now);
                    break;
                }
            }
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.rate_passed = None;
            let probe = self.probe_permit.take().map(|(token, _)| token);
            self.send(ctx, job, probe, now);
        }
    }

    fn send(&mut self, ctx: &mut Context<Self>, job: Job, probe: Option<String>, now: i64) {
        self.in_flight += 1;
        let (headers, body) = build_request(&job, now);
        let url = self.url.clone();
        let sender = self.sender.clone();
        let send = async move { sender.post(&url, &headers, body).await };
        ctx.spawn(
            AssertUnwindSafe(send)
                .catch_unwind()
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.in_flight -= 1;
                    if act.retiring && act.in_flight == 0 {
                        ctx.stop();
                    }
                    match result {
                        Ok(r) => act.complete(ctx, job, r, probe),
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

    /// Replaces the copy of the circuit with `state` read at `read_ms`,
    /// unless the copy is newer. `state` includes the signals numbered
    /// below `covers` (Redis runs one connection's commands in order); the
    /// later ones still on their way are applied on top of it.
    fn see(&mut self, state: EndpointState, read_ms: i64, covers: u64) {
        if state.version >= self.circuit_version {
            self.circuit_version = state.version;
            self.unanswered = self.unanswered.split_off(&covers);
            let mut circuit = state.circuit;
            for u in self.unanswered.values() {
                circuit.record(u.signal, u.probe.as_deref(), u.at_ms, &self.ctx.cfg.breaker);
            }
            self.set_circuit(circuit);
        }
        if self.circuit_read_ms.is_none_or(|r| r < read_ms) {
            self.circuit_read_ms = Some(read_ms);
        }
    }

    fn set_circuit(&mut self, circuit: Circuit) {
        match (self.circuit.is_open(), circuit.is_open()) {
            (false, true) => metrics::gauge!(m::OPEN_CIRCUITS).increment(1.0),
            (true, false) => metrics::gauge!(m::OPEN_CIRCUITS).decrement(1.0),
            _ => {}
        }
        self.circuit = circuit;
    }

    /// Reads the shared circuit, then goes on.
    fn read_circuit(&mut self, ctx: &mut Context<Self>, now: i64) {
        self.waiting = true;
        let covers = self.next_seq;
        let store = self.ctx.store.clone();
        let url = self.url.clone();
        ctx.spawn(
            async move { store.endpoint_state(&url).await }
                .into_actor(self)
                .map(move |state, act, ctx| {
                    act.waiting = false;
                    match state {
                        Ok(state) => act.see(state, now, covers),
                        Err(e) => {
                            // Go on with the copy at hand for another while.
                            tracing::warn!(url = %act.url, error = %e, "could not read the endpoint's circuit");
                            act.circuit_read_ms = Some(now);
                        }
                    }
                    act.pump(ctx);
                }),
        );
    }

    /// The cooldown is over: asks for the fleet's one probe lease.
    fn ask_for_probe(&mut self, ctx: &mut Context<Self>, now: i64) {
        self.waiting = true;
        let covers = self.next_seq;
        let store = self.ctx.store.clone();
        let url = self.url.clone();
        let token = Uuid::new_v4().to_string();
        let lease = self.ctx.cfg.request_budget_ms();
        ctx.spawn(
            async move {
                let taken = store.take_probe(&url, &token, lease, now).await;
                (token, taken)
            }
            .into_actor(self)
            .map(move |(token, taken), act, ctx| {
                act.waiting = false;
                match taken {
                    Ok((taken, state)) => {
                        act.see(state, now, covers);
                        if taken {
                            act.probe_permit = Some((token, now + lease));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(url = %act.url, error = %e, "could not ask for a probe");
                        act.wait_then_pump(ctx, STORE_RETRY_MS);
                        return;
                    }
                }
                act.pump(ctx);
            }),
        );
    }

    /// Takes a send from the subscription's fleet-wide rate limit for the
    /// delivery at the head of the queue, then goes on.
    fn take_rate(
        &mut self,
        ctx: &mut Context<Self>,
        account: Uuid,
        sub: Uuid,
        delivery: Uuid,
        rate: u32,
        now: i64,
    ) {
        self.waiting = true;
        let store = self.ctx.store.clone();
        let limit = Gcra::per_second(rate);
        ctx.spawn(
            async move { store.take_rate(&account, &sub, &limit, now).await }
                .into_actor(self)
                .map(move |taken, act, ctx| {
                    act.waiting = false;
                    match taken {
                        Ok(Ok(())) => {
                            act.rate_passed = Some(delivery);
                            act.pump(ctx);
                        }
                        Ok(Err(wait_ms)) => act.wait_then_pump(ctx, wait_ms.max(1) as u64),
                        Err(e) => {
                            tracing::warn!(subscription = %sub, error = %e, "could not check a rate limit");
                            act.wait_then_pump(ctx, STORE_RETRY_MS);
                        }
                    }
                }),
        );
    }

    fn wait_then_pump(&mut self, ctx: &mut Context<Self>, ms: u64) {
        self.waiting = true;
        ctx.run_later(Duration::from_millis(ms), |act, ctx| {
            act.waiting = false;
            act.pump(ctx);
        });
    }

    /// Judges a response, decides what follows and carries it out.
    fn complete(
        &mut self,
        ctx: &mut Context<Self>,
        job: Job,
        r: HttpResult,
        probe: Option<String>,
    ) {
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
        let attempted = Attempted {
            verdict,
            attempts_made: job.claimed.attempts + 1,
            probe: probe.is_some(),
        };
        let recently_written = self
            .success_written
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        let unit: f64 = rand::thread_rng().gen();
        let effects = decide(
            &attempted,
            &self.circuit,
            recently_written,
            &self.ctx.cfg.policy,
            now,
            unit,
        );
        if let Some(signal) = effects.endpoint {
            if signal == Signal::Success {
                self.success_written = Some(Instant::now());
            }
            // The same rules Redis applies: act on them until its answer
            // (which replaces this) arrives.
            let mut circuit = self.circuit.clone();
            circuit.record(signal, probe.as_deref(), now, &self.ctx.cfg.breaker);
            self.set_circuit(circuit);
            self.unanswered.insert(
                self.next_seq,
                Unanswered {
                    signal,
                    probe: probe.clone(),
                    at_ms: now,
                },
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
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
            next_attempt_at: match effects.outcome {
                Outcome::Retry { due_ms } => Some(format_ms(due_ms)),
                _ => None,
            },
        };
        let carry = CarryOut {
            ctx: self.ctx.clone(),
            deliverer: ctx.address(),
            url: self.url.clone(),
            job,
            attempt,
            probe,
            seq,
        };
        actix::spawn(carry.run(effects));
    }
}

/// The effects of one attempt, carried out in the background (the task
/// outlives a restart of the deliverer).
struct CarryOut {
    ctx: Arc<EngineCtx>,
    /// Told the endpoint's state as recorded.
    deliverer: Addr<EndpointDeliverer>,
    url: String,
    job: Job,
    attempt: Attempt,
    /// The probe lease the attempt was sent under.
    probe: Option<String>,
    /// The number of its signal, if any, in the deliverer's `unanswered`.
    seq: u64,
}

impl CarryOut {
    async fn run(self, effects: Effects) {
        let ctx = &self.ctx;
        let now = ctx.now_ms();
        log_attempt(
            || redact_url(&self.url),
            Some(&self.job.sub.account_id),
            &self.job.claimed,
            &self.attempt,
            &effects.outcome,
        );
        let shard = self.job.claimed.shard;
        if effects.endpoint == Some(Signal::Failure) {
            ctx.stats.endpoint_failed(shard, redact_url(&self.url));
        }
        let endpoint = async {
            let signal = effects.endpoint?;
            let state = ctx
                .store
                .record_endpoint(
                    &self.url,
                    signal,
                    self.probe.as_deref(),
                    &ctx.cfg.breaker,
                    now,
                )
                .await
                .inspect_err(|e| {
                    tracing::warn!(url = %self.url, error = %e, "could not record endpoint state")
                })
                .ok();
            if let Some(s) = &state {
                let open_until = s.circuit.open.as_ref().map(|o| o.until_ms);
                ctx.stats.circuit(shard, redact_url(&self.url), open_until);
            }
            self.deliverer.do_send(Recorded {
                seq: self.seq,
                state: state.clone(),
                at_ms: now,
            });
            state
        };
        let delivery = record_outcome(ctx, &self.job, &effects.outcome, Some(&self.attempt));
        let (after, ()) = futures_util::future::join(endpoint, delivery).await;
        let follow = match (effects.disable, after) {
            (Some(reason), _) => Some(FollowUp::Disable(reason)),
            (None, Some(state)) => follow_up(&state, now, &ctx.cfg.follow_up()),
            (None, None) => None,
        };
        match follow {
            Some(FollowUp::Disable(reason)) => {
                super::disable::disable(ctx, &self.job.sub, &reason, now).await
            }
            Some(FollowUp::Alert { failing_since_ms }) => {
                report_circuit(ctx, &self.job, &self.url, failing_since_ms, now).await
            }
            None => {}
        }
        ctx.release(1);
    }
}

/// Records `outcome` (and `attempt`) for `job`'s claim.
async fn record_outcome(ctx: &EngineCtx, job: &Job, outcome: &Outcome, attempt: Option<&Attempt>) {
    match ctx.finish(&job.claimed, outcome, attempt).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(delivery = %job.claimed.delivery_id, "claim superseded; outcome not recorded")
        }
        // The lease will expire and the delivery will be claimed again.
        Err(e) => {
            tracing::warn!(delivery = %job.claimed.delivery_id, error = %e, "could not record a delivery outcome")
        }
    }
}

/// Tells the account that `url` has been failing since `since` with its
/// circuit open: once per failure streak, whichever replica sees it first.
async fn report_circuit(ctx: &EngineCtx, job: &Job, url: &str, since: i64, now: i64) {
    let mut notice = Notice::new(job.sub.account_id, NoticeKind::CircuitOpen, now);
    notice.subscription_id = Some(job.sub.id);
    notice.endpoint = Some(url.to_owned());
    notice.failing_since_ms = Some(since);
    let once = (ctx.store.keys().circuit_report(url), since.to_string());
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
}

impl Supervised for EndpointDeliverer {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Fresh state; the queued and in-flight deliveries go back to the
        // schedule when their leases expire (an unused probe lease too).
        self.ctx.release(self.queue.len() + self.in_flight);
        self.queue.clear();
        self.in_flight = 0;
        self.circuit_read_ms = None;
        self.probe_permit = None;
        self.rate_passed = None;
        self.waiting = false;
    }
}

impl Handler<Recorded> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, r: Recorded, ctx: &mut Self::Context) {
        self.unanswered.remove(&r.seq);
        if let Some(state) = r.state {
            self.see(state, r.at_ms, r.seq + 1);
        }
        self.pump(ctx);
    }
}

impl Handler<Deliver> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, Deliver(job): Deliver, ctx: &mut Self::Context) {
        if self.draining() {
            let now = self.ctx.now_ms();
            self.hand_back(job, now);
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
            self.hand_back(job, due_ms);
            return;
        }
        debug_assert!(matches!(job.sub.channel, Channel::Webhook { .. }));
        self.queue.push_back(job);
        self.pump(ctx);
    }
}

impl Handler<Retire> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.retiring = true;
        self.handle(Drain, ctx);
        if self.in_flight == 0 {
            ctx.stop();
        }
    }
}

impl Handler<Drain> for EndpointDeliverer {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.draining = true;
        let now = self.ctx.now_ms();
        while let Some(job) = self.queue.pop_front() {
            self.hand_back(job, now);
        }
    }
}
