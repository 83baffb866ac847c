//! `EmailNotifier`: the delivery engine's email actor. It owns the pooled
//! SMTP transport (made on the engine's thread) and sends, at most
//! `smtp.max_connections` at a time:
//! - deliveries of immediate email subscriptions, handed over by the
//!   scheduler, recorded like webhook attempts (SMTP code and reply);
//! - digests, claimed from Redis when their period ends;
//! - operational notices from the outbox, to the account's contact.
//!
//! Every claim is an atomic script with a short lease and a fencing token,
//! so with several replicas a digest or a notice is sent by one of them. The
//! owner renews the lease of every digest and notice claim held here (see
//! [`Owner::hold_message`]) while its message is written and sent, however
//! long that takes; if the replica dies mid-send, its renewals stop, the
//! lease runs out and another replica sends it.
//!
//! The notifier knows nothing of the engine that runs it: it is given
//! [`EmailJob`]s and reaches its owner (the clock, the settings it needs,
//! the bookkeeping of claimed deliveries) only through the [`Owner`] trait,
//! which the delivery engine implements.
//!
//! Shutdown comes in two steps: [`Drain`] (no message starts any more; a
//! delivery, digest or notice waiting for a connection is handed back
//! unsent) and [`Close`] (messages still being sent are abandoned, digests
//! and notices handed back, and the SMTP pool is dropped here, inside the
//! engine's runtime, as lettre's pool requires; abandoned deliveries are
//! handed back by the engine with its other claims).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use tokio::sync::{watch, Semaphore, SemaphorePermit};
use uuid::Uuid;

use super::message::{DigestEmail, DigestEntry, EventEmail};
use super::transport::{self, SmtpResult, SmtpVerdict};
use super::Mailer;
use crate::domain::delivery::Outcome;
use crate::domain::event::format_ms;
use crate::domain::subscription::{Channel, Digest, Subscription};
use crate::metrics as m;
use crate::store::{Attempt, Claimed, ClaimedDigest, ClaimedNotice, MessageRef, Store, StoreError};

/// Most digests or notices claimed per shard per poll.
const CLAIM_MAX: usize = 16;

/// Longest [`Close`] waits for abandoned sends to let go of the transport.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What the notifier needs from the engine that runs it. Every claimed
/// delivery handed over as an [`EmailJob`] ends in exactly one
/// [`Owner::release`], after [`Owner::finish`] or [`Owner::let_go`] (or
/// neither, when the send is abandoned to the claim's lease).
pub trait Owner: 'static {
    /// The time the engine runs on, ms.
    fn now_ms(&self) -> i64;

    /// The engine is shutting down: claim nothing more.
    fn stopping(&self) -> bool;

    /// The store digests and notices are claimed from and recorded in.
    fn store(&self) -> &Store;

    /// How long a digest or notice claim is leased, ms; the owner renews
    /// the lease of every claim held with [`Owner::hold_message`].
    fn lease_ms(&self) -> i64;

    /// A digest or notice was claimed: its lease is renewed from now on,
    /// until [`Owner::let_go_message`].
    fn hold_message(&self, claim: MessageRef);

    /// Whether a held digest or notice claim is still this process's, its
    /// renewals keeping up: a message may start on it.
    fn message_live(&self, claim: &MessageRef) -> bool;

    /// The digest or notice is done with (its outcome recorded, handed
    /// back, or abandoned to its lease): renew it no more.
    fn let_go_message(&self, claim: &MessageRef);

    /// Whether a claimed delivery's lease (renewed by the owner while the
    /// claim is held) still leaves room to start a message.
    fn claim_live(&self, claimed: &Claimed) -> bool;

    /// How often due digests and notices are looked for.
    fn poll_interval(&self) -> Duration;

    /// The wait before the next attempt after `attempts_made` attempts;
    /// `None` once the retry schedule is used up. `unit`, uniform in
    /// [0, 1), draws the jitter.
    fn retry_delay(&self, attempts_made: u32, unit: f64) -> Option<Duration>;

    /// A subscription, as the engine knows it now.
    fn subscription(
        &self,
        shard: u16,
        id: &Uuid,
    ) -> impl Future<Output = Result<Option<Arc<Subscription>>, StoreError>>;

    /// Records `outcome` of a claimed delivery, with the attempt made if
    /// any. `Ok(false)`: the claim was superseded and nothing was recorded.
    /// Either way the claim is no longer held.
    fn finish(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        attempt: Option<&Attempt>,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// The claimed delivery went into a digest: no longer a claim to hand
    /// back at shutdown.
    fn let_go(&self, claimed: &Claimed);

    /// One claimed delivery is done with (finished, held for a digest, or
    /// abandoned to its lease): room for another.
    fn release(&self);

    /// Logs an attempt at a claimed delivery; `target` (the recipient's
    /// mail domain) is made only when the line is logged.
    fn log_attempt(
        &self,
        target: impl FnOnce() -> String,
        claimed: &Claimed,
        attempt: &Attempt,
        outcome: &Outcome,
    );
}

/// A claimed delivery of an immediate or digest email subscription: the
/// claim and what the message needs of the subscription.
#[derive(Debug, Clone)]
pub struct EmailJob {
    pub claimed: Claimed,
    pub subscription_id: Uuid,
    pub description: Option<String>,
    /// The recipient.
    pub to: String,
    pub digest: Digest,
}

/// An email delivery claimed by the scheduler.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendEmail(pub EmailJob);

/// Shutdown, first step: start no message; hand back deliveries waiting
/// for a connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Shutdown, last step: abandon the messages being sent and drop the SMTP
/// pool. Answers once the pool is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// Where the notifier is in its life; sends watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Nothing new starts.
    Draining,
    /// Sends under way are abandoned.
    Closed,
}

pub struct EmailNotifier<O: Owner> {
    owner: Arc<O>,
    /// The transport and templates; `None` once closed.
    mailer: Option<Rc<Mailer>>,
    /// One permit per SMTP connection: bounds messages in flight.
    slots: Arc<Semaphore>,
    /// Shutdown progress, seen by every send (they run as tasks of the
    /// arbiter, not of this actor).
    phase: watch::Sender<Phase>,
    /// A poll of the outbox and digests is under way.
    polling: bool,
}

impl<O: Owner> EmailNotifier<O> {
    /// Takes the transport; must run on the engine's thread.
    pub fn new(owner: Arc<O>, mailer: Mailer) -> Self {
        let slots = Arc::new(Semaphore::new(mailer.max_connections));
        Self {
            owner,
            mailer: Some(Rc::new(mailer)),
            slots,
            phase: watch::Sender::new(Phase::Running),
            polling: false,
        }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling || self.owner.stopping() {
            return;
        }
        let Some(mailer) = self.mailer.clone() else {
            return;
        };
        self.polling = true;
        let c = self.owner.clone();
        let slots = self.slots.clone();
        let phase = self.phase.subscribe();
        let fut = async move {
            let now = c.now_ms();
            let lease = c.lease_ms();
            // Claim no more than can start now: another replica may have a
            // connection free.
            let mut budget = slots.available_permits();
            if budget == 0 {
                return;
            }
            let due = match c.store().email_due(now).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check for due email");
                    return;
                }
            };
            for (shard, notices, digests) in due {
                if notices && budget > 0 {
                    match c
                        .store()
                        .claim_notices(shard, now, lease, budget.min(CLAIM_MAX))
                        .await
                    {
                        Ok(list) => {
                            budget = budget.saturating_sub(list.len());
                            for n in list {
                                let held = HeldMessage::new(c.clone(), n.claim_ref());
                                actix::spawn(send_notice(
                                    c.clone(),
                                    mailer.clone(),
                                    slots.clone(),
                                    phase.clone(),
                                    n,
                                    held,
                                ));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim notices");
                            return;
                        }
                    }
                }
                if digests && budget > 0 {
                    let max = budget.min(CLAIM_MAX);
                    match c
                        .store()
                        .claim_digests(shard, now, lease, max, mailer.digest_latest)
                        .await
                    {
                        Ok(list) => {
                            budget = budget.saturating_sub(list.len());
                            for d in list {
                                let held = HeldMessage::new(c.clone(), d.claim_ref());
                                actix::spawn(send_digest(
                                    c.clone(),
                                    mailer.clone(),
                                    slots.clone(),
                                    phase.clone(),
                                    d,
                                    held,
                                ));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim digests");
                            return;
                        }
                    }
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, _| act.polling = false));
    }
}

impl<O: Owner> Actor for EmailNotifier<O> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.polling = false;
        let every = self.owner.poll_interval().max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.poll(ctx));
    }
}

impl<O: Owner> Supervised for EmailNotifier<O> {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!("email notifier restarting");
    }
}

impl<O: Owner> Handler<SendEmail> for EmailNotifier<O> {
    type Result = ();

    fn handle(&mut self, SendEmail(job): SendEmail, _: &mut Self::Context) {
        let mailer = match &self.mailer {
            Some(m) if *self.phase.borrow() == Phase::Running => m.clone(),
            // Shutting down: back to the schedule, unsent.
            _ => {
                let c = self.owner.clone();
                actix::spawn(async move {
                    let outcome = Outcome::Wait { due_ms: c.now_ms() };
                    if let Err(e) = c.finish(&job.claimed, &outcome, None).await {
                        tracing::warn!(delivery = %job.claimed.delivery_id, error = %e, "could not hand back an email delivery");
                    }
                    c.release();
                });
                return;
            }
        };
        // A task of the arbiter, not of this actor: it outlives a restart.
        actix::spawn(deliver(
            self.owner.clone(),
            mailer,
            self.slots.clone(),
            self.phase.subscribe(),
            job,
        ));
    }
}

impl<O: Owner> Handler<Drain> for EmailNotifier<O> {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.phase.send_if_modified(|p| {
            let running = *p == Phase::Running;
            if running {
                *p = Phase::Draining;
            }
            running
        });
    }
}

impl<O: Owner> Handler<Close> for EmailNotifier<O> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Close, _: &mut Self::Context) -> Self::Result {
        self.phase.send_replace(Phase::Closed);
        let mailer = self.mailer.take();
        Box::pin(async move {
            let Some(mailer) = mailer else { return };
            // Abandoned sends end at their next poll; a store write under
            // way is bounded by the store's timeout.
            let until = Instant::now() + CLOSE_WAIT;
            while Rc::strong_count(&mailer) > 1 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if Rc::strong_count(&mailer) > 1 {
                tracing::warn!("email sends still hold the SMTP pool at shutdown");
            }
            // The last handle: the pool shuts down here, in the runtime.
            drop(mailer);
        })
    }
}

/// A digest or notice claim, held by the owner (so its lease is renewed)
/// for as long as this lives: whichever way its send ends (recorded, handed
/// back, abandoned, or the task dropped), it is let go.
struct HeldMessage<O: Owner> {
    owner: Arc<O>,
    claim: MessageRef,
}

impl<O: Owner> HeldMessage<O> {
    fn new(owner: Arc<O>, claim: MessageRef) -> Self {
        owner.hold_message(claim.clone());
        Self { owner, claim }
    }

    /// Whether the message may start: the claim is still held and renewed.
    /// Without that, another replica may claim it and send it too.
    fn live(&self) -> bool {
        self.owner.message_live(&self.claim)
    }
}

impl<O: Owner> Drop for HeldMessage<O> {
    fn drop(&mut self) {
        self.owner.let_go_message(&self.claim);
    }
}

/// A connection slot, or `None` once the notifier drains: then nothing new
/// starts.
async fn slot<'a>(
    slots: &'a Semaphore,
    phase: &mut watch::Receiver<Phase>,
) -> Option<SemaphorePermit<'a>> {
    tokio::select! {
        biased;
        _ = phase.wait_for(|p| *p != Phase::Running) => None,
        permit = slots.acquire() => permit.ok(),
    }
}

/// Runs `send` to its end, or `None` when the notifier closes first (the
/// send is abandoned; the stopping process hands its claim back).
async fn unless_closed<T>(
    phase: &mut watch::Receiver<Phase>,
    send: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = phase.wait_for(|p| *p == Phase::Closed) => None,
        done = send => Some(done),
    }
}

/// Sends (the caller holds a connection slot), timed.
async fn send_timed(mailer: &Mailer, message: lettre::Message) -> (SmtpResult, i64, u64) {
    let started_ms = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    let r = transport::send(&mailer.transport, message).await;
    (r, started_ms, t.elapsed().as_millis() as u64)
}

fn count(kind: &'static str, r: &SmtpResult) {
    let result = match r.verdict {
        SmtpVerdict::Accepted => "accepted",
        SmtpVerdict::Transient => "transient",
        SmtpVerdict::Permanent => "permanent",
    };
    metrics::counter!(m::EMAILS, "kind" => kind, "result" => result).increment(1);
}

/// Sends `message` (the caller holds a slot) and works out what follows:
/// the outcome after `attempts_before` earlier attempts, and the attempt as
/// the history shows it.
async fn attempt(
    c: &impl Owner,
    mailer: &Mailer,
    kind: &'static str,
    message: lettre::Message,
    attempts_before: u32,
) -> (Outcome, Attempt) {
    let (r, started_ms, duration_ms) = send_timed(mailer, message).await;
    count(kind, &r);
    let unit: f64 = rand::thread_rng().gen();
    let outcome = super::next_step(
        r.verdict,
        &r.text,
        attempts_before + 1,
        |made| c.retry_delay(made, unit),
        c.now_ms(),
    );
    let attempt = attempt_of(&r, started_ms, duration_ms, &outcome);
    (outcome, attempt)
}

/// The attempt as shown in a delivery's history.
fn attempt_of(r: &SmtpResult, started_ms: i64, duration_ms: u64, outcome: &Outcome) -> Attempt {
    let accepted = r.verdict == SmtpVerdict::Accepted;
    Attempt {
        at: format_ms(started_ms),
        duration_ms,
        status_code: r.code,
        response: accepted.then(|| r.text.clone()),
        error: (!accepted).then(|| r.text.clone()),
        next_attempt_at: match outcome {
            Outcome::Retry { due_ms } => Some(format_ms(*due_ms)),
            _ => None,
        },
    }
}

/// One claimed delivery of an email subscription: into the digest, or sent.
async fn deliver<O: Owner>(
    c: Arc<O>,
    mailer: Rc<Mailer>,
    slots: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    job: EmailJob,
) {
    let claimed = &job.claimed;
    let address = &job.to;
    let now = c.now_ms();
    if let Some(due) = job.digest.period_end(now) {
        match c
            .store()
            .hold_for_digest(claimed, due, mailer.digest_max_events, now)
            .await
        {
            Ok(_) => c.let_go(claimed),
            Err(e) => {
                tracing::warn!(delivery = %claimed.delivery_id, error = %e, "could not hold a delivery for its digest")
            }
        }
        c.release();
        return;
    }
    let slot = slot(&slots, &mut phase).await;
    let now = c.now_ms();
    // Never start a message the claim's lease cannot cover, nor one while
    // shutting down.
    let (outcome, attempt) = if slot.is_none() || !c.claim_live(claimed) {
        (Outcome::Wait { due_ms: now }, None)
    } else {
        let message = mailer.composer.event(&EventEmail {
            to: address,
            subscription_id: job.subscription_id,
            description: job.description.as_deref(),
            delivery_id: claimed.delivery_id,
            event_id: claimed.event_id,
            event_type: &claimed.event_type,
            occurred_at_ms: claimed.occurred_at_ms,
            payload: &claimed.payload,
        });
        match message {
            Err(e) => (
                Outcome::Fail {
                    error: format!("the message could not be built: {e}"),
                },
                None,
            ),
            Ok(message) => {
                let send = attempt(&*c, &mailer, "event", message, claimed.attempts);
                let Some((outcome, attempt)) = unless_closed(&mut phase, send).await else {
                    // Abandoned: still claimed, handed back as the process stops.
                    c.release();
                    return;
                };
                (outcome, Some(attempt))
            }
        }
    };
    drop(slot);
    if let Some(a) = &attempt {
        let domain = address.rsplit('@').next().unwrap_or_default();
        c.log_attempt(|| format!("email to …@{domain}"), claimed, a, &outcome);
    }
    match c.finish(claimed, &outcome, attempt.as_ref()).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(delivery = %claimed.delivery_id, error = %e, "could not record an email outcome")
        }
    }
    c.release();
}

/// One due digest: written and sent, its outcome recorded on every
/// delivery it holds.
async fn send_digest<O: Owner>(
    c: Arc<O>,
    mailer: Rc<Mailer>,
    slots: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    d: ClaimedDigest,
    held: HeldMessage<O>,
) {
    let sub = c.subscription(d.shard, &d.subscription_id).await;
    let (outcome, attempt) = match sub {
        Err(e) => {
            tracing::warn!(error = %e, "could not read a digest's subscription");
            return; // the lease runs out and the digest is claimed again
        }
        Ok(None) => (
            Outcome::Fail {
                error: "the subscription was deleted".into(),
            },
            None,
        ),
        Ok(Some(s)) if !s.enabled => (
            Outcome::Fail {
                error: "the subscription is disabled".into(),
            },
            None,
        ),
        Ok(Some(s)) if !matches!(s.channel, Channel::Email { .. }) => (
            Outcome::Fail {
                error: "the subscription no longer sends email".into(),
            },
            None,
        ),
        Ok(Some(s)) => {
            let Channel::Email { address, digest } = &s.channel else {
                unreachable!("checked above")
            };
            // The same for every send of this digest, so a resend after a
            // crash can be recognised.
            let digest_id = format!("{}-{}", d.subscription_id, d.first_ms);
            let message = mailer.composer.digest(&DigestEmail {
                to: address,
                subscription_id: s.id,
                description: s.description.as_deref(),
                // A subscription switched to immediate since: still a digest.
                digest: if *digest == Digest::Immediate {
                    Digest::Hourly
                } else {
                    *digest
                },
                digest_id: &digest_id,
                first_ms: d.first_ms,
                last_ms: d.last_ms,
                total: d.total,
                counts: d.counts.clone(),
                latest: d
                    .latest
                    .iter()
                    .map(|(id, t, at)| DigestEntry {
                        event_id: *id,
                        event_type: t.clone(),
                        occurred_at_ms: *at,
                    })
                    .collect(),
            });
            match message {
                Err(e) => (
                    Outcome::Fail {
                        error: format!("the digest could not be built: {e}"),
                    },
                    None,
                ),
                Ok(message) => {
                    let Some(_slot) = slot(&slots, &mut phase).await else {
                        return hand_back_digest(&*c, &d).await;
                    };
                    if !held.live() {
                        // Renewals did not keep up: claimed again when the
                        // lease runs out.
                        return;
                    }
                    let send = attempt(&*c, &mailer, "digest", message, d.attempts);
                    let Some((outcome, attempt)) = unless_closed(&mut phase, send).await else {
                        return hand_back_digest(&*c, &d).await;
                    };
                    (outcome, Some(attempt))
                }
            }
        }
    };
    if let Err(e) = c
        .store()
        .finish_digest(&d, &outcome, attempt.as_ref(), c.now_ms())
        .await
    {
        tracing::warn!(subscription = %d.subscription_id, error = %e, "could not record a digest outcome");
    }
    drop(held);
}

/// A digest not sent because the notifier is shutting down: due again now,
/// no attempt spent.
async fn hand_back_digest(c: &impl Owner, d: &ClaimedDigest) {
    if let Err(e) = c.store().release_digest(d, c.now_ms()).await {
        tracing::warn!(subscription = %d.subscription_id, error = %e, "could not hand back a digest; it is sent when its lease runs out");
    }
}

/// A notice not sent because the notifier is shutting down: due again now,
/// no attempt spent.
async fn hand_back_notice(c: &impl Owner, n: &ClaimedNotice) {
    if let Err(e) = c.store().release_notice(n, c.now_ms()).await {
        tracing::warn!(notice = %n.notice.id, error = %e, "could not hand back a notice; it is sent when its lease runs out");
    }
}

/// One operational notice, to the account's contact address.
async fn send_notice<O: Owner>(
    c: Arc<O>,
    mailer: Rc<Mailer>,
    slots: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
    n: ClaimedNotice,
    held: HeldMessage<O>,
) {
    let id: Uuid = n.notice.id;
    let account = match c.store().get_account(&n.notice.account_id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = c.store().notice_done(n.shard, &id, &n.token, None).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read a notice's account");
            return; // claimed again when the lease runs out
        }
    };
    let message = match mailer
        .composer
        .notice(&n.notice, &account.contact_email, &account.name)
    {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(notice = %id, error = %e, "notice could not be written; dropped");
            let _ = c.store().notice_done(n.shard, &id, &n.token, None).await;
            return;
        }
    };
    let Some(slot) = slot(&slots, &mut phase).await else {
        return hand_back_notice(&*c, &n).await;
    };
    if !held.live() {
        return; // renewals did not keep up: claimed again when the lease runs out
    }
    let Some((r, _, _)) = unless_closed(&mut phase, send_timed(&mailer, message)).await else {
        return hand_back_notice(&*c, &n).await;
    };
    drop(slot);
    count("notice", &r);
    let unit: f64 = rand::thread_rng().gen();
    let retry_at = match super::next_step(
        r.verdict,
        &r.text,
        n.attempts,
        |made| c.retry_delay(made, unit),
        c.now_ms(),
    ) {
        Outcome::Retry { due_ms } => Some(due_ms),
        Outcome::Success => None,
        other => {
            tracing::warn!(notice = %id, to = %account.contact_email, outcome = ?other, "operational email given up");
            None
        }
    };
    match c
        .store()
        .notice_done(n.shard, &id, &n.token, retry_at)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(notice = %id, "a notice's claim was superseded while it was sent; its outcome was not recorded")
        }
        Err(e) => {
            tracing::warn!(notice = %id, error = %e, "could not record a notice's outcome")
        }
    }
    drop(held);
}
