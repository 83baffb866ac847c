//! How much work an endpoint may hold in memory. A queued delivery's lease
//! keeps running, so an endpoint accepts another delivery only while the
//! expected wait in its queue fits in the lease (minus one request's
//! timeout); the rest go back to the schedule, due when the queue should
//! have room again. The expected wait comes from a moving average of the
//! endpoint's request durations. Pure.

/// Moving average of request durations, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    avg_ms: f64,
}

/// Weight of the newest sample.
const ALPHA: f64 = 0.2;

impl Latency {
    /// Starts from a pessimistic guess until samples arrive.
    pub fn new(initial_ms: f64) -> Self {
        Self {
            avg_ms: initial_ms.max(1.0),
        }
    }

    pub fn record(&mut self, ms: f64) {
        self.avg_ms = ALPHA * ms.max(0.0) + (1.0 - ALPHA) * self.avg_ms;
    }

    pub fn avg_ms(&self) -> f64 {
        self.avg_ms
    }

    /// Expected wait before a delivery behind `queued` others starts.
    pub fn wait_ms(&self, queued: usize, concurrency: usize) -> f64 {
        queued as f64 / concurrency.max(1) as f64 * self.avg_ms
    }
}

/// Whether a new delivery may join a queue of `queued`, given the time a
/// queued delivery may wait (`budget_ms`) and a hard cap on the count.
pub fn admit(
    latency: &Latency,
    queued: usize,
    concurrency: usize,
    budget_ms: f64,
    cap: usize,
) -> bool {
    queued < cap && latency.wait_ms(queued + 1, concurrency) <= budget_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_endpoint_may_queue_much_a_slow_one_little() {
        let fast = Latency::new(50.0);
        let slow = Latency::new(15_000.0);
        let budget = 31_000.0;
        assert!(admit(&fast, 1_000, 8, budget, 4_096));
        assert!(admit(&slow, 8, 8, budget, 4_096));
        assert!(!admit(&slow, 16, 8, budget, 4_096));
        assert!(!admit(&fast, 4_096, 8, budget, 4_096));
    }

    #[test]
    fn the_average_follows_the_samples() {
        let mut l = Latency::new(1_000.0);
        for _ in 0..50 {
            l.record(10.0);
        }
        assert!((l.avg_ms() - 10.0).abs() < 1.0, "{}", l.avg_ms());
        l.record(1_010.0);
        assert!((l.avg_ms() - 210.0).abs() < 1.0);
        assert_eq!(Latency::new(100.0).wait_ms(8, 4), 200.0);
    }
}
