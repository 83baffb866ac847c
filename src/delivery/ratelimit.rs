//! A token bucket: at most `rate` sends per second, bursts up to `rate`.
//! Pure; the caller passes the time.

/// One bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    updated_ms: i64,
}

impl TokenBucket {
    pub fn new(per_second: u32, now_ms: i64) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            tokens: rate,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated_ms = now_ms.max(self.updated_ms);
    }

    /// Takes a token, or says how many ms until one is available.
    pub fn take(&mut self, now_ms: i64) -> Result<(), i64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / self.rate * 1000.0).ceil() as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_rate_and_no_more() {
        let mut b = TokenBucket::new(10, 0);
        for _ in 0..10 {
            assert!(b.take(0).is_ok());
        }
        assert_eq!(b.take(0), Err(100));
        assert!(b.take(100).is_ok());
        assert!(b.take(100).is_err());
        // Over one second exactly `rate` sends get through after the burst.
        let mut sent = 0;
        for ms in (200..1200).step_by(10) {
            if b.take(ms).is_ok() {
                sent += 1;
            }
        }
        assert_eq!(sent, 10);
    }

    #[test]
    fn idle_time_refills_only_up_to_one_burst() {
        let mut b = TokenBucket::new(2, 0);
        assert!(b.take(0).is_ok());
        assert!(b.take(0).is_ok());
        let later = 60_000;
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_err());
    }
}
