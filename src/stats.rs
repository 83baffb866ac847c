//! The dashboard's statistics, counted in memory and added to Redis every
//! `dashboard.stats_flush_ms` by one pipeline per shard: the delivery path
//! only bumps a counter under a short lock and never waits on Redis for
//! them. A replica that dies loses at most its last unflushed interval of
//! counts (statistics, not deliveries); counts that could not be written
//! are kept for the next flush.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::stats::{hour_of, minute_of, AttemptStats, Traffic};
use crate::store::{ShardStats, Store, StoreError};

#[derive(Debug, Default)]
struct Pending {
    subs: HashMap<(u16, Uuid, i64), AttemptStats>,
    traffic: HashMap<(u16, i64), Traffic>,
    failures: HashMap<(u16, i64, String), u64>,
    circuits: HashMap<(u16, String), Option<i64>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.subs.is_empty()
            && self.traffic.is_empty()
            && self.failures.is_empty()
            && self.circuits.is_empty()
    }

    /// Adds `older` (counts that could not be written) under these; a
    /// circuit seen since keeps its newer state.
    fn merge_older(&mut self, older: Pending) {
        for (k, v) in older.subs {
            self.subs.entry(k).or_default().add(&v);
        }
        for (k, v) in older.traffic {
            self.traffic.entry(k).or_default().add(&v);
        }
        for (k, v) in older.failures {
            *self.failures.entry(k).or_default() += v;
        }
        for (k, v) in older.circuits {
            self.circuits.entry(k).or_insert(v);
        }
    }

    /// Splits into one batch per shard.
    fn by_shard(self) -> HashMap<u16, ShardStats> {
        let mut out: HashMap<u16, ShardStats> = HashMap::new();
        for ((shard, sub, hour), s) in self.subs {
            out.entry(shard).or_default().subs.push((sub, hour, s));
        }
        for ((shard, minute), t) in self.traffic {
            out.entry(shard).or_default().traffic.push((minute, t));
        }
        for ((shard, hour, url), n) in self.failures {
            out.entry(shard).or_default().failures.push((hour, url, n));
        }
        for ((shard, url), until) in self.circuits {
            out.entry(shard).or_default().circuits.push((url, until));
        }
        out
    }

    fn from_shard(shard: u16, s: ShardStats) -> Self {
        let mut p = Pending::default();
        for (sub, hour, a) in s.subs {
            p.subs.insert((shard, sub, hour), a);
        }
        for (minute, t) in s.traffic {
            p.traffic.insert((shard, minute), t);
        }
        for (hour, url, n) in s.failures {
            p.failures.insert((shard, hour, url), n);
        }
        for (url, until) in s.circuits {
            p.circuits.insert((shard, url), until);
        }
        p
    }
}

/// Counts kept back while Redis cannot take them, at most (entries); past
/// this, the oldest flush's counts are dropped rather than memory grown.
const MAX_PENDING: usize = 100_000;

/// A replica's statistics recorder, shared by its HTTP workers and engine.
pub struct Stats {
    store: Store,
    clock: Clock,
    pending: Mutex<Pending>,
}

impl Stats {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self {
            store,
            clock,
            pending: Mutex::new(Pending::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> R {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    }

    /// `n` events of an account in `shard` were stored.
    pub fn ingested(&self, shard: u16, n: u64) {
        if n == 0 {
            return;
        }
        let minute = minute_of(self.clock.now_ms());
        self.with(|p| p.traffic.entry((shard, minute)).or_default().ingested += n);
    }

    /// An attempt of subscription `sub` (in `shard`) was made and recorded.
    pub fn attempt(&self, shard: u16, sub: Uuid, succeeded: bool, duration_ms: u64) {
        let now = self.clock.now_ms();
        let (hour, minute) = (hour_of(now), minute_of(now));
        self.with(|p| {
            p.subs
                .entry((shard, sub, hour))
                .or_default()
                .record(succeeded, duration_ms);
            let t = p.traffic.entry((shard, minute)).or_default();
            if succeeded {
                t.succeeded += 1;
            } else {
                t.failed += 1;
            }
        });
    }

    /// A webhook attempt to `endpoint` (a URL without credentials or query)
    /// failed, for a subscription in `shard`.
    pub fn endpoint_failed(&self, shard: u16, endpoint: String) {
        let hour = hour_of(self.clock.now_ms());
        self.with(|p| *p.failures.entry((shard, hour, endpoint)).or_default() += 1);
    }

    /// The circuit of `endpoint` was recorded open until `open_until` (ms)
    /// or closed (None).
    pub fn circuit(&self, shard: u16, endpoint: String, open_until: Option<i64>) {
        self.with(|p| {
            p.circuits.insert((shard, endpoint), open_until);
        });
    }

    /// Adds every count gathered so far to Redis. Counts of a shard that
    /// could not be written are kept for the next call.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let taken = self.with(std::mem::take);
        if taken.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut failed = Pending::default();
        let mut first_error = None;
        for (shard, batch) in taken.by_shard() {
            if let Err(e) = self.store.add_stats(shard, &batch, now).await {
                failed.merge_older(Pending::from_shard(shard, batch));
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                self.with(|p| {
                    let size = |p: &Pending| {
                        p.subs.len() + p.traffic.len() + p.failures.len() + p.circuits.len()
                    };
                    if size(p) + size(&failed) <= MAX_PENDING {
                        p.merge_older(failed);
                    }
                });
                Err(e)
            }
        }
    }

    /// Flushes every `every` until the process ends.
    pub async fn flush_every(self: std::sync::Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.flush().await {
                tracing::debug!(error = %e, "could not write dashboard statistics; kept for the next flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_counts_add_up_and_newer_circuit_states_win() {
        let sub = Uuid::nil();
        let mut newer = Pending::default();
        newer.subs.entry((1, sub, 5)).or_default().record(true, 5);
        newer.circuits.insert((1, "http://a".into()), None);
        let mut older = Pending::default();
        older.subs.entry((1, sub, 5)).or_default().record(false, 50);
        older.failures.insert((1, 5, "http://a".into()), 3);
        older.circuits.insert((1, "http://a".into()), Some(9));
        older.circuits.insert((1, "http://b".into()), Some(7));
        newer.merge_older(older);
        let s = &newer.subs[&(1, sub, 5)];
        assert_eq!((s.attempts, s.succeeded), (2, 1));
        assert_eq!(newer.failures[&(1, 5, "http://a".into())], 3);
        assert_eq!(newer.circuits[&(1, "http://a".into())], None);
        assert_eq!(newer.circuits[&(1, "http://b".into())], Some(7));
        let shards = newer.by_shard();
        assert_eq!(shards.len(), 1);
        let back = Pending::from_shard(1, shards[&1].clone());
        assert_eq!(back.subs.len(), 1);
        assert_eq!(back.circuits.len(), 2);
    }
}
