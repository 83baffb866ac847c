//! What follows an attempt, as pure functions; the deliverer only carries
//! the effects out. [`decide`] turns the judged answer into the delivery's
//! outcome, what to record about the endpoint and whether the subscription
//! goes off (410). The endpoint's state after recording (shared by the
//! fleet, so only known then) goes through [`follow_up`]: an endpoint
//! failing for days disables the subscription, one failing with its circuit
//! open for a while is reported to the account.

use super::breaker::{Circuit, Signal};
use super::notification::{next_step, Verdict};
use super::retry::RetryPolicy;
use crate::domain::delivery::Outcome;
use crate::store::EndpointState;

/// One attempt, judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempted {
    pub verdict: Verdict,
    /// Attempts made on the delivery, this one included.
    pub attempts_made: u32,
    /// It was sent as the circuit's half-open probe.
    pub probe: bool,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// How the delivery is recorded.
    pub outcome: Outcome,
    /// What to record about the endpoint; `None` when it would say nothing
    /// new (another success on a healthy endpoint written moments ago).
    pub endpoint: Option<Signal>,
    /// Switch the subscription off, for this reason.
    pub disable: Option<String>,
}

/// Why the subscription of a 410 is disabled.
pub const GONE_REASON: &str = "the endpoint answered 410 Gone";

/// Decides after `attempt` at `now_ms`. `circuit` is this replica's copy of
/// the endpoint's circuit; `success_written_recently` says a success was
/// recorded for the endpoint moments ago (successes on a healthy endpoint
/// are written at most once a second). `unit` is uniform in [0, 1), for the
/// retry jitter.
pub fn decide(
    attempt: &Attempted,
    circuit: &Circuit,
    success_written_recently: bool,
    policy: &RetryPolicy,
    now_ms: i64,
    unit: f64,
) -> Effects {
    let outcome = next_step(attempt.verdict, attempt.attempts_made, policy, now_ms, unit);
    let (endpoint, disable) = match attempt.verdict {
        Verdict::Delivered => {
            let healthy = circuit.failures == 0 && !circuit.is_open();
            let news = attempt.probe || !healthy || !success_written_recently;
            (news.then_some(Signal::Success), None)
        }
        // The endpoint answered on purpose: nothing about its health, but a
        // probe's lease is freed.
        Verdict::Gone => (
            attempt.probe.then_some(Signal::Neutral),
            Some(GONE_REASON.to_owned()),
        ),
        Verdict::RetryAfter(_) | Verdict::Failed => (Some(Signal::Failure), None),
    };
    Effects {
        outcome,
        endpoint,
        disable,
    }
}

/// Thresholds of [`follow_up`], from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpConfig {
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_ms: i64,
    /// An endpoint failing this long with its circuit open is reported.
    pub circuit_alert_ms: i64,
}

/// What the endpoint's shared state calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Disable the subscription, for this reason.
    Disable(String),
    /// Tell the account the endpoint has been failing since this time (ms)
    /// with its circuit open.
    Alert { failing_since_ms: i64 },
}

/// Decides on the endpoint's state as recorded after an attempt.
pub fn follow_up(after: &EndpointState, now_ms: i64, cfg: &FollowUpConfig) -> Option<FollowUp> {
    let since = after.failing_since_ms?;
    if now_ms - since >= cfg.disable_after_ms {
        let hours = cfg.disable_after_ms / 3_600_000;
        return Some(FollowUp::Disable(format!(
            "no successful delivery to the endpoint for {hours} hours"
        )));
    }
    (after.circuit.is_open() && now_ms - since >= cfg.circuit_alert_ms).then_some(FollowUp::Alert {
        failing_since_ms: since,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::delivery::breaker::Open;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(vec![Duration::from_secs(5)], 0.0)
    }

    fn attempt(verdict: Verdict, probe: bool) -> Attempted {
        Attempted {
            verdict,
            attempts_made: 1,
            probe,
        }
    }

    fn decide_on(verdict: Verdict, probe: bool, circuit: &Circuit, recent: bool) -> Effects {
        decide(
            &attempt(verdict, probe),
            circuit,
            recent,
            &policy(),
            1_000,
            0.5,
        )
    }

    fn open_circuit() -> Circuit {
        Circuit {
            failures: 0,
            open: Some(Open {
                until_ms: 0,
                cooldown_ms: 1_000,
                probe: None,
            }),
        }
    }

    #[test]
    fn gone_disables_the_subscription_and_is_no_success() {
        let failing = Circuit {
            failures: 3,
            open: None,
        };
        let e = decide_on(Verdict::Gone, false, &failing, false);
        assert_eq!(e.endpoint, None, "a 410 neither closes nor counts");
        assert_eq!(e.disable.as_deref(), Some(GONE_REASON));
        assert!(matches!(e.outcome, Outcome::Fail { .. }));
        // As the probe it frees the lease, and still closes nothing.
        let e = decide_on(Verdict::Gone, true, &open_circuit(), false);
        assert_eq!(e.endpoint, Some(Signal::Neutral));
    }

    #[test]
    fn failures_are_always_recorded() {
        for v in [Verdict::Failed, Verdict::RetryAfter(Duration::from_secs(1))] {
            let e = decide_on(v, false, &Circuit::default(), true);
            assert_eq!(e.endpoint, Some(Signal::Failure));
            assert_eq!(e.disable, None);
            assert!(matches!(e.outcome, Outcome::Retry { .. }));
        }
    }

    #[test]
    fn successes_on_a_healthy_endpoint_are_written_at_most_once_a_second() {
        let healthy = Circuit::default();
        let e = decide_on(Verdict::Delivered, false, &healthy, true);
        assert_eq!((e.outcome, e.endpoint), (Outcome::Success, None));
        let e = decide_on(Verdict::Delivered, false, &healthy, false);
        assert_eq!(e.endpoint, Some(Signal::Success));
        // Resetting a count, closing a circuit or ending a probe is news.
        let failing = Circuit {
            failures: 1,
            open: None,
        };
        assert_eq!(
            decide_on(Verdict::Delivered, false, &failing, true).endpoint,
            Some(Signal::Success)
        );
        assert_eq!(
            decide_on(Verdict::Delivered, false, &open_circuit(), true).endpoint,
            Some(Signal::Success)
        );
        assert_eq!(
            decide_on(Verdict::Delivered, true, &healthy, true).endpoint,
            Some(Signal::Success)
        );
    }

    const CFG: FollowUpConfig = FollowUpConfig {
        disable_after_ms: 120 * 3_600_000,
        circuit_alert_ms: 60_000,
    };

    fn state(failing_since_ms: Option<i64>, circuit: Circuit) -> EndpointState {
        EndpointState {
            circuit,
            failing_since_ms,
            ..EndpointState::default()
        }
    }

    #[test]
    fn an_endpoint_failing_for_days_is_disabled() {
        let now = 200 * 3_600_000;
        let s = state(Some(now - 120 * 3_600_000), Circuit::default());
        assert_eq!(
            follow_up(&s, now, &CFG),
            Some(FollowUp::Disable(
                "no successful delivery to the endpoint for 120 hours".into()
            ))
        );
    }

    #[test]
    fn an_open_circuit_failing_long_enough_is_reported() {
        let now = 1_000_000;
        let s = state(Some(now - 60_000), open_circuit());
        assert_eq!(
            follow_up(&s, now, &CFG),
            Some(FollowUp::Alert {
                failing_since_ms: now - 60_000
            })
        );
        // Not yet long enough, or the circuit is closed, or it succeeded.
        assert_eq!(
            follow_up(&state(Some(now - 59_999), open_circuit()), now, &CFG),
            None
        );
        assert_eq!(
            follow_up(&state(Some(now - 60_000), Circuit::default()), now, &CFG),
            None
        );
        assert_eq!(follow_up(&state(None, open_circuit()), now, &CFG), None);
    }
}
