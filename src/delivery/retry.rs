//! The retry schedule: how long to wait after a failed attempt, with jitter,
//! and how a receiver's `Retry-After` bends it. Pure; time and randomness
//! come in as arguments.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Delays between attempts and the jitter applied to each.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// `delays[i]` is the wait after attempt `i + 1` failed.
    delays: Vec<Duration>,
    /// Fraction of each delay added or removed at random (0.1 = ±10 %).
    jitter: f64,
}

impl RetryPolicy {
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Attempts in all: the first one plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The schedule step after `attempts_made` attempts, before jitter;
    /// `None` when the schedule is exhausted.
    pub fn step(&self, attempts_made: u32) -> Option<Duration> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// The wait before the next attempt after `attempts_made` attempts.
    /// `unit` is a uniform random number in [0, 1): 0 gives the shortest
    /// jittered delay, just under 1 the longest.
    pub fn delay_after(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        let step = self.step(attempts_made)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(step.mul_f64(factor))
    }

    /// The wait when the receiver asked for `retry_after`: honoured, but
    /// never shorter than the schedule's step nor longer than twice it.
    pub fn delay_with_retry_after(
        &self,
        attempts_made: u32,
        retry_after: Duration,
    ) -> Option<Duration> {
        let step = self.step(attempts_made)?;
        Some(retry_after.clamp(step, step * 2))
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok().or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> RetryPolicy {
        let secs = [
            5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 86400,
        ];
        RetryPolicy::new(secs.iter().map(|s| Duration::from_secs(*s)).collect(), 0.1)
    }

    #[test]
    fn the_default_schedule_spans_a_little_over_three_days() {
        let p = default_policy();
        assert_eq!(p.max_attempts(), 13);
        let total: Duration = (1..p.max_attempts()).map(|n| p.step(n).unwrap()).sum();
        let days = total.as_secs_f64() / 86_400.0;
        // 3 d 3 h 43 m 5 s between the first and the last attempt.
        assert!((3.15..3.16).contains(&days), "{days}");
        assert_eq!(p.step(1), Some(Duration::from_secs(5)));
        assert_eq!(p.step(12), Some(Duration::from_secs(86_400)));
        assert_eq!(p.step(13), None);
        assert_eq!(p.delay_after(13, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let p = default_policy();
        for attempts in 1..13 {
            let step = p.step(attempts).unwrap().as_secs_f64();
            for i in 0..=100 {
                let unit = f64::from(i) / 100.0;
                let d = p.delay_after(attempts, unit).unwrap().as_secs_f64();
                assert!(
                    d >= step * 0.9 - 1e-9 && d <= step * 1.1 + 1e-9,
                    "{attempts} {unit} {d}"
                );
            }
            assert!(
                (p.delay_after(attempts, 0.0).unwrap().as_secs_f64() - step * 0.9).abs() < 1e-6
            );
            assert!(
                (p.delay_after(attempts, 1.0).unwrap().as_secs_f64() - step * 1.1).abs() < 1e-6
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_between_one_and_two_steps() {
        let p = default_policy();
        // Step after the 2nd attempt is 30 s.
        assert_eq!(
            p.delay_with_retry_after(2, Duration::from_secs(45)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            p.delay_with_retry_after(2, Duration::from_secs(1)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            p.delay_with_retry_after(2, Duration::from_secs(3600)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(p.delay_with_retry_after(13, Duration::from_secs(1)), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2024-05-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 02 May 2024 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Thu, 02 May 2024 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
