//! The small charts of the dashboard as view models: numbers and bar
//! geometry for inline SVG (the template draws `<rect>`s; no script, no
//! style attribute, so the Content-Security-Policy stays strict).

use crate::domain::stats::{
    latency_bucket, AttemptStats, Bars, Traffic, LATENCY_BUCKETS, MINUTE_MS, P95,
};

/// Height of a chart, px.
const HEIGHT: u32 = 22;
/// Width of one hour's or minute's bar, px.
const BAR: u32 = 3;

/// A subscription's last 24 hours: totals and one bar per hour.
pub struct Health {
    pub attempts: u64,
    pub failed: u64,
    /// `98.5 %`, or None without attempts.
    pub success: Option<String>,
    /// `≤ 250 ms`, or None without attempts.
    pub p95: Option<String>,
    /// Attempts per hour, and the failed share drawn over them (same
    /// scale).
    pub volume: Bars,
    pub failures: Bars,
    /// Success rate per hour, 0–100 %.
    pub rate: Bars,
    /// p95 latency per hour, on the histogram's (logarithmic) bucket scale.
    pub latency: Bars,
}

impl Health {
    /// From hourly counts, oldest first.
    pub fn new(hours: &[AttemptStats]) -> Self {
        let mut total = AttemptStats::default();
        for h in hours {
            total.add(h);
        }
        let attempts: Vec<Option<f64>> = hours.iter().map(|h| Some(h.attempts as f64)).collect();
        let top = attempts.iter().flatten().copied().fold(0.0, f64::max);
        let failed: Vec<Option<f64>> = hours
            .iter()
            .map(|h| Some((h.attempts - h.succeeded.min(h.attempts)) as f64))
            .collect();
        let rate: Vec<Option<f64>> = hours.iter().map(AttemptStats::success_percent).collect();
        let latency: Vec<Option<f64>> = hours
            .iter()
            .map(|h| {
                h.p95().map(|p| match p {
                    P95::AtMost(ms) => (latency_bucket(ms) + 1) as f64,
                    P95::Over(_) => LATENCY_BUCKETS as f64,
                })
            })
            .collect();
        Self {
            attempts: total.attempts,
            failed: total.attempts - total.succeeded.min(total.attempts),
            success: total.success_percent().map(percent),
            p95: total.p95().map(|p| p.to_string()),
            volume: Bars::new(&attempts, Some(top), HEIGHT, BAR),
            failures: Bars::new(&failed, Some(top), HEIGHT, BAR),
            rate: Bars::new(&rate, Some(100.0), HEIGHT, BAR),
            latency: Bars::new(&latency, Some(LATENCY_BUCKETS as f64), HEIGHT, BAR),
        }
    }
}

/// `100 %`, `98.5 %`, `0 %`.
fn percent(p: f64) -> String {
    if p >= 99.95 || p == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// Whole minutes, besides the one under way, that the rates average over.
pub const RATE_MINUTES: usize = 5;

/// The fleet's traffic over the last minutes: rates over the last few
/// minutes, totals, and one bar per minute.
pub struct TrafficChart {
    pub minutes: usize,
    pub rate_minutes: usize,
    /// Per second over the last [`RATE_MINUTES`] whole minutes and the
    /// one under way.
    pub ingest_rate: String,
    pub delivery_rate: String,
    pub ingested: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub ingest: Bars,
    pub attempts: Bars,
    pub failures: Bars,
}

impl TrafficChart {
    /// From per-minute traffic, oldest first, the last entry being the
    /// minute under way, `into_minute_ms` into it.
    pub fn new(minutes: &[Traffic], into_minute_ms: i64) -> Self {
        let mut total = Traffic::default();
        for m in minutes {
            total.add(m);
        }
        let mut recent = Traffic::default();
        let recent_minutes = &minutes[minutes.len().saturating_sub(RATE_MINUTES + 1)..];
        for m in recent_minutes {
            recent.add(m);
        }
        let seconds = (recent_minutes.len().saturating_sub(1) as f64 * 60.0
            + into_minute_ms.clamp(0, MINUTE_MS) as f64 / 1_000.0)
            .max(1.0);
        let per_s = |n: u64| format!("{:.1}/s", n as f64 / seconds);
        let ingest: Vec<Option<f64>> = minutes.iter().map(|m| Some(m.ingested as f64)).collect();
        let attempts: Vec<Option<f64>> = minutes
            .iter()
            .map(|m| Some((m.succeeded + m.failed) as f64))
            .collect();
        let failed: Vec<Option<f64>> = minutes.iter().map(|m| Some(m.failed as f64)).collect();
        let top = attempts.iter().flatten().copied().fold(0.0, f64::max);
        Self {
            minutes: minutes.len(),
            rate_minutes: RATE_MINUTES,
            ingest_rate: per_s(recent.ingested),
            delivery_rate: per_s(recent.succeeded + recent.failed),
            ingested: total.ingested,
            succeeded: total.succeeded,
            failed: total.failed,
            ingest: Bars::new(&ingest, None, HEIGHT * 2, BAR * 2),
            attempts: Bars::new(&attempts, Some(top), HEIGHT * 2, BAR * 2),
            failures: Bars::new(&failed, Some(top), HEIGHT * 2, BAR * 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(ok: u64, failed: u64, ms: u64) -> AttemptStats {
        let mut s = AttemptStats::default();
        for _ in 0..ok {
            s.record(true, ms);
        }
        for _ in 0..failed {
            s.record(false, ms);
        }
        s
    }

    #[test]
    fn health_sums_the_day_and_draws_an_hour_per_bar() {
        let mut hours = vec![AttemptStats::default(); 24];
        hours[22] = hour(9, 1, 40);
        hours[23] = hour(20, 0, 40_000);
        let h = Health::new(&hours);
        assert_eq!(h.attempts, 30);
        assert_eq!(h.failed, 1);
        assert_eq!(h.success.as_deref(), Some("96.7 %"));
        assert_eq!(h.p95.as_deref(), Some("> 30 s"));
        assert_eq!(h.volume.bars.len(), 2, "idle hours have no bar");
        assert_eq!(
            h.volume.bars[1],
            (92, 0, HEIGHT),
            "the busiest hour is full height"
        );
        assert_eq!(
            h.failures.bars,
            vec![(88, HEIGHT - 1, 1)],
            "one failure in 20 is still visible"
        );
        assert_eq!(h.rate.bars.len(), 2, "hours without attempts have no rate");
        assert_eq!(h.rate.bars[1].2, HEIGHT);
        assert!(
            h.latency.bars[1].2 > h.latency.bars[0].2,
            "slower is taller"
        );
        let idle = Health::new(&vec![AttemptStats::default(); 24]);
        assert_eq!((idle.attempts, idle.success, idle.p95), (0, None, None));
    }

    #[test]
    fn traffic_rates_average_the_last_minutes_and_the_one_under_way() {
        let m = |i, s, f| Traffic {
            ingested: i,
            succeeded: s,
            failed: f,
        };
        let mut minutes = vec![m(6_000, 0, 0)];
        minutes.extend(std::iter::repeat_n(m(600, 540, 60), RATE_MINUTES));
        minutes.push(m(300, 300, 0));
        // 5 whole minutes and 30 s: 3,300 in 330 s.
        let t = TrafficChart::new(&minutes, 30_000);
        assert_eq!(t.ingest_rate, "10.0/s");
        assert_eq!(t.delivery_rate, "10.0/s");
        assert_eq!((t.ingested, t.succeeded, t.failed), (9_300, 3_000, 300));
        // Only the minute under way, 2 s into it.
        assert_eq!(TrafficChart::new(&[m(8, 0, 0)], 2_000).ingest_rate, "4.0/s");
        assert_eq!(TrafficChart::new(&[], 0).ingest_rate, "0.0/s");
        assert_eq!(percent(100.0), "100 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(50.0), "50.0 %");
    }
}
