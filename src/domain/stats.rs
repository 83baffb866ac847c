//! Delivery statistics as the dashboard shows them: per subscription and
//! hour, how many attempts were made, how many succeeded and how long they
//! took (a fixed latency histogram, so hours and replicas add up by plain
//! sums); per shard and minute, how many events came in and how many
//! attempts went out. Pure: the counting happens in memory
//! ([`crate::stats`]), the sums live in Redis (`store::stats`).

use std::collections::HashMap;

/// Upper bounds (ms, inclusive) of the latency histogram's buckets; a last,
/// open bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 11] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// Number of latency buckets (the bounded ones and the open one).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One minute in ms.
pub const MINUTE_MS: i64 = 60_000;

/// The histogram bucket of an attempt that took `ms`.
pub fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The hour (ms since the epoch / one hour) that `ms` falls in.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// The minute that `ms` falls in.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// Attempts of one subscription in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptStats {
    /// Attempts made (a retry is another attempt).
    pub attempts: u64,
    /// Of those, the ones the endpoint accepted.
    pub succeeded: u64,
    /// Attempts per latency bucket.
    pub latency: [u64; LATENCY_BUCKETS],
}

/// The 95th percentile of a latency histogram: the upper bound of the
/// bucket it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P95 {
    /// At most this many ms.
    AtMost(u64),
    /// Slower than the largest bound.
    Over(u64),
}

impl std::fmt::Display for P95 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |ms: u64| {
            if ms >= 1_000 && ms.is_multiple_of(1_000) {
                format!("{} s", ms / 1_000)
            } else if ms >= 1_000 {
                format!("{:.1} s", ms as f64 / 1_000.0)
            } else {
                format!("{ms} ms")
            }
        };
        match self {
            P95::AtMost(ms) => write!(f, "≤ {}", show(*ms)),
            P95::Over(ms) => write!(f, "> {}", show(*ms)),
        }
    }
}

impl P95 {
    /// A number to plot: the bound in ms.
    pub fn ms(&self) -> u64 {
        match self {
            P95::AtMost(ms) | P95::Over(ms) => *ms,
        }
    }
}

impl AttemptStats {
    /// Counts one attempt.
    pub fn record(&mut self, succeeded: bool, duration_ms: u64) {
        self.attempts += 1;
        self.succeeded += u64::from(succeeded);
        self.latency[latency_bucket(duration_ms)] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &AttemptStats) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            *a += b;
        }
    }

    /// Share of attempts that succeeded, in percent; None without attempts.
    pub fn success_percent(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 * 100.0 / self.attempts as f64)
    }

    /// The 95th percentile latency; None without attempts.
    pub fn p95(&self) -> Option<P95> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        // The smallest bucket holding at least 95 % of the attempts.
        let needed = total - total / 20;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= needed {
                return Some(match LATENCY_BOUNDS_MS.get(i) {
                    Some(bound) => P95::AtMost(*bound),
                    None => P95::Over(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]),
                });
            }
        }
        None
    }

    /// The fields of the Redis hash holding these counts (zero counts left
    /// out): `a` attempts, `s` successes, `l<i>` latency bucket `i`.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut f = Vec::with_capacity(2 + LATENCY_BUCKETS);
        if self.attempts > 0 {
            f.push(("a".to_owned(), self.attempts));
        }
        if self.succeeded > 0 {
            f.push(("s".to_owned(), self.succeeded));
        }
        for (i, n) in self.latency.iter().enumerate() {
            if *n > 0 {
                f.push((format!("l{i}"), *n));
            }
        }
        f
    }

    /// Reads counts back from a hash written by [`Self::fields`]; unknown
    /// fields and unreadable numbers are ignored.
    pub fn from_fields(h: &HashMap<String, String>) -> Self {
        let mut s = Self::default();
        for (k, v) in h {
            let Ok(n) = v.parse::<u64>() else { continue };
            match k.as_str() {
                "a" => s.attempts = n,
                "s" => s.succeeded = n,
                _ => {
                    if let Some(i) = k.strip_prefix('l').and_then(|i| i.parse::<usize>().ok()) {
                        if let Some(slot) = s.latency.get_mut(i) {
                            *slot = n;
                        }
                    }
                }
            }
        }
        s
    }
}

/// One shard's traffic in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Events accepted (a duplicate by idempotency key is not counted).
    pub ingested: u64,
    /// Attempts that succeeded, and that failed.
    pub succeeded: u64,
    pub failed: u64,
}

impl Traffic {
    pub fn add(&mut self, other: &Traffic) {
        self.ingested += other.ingested;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
    }

    /// Hash fields (zero counts left out): `i`, `s`, `f`.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        [
            ("i", self.ingested),
            ("s", self.succeeded),
            ("f", self.failed),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    pub fn from_fields(h: &HashMap<String, String>) -> Self {
        let get = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Self {
            ingested: get("i"),
            succeeded: get("s"),
            failed: get("f"),
        }
    }
}

/// A small bar chart as inline SVG geometry: one bar per value, scaled to
/// the largest (or to `max` when given), `height` px tall.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub width: u32,
    pub height: u32,
    /// `(x, y, height)` of each bar with a value; empty slots have none.
    pub bars: Vec<(u32, u32, u32)>,
    /// Width of one bar.
    pub bar_width: u32,
}

impl Bars {
    /// Bars for `values` (oldest first). `None` and zero values leave a
    /// gap; a positive value is at least one pixel tall so it stays visible.
    pub fn new(values: &[Option<f64>], max: Option<f64>, height: u32, bar_width: u32) -> Self {
        let top = max.unwrap_or_else(|| values.iter().flatten().copied().fold(0.0, f64::max));
        let step = bar_width + 1;
        let bars = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                let h = if top > 0.0 {
                    ((v / top).clamp(0.0, 1.0) * f64::from(height)).round() as u32
                } else {
                    0
                };
                // A positive value stays visible; zero draws nothing.
                let h = if v > 0.0 { h.max(1) } else { return None };
                Some((i as u32 * step, height - h, h))
            })
            .collect();
        Self {
            width: values.len() as u32 * step,
            height,
            bars,
            bar_width,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_bucket_of_their_upper_bound() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(10), 0);
        assert_eq!(latency_bucket(11), 1);
        assert_eq!(latency_bucket(250), 4);
        assert_eq!(latency_bucket(30_000), 10);
        assert_eq!(latency_bucket(30_001), 11);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn p95_is_the_bound_of_the_bucket_holding_the_95th_percentile() {
        let mut s = AttemptStats::default();
        assert_eq!(s.p95(), None);
        for _ in 0..95 {
            s.record(true, 8);
        }
        for _ in 0..5 {
            s.record(false, 900);
        }
        assert_eq!(s.p95(), Some(P95::AtMost(10)));
        s.record(false, 900);
        assert_eq!(s.p95(), Some(P95::AtMost(1_000)));
        let mut slow = AttemptStats::default();
        slow.record(true, 60_000);
        assert_eq!(slow.p95(), Some(P95::Over(30_000)));
        assert_eq!(P95::AtMost(250).to_string(), "≤ 250 ms");
        assert_eq!(P95::AtMost(2_500).to_string(), "≤ 2.5 s");
        assert_eq!(P95::Over(30_000).to_string(), "> 30 s");
    }

    #[test]
    fn counts_survive_the_trip_through_hash_fields_and_add_up() {
        let mut a = AttemptStats::default();
        a.record(true, 5);
        a.record(false, 20_000);
        let h: HashMap<String, String> = a
            .fields()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        assert_eq!(h.len(), 4, "zero counts are left out: {h:?}");
        let back = AttemptStats::from_fields(&h);
        assert_eq!(back, a);
        let mut sum = back.clone();
        sum.add(&a);
        assert_eq!(sum.attempts, 4);
        assert_eq!(sum.succeeded, 2);
        assert_eq!(sum.success_percent(), Some(50.0));
        assert_eq!(AttemptStats::default().success_percent(), None);
        let t = Traffic {
            ingested: 3,
            succeeded: 0,
            failed: 1,
        };
        let h: HashMap<String, String> = t
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .collect();
        assert_eq!(Traffic::from_fields(&h), t);
    }

    #[test]
    fn hours_and_minutes_count_from_the_epoch() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(minute_of(-1), -1);
        assert_eq!(minute_of(2 * MINUTE_MS + 5), 2);
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_keep_small_ones_visible() {
        let b = Bars::new(
            &[Some(10.0), None, Some(0.1), Some(0.0), Some(5.0)],
            None,
            20,
            3,
        );
        assert_eq!(b.width, 20);
        assert_eq!(b.bars, vec![(0, 0, 20), (8, 19, 1), (16, 10, 10)]);
        let fixed = Bars::new(&[Some(50.0)], Some(100.0), 20, 3);
        assert_eq!(fixed.bars, vec![(0, 10, 10)]);
        let empty = Bars::new(&[Some(0.0)], None, 20, 3);
        assert_eq!(empty.bars, vec![]);
    }
}
