//! `Scheduler`: claims due deliveries from every shard in batches and hands
//! them to the endpoint deliverers. Ingest on this replica wakes it at once;
//! otherwise it sleeps until the next due time (at most
//! `delivery.poll_interval_ms`, so work from other replicas is noticed).
//! The claim is an atomic script, so replicas never claim one delivery twice.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use futures_util::FutureExt;

use super::deliverer::{Deliver, Drain, EndpointDeliverer, Job, Retire};
use super::engine::{EngineCtx, Notifier};
use super::sender::Sender;
use crate::domain::delivery::Outcome;
use crate::domain::subscription::{Channel, Subscription};
use crate::email::notifier::{self, EmailJob, SendEmail};
use crate::store::{Claimed, StoreError};

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Shutdown: drain the deliverers and the email notifier.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Makes the next claiming round panic, to show supervision at work.
#[doc(hidden)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// A claimed delivery and the lookup of its subscription.
type Found = (Claimed, Result<Option<Arc<Subscription>>, StoreError>);

enum Round {
    /// Claimed work.
    Claimed(Vec<Found>),
    /// Nothing due.
    Idle,
    /// This process holds its maximum of unfinished deliveries.
    Full,
}

pub struct Scheduler {
    ctx: Arc<EngineCtx>,
    /// One deliverer per endpoint URL, made on first use, with when it was
    /// last given a delivery (idle ones are retired).
    deliverers: HashMap<String, (Addr<EndpointDeliverer>, Instant)>,
    /// The HTTP client every deliverer of this arbiter uses (awc is not
    /// `Send`: it is made here, on the engine's thread).
    sender: Rc<Sender>,
    /// Sends email deliveries.
    notifier: Addr<Notifier>,
    /// A round or a sleep is under way (one at a time).
    busy: bool,
    panic_next: bool,
}

impl Scheduler {
    pub fn new(ctx: Arc<EngineCtx>, notifier: Addr<Notifier>) -> Self {
        let cfg = &ctx.cfg;
        let sender = Rc::new(Sender::new(
            cfg.timeout,
            cfg.allow_private_targets,
            cfg.resolver.clone(),
            cfg.max_connections,
        ));
        Self {
            sender,
            notifier,
            ctx,
            deliverers: HashMap::new(),
            busy: false,
            panic_next: false,
        }
    }

    /// Stops the deliverers of endpoints that had no delivery for
    /// `deliverer_idle`: their address is dropped here first, so a new
    /// delivery to the endpoint starts a fresh deliverer.
    fn retire_idle(&mut self) {
        let idle = self.ctx.cfg.deliverer_idle;
        self.deliverers.retain(|_, (addr, last)| {
            let keep = last.elapsed() < idle;
            if !keep {
                addr.do_send(Retire);
            }
            keep
        });
        self.ctx
            .deliverers
            .store(self.deliverers.len(), Ordering::SeqCst);
        metrics::gauge!(crate::metrics::DELIVERERS).set(self.deliverers.len() as f64);
    }

    fn dispatch(&mut self, claimed: Claimed, sub: Result<Option<Arc<Subscription>>, StoreError>) {
        let now = self.ctx.now_ms();
        let outcome = match sub {
            Err(_) => Outcome::Wait {
                due_ms: now + 1_000,
            },
            Ok(None) => Outcome::Drop {
                error: "the subscription was deleted".into(),
            },
            Ok(Some(s)) if !s.enabled => Outcome::Drop {
                error: format!(
                    "the subscription is disabled{}",
                    s.disabled_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            },
            Ok(Some(s)) => match &s.channel {
                Channel::Webhook { url } => {
                    let ctx = self.ctx.clone();
                    let entry = self.deliverers.entry(url.clone()).or_insert_with(|| {
                        let url = url.clone();
                        let sender = self.sender.clone();
                        let addr =
                            Supervisor::start(move |_| EndpointDeliverer::new(url, ctx, sender));
                        (addr, Instant::now())
                    });
                    entry.1 = Instant::now();
                    let live = self.deliverers.len();
                    self.ctx.deliverers.store(live, Ordering::SeqCst);
                    let entry = &self.deliverers[url];
                    entry.0.do_send(Deliver(Job { claimed, sub: s }));
                    return;
                }
                Channel::Email { address, digest } => {
                    self.notifier.do_send(SendEmail(EmailJob {
                        claimed,
                        subscription_id: s.id,
                        description: s.description.clone(),
                        to: address.clone(),
                        digest: *digest,
                    }));
                    return;
                }
            },
        };
        let ctx = self.ctx.clone();
        actix::spawn(async move {
            if let Err(e) = ctx.finish(&claimed, &outcome, None).await {
                tracing::warn!(delivery = %claimed.delivery_id, error = %e, "could not record a delivery outcome");
            }
            ctx.release(1);
        });
    }

    /// Waits for new work: the next due time, a wake-up, or the poll interval.
    fn sleep(&mut self, ctx: &mut Context<Self>, full: bool) {
        let c = self.ctx.clone();
        let fut = async move {
            let poll = c.cfg.poll_interval;
            let wait = if full {
                poll
            } else {
                match c.store.next_due_any().await {
                    Ok(Some(due)) => Duration::from_millis(
                        (due - c.now_ms()).clamp(0, poll.as_millis() as i64) as u64,
                    ),
                    Ok(None) => poll,
                    Err(_) => poll,
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = c.wake.notified() => {}
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, ctx| {
            act.busy = false;
            ctx.notify(Tick);
        }));
    }
}

async fn claim_round(c: Arc<EngineCtx>, panic: bool) -> Result<Round, StoreError> {
    if panic {
        panic!("injected scheduler panic");
    }
    // Shutdown waits for this guard: every claim is in `c.claims` before
    // it returns the held claims, and none is taken after it begins.
    let guard = c.claiming.lock().await;
    if c.stopping.load(Ordering::SeqCst) {
        return Ok(Round::Idle);
    }
    let in_flight = c.in_flight.load(Ordering::SeqCst);
    let capacity = c.cfg.max_in_flight.saturating_sub(in_flight);
    if capacity == 0 {
        return Ok(Round::Full);
    }
    let shards = c.store.keys().shards() as usize;
    let per_shard = c.cfg.batch.min(capacity.div_ceil(shards)).max(1);
    let now = c.now_ms();
    let claims = (0..shards as u16).map(|shard| c.store.claim(shard, now, c.cfg.lease, per_shard));
    let mut claimed = Vec::new();
    let mut first_error = None;
    for r in join_all(claims).await {
        match r {
            Ok(mut v) => claimed.append(&mut v),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    c.claims.hold(claimed.iter().map(Claimed::claim_ref), now);
    c.in_flight.fetch_add(claimed.len(), Ordering::SeqCst);
    drop(guard);
    if claimed.is_empty() {
        return match first_error {
            Some(e) => Err(e),
            None => Ok(Round::Idle),
        };
    }
    let mut out = Vec::with_capacity(claimed.len());
    for cl in claimed {
        let sub = c.registry.get(cl.shard, &cl.subscription_id).await;
        out.push((cl, sub));
    }
    Ok(Round::Claimed(out))
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.busy = false;
        ctx.notify(Tick);
        let idle = self.ctx.cfg.deliverer_idle;
        ctx.run_interval((idle / 2).min(Duration::from_secs(30)), |act, _| {
            act.retire_idle()
        });
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!("scheduler restarting");
        self.ctx.scheduler_restarts.fetch_add(1, Ordering::SeqCst);
        self.busy = false;
        self.panic_next = false;
    }
}

impl Handler<Tick> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        if self.busy || self.ctx.stopping.load(Ordering::SeqCst) {
            return;
        }
        self.busy = true;
        let round = AssertUnwindSafe(claim_round(
            self.ctx.clone(),
            std::mem::take(&mut self.panic_next),
        ))
        .catch_unwind();
        ctx.spawn(round.into_actor(self).map(|result, act, ctx| match result {
            Err(_) => {
                tracing::error!("the scheduler panicked; its supervisor restarts it");
                ctx.stop();
            }
            Ok(Ok(Round::Claimed(jobs))) => {
                for (claimed, sub) in jobs {
                    act.dispatch(claimed, sub);
                }
                act.busy = false;
                ctx.notify(Tick);
            }
            Ok(Ok(Round::Idle)) => act.sleep(ctx, false),
            Ok(Ok(Round::Full)) => act.sleep(ctx, true),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                act.sleep(ctx, true);
            }
        }));
    }
}

impl Handler<Shutdown> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        for (addr, _) in self.deliverers.values() {
            addr.do_send(Drain);
        }
        self.notifier.do_send(notifier::Drain);
    }
}

impl Handler<InjectPanic> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        self.panic_next = true;
        if !self.busy {
            ctx.notify(Tick);
        }
    }
}
