//! `courier queues`: the operators' view of every shard's queues, read
//! straight from Redis (so the whole fleet's, from any machine that has the
//! configuration), and their bulk actions on any account by id: re-queue a
//! subscription's failed deliveries, replay an account's archived events.
//!
//! The formatting is plain functions of what was read ([`Snapshot::table`],
//! [`Snapshot::to_json`]); `main.rs` only parses the command line and hands
//! over to [`run`].

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use chrono::DateTime;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::event::format_ms;
use crate::store::{Recovered, Replayed, ShardQueues, Store, StoreError};

/// How far back the open-circuit list reaches (as on the operator page): a
/// circuit whose cooldown ended within the hour is waiting for its probe.
pub const CIRCUITS_WITHIN_MS: i64 = 60 * 60 * 1_000;

/// `courier queues`: print every shard's queues; or act on them.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueuesArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print JSON (one object per refresh) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECS seconds (2 when no value is given) until Ctrl-C.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: Option<u64>,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// Bulk actions (admin: they act on any account).
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Re-queue a subscription's failed deliveries (as
    /// `POST /v1/subscriptions/{id}/recover` does), due now.
    Retry {
        /// The subscription (of any account).
        #[arg(long)]
        subscription: Uuid,
        /// Only deliveries created at or after this time (RFC 3339); all
        /// failed deliveries within retention when absent.
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
    },
    /// Deliver an account's archived events again (as
    /// `POST /v1/events/{id}/replay` does, for each), oldest first.
    Replay {
        /// The account whose events to replay.
        #[arg(long)]
        account: Uuid,
        /// Only events of this type.
        #[arg(long = "type", value_name = "EVENT_TYPE")]
        event_type: Option<String>,
        /// Events that occurred at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        since: i64,
        /// Only to this subscription (enabled, taking the events' type);
        /// to every matching enabled subscription when absent.
        #[arg(long)]
        subscription: Option<Uuid>,
        /// Replay at most this many events; the output says where to go
        /// on from when there are more.
        #[arg(long, default_value_t = 10_000,
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        limit: u64,
    },
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("`{text}` is not an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)"))
}

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum QueuesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The arguments name something that is not there, or cannot be used.
    #[error("{0}")]
    Refused(String),
}

/// What `courier queues` read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub at_ms: i64,
    pub shards: Vec<ShardQueues>,
    /// Endpoints last seen with an open circuit, with the end of their
    /// cooldown (ms), latest first.
    pub open_circuits: Vec<(String, i64)>,
}

/// How long the oldest due delivery of `q` has waited at `now_ms`.
pub fn oldest_due_age(q: &ShardQueues, now_ms: i64) -> Option<i64> {
    q.oldest_due_ms
        .filter(|due| *due <= now_ms && q.due > 0)
        .map(|due| now_ms - due)
}

/// `12 ms`, `4 s`, `3 min`, `2 h`: the largest whole unit.
pub fn age(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

/// Reads every shard's queues and the open circuits at `now_ms`.
pub async fn snapshot(store: &Store, now_ms: i64) -> Result<Snapshot, StoreError> {
    let (shards, open_circuits) = tokio::try_join!(
        store.shard_queues(now_ms),
        store.open_circuits(now_ms - CIRCUITS_WITHIN_MS),
    )?;
    Ok(Snapshot {
        at_ms: now_ms,
        shards,
        open_circuits,
    })
}

impl Snapshot {
    /// The sum over every shard (the oldest due time is the earliest).
    pub fn total(&self) -> ShardQueues {
        ShardQueues::total(&self.shards)
    }

    fn counts(&self, q: &ShardQueues) -> serde_json::Map<String, Value> {
        let v = json!({
            "due": q.due,
            "scheduled": q.later,
            "oldest_due_age_ms": oldest_due_age(q, self.at_ms),
            "leased": q.leased,
            "leases_expired": q.lease_expired,
            "digests_open": q.digests,
            "digests_sending": q.digests_sending,
            "outbox": q.outbox,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("json! of an object"),
        }
    }

    /// The machine form (`--json`).
    pub fn to_json(&self) -> Value {
        let shards: Vec<Value> = self
            .shards
            .iter()
            .map(|q| {
                let mut m = serde_json::Map::new();
                m.insert("shard".into(), q.shard.into());
                m.extend(self.counts(q));
                Value::Object(m)
            })
            .collect();
        json!({
            "at": format_ms(self.at_ms),
            "shards": shards,
            "total": Value::Object(self.counts(&self.total())),
            "open_circuits": self.open_circuits.iter().map(|(endpoint, until)| json!({
                "endpoint": endpoint,
                "open_until": format_ms(*until),
                "cooldown_over": *until <= self.at_ms,
            })).collect::<Vec<_>>(),
        })
    }

    /// The human form: one row per shard, a total, the open circuits.
    pub fn table(&self) -> String {
        const HEAD: [&str; 9] = [
            "shard",
            "due",
            "scheduled",
            "oldest due",
            "leased",
            "expired",
            "digests",
            "sending",
            "outbox",
        ];
        let row = |name: String, q: &ShardQueues| -> [String; 9] {
            [
                name,
                q.due.to_string(),
                q.later.to_string(),
                oldest_due_age(q, self.at_ms).map_or_else(|| "-".to_owned(), age),
                q.leased.to_string(),
                q.lease_expired.to_string(),
                q.digests.to_string(),
                q.digests_sending.to_string(),
                q.outbox.to_string(),
            ]
        };
        let mut rows: Vec<[String; 9]> = vec![HEAD.map(str::to_owned)];
        rows.extend(self.shards.iter().map(|q| row(q.shard.to_string(), q)));
        rows.push(row("total".to_owned(), &self.total()));
        let widths: Vec<usize> = (0..HEAD.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("courier queues at {}\n", format_ms(self.at_ms));
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    if i == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(
            "(due: waiting, due now; scheduled: due later; expired: leases past their \
             deadline, taken back by the next claim; digests: open / sending; outbox: \
             operational emails)\n",
        );
        if self.open_circuits.is_empty() {
            out.push_str("open circuits: none\n");
        } else {
            out.push_str(&format!("open circuits: {}\n", self.open_circuits.len()));
            for (endpoint, until) in &self.open_circuits {
                let state = if *until > self.at_ms {
                    format!("probe after {}", format_ms(*until))
                } else {
                    "cooldown over: the next delivery probes it".to_owned()
                };
                out.push_str(&format!("  {endpoint}  {state}\n"));
            }
        }
        out
    }
}

/// What `queues retry` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDone {
    pub account: Uuid,
    pub subscription: Uuid,
    pub recovered: Recovered,
}

impl std::fmt::Display for RetryDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.recovered;
        write!(
            f,
            "subscription {} (account {}): {} failed deliveries, {} queued, {} left alone (an attempt is under way)",
            self.subscription, self.account, r.failed, r.queued, r.in_flight
        )
    }
}

/// Re-queues the failed deliveries of `subscription` (any account's)
/// created at or after `since_ms`.
pub async fn retry(
    store: &Store,
    subscription: Uuid,
    since_ms: i64,
    now_ms: i64,
) -> Result<RetryDone, QueuesError> {
    let sub = store
        .find_subscription(&subscription)
        .await?
        .ok_or_else(|| QueuesError::Refused(format!("no subscription {subscription}")))?;
    let recovered = store
        .recover_failed(&sub.account_id, &sub.id, since_ms, now_ms)
        .await?;
    Ok(RetryDone {
        account: sub.account_id,
        subscription: sub.id,
        recovered,
    })
}

/// What `queues replay` is asked to do.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub account: Uuid,
    pub event_type: Option<String>,
    pub since_ms: i64,
    pub subscription: Option<Uuid>,
    pub limit: usize,
}

/// What `queues replay` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayDone {
    /// Events replayed, and the deliveries made.
    pub events: u64,
    pub deliveries: u64,
    /// Events no enabled subscription takes (now), or that expired or lost
    /// their subscription meanwhile.
    pub skipped: u64,
    /// With more events than the limit: the time of the next one.
    pub more_from_ms: Option<i64>,
}

impl std::fmt::Display for ReplayDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events replayed: {} deliveries created; {} events skipped (no enabled subscription takes them, or they expired)",
            self.events, self.deliveries, self.skipped
        )?;
        if let Some(next) = self.more_from_ms {
            write!(
                f,
                "\nthe limit was reached: more events follow; go on with --since {}",
                format_ms(next)
            )?;
        }
        Ok(())
    }
}

/// Replays the account's archived events as `req` says, oldest first.
pub async fn replay(
    store: &Store,
    req: &ReplayRequest,
    now_ms: i64,
) -> Result<ReplayDone, QueuesError> {
    let account = req.account;
    if store.get_account(&account).await?.is_none() {
        return Err(QueuesError::Refused(format!("no account {account}")));
    }
    let only = match req.subscription {
        None => None,
        Some(id) => {
            let sub = store
                .get_subscription(&account, &id)
                .await?
                .ok_or_else(|| {
                    QueuesError::Refused(format!("account {account} has no subscription {id}"))
                })?;
            if !sub.enabled {
                return Err(QueuesError::Refused(format!(
                    "subscription {id} is disabled"
                )));
            }
            if let Some(t) = req.event_type.as_deref().filter(|t| !sub.takes(t)) {
                return Err(QueuesError::Refused(format!(
                    "subscription {id} does not take `{t}` events"
                )));
            }
            Some(sub)
        }
    };
    let mut events = store
        .events_since(
            &account,
            req.event_type.as_deref(),
            req.since_ms,
            req.limit + 1,
            now_ms,
        )
        .await?;
    let mut done = ReplayDone::default();
    if events.len() > req.limit {
        done.more_from_ms = Some(events[req.limit].1);
        events.truncate(req.limit);
    }
    let mut routes: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (event, _, event_type) in events {
        let targets = match &only {
            Some(sub) if sub.takes(&event_type) => vec![sub.id],
            Some(_) => vec![],
            None => match routes.get(&event_type) {
                Some(t) => t.clone(),
                None => {
                    let t = store.routes_for(&account, &event_type).await?;
                    routes.insert(event_type.clone(), t.clone());
                    t
                }
            },
        };
        if targets.is_empty() {
            done.skipped += 1;
            continue;
        }
        match store.replay(&account, &event, &targets, now_ms).await? {
            Replayed::Created(ids) => {
                done.events += 1;
                done.deliveries += ids.len() as u64;
            }
            Replayed::EventGone => done.skipped += 1,
            Replayed::SubscriptionGone => {
                // Deleted meanwhile: read the routes again next time.
                routes.remove(&event_type);
                done.skipped += 1;
            }
        }
    }
    Ok(done)
}

/// Checks that the data under the prefix was written with the configured
/// shard count (reading nothing else would be right otherwise).
async fn check_shards(store: &Store) -> Result<(), QueuesError> {
    match store.stored_shards().await? {
        Some(n) if n != store.keys().shards() => Err(QueuesError::Refused(format!(
            "redis.shards is {} but the data under prefix `{}` was written with {n} shards",
            store.keys().shards(),
            store.keys().prefix()
        ))),
        _ => Ok(()),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Carries out `args` against `store`, printing to stdout.
pub async fn run(store: &Store, args: QueuesArgs) -> Result<(), QueuesError> {
    check_shards(store).await?;
    match args.action {
        Some(Action::Retry {
            subscription,
            since,
        }) => {
            let done = retry(store, subscription, since.unwrap_or(0), now_ms()).await?;
            println!("{done}");
            Ok(())
        }
        Some(Action::Replay {
            account,
            event_type,
            since,
            subscription,
            limit,
        }) => {
            let req = ReplayRequest {
                account,
                event_type,
                since_ms: since,
                subscription,
                limit: limit as usize,
            };
            let done = replay(store, &req, now_ms()).await?;
            println!("{done}");
            Ok(())
        }
        None => show(store, args.json, args.watch, args.count).await,
    }
}

/// Prints the queues once, or every `watch` seconds until Ctrl-C (or
/// `count` refreshes). While watching, a failed read is reported and the
/// next refresh tries again.
async fn show(
    store: &Store,
    as_json: bool,
    watch: Option<u64>,
    count: Option<u64>,
) -> Result<(), QueuesError> {
    let Some(secs) = watch else {
        let s = snapshot(store, now_ms()).await?;
        print!("{}", render(&s, as_json));
        return Ok(());
    };
    let clear = !as_json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut shown = 0u64;
    loop {
        match snapshot(store, now_ms()).await {
            Ok(s) => {
                let mut out = std::io::stdout().lock();
                if clear {
                    let _ = write!(out, "\x1b[H\x1b[2J");
                } else if shown > 0 && !as_json {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "{}", render(&s, as_json));
                let _ = out.flush();
            }
            Err(e) => eprintln!("courier: {e}"),
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            _ = &mut stop => return Ok(()),
        }
    }
}

fn render(s: &Snapshot, as_json: bool) -> String {
    if as_json {
        format!("{}\n", s.to_json())
    } else {
        s.table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(shard: u16, due: u64, later: u64, oldest: Option<i64>) -> ShardQueues {
        ShardQueues {
            shard,
            due,
            later,
            oldest_due_ms: oldest,
            leased: 1,
            lease_expired: u64::from(shard),
            digests: 2,
            digests_sending: 1,
            outbox: 3,
        }
    }

    fn sample() -> Snapshot {
        Snapshot {
            at_ms: 1_700_000_000_000,
            shards: vec![
                shard(0, 2, 1, Some(1_700_000_000_000 - 65_000)),
                shard(1, 0, 4, Some(1_700_000_000_000 + 5_000)),
            ],
            open_circuits: vec![
                ("https://a.example/in".into(), 1_700_000_030_000),
                ("https://b.example/in".into(), 1_699_999_990_000),
            ],
        }
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(12), "12 ms");
        assert_eq!(age(4_500), "4 s");
        assert_eq!(age(180_000), "3 min");
        assert_eq!(age(7_300_000), "2 h");
    }

    #[test]
    fn only_a_due_delivery_has_an_age() {
        let s = sample();
        assert_eq!(oldest_due_age(&s.shards[0], s.at_ms), Some(65_000));
        // Its first entry is due later: nothing waits.
        assert_eq!(oldest_due_age(&s.shards[1], s.at_ms), None);
        let t = s.total();
        assert_eq!((t.due, t.later, t.leased, t.lease_expired), (2, 5, 2, 1));
        assert_eq!((t.digests, t.digests_sending, t.outbox), (4, 2, 6));
        assert_eq!(oldest_due_age(&t, s.at_ms), Some(65_000));
    }

    #[test]
    fn json_has_every_shard_the_total_and_the_circuits() {
        let v = sample().to_json();
        assert_eq!(v["shards"].as_array().unwrap().len(), 2);
        assert_eq!(v["shards"][0]["shard"], 0);
        assert_eq!(v["shards"][0]["due"], 2);
        assert_eq!(v["shards"][0]["oldest_due_age_ms"], 65_000);
        assert_eq!(v["shards"][1]["oldest_due_age_ms"], Value::Null);
        assert_eq!(v["shards"][1]["leases_expired"], 1);
        assert_eq!(v["total"]["scheduled"], 5);
        assert_eq!(v["total"]["digests_open"], 4);
        assert_eq!(v["total"]["outbox"], 6);
        assert!(v["total"].get("shard").is_none());
        assert_eq!(v["open_circuits"][0]["endpoint"], "https://a.example/in");
        assert_eq!(v["open_circuits"][0]["cooldown_over"], false);
        assert_eq!(v["open_circuits"][1]["cooldown_over"], true);
        assert_eq!(v["at"], "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn the_table_aligns_one_row_per_shard_and_a_total() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "courier queues at 2023-11-14T22:13:20.000Z");
        assert_eq!(
            lines[1],
            "shard  due  scheduled  oldest due  leased  expired  digests  sending  outbox"
        );
        assert_eq!(
            lines[2],
            "0        2          1       1 min       1        0        2        1       3"
        );
        assert_eq!(
            lines[3],
            "1        0          4           -       1        1        2        1       3"
        );
        assert_eq!(
            lines[4],
            "total    2          5       1 min       2        1        4        2       6"
        );
        assert!(t.contains("open circuits: 2\n"));
        assert!(t.contains("  https://a.example/in  probe after 2023-11-14T22:13:50.000Z\n"));
        assert!(t.contains("  https://b.example/in  cooldown over"));
        let quiet = Snapshot {
            open_circuits: vec![],
            ..sample()
        };
        assert!(quiet.table().ends_with("open circuits: none\n"));
    }

    #[test]
    fn times_must_be_rfc3339() {
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        let e = parse_time("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn reports_say_what_was_done() {
        let done = ReplayDone {
            events: 3,
            deliveries: 6,
            skipped: 1,
            more_from_ms: Some(1_700_000_000_000),
        };
        let text = done.to_string();
        assert!(text.starts_with("3 events replayed: 6 deliveries created; 1 events skipped"));
        assert!(text.contains("--since 2023-11-14T22:13:20.000Z"));
        let r = RetryDone {
            account: Uuid::nil(),
            subscription: Uuid::nil(),
            recovered: Recovered {
                failed: 3,
                queued: 2,
                in_flight: 1,
            },
        };
        assert!(r
            .to_string()
            .contains("3 failed deliveries, 2 queued, 1 left alone"));
    }
}
