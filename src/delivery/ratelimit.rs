//! A subscription's rate limit: at most `rate` sends per second with bursts
//! up to `rate`, as the generic cell rate algorithm (GCRA). The state is one
//! number, the theoretical arrival time (TAT): when the next send would be
//! due at the steady rate. It lives in Redis so that the limit holds for the
//! whole fleet; `store/lua/rate.lua` applies [`Gcra::check`] atomically
//! (its test runs the same steps through both). Pure; the caller passes the
//! time.

/// The limit of one subscription.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcra {
    /// ms between sends at the steady rate.
    pub interval_ms: f64,
    /// Sends allowed at once after a quiet spell.
    pub burst: u32,
}

impl Gcra {
    /// `per_second` sends a second, bursts of as many.
    pub fn per_second(per_second: u32) -> Self {
        let rate = per_second.max(1);
        Self {
            interval_ms: 1000.0 / f64::from(rate),
            burst: rate,
        }
    }

    /// May a send go at `now_ms`, given the stored TAT? `Ok(new TAT)` to
    /// store, or `Err(ms to wait)`.
    pub fn check(&self, tat: Option<f64>, now_ms: i64) -> Result<f64, i64> {
        let now = now_ms as f64;
        let tat = tat.unwrap_or(now).max(now);
        let allow_at = tat + self.interval_ms - f64::from(self.burst) * self.interval_ms;
        if now < allow_at {
            Err(((allow_at - now).ceil() as i64).max(1))
        } else {
            Ok(tat + self.interval_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one at each of `times` if allowed; returns how many went.
    fn sends(g: &Gcra, tat: &mut Option<f64>, times: impl IntoIterator<Item = i64>) -> usize {
        let mut sent = 0;
        for now in times {
            if let Ok(next) = g.check(*tat, now) {
                *tat = Some(next);
                sent += 1;
            }
        }
        sent
    }

    #[test]
    fn allows_a_burst_then_the_rate_and_no_more() {
        let g = Gcra::per_second(10);
        let mut tat = None;
        assert_eq!(sends(&g, &mut tat, [0; 10]), 10);
        assert_eq!(g.check(tat, 0), Err(100));
        assert_eq!(sends(&g, &mut tat, [100]), 1);
        assert_eq!(g.check(tat, 100), Err(100));
        // Over one second exactly `rate` sends get through after the burst.
        assert_eq!(sends(&g, &mut tat, (200..1200).step_by(10)), 10);
    }

    #[test]
    fn idle_time_refills_only_up_to_one_burst() {
        let g = Gcra::per_second(2);
        let mut tat = None;
        assert_eq!(sends(&g, &mut tat, [0, 0, 0]), 2);
        assert_eq!(sends(&g, &mut tat, [60_000; 5]), 2);
    }

    #[test]
    fn a_fractional_interval_keeps_the_rate() {
        let g = Gcra::per_second(3);
        let mut tat = None;
        // A burst of 3, then one every 333.3 ms: 29 more by 9_996 ms.
        assert_eq!(sends(&g, &mut tat, (0..10_000).step_by(7)), 3 + 29);
    }
}
