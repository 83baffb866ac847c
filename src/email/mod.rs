//! Email: subscriptions with an email channel, digests and operational
//! notices, sent through SMTP with lettre.
//!
//! - [`transport`]: `smtp.url` → a pooled lettre transport; SMTP replies
//!   judged (accepted / retry / refused).
//! - [`message`]: the messages, from templates (pure).
//! - [`notifier`]: the `EmailNotifier` actor, run by the delivery engine
//!   through the [`notifier::Owner`] trait (this module imports nothing
//!   from `delivery`).

pub mod message;
pub mod notifier;
pub mod transport;

use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::domain::delivery::Outcome;
use crate::settings::Settings;
use message::Composer;
use transport::{SmtpConfig, SmtpVerdict};

/// Everything the notifier needs to write and send.
pub struct Mailer {
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    pub composer: Composer,
    /// Most messages in flight (the SMTP pool's size).
    pub max_connections: usize,
    pub digest_latest: usize,
    pub digest_max_events: usize,
}

impl Mailer {
    /// Builds the transport (connects to nothing yet). Must run inside a
    /// Tokio runtime: the SMTP pool starts its idle-connection reaper.
    pub fn from_settings(s: &Settings) -> Result<Self, String> {
        let smtp = SmtpConfig::from_settings(&s.smtp).map_err(|m| format!("smtp.url {m}"))?;
        Ok(Self {
            transport: smtp.transport()?,
            composer: Composer::from_settings(s)?,
            max_connections: smtp.max_connections as usize,
            digest_latest: s.email.digest_latest.get(),
            digest_max_events: s.email.digest_max_events.get(),
        })
    }
}

/// What to do after an SMTP attempt: accepted → done; refused (5xx) → failed
/// at once with the server's reply; anything else → retried on the
/// schedule, failed once it is used up. `retry_delay` is the schedule: the
/// wait after `attempts_made` attempts, `None` once it is used up.
pub fn next_step(
    verdict: SmtpVerdict,
    reply: &str,
    attempts_made: u32,
    retry_delay: impl FnOnce(u32) -> Option<Duration>,
    now_ms: i64,
) -> Outcome {
    match verdict {
        SmtpVerdict::Accepted => Outcome::Success,
        SmtpVerdict::Permanent => Outcome::Fail {
            error: format!("the SMTP server refused the message: {reply}"),
        },
        SmtpVerdict::Transient => match retry_delay(attempts_made) {
            Some(d) => Outcome::Retry {
                due_ms: now_ms + d.as_millis() as i64,
            },
            None => Outcome::Fail {
                error: format!("gave up after {attempts_made} attempts: {reply}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_outcomes_follow_the_reply() {
        // Wait 5 s after the first attempt, 60 s after the second, then stop.
        let policy = |made: u32| {
            [Duration::from_secs(5), Duration::from_secs(60)]
                .get(made as usize - 1)
                .copied()
        };
        assert_eq!(
            next_step(SmtpVerdict::Accepted, "250 OK", 1, policy, 0),
            Outcome::Success
        );
        assert_eq!(
            next_step(SmtpVerdict::Transient, "451 later", 1, policy, 1_000),
            Outcome::Retry { due_ms: 6_000 }
        );
        assert_eq!(
            next_step(SmtpVerdict::Transient, "451 later", 2, policy, 1_000),
            Outcome::Retry { due_ms: 61_000 }
        );
        assert!(matches!(
            next_step(SmtpVerdict::Transient, "451 later", 3, policy, 0),
            Outcome::Fail { error } if error.contains("gave up after 3")
        ));
        assert!(matches!(
            next_step(SmtpVerdict::Permanent, "550 no such user", 1, policy, 0),
            Outcome::Fail { error } if error.contains("550 no such user")
        ));
    }
}
