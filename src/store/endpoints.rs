//! Per-endpoint state shared by every replica: the circuit breaker and how
//! long the endpoint has been failing.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{Store, StoreError};
use crate::delivery::breaker::BreakerState;

/// What is known about one endpoint (a webhook URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointState {
    pub breaker: BreakerState,
    pub last_success_ms: Option<i64>,
    /// Time of the first failure since the last success.
    pub failing_since_ms: Option<i64>,
}

impl Store {
    pub async fn endpoint_state(&self, url: &str) -> Result<EndpointState, StoreError> {
        let key = self.keys.endpoint(url);
        let mut conn = self.conn();
        let h: HashMap<String, String> = self.run(async move { conn.hgetall(key).await }).await?;
        Ok(EndpointState {
            breaker: h
                .get("breaker")
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default(),
            last_success_ms: h.get("last_success").and_then(|v| v.parse().ok()),
            failing_since_ms: h.get("failing_since").and_then(|v| v.parse().ok()),
        })
    }

    /// Stores the breaker and the outcome of an attempt at `now_ms`; returns
    /// since when the endpoint has been failing (None after a success).
    pub async fn record_endpoint(
        &self,
        url: &str,
        breaker: &BreakerState,
        success: Option<bool>,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let key = self.keys.endpoint(url);
        let json =
            serde_json::to_string(breaker).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.hset(&key, "breaker", json).ignore();
        match success {
            Some(true) => {
                pipe.hset(&key, "last_success", now_ms)
                    .ignore()
                    .hdel(&key, "failing_since")
                    .ignore();
            }
            Some(false) => {
                pipe.hset_nx(&key, "failing_since", now_ms).ignore();
            }
            None => {}
        }
        pipe.hget(&key, "failing_since");
        let mut conn = self.conn();
        let (since,): (Option<i64>,) = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(since)
    }
}
