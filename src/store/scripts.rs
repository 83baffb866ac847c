//! The scripts' protocol, in one place. Each script has a call type that
//! implements [`Call`]: it names the script's keys and arguments as fields,
//! binds them in the order the script reads them, and decodes the script's
//! reply into a typed value. The store's functions build a call and run it
//! with [`Store::call`]; nothing else hands a script positional arguments
//! or cuts its reply.

use redis::{FromRedisValue, Script, ScriptInvocation};
use uuid::Uuid;

use super::deliveries::{attempt_json, FirstAttempt};
use super::keys::{self, Keys};
use super::{
    Attempt, ClaimRef, Claimed, ClaimedDigest, ClaimedNotice, IngestOutcome, LeaseMs, MessageRef,
    PutOutcome, Replayed, Requeued, Store, StoreError,
};
use crate::domain::delivery::Outcome;
use crate::domain::event::NewEvent;
use crate::domain::notice::Notice;
use crate::domain::subscription::Subscription;

/// Every script, loaded once (EVALSHA, falling back to EVAL once per
/// connection when Redis lacks it).
pub(super) struct Scripts {
    pub ingest: Script,
    pub rotate_key: Script,
    pub page: Script,
    pub put_subscription: Script,
    pub claim: Script,
    pub reclaim: Script,
    pub release: Script,
    pub renew: Script,
    pub finish: Script,
    pub requeue: Script,
    pub replay: Script,
    pub notice: Script,
    pub outbox_claim: Script,
    pub outbox_done: Script,
    pub outbox_release: Script,
    pub outbox_renew: Script,
    pub digest_hold: Script,
    pub digest_claim: Script,
    pub digest_finish: Script,
    pub endpoint_record: Script,
    pub endpoint_probe: Script,
    pub rate: Script,
    pub digest_release: Script,
    pub digest_renew: Script,
    pub expire_events: Script,
}

/// Functions several scripts share, prepended to them.
const COMMON: &str = include_str!("lua/common.lua");
/// Functions the endpoint scripts share, prepended to them.
const ENDPOINT: &str = include_str!("lua/endpoint.lua");

impl Scripts {
    pub fn new() -> Self {
        // Every script starts with the key kinds (`K`), from `keys`.
        let names = keys::lua_names();
        let plain = |body: &str| Script::new(&format!("{names}{body}"));
        let with_common = |body: &str| plain(&format!("{COMMON}\n{body}"));
        let endpoint = |body: &str| plain(&format!("{ENDPOINT}\n{body}"));
        Self {
            ingest: with_common(include_str!("lua/ingest.lua")),
            rotate_key: with_common(include_str!("lua/rotate_key.lua")),
            page: plain(include_str!("lua/page.lua")),
            put_subscription: with_common(include_str!("lua/put_subscription.lua")),
            claim: with_common(include_str!("lua/claim.lua")),
            reclaim: with_common(include_str!("lua/reclaim.lua")),
            release: with_common(include_str!("lua/release.lua")),
            renew: with_common(include_str!("lua/renew.lua")),
            finish: with_common(include_str!("lua/finish.lua")),
            requeue: with_common(include_str!("lua/requeue.lua")),
            replay: with_common(include_str!("lua/replay.lua")),
            notice: with_common(include_str!("lua/notice.lua")),
            outbox_claim: plain(include_str!("lua/outbox_claim.lua")),
            outbox_done: plain(include_str!("lua/outbox_done.lua")),
            outbox_release: plain(include_str!("lua/outbox_release.lua")),
            outbox_renew: plain(include_str!("lua/outbox_renew.lua")),
            digest_hold: with_common(include_str!("lua/digest_hold.lua")),
            digest_claim: plain(include_str!("lua/digest_claim.lua")),
            digest_finish: with_common(include_str!("lua/digest_finish.lua")),
            endpoint_record: endpoint(include_str!("lua/endpoint_record.lua")),
            endpoint_probe: endpoint(include_str!("lua/endpoint_probe.lua")),
            rate: plain(include_str!("lua/rate.lua")),
            digest_release: plain(include_str!("lua/digest_release.lua")),
            digest_renew: plain(include_str!("lua/digest_renew.lua")),
            expire_events: plain(include_str!("lua/expire_events.lua")),
        }
    }
}

/// One call of one script.
pub(super) trait Call {
    /// What the script returns, as Redis sends it.
    type Raw: FromRedisValue + Send;
    /// What the call means.
    type Reply;
    fn script(scripts: &Scripts) -> &Script;
    /// Adds the keys and arguments, in the order the script reads them.
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>);
    fn decode(&self, raw: Self::Raw) -> Result<Self::Reply, StoreError>;
}

impl Store {
    /// Runs one script call under the store's deadline.
    pub(super) async fn call<C: Call>(&self, call: &C) -> Result<C::Reply, StoreError> {
        let mut inv = C::script(&self.scripts).prepare_invoke();
        call.bind(&self.keys, &mut inv);
        let mut conn = self.conn();
        let raw: C::Raw = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        call.decode(raw)
    }
}

fn bad(script: &str, what: &str) -> StoreError {
    StoreError::Internal(format!("{script} reply: bad {what}"))
}

/// The reply of a script that records under a claim: 'ok', or 'stale' when
/// the claim was superseded.
fn ok_or_stale(script: &str, reply: &str) -> Result<bool, StoreError> {
    match reply {
        "ok" => Ok(true),
        "stale" => Ok(false),
        _ => Err(bad(script, "status")),
    }
}

fn uuid(script: &str, what: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| bad(script, what))
}

fn number<T: std::str::FromStr>(script: &str, what: &str, text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| bad(script, what))
}

/// Records a batch of events of one shard and fans each out (`ingest.lua`).
pub(super) struct Ingest<'a> {
    pub shard: u16,
    pub now_ms: i64,
    pub idempotency_ms: i64,
    pub events: Vec<&'a NewEvent>,
}

impl Call for Ingest<'_> {
    type Raw = Vec<String>;
    type Reply = Vec<IngestOutcome>;
    fn script(s: &Scripts) -> &Script {
        &s.ingest
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.schedule(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.now_ms)
            .arg(self.idempotency_ms)
            .arg(self.events.len());
        for e in &self.events {
            inv.arg(e.id.to_string())
                .arg(e.account_id.to_string())
                .arg(&e.event_type)
                .arg(e.occurred_at_ms)
                .arg(&e.payload)
                .arg(e.idempotency_key.as_deref().unwrap_or(""))
                .arg(&e.fingerprint);
        }
    }
    fn decode(&self, flat: Vec<String>) -> Result<Vec<IngestOutcome>, StoreError> {
        if flat.len() != self.events.len() * 3 {
            return Err(bad("ingest", "length"));
        }
        flat.chunks_exact(3)
            .map(IngestOutcome::from_reply)
            .collect()
    }
}

/// Claims due deliveries of one shard (`claim.lua`).
pub(super) struct Claim {
    pub shard: u16,
    pub now_ms: i64,
    pub lease: LeaseMs,
    pub max: usize,
}

impl Call for Claim {
    type Raw = Vec<String>;
    type Reply = Vec<Claimed>;
    fn script(s: &Scripts) -> &Script {
        &s.claim
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.schedule(self.shard))
            .key(keys.leases(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.now_ms)
            .arg(self.lease.webhook)
            .arg(self.lease.email)
            .arg(self.max);
    }
    fn decode(&self, flat: Vec<String>) -> Result<Vec<Claimed>, StoreError> {
        if !flat.len().is_multiple_of(10) {
            return Err(bad("claim", "length"));
        }
        flat.chunks_exact(10)
            .map(|c| {
                Ok(Claimed {
                    shard: self.shard,
                    delivery_id: uuid("claim", "delivery id", &c[0])?,
                    token: c[1].clone(),
                    lease_until_ms: number("claim", "lease deadline", &c[2])?,
                    event_id: uuid("claim", "event id", &c[3])?,
                    subscription_id: uuid("claim", "subscription id", &c[4])?,
                    attempts: number("claim", "attempts", &c[5])?,
                    event_type: c[6].clone(),
                    occurred_at_ms: number("claim", "occurred_at", &c[7])?,
                    payload: c[8].clone(),
                    rescheduled: c[9] == "1",
                })
            })
            .collect()
    }
}

/// Records the outcome of one claim (`finish.lua`); replies whether the
/// claim was still the delivery's latest (false: superseded).
pub(super) struct Finish<'a> {
    pub claimed: &'a Claimed,
    /// `success`, `retry`, `fail`, `wait` or `drop`.
    outcome: &'static str,
    due_ms: i64,
    error: &'a str,
    /// An attempt after the first, for the `:attempts` list ('' for none).
    attempt_json: String,
    /// The first attempt, for the delivery's own fields.
    first: Option<FirstAttempt>,
    pub now_ms: i64,
}

impl<'a> Finish<'a> {
    pub fn new(
        claimed: &'a Claimed,
        outcome: &'a Outcome,
        attempt: Option<&Attempt>,
        now_ms: i64,
    ) -> Result<Self, StoreError> {
        let (name, due_ms, error) = match outcome {
            Outcome::Success => ("success", 0, ""),
            Outcome::Retry { due_ms } => ("retry", *due_ms, ""),
            Outcome::Fail { error } => ("fail", 0, error.as_str()),
            Outcome::Wait { due_ms } => ("wait", *due_ms, ""),
            Outcome::Drop { error } => ("drop", 0, error.as_str()),
        };
        // The first attempt goes into the delivery's hash, later ones into
        // its list (the claim read how many were made, under the lease).
        let (attempt_json, first) = match attempt {
            Some(a) if claimed.attempts == 0 => (String::new(), Some(FirstAttempt::of(a)?)),
            other => (attempt_json(other)?, None),
        };
        Ok(Self {
            claimed,
            outcome: name,
            due_ms,
            error,
            attempt_json,
            first,
            now_ms,
        })
    }
}

impl Call for Finish<'_> {
    type Raw = String;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.finish
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let c = self.claimed;
        let (a1, response, error) = self
            .first
            .as_ref()
            .map_or(("", "", ""), |f| (&f.a1, &f.response, &f.error));
        inv.key(keys.schedule(c.shard))
            .key(keys.leases(c.shard))
            .arg(keys.shard_base(c.shard))
            .arg(c.delivery_id.to_string())
            .arg(&c.token)
            .arg(self.outcome)
            .arg(self.now_ms)
            .arg(self.due_ms)
            .arg(&self.attempt_json)
            .arg(self.error)
            .arg(c.subscription_id.to_string())
            .arg(c.attempts)
            .arg(if c.rescheduled { "1" } else { "" })
            .arg(a1)
            .arg(response)
            .arg(error);
    }
    fn decode(&self, reply: String) -> Result<bool, StoreError> {
        ok_or_stale("finish", &reply)
    }
}

/// Hands claims of one shard back, due now (`release.lua`); replies how
/// many went back.
pub(super) struct Release<'a> {
    pub shard: u16,
    pub now_ms: i64,
    pub claims: Vec<&'a ClaimRef>,
}

impl Call for Release<'_> {
    type Raw = u64;
    type Reply = u64;
    fn script(s: &Scripts) -> &Script {
        &s.release
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.schedule(self.shard))
            .key(keys.leases(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.now_ms);
        for c in &self.claims {
            inv.arg(c.delivery_id.to_string()).arg(&c.token);
        }
    }
    fn decode(&self, n: u64) -> Result<u64, StoreError> {
        Ok(n)
    }
}

/// Renews the leases of claims of one shard (`renew.lua`); replies the ids
/// renewed.
pub(super) struct Renew<'a> {
    pub shard: u16,
    pub until_ms: i64,
    pub claims: &'a [ClaimRef],
}

impl Call for Renew<'_> {
    type Raw = Vec<String>;
    type Reply = Vec<Uuid>;
    fn script(s: &Scripts) -> &Script {
        &s.renew
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.leases(self.shard)).arg(self.until_ms);
        for c in self.claims {
            inv.arg(c.delivery_id.to_string()).arg(&c.token);
        }
    }
    fn decode(&self, ids: Vec<String>) -> Result<Vec<Uuid>, StoreError> {
        ids.iter()
            .map(|id| uuid("renew", "delivery id", id))
            .collect()
    }
}

/// Returns a shard's expired leases to its schedule (`reclaim.lua`);
/// replies how many.
pub(super) struct Reclaim {
    pub shard: u16,
    pub now_ms: i64,
}

impl Call for Reclaim {
    type Raw = u64;
    type Reply = u64;
    fn script(s: &Scripts) -> &Script {
        &s.reclaim
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.schedule(self.shard))
            .key(keys.leases(self.shard))
            .arg(self.now_ms);
    }
    fn decode(&self, n: u64) -> Result<u64, StoreError> {
        Ok(n)
    }
}

/// Makes deliveries of an account due now (`requeue.lua`).
pub(super) struct Requeue<'a> {
    pub account: &'a Uuid,
    pub now_ms: i64,
    pub ids: &'a [Uuid],
}

impl Call for Requeue<'_> {
    type Raw = Vec<String>;
    type Reply = Vec<Requeued>;
    fn script(s: &Scripts) -> &Script {
        &s.requeue
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let shard = keys.shard_of(self.account);
        inv.key(keys.schedule(shard))
            .key(keys.leases(shard))
            .arg(keys.shard_base(shard))
            .arg(self.now_ms)
            .arg(self.account.to_string());
        for id in self.ids {
            inv.arg(id.to_string());
        }
    }
    fn decode(&self, reply: Vec<String>) -> Result<Vec<Requeued>, StoreError> {
        if reply.len() != self.ids.len() {
            return Err(bad("requeue", "length"));
        }
        reply
            .iter()
            .map(|r| match r.as_str() {
                "queued" => Ok(Requeued::Queued),
                "in_flight" => Ok(Requeued::InFlight),
                "missing" => Ok(Requeued::Missing),
                _ => Err(bad("requeue", "status")),
            })
            .collect()
    }
}

/// New replay deliveries of one event (`replay.lua`).
pub(super) struct Replay<'a> {
    pub account: &'a Uuid,
    pub event: &'a Uuid,
    pub now_ms: i64,
    pub retention_ms: i64,
    /// (new delivery id, subscription id)
    pub deliveries: Vec<(Uuid, Uuid)>,
}

impl Call for Replay<'_> {
    type Raw = i64;
    type Reply = Replayed;
    fn script(s: &Scripts) -> &Script {
        &s.replay
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let shard = keys.shard_of(self.account);
        inv.key(keys.schedule(shard))
            .arg(keys.shard_base(shard))
            .arg(self.now_ms)
            .arg(self.account.to_string())
            .arg(self.event.to_string())
            .arg(self.retention_ms);
        for (id, sub) in &self.deliveries {
            inv.arg(id.to_string()).arg(sub.to_string());
        }
    }
    fn decode(&self, n: i64) -> Result<Replayed, StoreError> {
        match n {
            -1 => Ok(Replayed::EventGone),
            -2 => Ok(Replayed::SubscriptionGone),
            n if n >= 0 => Ok(Replayed::Created(
                self.deliveries.iter().map(|(id, _)| *id).collect(),
            )),
            _ => Err(bad("replay", "status")),
        }
    }
}

/// Replaces an account's API key and records `api_keys.rotated`
/// (`rotate_key.lua`); `None` when the old key was already replaced.
pub(super) struct RotateKey<'a> {
    pub account: &'a Uuid,
    pub now_ms: i64,
    pub idempotency_ms: i64,
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub event: &'a NewEvent,
    pub notice_id: Uuid,
    pub notice_json: String,
}

impl Call for RotateKey<'_> {
    type Raw = Vec<String>;
    type Reply = Option<IngestOutcome>;
    fn script(s: &Scripts) -> &Script {
        &s.rotate_key
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.account(self.account))
            .arg(keys.base(self.account))
            .arg(self.now_ms)
            .arg(self.idempotency_ms)
            .arg(self.old_hash)
            .arg(self.new_hash)
            .arg(self.event.id.to_string())
            .arg(&self.event.payload)
            .arg(self.notice_id.to_string())
            .arg(&self.notice_json);
    }
    fn decode(&self, reply: Vec<String>) -> Result<Option<IngestOutcome>, StoreError> {
        match reply.first().map(String::as_str) {
            Some("stale") => Ok(None),
            _ => IngestOutcome::from_reply(&reply).map(Some),
        }
    }
}

/// One page of a time index, newest first (`page.lua`): (member, score).
pub(super) struct PageOf {
    pub index: String,
    /// Upper bound: a score, `+inf`, or the cursor's score.
    pub max: String,
    /// Lower bound: a score or `-inf`.
    pub min: String,
    /// The cursor's member ('' for none): the page starts after it.
    pub after: String,
    pub count: usize,
}

impl Call for PageOf {
    type Raw = Vec<String>;
    type Reply = Vec<(String, i64)>;
    fn script(s: &Scripts) -> &Script {
        &s.page
    }
    fn bind(&self, _keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(&self.index)
            .arg(&self.max)
            .arg(&self.min)
            .arg(&self.after)
            .arg(self.count);
    }
    fn decode(&self, flat: Vec<String>) -> Result<Vec<(String, i64)>, StoreError> {
        if !flat.len().is_multiple_of(2) {
            return Err(bad("page", "length"));
        }
        Ok(flat
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap_or(0.0) as i64))
            .collect())
    }
}

/// Records the outcome of an attempt for an endpoint and moves its circuit
/// (`endpoint_record.lua`); replies the endpoint's fields.
pub(super) struct EndpointRecord<'a> {
    pub url: &'a str,
    pub now_ms: i64,
    /// `success`, `failure` or `neutral`.
    pub signal: &'static str,
    /// The probe lease's token when the attempt was the probe ('' if not).
    pub probe: &'a str,
    pub failure_threshold: u32,
    pub base_cooldown_ms: i64,
    pub max_cooldown_ms: i64,
    pub ttl_ms: i64,
}

impl Call for EndpointRecord<'_> {
    type Raw = Vec<Option<String>>;
    type Reply = Vec<Option<String>>;
    fn script(s: &Scripts) -> &Script {
        &s.endpoint_record
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.endpoint(self.url))
            .arg(self.now_ms)
            .arg(self.signal)
            .arg(self.probe)
            .arg(self.failure_threshold)
            .arg(self.base_cooldown_ms)
            .arg(self.max_cooldown_ms)
            .arg(self.ttl_ms);
    }
    fn decode(&self, fields: Vec<Option<String>>) -> Result<Vec<Option<String>>, StoreError> {
        Ok(fields)
    }
}

/// Tries to take an open circuit's probe lease (`endpoint_probe.lua`);
/// replies whether it was taken and the endpoint's fields.
pub(super) struct EndpointProbe<'a> {
    pub url: &'a str,
    pub now_ms: i64,
    pub token: &'a str,
    pub lease_ms: i64,
    pub ttl_ms: i64,
}

impl Call for EndpointProbe<'_> {
    type Raw = Vec<Option<String>>;
    type Reply = (bool, Vec<Option<String>>);
    fn script(s: &Scripts) -> &Script {
        &s.endpoint_probe
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.endpoint(self.url))
            .arg(self.now_ms)
            .arg(self.token)
            .arg(self.lease_ms)
            .arg(self.ttl_ms);
    }
    fn decode(
        &self,
        mut fields: Vec<Option<String>>,
    ) -> Result<(bool, Vec<Option<String>>), StoreError> {
        if fields.is_empty() {
            return Err(bad("endpoint_probe", "length"));
        }
        let taken = fields.remove(0).as_deref() == Some("1");
        Ok((taken, fields))
    }
}

/// Takes one send from a subscription's rate limit (`rate.lua`): `Ok(())`,
/// or `Err(ms to wait)`.
pub(super) struct Rate<'a> {
    pub account: &'a Uuid,
    pub subscription: &'a Uuid,
    pub now_ms: i64,
    pub interval_ms: f64,
    pub burst: u32,
}

impl Call for Rate<'_> {
    type Raw = i64;
    type Reply = Result<(), i64>;
    fn script(s: &Scripts) -> &Script {
        &s.rate
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.rate(self.account, self.subscription))
            .arg(self.now_ms)
            .arg(self.interval_ms)
            .arg(self.burst);
    }
    fn decode(&self, wait: i64) -> Result<Result<(), i64>, StoreError> {
        Ok(if wait > 0 { Err(wait) } else { Ok(()) })
    }
}

/// Creates, replaces or deletes a subscription with its routes
/// (`put_subscription.lua`).
pub(super) struct PutSubscription<'a> {
    pub sub: &'a Subscription,
    /// The version the caller read (None: create).
    pub expected_version: Option<u64>,
    /// The record's JSON (None: delete).
    pub json: Option<String>,
    pub max_per_account: usize,
    /// An operational notice recorded in the same step, and now (ms).
    pub notice: Option<(&'a Notice, i64)>,
}

impl Call for PutSubscription<'_> {
    type Raw = String;
    type Reply = PutOutcome;
    fn script(s: &Scripts) -> &Script {
        &s.put_subscription
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let (a, sub) = (&self.sub.account_id, self.sub);
        inv.key(keys.subscription(a, &sub.id))
            .key(keys.subscriptions(a))
            .arg(keys.base(a))
            .arg(a.to_string())
            .arg(sub.id.to_string())
            .arg(
                self.expected_version
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            )
            .arg(sub.version)
            .arg(self.json.as_deref().unwrap_or(""))
            .arg(sub.created_at_ms)
            .arg(if sub.enabled { "1" } else { "0" })
            .arg(sub.event_types.join(" "))
            .arg(self.max_per_account)
            .arg(keys.subscription_changes());
        if let Some((notice, now_ms)) = self.notice {
            inv.arg(notice.id.to_string())
                .arg(notice.to_json())
                .arg(now_ms);
        }
    }
    fn decode(&self, reply: String) -> Result<PutOutcome, StoreError> {
        Ok(match reply.as_str() {
            "ok" => PutOutcome::Ok,
            "exists" => PutOutcome::Exists,
            "missing" => PutOutcome::Missing,
            "conflict" => PutOutcome::Conflict,
            "limit" => PutOutcome::Limit,
            _ => return Err(bad("put_subscription", "status")),
        })
    }
}

/// Expires an account's events that occurred before a cutoff, with their
/// deliveries (`expire_events.lua`); replies how many events went.
pub(super) struct ExpireEvents<'a> {
    pub account: &'a Uuid,
    pub cutoff_ms: i64,
    pub max: usize,
}

impl Call for ExpireEvents<'_> {
    type Raw = u64;
    type Reply = u64;
    fn script(s: &Scripts) -> &Script {
        &s.expire_events
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.events(self.account, None))
            .arg(keys.base(self.account))
            .arg(self.cutoff_ms)
            .arg(self.max);
    }
    fn decode(&self, n: u64) -> Result<u64, StoreError> {
        Ok(n)
    }
}

/// Records an operational notice and queues it for email, at most once per
/// (dedupe name, value) when one is given (`notice.lua`); replies whether
/// it was recorded.
pub(super) struct AddNotice<'a> {
    pub notice: &'a Notice,
    /// (dedupe name, value): skipped when that value was already reported.
    pub once_per: Option<(&'a str, &'a str)>,
    pub now_ms: i64,
    /// How long the "this was reported" marker is kept.
    pub reported_ttl_ms: i64,
}

impl Call for AddNotice<'_> {
    type Raw = i64;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.notice
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let shard = keys.shard_of(&self.notice.account_id);
        let (name, value) = self.once_per.unwrap_or(("", ""));
        inv.key(keys.outbox(shard))
            .arg(keys.shard_base(shard))
            .arg(self.notice.account_id.to_string())
            .arg(self.notice.id.to_string())
            .arg(self.notice.to_json())
            .arg(self.now_ms)
            .arg(name)
            .arg(value)
            .arg(self.reported_ttl_ms);
    }
    fn decode(&self, n: i64) -> Result<bool, StoreError> {
        match n {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(bad("notice", "status")),
        }
    }
}

/// A notice the outbox held whose JSON could not be read: claimed all the
/// same, for the caller to drop.
pub(super) struct UnreadableNotice {
    /// The notice's id as the outbox holds it.
    pub id: String,
    /// The claim's fencing token.
    pub token: String,
    pub error: serde_json::Error,
}

/// Claims due notices of one shard for a lease (`outbox_claim.lua`);
/// replies each claimed notice, or its id and token when its JSON is
/// unreadable.
pub(super) struct OutboxClaim {
    pub shard: u16,
    pub now_ms: i64,
    pub lease_ms: i64,
    pub max: usize,
}

impl Call for OutboxClaim {
    type Raw = Vec<String>;
    type Reply = Vec<Result<ClaimedNotice, UnreadableNotice>>;
    fn script(s: &Scripts) -> &Script {
        &s.outbox_claim
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.outbox(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.now_ms)
            .arg(self.lease_ms)
            .arg(self.max);
    }
    fn decode(
        &self,
        flat: Vec<String>,
    ) -> Result<Vec<Result<ClaimedNotice, UnreadableNotice>>, StoreError> {
        if !flat.len().is_multiple_of(4) {
            return Err(bad("outbox_claim", "length"));
        }
        flat.chunks_exact(4)
            .map(|c| {
                let token = c[3].clone();
                Ok(match serde_json::from_str::<Notice>(&c[1]) {
                    Ok(notice) => Ok(ClaimedNotice {
                        shard: self.shard,
                        lease_until_ms: self.now_ms + self.lease_ms,
                        token,
                        notice,
                        attempts: number("outbox_claim", "attempts", &c[2])?,
                    }),
                    Err(error) => Err(UnreadableNotice {
                        id: c[0].clone(),
                        token,
                        error,
                    }),
                })
            })
            .collect()
    }
}

/// Ends a claimed notice (sent, or refused for good) or makes it due again
/// (`outbox_done.lua`); replies whether the claim was still the notice's
/// latest (false: superseded, nothing changed).
pub(super) struct OutboxDone<'a> {
    pub shard: u16,
    pub id: &'a Uuid,
    pub token: &'a str,
    /// When it is due again (None: done).
    pub retry_at: Option<i64>,
}

impl Call for OutboxDone<'_> {
    type Raw = String;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.outbox_done
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.outbox(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.id.to_string())
            .arg(self.token)
            .arg(if self.retry_at.is_some() {
                "retry"
            } else {
                "done"
            })
            .arg(self.retry_at.unwrap_or(0));
    }
    fn decode(&self, reply: String) -> Result<bool, StoreError> {
        ok_or_stale("outbox_done", &reply)
    }
}

/// Hands a claimed notice back unsent, due now, its attempt not counted
/// (`outbox_release.lua`); replies whether it went back (false: the claim
/// was superseded or finished).
pub(super) struct OutboxRelease<'a> {
    pub claimed: &'a ClaimedNotice,
    pub now_ms: i64,
}

impl Call for OutboxRelease<'_> {
    type Raw = i64;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.outbox_release
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let c = self.claimed;
        inv.key(keys.outbox(c.shard))
            .arg(keys.shard_base(c.shard))
            .arg(c.notice.id.to_string())
            .arg(&c.token)
            .arg(self.now_ms);
    }
    fn decode(&self, n: i64) -> Result<bool, StoreError> {
        match n {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(bad("outbox_release", "status")),
        }
    }
}

/// The claims a renewal reply names, each matched to the claim it renewed:
/// the script replies only ids it was handed.
fn renewed<'a>(
    script: &str,
    claims: &[&'a MessageRef],
    ids: Vec<String>,
) -> Result<Vec<&'a MessageRef>, StoreError> {
    ids.iter()
        .map(|id| {
            let id = uuid(script, "id", id)?;
            claims
                .iter()
                .find(|c| c.id == id)
                .copied()
                .ok_or_else(|| bad(script, "id"))
        })
        .collect()
}

/// Renews the leases of notice claims of one shard (`outbox_renew.lua`);
/// replies the claims renewed.
pub(super) struct OutboxRenew<'a> {
    pub shard: u16,
    pub until_ms: i64,
    /// Notice claims, all of `shard`.
    pub claims: &'a [&'a MessageRef],
}

impl<'a> Call for OutboxRenew<'a> {
    type Raw = Vec<String>;
    type Reply = Vec<&'a MessageRef>;
    fn script(s: &Scripts) -> &Script {
        &s.outbox_renew
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.outbox(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.until_ms);
        for c in self.claims {
            inv.arg(c.id.to_string()).arg(&c.token);
        }
    }
    fn decode(&self, ids: Vec<String>) -> Result<Vec<&'a MessageRef>, StoreError> {
        renewed("outbox_renew", self.claims, ids)
    }
}

/// Moves a claimed delivery of a digest subscription into the
/// subscription's open digest (`digest_hold.lua`); replies whether the
/// claim was still the delivery's latest (false: superseded).
pub(super) struct DigestHold<'a> {
    pub claimed: &'a Claimed,
    /// When the digest is due (the period's end).
    pub due_ms: i64,
    /// The digest is due now once it holds this many events.
    pub max_events: usize,
    pub now_ms: i64,
}

impl Call for DigestHold<'_> {
    type Raw = String;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.digest_hold
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let c = self.claimed;
        inv.key(keys.schedule(c.shard))
            .key(keys.leases(c.shard))
            .arg(keys.shard_base(c.shard))
            .arg(c.delivery_id.to_string())
            .arg(&c.token)
            .arg(self.now_ms)
            .arg(c.subscription_id.to_string())
            .arg(self.due_ms)
            .arg(&c.event_type)
            .arg(self.max_events);
    }
    fn decode(&self, reply: String) -> Result<bool, StoreError> {
        ok_or_stale("digest_hold", &reply)
    }
}

/// Claims due digests of one shard for a lease, each with its newest
/// events (`digest_claim.lua`).
pub(super) struct DigestClaim {
    pub shard: u16,
    pub now_ms: i64,
    pub lease_ms: i64,
    pub max: usize,
    /// How many of each digest's newest events to list.
    pub latest: usize,
    /// How long a digest's token outlives its claims (the archive
    /// retention).
    pub retention_ms: i64,
}

impl Call for DigestClaim {
    type Raw = Vec<String>;
    type Reply = Vec<ClaimedDigest>;
    fn script(s: &Scripts) -> &Script {
        &s.digest_claim
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.schedule(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.now_ms)
            .arg(self.lease_ms)
            .arg(self.max)
            .arg(self.latest)
            .arg(self.retention_ms);
    }
    fn decode(&self, flat: Vec<String>) -> Result<Vec<ClaimedDigest>, StoreError> {
        if !flat.len().is_multiple_of(8) {
            return Err(bad("digest_claim", "length"));
        }
        flat.chunks_exact(8)
            .map(|c| {
                // The summary ('type n ...', 'event_id type occurred_ms ...')
                // is read leniently: it describes stored data, and a digest
                // whose summary is partly unreadable is still sent.
                let words: Vec<&str> = c[6].split_whitespace().collect();
                let mut counts: Vec<(String, u64)> = words
                    .chunks_exact(2)
                    .map(|p| (p[0].to_owned(), p[1].parse().unwrap_or(0)))
                    .collect();
                counts.sort();
                let words: Vec<&str> = c[7].split_whitespace().collect();
                let latest = words
                    .chunks_exact(3)
                    .filter_map(|p| {
                        Some((
                            Uuid::parse_str(p[0]).ok()?,
                            p[1].to_owned(),
                            p[2].parse().ok()?,
                        ))
                    })
                    .collect();
                Ok(ClaimedDigest {
                    shard: self.shard,
                    lease_until_ms: self.now_ms + self.lease_ms,
                    subscription_id: uuid("digest_claim", "subscription id", &c[0])?,
                    token: c[1].clone(),
                    attempts: number("digest_claim", "attempts", &c[2])?,
                    first_ms: number("digest_claim", "first", &c[3])?,
                    last_ms: number("digest_claim", "last", &c[4])?,
                    total: number("digest_claim", "total", &c[5])?,
                    counts,
                    latest,
                })
            })
            .collect()
    }
}

/// Records the outcome of sending a digest on each of its deliveries
/// (`digest_finish.lua`); replies whether the claim was still the digest's
/// latest (false: superseded).
pub(super) struct DigestFinish<'a> {
    pub claimed: &'a ClaimedDigest,
    /// `success`, `retry` or `fail`.
    outcome: &'static str,
    due_ms: i64,
    error: &'a str,
    /// The attempt, for every delivery's history ('' for none).
    attempt_json: String,
    pub now_ms: i64,
    /// Passed on, unused by the script.
    pub retention_ms: i64,
}

impl<'a> DigestFinish<'a> {
    /// A digest's outcome is `Success`, `Retry` or `Fail`: `Wait` counts as
    /// `Retry`, `Drop` as `Fail`.
    pub fn new(
        claimed: &'a ClaimedDigest,
        outcome: &'a Outcome,
        attempt: Option<&Attempt>,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        let (name, due_ms, error) = match outcome {
            Outcome::Success => ("success", 0, ""),
            Outcome::Retry { due_ms } | Outcome::Wait { due_ms } => ("retry", *due_ms, ""),
            Outcome::Fail { error } | Outcome::Drop { error } => ("fail", 0, error.as_str()),
        };
        Ok(Self {
            claimed,
            outcome: name,
            due_ms,
            error,
            attempt_json: attempt_json(attempt)?,
            now_ms,
            retention_ms,
        })
    }
}

impl Call for DigestFinish<'_> {
    type Raw = String;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.digest_finish
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let c = self.claimed;
        inv.key(keys.schedule(c.shard))
            .arg(keys.shard_base(c.shard))
            .arg(c.subscription_id.to_string())
            .arg(&c.token)
            .arg(self.outcome)
            .arg(self.now_ms)
            .arg(self.due_ms)
            .arg(&self.attempt_json)
            .arg(self.error)
            .arg(self.retention_ms);
    }
    fn decode(&self, reply: String) -> Result<bool, StoreError> {
        ok_or_stale("digest_finish", &reply)
    }
}

/// Hands a claimed digest back unsent, due now, no attempt spent
/// (`digest_release.lua`); replies whether it went back (false: the claim
/// was superseded or the digest is no longer being sent).
pub(super) struct DigestRelease<'a> {
    pub claimed: &'a ClaimedDigest,
    pub now_ms: i64,
}

impl Call for DigestRelease<'_> {
    type Raw = i64;
    type Reply = bool;
    fn script(s: &Scripts) -> &Script {
        &s.digest_release
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        let c = self.claimed;
        inv.key(keys.digests_sending(c.shard))
            .arg(keys.shard_base(c.shard))
            .arg(c.subscription_id.to_string())
            .arg(&c.token)
            .arg(self.now_ms);
    }
    fn decode(&self, n: i64) -> Result<bool, StoreError> {
        match n {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(bad("digest_release", "status")),
        }
    }
}

/// Renews the leases of digest claims of one shard (`digest_renew.lua`);
/// replies the claims renewed.
pub(super) struct DigestRenew<'a> {
    pub shard: u16,
    pub until_ms: i64,
    /// Digest claims, all of `shard`.
    pub claims: &'a [&'a MessageRef],
}

impl<'a> Call for DigestRenew<'a> {
    type Raw = Vec<String>;
    type Reply = Vec<&'a MessageRef>;
    fn script(s: &Scripts) -> &Script {
        &s.digest_renew
    }
    fn bind(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        inv.key(keys.digests_sending(self.shard))
            .arg(keys.shard_base(self.shard))
            .arg(self.until_ms);
        for c in self.claims {
            inv.arg(c.id.to_string()).arg(&c.token);
        }
    }
    fn decode(&self, ids: Vec<String>) -> Result<Vec<&'a MessageRef>, StoreError> {
        renewed("digest_renew", self.claims, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notice::NoticeKind;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn is_internal<T>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::Internal(_)))
    }

    #[test]
    fn outbox_claim_reads_notices_and_flags_unreadable_ones() {
        let call = OutboxClaim {
            shard: 3,
            now_ms: 1_000,
            lease_ms: 500,
            max: 10,
        };
        let notice = Notice::new(Uuid::new_v4(), NoticeKind::ApiKeyRotated, 7);
        let id = notice.id.to_string();
        let reply = strings(&[&id, &notice.to_json(), "2", "5", "x", "{", "1", "6"]);
        let out = call.decode(reply).unwrap();
        let first = out[0].as_ref().ok().unwrap();
        assert_eq!(
            (
                first.shard,
                first.lease_until_ms,
                first.attempts,
                first.token.as_str()
            ),
            (3, 1_500, 2, "5")
        );
        assert_eq!(first.notice.id, notice.id);
        let second = out[1].as_ref().err().unwrap();
        assert_eq!((second.id.as_str(), second.token.as_str()), ("x", "6"));
        assert!(is_internal(call.decode(strings(&[&id, "{}", "1"]))));
        let bad_attempts = strings(&[&id, &notice.to_json(), "two", "5"]);
        assert!(is_internal(call.decode(bad_attempts)));
    }

    #[test]
    fn digest_claim_checks_its_shape() {
        let call = DigestClaim {
            shard: 1,
            now_ms: 1_000,
            lease_ms: 500,
            max: 10,
            latest: 2,
            retention_ms: 0,
        };
        let sub = Uuid::new_v4().to_string();
        let ev = Uuid::new_v4();
        let latest = format!("{ev} b.x 40");
        let reply = strings(&[&sub, "4", "1", "10", "20", "3", "b.x 1 a.y 2", &latest]);
        let d = call.decode(reply).unwrap().remove(0);
        assert_eq!((d.token.as_str(), d.attempts, d.total), ("4", 1, 3));
        assert_eq!(d.counts, vec![("a.y".into(), 2), ("b.x".into(), 1)]);
        assert_eq!(d.latest, vec![(ev, "b.x".into(), 40)]);
        assert!(is_internal(call.decode(strings(&[&sub, "4"]))));
        let bad_sub = strings(&["nope", "4", "1", "10", "20", "3", "", ""]);
        assert!(is_internal(call.decode(bad_sub)));
    }

    #[test]
    fn renewals_name_only_claims_handed_in() {
        let claim = MessageRef {
            shard: 0,
            kind: crate::store::MessageKind::Notice,
            id: Uuid::new_v4(),
            token: "9".into(),
            lease_until_ms: 0,
        };
        let claims = [&claim];
        let call = OutboxRenew {
            shard: 0,
            until_ms: 5,
            claims: &claims,
        };
        let renewed = call.decode(vec![claim.id.to_string()]).unwrap();
        assert_eq!(renewed, vec![&claim]);
        assert!(is_internal(call.decode(vec![Uuid::new_v4().to_string()])));
        assert!(is_internal(call.decode(vec!["nope".into()])));
    }

    #[test]
    fn statuses_outside_the_protocol_are_internal() {
        let claimed = Claimed {
            shard: 0,
            delivery_id: Uuid::new_v4(),
            token: "1".into(),
            lease_until_ms: 0,
            event_id: Uuid::new_v4(),
            subscription_id: Uuid::new_v4(),
            attempts: 0,
            event_type: "a.b".into(),
            occurred_at_ms: 0,
            payload: "{}".into(),
            rescheduled: false,
        };
        let hold = DigestHold {
            claimed: &claimed,
            due_ms: 0,
            max_events: 1,
            now_ms: 0,
        };
        assert!(hold.decode("ok".into()).unwrap());
        assert!(!hold.decode("stale".into()).unwrap());
        assert!(is_internal(hold.decode("what".into())));
        let done = OutboxDone {
            shard: 0,
            id: &claimed.delivery_id,
            token: "1",
            retry_at: None,
        };
        assert!(is_internal(done.decode(String::new())));
        let notice = Notice::new(Uuid::new_v4(), NoticeKind::ApiKeyRotated, 0);
        let add = AddNotice {
            notice: &notice,
            once_per: None,
            now_ms: 0,
            reported_ttl_ms: 0,
        };
        assert!(add.decode(1).unwrap() && !add.decode(0).unwrap());
        assert!(is_internal(add.decode(2)));
    }
}
