//! The circuit breaker of one endpoint, as a pure state machine.
//!
//! Closed: requests flow; consecutive failures are counted. At the threshold
//! the circuit opens for a cooldown. Open: nothing is sent (deliveries wait
//! without spending attempts) until the cooldown ends. Then one probe is let
//! through (half-open) under a lease: its success closes the circuit, its
//! failure opens it again with the cooldown doubled, up to a cap. A failure
//! of a request sent before the circuit opened changes nothing: only the
//! probe speaks for the endpoint while the circuit is open. Times are ms
//! since the epoch, passed in, so tests control the clock.
//!
//! The state is shared by every replica: `store/lua/endpoint_record.lua` and
//! `endpoint_probe.lua` apply [`Circuit::record`] and [`Circuit::try_probe`]
//! atomically in Redis (their tests run the same steps through both). A
//! deliverer admits requests with [`Circuit::admit`] on a copy at most
//! [`VIEW_MAX_AGE_MS`] old.

use serde::Serialize;

/// Longest a replica acts on a copy of the shared circuit without reading
/// it again: the bound on how long a replica keeps sending to an endpoint
/// whose circuit another replica opened.
pub const VIEW_MAX_AGE_MS: i64 = 1_000;

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

/// The shared circuit of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Circuit {
    /// Consecutive failures while closed.
    pub failures: u32,
    /// Set while the circuit is open (or half-open).
    pub open: Option<Open>,
}

/// An open circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// When a probe may be sent, ms.
    pub until_ms: i64,
    /// The cooldown that set `until_ms`; a failed probe doubles it.
    pub cooldown_ms: i64,
    /// The probe under way, if any (half-open).
    pub probe: Option<Probe>,
}

/// The lease of the one probe the fleet may have under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Whose probe it is: only its result counts.
    pub token: String,
    pub started_ms: i64,
    /// Past this the probe counts as lost and another may go.
    pub until_ms: i64,
}

/// What an attempt says about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It answered 2xx.
    Success,
    /// It failed (an error status, a timeout, no connection).
    Failure,
    /// Nothing about its health (410 Gone: it answered, but wants no more
    /// of this subscription).
    Neutral,
}

/// What the breaker allows now, as far as this copy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send normally.
    Send,
    /// The cooldown is over: ask for the probe lease before sending.
    Probe,
    /// Do not send; try again at this time (ms).
    WaitUntil(i64),
}

impl Open {
    fn probing(&self, now_ms: i64) -> Option<&Probe> {
        self.probe.as_ref().filter(|p| now_ms < p.until_ms)
    }
}

impl Circuit {
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// May a request go now? While another's probe is under way, the answer
    /// is to look again when it must have ended, or after
    /// [`VIEW_MAX_AGE_MS`] if sooner (it may close the circuit).
    pub fn admit(&self, now_ms: i64) -> Admission {
        match &self.open {
            None => Admission::Send,
            Some(open) if now_ms < open.until_ms => Admission::WaitUntil(open.until_ms),
            Some(open) => match open.probing(now_ms) {
                Some(p) => Admission::WaitUntil(p.until_ms.min(now_ms + VIEW_MAX_AGE_MS)),
                None => Admission::Probe,
            },
        }
    }

    /// Takes the probe lease for `token` if the cooldown is over and no
    /// other probe is under way. Returns whether it was taken.
    pub fn try_probe(&mut self, token: &str, now_ms: i64, lease_ms: i64) -> bool {
        match &mut self.open {
            Some(open) if now_ms >= open.until_ms && open.probing(now_ms).is_none() => {
                open.probe = Some(Probe {
                    token: token.to_owned(),
                    started_ms: now_ms,
                    until_ms: now_ms + lease_ms,
                });
                true
            }
            _ => false,
        }
    }

    /// Records an attempt's `signal` at `now_ms`; `probe` is the lease token
    /// when the attempt was sent as the probe.
    pub fn record(
        &mut self,
        signal: Signal,
        probe: Option<&str>,
        now_ms: i64,
        cfg: &BreakerConfig,
    ) {
        let own_probe =
            |open: &Open| probe.is_some() && open.probe.as_ref().map(|p| p.token.as_str()) == probe;
        match signal {
            Signal::Success => *self = Circuit::default(),
            Signal::Failure => match &mut self.open {
                None => {
                    self.failures += 1;
                    if self.failures >= cfg.failure_threshold {
                        self.failures = 0;
                        self.open = Some(Open {
                            until_ms: now_ms + cfg.base_cooldown_ms,
                            cooldown_ms: cfg.base_cooldown_ms,
                            probe: None,
                        });
                    }
                }
                Some(open) if own_probe(open) => {
                    let next = (open.cooldown_ms * 2).min(cfg.max_cooldown_ms);
                    *open = Open {
                        until_ms: now_ms + next,
                        cooldown_ms: next,
                        probe: None,
                    };
                }
                // Sent before the circuit opened: already counted in.
                Some(_) => {}
            },
            Signal::Neutral => {
                if let Some(open) = &mut self.open {
                    if own_probe(open) {
                        open.probe = None;
                    }
                }
            }
        }
    }

    /// The state as the API shows it.
    pub fn state(&self, now_ms: i64) -> BreakerState {
        match &self.open {
            None => BreakerState::Closed {
                consecutive_failures: self.failures,
            },
            Some(open) => match open.probing(now_ms) {
                Some(p) => BreakerState::HalfOpen {
                    cooldown_ms: open.cooldown_ms,
                    probe_started_ms: p.started_ms,
                },
                None => BreakerState::Open {
                    until_ms: open.until_ms,
                    cooldown_ms: open.cooldown_ms,
                },
            },
        }
    }
}

/// The breaker's state as `GET /v1/subscriptions/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
        /// When the probe under way was sent.
        probe_started_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: BreakerConfig = BreakerConfig {
        failure_threshold: 5,
        base_cooldown_ms: 1_000,
        max_cooldown_ms: 8_000,
    };

    fn open(until_ms: i64, cooldown_ms: i64) -> Circuit {
        Circuit {
            failures: 0,
            open: Some(Open {
                until_ms,
                cooldown_ms,
                probe: None,
            }),
        }
    }

    fn cooldown(c: &Circuit) -> i64 {
        c.open.as_ref().map_or(0, |o| o.cooldown_ms)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let mut c = Circuit::default();
        for i in 0..4 {
            c.record(Signal::Failure, None, i, &CFG);
            assert_eq!(c.admit(i), Admission::Send);
        }
        c.record(Signal::Failure, None, 10, &CFG);
        assert!(c.is_open());
        assert_eq!(c.admit(500), Admission::WaitUntil(1_010));
        assert_eq!(c.admit(1_010), Admission::Probe);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut c = Circuit::default();
        for i in 0..4 {
            c.record(Signal::Failure, None, i, &CFG);
        }
        c.record(Signal::Success, None, 5, &CFG);
        for i in 0..4 {
            c.record(Signal::Failure, None, i, &CFG);
        }
        assert!(!c.is_open());
    }

    #[test]
    fn gone_is_not_a_success() {
        let mut c = Circuit::default();
        for i in 0..4 {
            c.record(Signal::Failure, None, i, &CFG);
        }
        c.record(Signal::Neutral, None, 5, &CFG);
        assert_eq!(c.failures, 4);
        c.record(Signal::Failure, None, 6, &CFG);
        assert!(c.is_open(), "a 410 in between did not reset the count");
    }

    #[test]
    fn failures_in_flight_when_the_circuit_opened_do_not_lengthen_the_cooldown() {
        let mut c = Circuit::default();
        for i in 0..5 {
            c.record(Signal::Failure, None, i, &CFG);
        }
        // Seven more requests were under way and fail now.
        for i in 0..7 {
            c.record(Signal::Failure, None, 10 + i, &CFG);
        }
        assert_eq!(c, open(1_004, 1_000));
        assert_eq!(c.admit(1_004), Admission::Probe);
    }

    #[test]
    fn only_a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let mut c = open(0, 1_000);
        let mut cooldowns = vec![];
        for (i, now) in [0, 10_000, 20_000, 30_000, 40_000].into_iter().enumerate() {
            let token = format!("p{i}");
            assert_eq!(c.admit(now), Admission::Probe);
            assert!(c.try_probe(&token, now, 100));
            // A late failure of someone else's request changes nothing.
            c.record(Signal::Failure, Some("not-the-probe"), now, &CFG);
            c.record(Signal::Failure, None, now, &CFG);
            assert_eq!(cooldown(&c), cooldowns.last().copied().unwrap_or(1_000));
            c.record(Signal::Failure, Some(&token), now, &CFG);
            assert_eq!(c.admit(now), Admission::WaitUntil(now + cooldown(&c)));
            cooldowns.push(cooldown(&c));
        }
        assert_eq!(cooldowns, [2_000, 4_000, 8_000, 8_000, 8_000]);
    }

    #[test]
    fn one_probe_at_a_time_and_a_lost_one_is_replaced() {
        let mut c = open(1_000, 1_000);
        assert_eq!(c.admit(999), Admission::WaitUntil(1_000));
        assert!(!c.try_probe("a", 999, 100));
        assert!(c.try_probe("a", 1_000, 100));
        assert!(!c.try_probe("b", 1_050, 100));
        assert_eq!(c.admit(1_050), Admission::WaitUntil(1_100));
        // The probe was lost (no answer within its lease): another may go,
        // and the lost one's late failure no longer counts.
        assert_eq!(c.admit(1_100), Admission::Probe);
        assert!(c.try_probe("b", 1_100, 100));
        c.record(Signal::Failure, Some("a"), 1_120, &CFG);
        assert_eq!(cooldown(&c), 1_000);
    }

    #[test]
    fn waiting_on_anothers_probe_looks_again_within_the_view_age() {
        let mut c = open(0, 1_000);
        assert!(c.try_probe("a", 0, 60_000));
        assert_eq!(c.admit(10), Admission::WaitUntil(10 + VIEW_MAX_AGE_MS));
    }

    #[test]
    fn a_gone_probe_frees_the_lease_without_closing() {
        let mut c = open(0, 1_000);
        assert!(c.try_probe("a", 0, 60_000));
        c.record(Signal::Neutral, Some("a"), 5, &CFG);
        assert_eq!(c, open(0, 1_000));
        assert_eq!(c.admit(5), Admission::Probe);
    }

    #[test]
    fn a_successful_probe_closes_the_circuit() {
        let mut c = open(0, 1_000);
        assert!(c.try_probe("a", 0, 100));
        c.record(Signal::Success, Some("a"), 1, &CFG);
        assert_eq!(c, Circuit::default());
        assert_eq!(c.admit(1), Admission::Send);
    }

    #[test]
    fn state_serialises_readably() {
        let mut c = open(5, 1);
        let json = serde_json::to_string(&c.state(0)).unwrap();
        assert_eq!(json, r#"{"state":"open","until_ms":5,"cooldown_ms":1}"#);
        assert!(c.try_probe("a", 5, 10));
        assert_eq!(
            c.state(6),
            BreakerState::HalfOpen {
                cooldown_ms: 1,
                probe_started_ms: 5
            }
        );
    }
}
