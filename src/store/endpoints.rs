//! Per-endpoint state shared by every replica (the circuit breaker, the
//! probe lease, how long the endpoint has been failing) and the
//! per-subscription rate limits. The decisions are taken atomically in Lua
//! (`endpoint_record.lua`, `endpoint_probe.lua`, `rate.lua`) following the
//! pure rules of `delivery::breaker` and `delivery::ratelimit`.

use uuid::Uuid;

use super::{scripts, Store, StoreError};
use crate::delivery::breaker::{BreakerConfig, Circuit, Open, Probe, Signal};
use crate::delivery::ratelimit::Gcra;

/// An endpoint's hash expires this long after its last write: long enough
/// to outlive any failure streak still being retried, short enough that the
/// state of endpoints nobody sends to any more goes away.
pub const ENDPOINT_TTL_MS: i64 = 10 * 86_400_000;

/// The fields of an endpoint's hash, in the order `endpoint.lua` returns them.
const FIELDS: [&str; 9] = [
    "v",
    "failures",
    "open_until",
    "cooldown",
    "probe",
    "probe_at",
    "probe_until",
    "last_success",
    "failing_since",
];

/// What is known about one endpoint (a webhook URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointState {
    /// Bumped by every change: of two copies, the higher is newer.
    pub version: u64,
    pub circuit: Circuit,
    pub last_success_ms: Option<i64>,
    /// Time of the first failure since the last success.
    pub failing_since_ms: Option<i64>,
}

impl EndpointState {
    /// Decodes the fields listed in [`FIELDS`].
    fn decode(f: &[Option<String>]) -> Result<Self, StoreError> {
        if f.len() != FIELDS.len() {
            return Err(StoreError::Internal(format!(
                "endpoint state has {} fields",
                f.len()
            )));
        }
        let int = |i: usize| f[i].as_deref().and_then(|v| v.parse::<i64>().ok());
        let open = int(2).map(|until_ms| Open {
            until_ms,
            cooldown_ms: int(3).unwrap_or(0),
            probe: match (&f[4], int(5), int(6)) {
                (Some(token), Some(started_ms), Some(until_ms)) => Some(Probe {
                    token: token.clone(),
                    started_ms,
                    until_ms,
                }),
                _ => None,
            },
        });
        Ok(Self {
            version: int(0).unwrap_or(0).max(0) as u64,
            circuit: Circuit {
                failures: int(1).unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                open,
            },
            last_success_ms: int(7),
            failing_since_ms: int(8),
        })
    }
}

impl Store {
    pub async fn endpoint_state(&self, url: &str) -> Result<EndpointState, StoreError> {
        let key = self.keys.endpoint(url);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg(&FIELDS[..]);
        let mut conn = self.conn();
        let f: Vec<Option<String>> = self
            .run(async move { cmd.query_async(&mut conn).await })
            .await?;
        EndpointState::decode(&f)
    }

    /// Records what an attempt at `now_ms` says about `url` (`probe`: the
    /// lease token when it was the probe) and moves the circuit; returns
    /// the state after.
    pub async fn record_endpoint(
        &self,
        url: &str,
        signal: Signal,
        probe: Option<&str>,
        cfg: &BreakerConfig,
        now_ms: i64,
    ) -> Result<EndpointState, StoreError> {
        let signal = match signal {
            Signal::Success => "success",
            Signal::Failure => "failure",
            Signal::Neutral => "neutral",
        };
        let fields = self
            .call(&scripts::EndpointRecord {
                url,
                now_ms,
                signal,
                probe: probe.unwrap_or(""),
                failure_threshold: cfg.failure_threshold,
                base_cooldown_ms: cfg.base_cooldown_ms,
                max_cooldown_ms: cfg.max_cooldown_ms,
                ttl_ms: ENDPOINT_TTL_MS,
            })
            .await?;
        EndpointState::decode(&fields)
    }

    /// Tries to take the probe lease of `url`'s open circuit for `token`
    /// (for `lease_ms`); returns whether it was taken and the state after.
    pub async fn take_probe(
        &self,
        url: &str,
        token: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<(bool, EndpointState), StoreError> {
        let (taken, fields) = self
            .call(&scripts::EndpointProbe {
                url,
                now_ms,
                token,
                lease_ms,
                ttl_ms: ENDPOINT_TTL_MS,
            })
            .await?;
        Ok((taken, EndpointState::decode(&fields)?))
    }

    /// Takes one send from a subscription's rate limit at `now_ms`:
    /// `Ok(())`, or `Err(ms to wait)` wrapped in the store's result.
    pub async fn take_rate(
        &self,
        account: &Uuid,
        subscription: &Uuid,
        limit: &Gcra,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.call(&scripts::Rate {
            account,
            subscription,
            now_ms,
            interval_ms: limit.interval_ms,
            burst: limit.burst,
        })
        .await
    }
}
