//! The time courier runs on. Production reads the system clock; tests move
//! a [`Clock`] forward (or back) to see what courier does once retention or
//! a schedule has passed, without waiting for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The system clock plus an offset that only tests change. Cheap to clone;
/// clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Now, as a time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by` (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Moves the clock back by `by` (tests).
    pub fn rewind(&self, by: Duration) {
        self.offset_ms
            .fetch_sub(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Back to the system clock.
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let a = Clock::default();
        let b = a.clone();
        let before = b.now_ms();
        a.advance(Duration::from_secs(3_600));
        assert!(b.now_ms() - before >= 3_600_000);
        a.rewind(Duration::from_secs(7_200));
        assert!(b.now_ms() < before);
        a.reset();
        assert!((b.now_ms() - before).abs() < 60_000);
        assert!((b.now().timestamp_millis() - b.now_ms()).abs() < 1_000);
    }
}
