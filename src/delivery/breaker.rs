//! The circuit breaker of one endpoint, as a pure state machine.
//!
//! Closed: requests flow; consecutive failures are counted. At the threshold
//! the circuit opens for a cooldown. Open: nothing is sent (deliveries wait
//! without spending attempts) until the cooldown ends. Then one probe is let
//! through (half-open): success closes the circuit, failure opens it again
//! with the cooldown doubled, up to a cap. Times are ms since the epoch,
//! passed in, so tests control the clock.

use serde::{Deserialize, Serialize};

/// Tuning, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// First cooldown, ms.
    pub base_cooldown_ms: i64,
    /// Longest cooldown, ms.
    pub max_cooldown_ms: i64,
}

/// The breaker's state; stored in Redis as JSON so every replica and the
/// API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        /// When a probe may be sent, ms since the epoch.
        until_ms: i64,
        cooldown_ms: i64,
    },
    HalfOpen {
        cooldown_ms: i64,
        /// When the probe was let through; a probe older than the lease is
        /// considered lost and another may go.
        probe_started_ms: i64,
    },
}

impl Default for BreakerState {
    fn default() -> Self {
        BreakerState::Closed {
            consecutive_failures: 0,
        }
    }
}

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send normally.
    Send,
    /// Send as the single half-open probe.
    Probe,
    /// Do not send; try again at this time (ms).
    WaitUntil(i64),
}

impl BreakerState {
    pub fn is_open(&self) -> bool {
        !matches!(self, BreakerState::Closed { .. })
    }

    /// May a request go now? Moves Open → HalfOpen when the cooldown ended.
    /// `probe_timeout_ms` bounds how long one probe holds the half-open slot.
    pub fn admit(&mut self, now_ms: i64, probe_timeout_ms: i64) -> Admission {
        match *self {
            BreakerState::Closed { .. } => Admission::Send,
            BreakerState::Open {
                until_ms,
                cooldown_ms,
            } => {
                if now_ms >= until_ms {
                    *self = BreakerState::HalfOpen {
                        cooldown_ms,
                        probe_started_ms: now_ms,
                    };
                    Admission::Probe
                } else {
                    Admission::WaitUntil(until_ms)
                }
            }
            BreakerState::HalfOpen {
                cooldown_ms,
                probe_started_ms,
            } => {
                if now_ms >= probe_started_ms + probe_timeout_ms {
                    *self = BreakerState::HalfOpen {
                        cooldown_ms,
                        probe_started_ms: now_ms,
                    };
                    Admission::Probe
                } else {
                    Admission::WaitUntil(probe_started_ms + probe_timeout_ms)
                }
            }
        }
    }

    /// A request succeeded: the circuit closes.
    pub fn on_success(&mut self) {
        *self = BreakerState::default();
    }

    /// A request failed at `now_ms`.
    pub fn on_failure(&mut self, now_ms: i64, cfg: &BreakerConfig) {
        *self = match *self {
            BreakerState::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures + 1;
                if failures >= cfg.failure_threshold {
                    BreakerState::Open {
                        until_ms: now_ms + cfg.base_cooldown_ms,
                        cooldown_ms: cfg.base_cooldown_ms,
                    }
                } else {
                    BreakerState::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            BreakerState::HalfOpen { cooldown_ms, .. } | BreakerState::Open { cooldown_ms, .. } => {
                let next = (cooldown_ms * 2).min(cfg.max_cooldown_ms);
                BreakerState::Open {
                    until_ms: now_ms + next,
                    cooldown_ms: next,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: BreakerConfig = BreakerConfig {
        failure_threshold: 5,
        base_cooldown_ms: 1_000,
        max_cooldown_ms: 8_000,
    };

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let mut b = BreakerState::default();
        for i in 0..4 {
            b.on_failure(i, &CFG);
            assert_eq!(b.admit(i, 100), Admission::Send);
        }
        b.on_failure(10, &CFG);
        assert!(b.is_open());
        assert_eq!(b.admit(500, 100), Admission::WaitUntil(1_010));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = BreakerState::default();
        for i in 0..4 {
            b.on_failure(i, &CFG);
        }
        b.on_success();
        for i in 0..4 {
            b.on_failure(i, &CFG);
        }
        assert!(!b.is_open());
    }

    #[test]
    fn one_probe_at_a_time_after_the_cooldown() {
        let mut b = BreakerState::Open {
            until_ms: 1_000,
            cooldown_ms: 1_000,
        };
        assert_eq!(b.admit(999, 100), Admission::WaitUntil(1_000));
        assert_eq!(b.admit(1_000, 100), Admission::Probe);
        assert_eq!(b.admit(1_050, 100), Admission::WaitUntil(1_100));
        // The probe was lost (no answer within its timeout): another may go.
        assert_eq!(b.admit(1_100, 100), Admission::Probe);
    }

    #[test]
    fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let mut b = BreakerState::Open {
            until_ms: 0,
            cooldown_ms: 1_000,
        };
        let mut cooldowns = vec![];
        for now in [0, 10_000, 20_000, 30_000, 40_000] {
            assert_eq!(b.admit(now, 100), Admission::Probe);
            b.on_failure(now, &CFG);
            if let BreakerState::Open {
                cooldown_ms,
                until_ms,
            } = b
            {
                assert_eq!(until_ms, now + cooldown_ms);
                cooldowns.push(cooldown_ms);
            }
        }
        assert_eq!(cooldowns, [2_000, 4_000, 8_000, 8_000, 8_000]);
    }

    #[test]
    fn a_successful_probe_closes_the_circuit() {
        let mut b = BreakerState::Open {
            until_ms: 0,
            cooldown_ms: 1_000,
        };
        assert_eq!(b.admit(0, 100), Admission::Probe);
        b.on_success();
        assert_eq!(
            b,
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
        assert_eq!(b.admit(1, 100), Admission::Send);
    }

    #[test]
    fn state_serialises_readably() {
        let json = serde_json::to_string(&BreakerState::Open {
            until_ms: 5,
            cooldown_ms: 1,
        })
        .unwrap();
        assert_eq!(json, r#"{"state":"open","until_ms":5,"cooldown_ms":1}"#);
    }
}
