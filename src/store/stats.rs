//! The dashboard's statistics in Redis: counters added by each replica's
//! recorder ([`crate::stats`]) every few seconds, one pipeline per shard,
//! and read back by the overview and the operator page. Every key expires
//! (hours and minutes past their window), so they stay bounded.

use std::collections::HashMap;

use futures_util::future::try_join_all;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::stats::{AttemptStats, Traffic, HOUR_MS, MINUTE_MS};

/// How long a subscription's hourly counts and an hour's endpoint failures
/// are kept after their hour.
pub const HOURLY_KEEP_MS: i64 = 48 * HOUR_MS;
/// How long a minute's traffic is kept after its minute.
pub const MINUTE_KEEP_MS: i64 = 2 * HOUR_MS;
/// How long an endpoint stays on the open-circuit list after its circuit's
/// cooldown ended without news (no traffic tried it since).
pub const OPEN_CIRCUIT_KEEP_MS: i64 = 24 * HOUR_MS;

/// Counts of one shard to add, as a recorder gathered them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardStats {
    /// Per subscription and hour.
    pub subs: Vec<(Uuid, i64, AttemptStats)>,
    /// Per minute.
    pub traffic: Vec<(i64, Traffic)>,
    /// Failed attempts per hour and endpoint.
    pub failures: Vec<(i64, String, u64)>,
    /// Endpoints whose circuit was seen open (until, ms) or closed (None).
    pub circuits: Vec<(String, Option<i64>)>,
}

impl ShardStats {
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
            && self.traffic.is_empty()
            && self.failures.is_empty()
            && self.circuits.is_empty()
    }
}

/// The time left until `end_ms + keep_ms`, at least a second.
fn ttl(end_ms: i64, keep_ms: i64, now_ms: i64) -> i64 {
    (end_ms + keep_ms - now_ms).max(1_000)
}

impl Store {
    /// Adds `add` to shard `shard`'s counters: one pipeline (one slot).
    pub async fn add_stats(
        &self,
        shard: u16,
        add: &ShardStats,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if add.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (sub, hour, counts) in &add.subs {
            let key = self.keys.sub_stats(shard, sub, *hour);
            for (field, n) in counts.fields() {
                pipe.hincr(&key, field, n).ignore();
            }
            pipe.pexpire(&key, ttl((hour + 1) * HOUR_MS, HOURLY_KEEP_MS, now_ms))
                .ignore();
        }
        for (minute, t) in &add.traffic {
            let key = self.keys.traffic(shard, *minute);
            for (field, n) in t.fields() {
                pipe.hincr(&key, field, n).ignore();
            }
            pipe.pexpire(&key, ttl((minute + 1) * MINUTE_MS, MINUTE_KEEP_MS, now_ms))
                .ignore();
        }
        for (hour, url, n) in &add.failures {
            let key = self.keys.endpoint_failures(shard, *hour);
            pipe.zincr(&key, url, *n).ignore();
            pipe.pexpire(&key, ttl((hour + 1) * HOUR_MS, HOURLY_KEEP_MS, now_ms))
                .ignore();
        }
        if !add.circuits.is_empty() {
            let key = self.keys.open_circuits(shard);
            for (url, until) in &add.circuits {
                match until {
                    Some(until) => pipe.zadd(&key, url, *until).ignore(),
                    None => pipe.zrem(&key, url).ignore(),
                };
            }
            pipe.zrembyscore(&key, "-inf", now_ms - OPEN_CIRCUIT_KEEP_MS)
                .ignore();
        }
        let mut conn = self.conn();
        self.run(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Attempt counts of `subs` (all of the account in shard `shard`) per
    /// hour from `from_hour` to `to_hour` inclusive, oldest first.
    pub async fn sub_stats(
        &self,
        shard: u16,
        subs: &[Uuid],
        from_hour: i64,
        to_hour: i64,
    ) -> Result<HashMap<Uuid, Vec<AttemptStats>>, StoreError> {
        if subs.is_empty() || to_hour < from_hour {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for sub in subs {
            for hour in from_hour..=to_hour {
                pipe.hgetall(self.keys.sub_stats(shard, sub, hour));
            }
        }
        let mut conn = self.conn();
        let rows: Vec<HashMap<String, String>> = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        let per_sub = (to_hour - from_hour + 1) as usize;
        Ok(subs
            .iter()
            .zip(rows.chunks(per_sub))
            .map(|(sub, hours)| (*sub, hours.iter().map(AttemptStats::from_fields).collect()))
            .collect())
    }

    /// The whole fleet's traffic per minute from `from_minute` to
    /// `to_minute` inclusive, oldest first (one pipeline per shard).
    pub async fn traffic(
        &self,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<Vec<Traffic>, StoreError> {
        let minutes = (to_minute - from_minute + 1).max(0) as usize;
        let per_shard = try_join_all((0..self.keys.shards()).map(|shard| {
            let mut pipe = redis::pipe();
            for minute in from_minute..=to_minute {
                pipe.hgetall(self.keys.traffic(shard, minute));
            }
            let mut conn = self.conn();
            self.run(async move {
                pipe.query_async::<Vec<HashMap<String, String>>>(&mut conn)
                    .await
            })
        }))
        .await?;
        let mut total = vec![Traffic::default(); minutes];
        for rows in per_shard {
            for (sum, row) in total.iter_mut().zip(rows.iter()) {
                sum.add(&Traffic::from_fields(row));
            }
        }
        Ok(total)
    }

    /// The `top` endpoints with the most failed attempts from `from_hour` to
    /// `to_hour` inclusive, across every shard, most first.
    pub async fn top_failing_endpoints(
        &self,
        from_hour: i64,
        to_hour: i64,
        top: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let per_shard = try_join_all((0..self.keys.shards()).map(|shard| {
            let keys: Vec<String> = (from_hour..=to_hour)
                .map(|h| self.keys.endpoint_failures(shard, h))
                .collect();
            let mut cmd = redis::cmd("ZUNION");
            cmd.arg(keys.len()).arg(&keys).arg("WITHSCORES");
            let mut conn = self.conn();
            self.run(async move { cmd.query_async::<Vec<(String, f64)>>(&mut conn).await })
        }))
        .await?;
        let mut sums: HashMap<String, u64> = HashMap::new();
        for (url, n) in per_shard.into_iter().flatten() {
            *sums.entry(url).or_default() += n as u64;
        }
        let mut all: Vec<(String, u64)> = sums.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(top);
        Ok(all)
    }

    /// Endpoints last seen with an open circuit whose cooldown ends after
    /// `since_ms`, across every shard, with the latest end; soonest
    /// ending last.
    pub async fn open_circuits(&self, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let per_shard = try_join_all((0..self.keys.shards()).map(|shard| {
            let key = self.keys.open_circuits(shard);
            let mut conn = self.conn();
            self.run(async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(since_ms)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("WITHSCORES")
                    .query_async::<Vec<(String, f64)>>(&mut conn)
                    .await
            })
        }))
        .await?;
        let mut latest: HashMap<String, i64> = HashMap::new();
        for (url, until) in per_shard.into_iter().flatten() {
            let e = latest.entry(url).or_insert(i64::MIN);
            *e = (*e).max(until as i64);
        }
        let mut all: Vec<(String, i64)> = latest.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(all)
    }
}
