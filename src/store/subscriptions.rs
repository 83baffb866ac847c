//! Subscriptions and the routing sets ingest fans out through.

use uuid::Uuid;

use super::{Cursor, Page, Store, StoreError};
use crate::domain::notice::Notice;
use crate::domain::subscription::Subscription;

/// What a subscription write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Ok,
    /// Create: the id is taken.
    Exists,
    /// Update/delete: it is gone.
    Missing,
    /// Update/delete: someone else changed it first.
    Conflict,
    /// Create: the account holds the maximum number of subscriptions.
    Limit,
}

impl Store {
    /// Creates (`expected_version` None) or replaces a subscription, and
    /// its routing entries, atomically; announces the change to replicas.
    pub async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
        max_per_account: usize,
    ) -> Result<PutOutcome, StoreError> {
        let json = serde_json::to_string(sub).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.write_subscription(sub, expected_version, Some(json), max_per_account, None)
            .await
    }

    /// Replaces a subscription at `expected_version` and records `notice`
    /// for the account's contact in the same step.
    pub async fn put_subscription_noting(
        &self,
        sub: &Subscription,
        expected_version: u64,
        notice: &Notice,
        now_ms: i64,
    ) -> Result<PutOutcome, StoreError> {
        let json = serde_json::to_string(sub).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.write_subscription(
            sub,
            Some(expected_version),
            Some(json),
            0,
            Some((notice, now_ms)),
        )
        .await
    }

    /// Deletes a subscription at `sub.version`.
    pub async fn delete_subscription(&self, sub: &Subscription) -> Result<PutOutcome, StoreError> {
        self.write_subscription(sub, Some(sub.version), None, 0, None)
            .await
    }

    async fn write_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
        json: Option<String>,
        max_per_account: usize,
        notice: Option<(&Notice, i64)>,
    ) -> Result<PutOutcome, StoreError> {
        let a = &sub.account_id;
        let mut inv = self
            .scripts
            .put_subscription
            .key(self.keys.subscription(a, &sub.id));
        inv.key(self.keys.subscriptions(a))
            .arg(self.keys.base(a))
            .arg(a.to_string())
            .arg(sub.id.to_string())
            .arg(expected_version.map(|v| v.to_string()).unwrap_or_default())
            .arg(sub.version)
            .arg(json.unwrap_or_default())
            .arg(sub.created_at_ms)
            .arg(if sub.enabled { "1" } else { "0" })
            .arg(sub.event_types.join(" "))
            .arg(max_per_account)
            .arg(self.keys.subscription_changes());
        if let Some((notice, now_ms)) = notice {
            inv.arg(notice.id.to_string())
                .arg(notice.to_json())
                .arg(now_ms);
        }
        let mut conn = self.conn();
        let reply: String = self
            .run(async move { inv.invoke_async(&mut conn).await })
            .await?;
        Ok(match reply.as_str() {
            "ok" => PutOutcome::Ok,
            "exists" => PutOutcome::Exists,
            "missing" => PutOutcome::Missing,
            "conflict" => PutOutcome::Conflict,
            "limit" => PutOutcome::Limit,
            other => {
                return Err(StoreError::Internal(format!(
                    "subscription write `{other}`"
                )))
            }
        })
    }

    /// One subscription of `account` (None for another account's).
    pub async fn get_subscription(
        &self,
        account: &Uuid,
        id: &Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        let key = self.keys.subscription(account, id);
        let mut conn = self.conn();
        let data: Option<String> = self
            .run(async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg("data")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(data) = data else { return Ok(None) };
        let sub: Subscription = serde_json::from_str(&data)
            .map_err(|e| StoreError::Internal(format!("subscription {id}: {e}")))?;
        Ok((sub.account_id == *account).then_some(sub))
    }

    /// A page of `account`'s subscriptions, newest first.
    pub async fn list_subscriptions(
        &self,
        account: &Uuid,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Subscription>, StoreError> {
        let ids = self
            .page_ids(self.keys.subscriptions(account), None, None, cursor, limit)
            .await?;
        if ids.items.is_empty() {
            return Ok(Page {
                items: vec![],
                next: None,
            });
        }
        let mut pipe = redis::pipe();
        for (id, _) in &ids.items {
            if let Ok(id) = Uuid::parse_str(id) {
                pipe.cmd("HGET")
                    .arg(self.keys.subscription(account, &id))
                    .arg("data");
            }
        }
        let mut conn = self.conn();
        let rows: Vec<Option<String>> = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        let items = rows
            .into_iter()
            .flatten()
            .filter_map(|d| serde_json::from_str::<Subscription>(&d).ok())
            .filter(|s| s.account_id == *account)
            .collect();
        Ok(Page {
            items,
            next: ids.next,
        })
    }
}
