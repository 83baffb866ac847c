//! Subscriptions and the routing sets ingest fans out through.

use redis::AsyncCommands;
use uuid::Uuid;

use super::{scripts, Cursor, Page, Store, StoreError};
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
    /// A subscription as stored: its signing secrets sealed.
    fn subscription_to_json(&self, sub: &Subscription) -> Result<String, StoreError> {
        let owner = sub.id.to_string();
        let mut stored = sub.clone();
        for secret in [&mut stored.secret, &mut stored.previous_secret] {
            if let Some(s) = secret.as_mut() {
                *s = self.sealer.seal(s, &owner);
            }
        }
        serde_json::to_string(&stored).map_err(|e| StoreError::Internal(e.to_string()))
    }

    /// Rewrites every subscription whose signing secrets are not sealed with
    /// the current key (after a key rotation, or data from before
    /// encryption). Returns (rewritten, seen).
    pub async fn reencrypt_subscriptions(&self) -> Result<(u64, u64), StoreError> {
        let (mut rewritten, mut seen) = (0, 0);
        for shard in 0..self.keys.shards() {
            let accounts_key = self.keys.accounts(shard);
            let mut conn = self.conn();
            let accounts: Vec<String> = self
                .run(async move { conn.zrange(accounts_key, 0, -1).await })
                .await?;
            for account in accounts.iter().filter_map(|a| Uuid::parse_str(a).ok()) {
                let subs_key = self.keys.subscriptions(&account);
                let mut conn = self.conn();
                let ids: Vec<String> = self
                    .run(async move { conn.zrange(subs_key, 0, -1).await })
                    .await?;
                for id in ids.iter().filter_map(|i| Uuid::parse_str(i).ok()) {
                    seen += 1;
                    let key = self.keys.subscription(&account, &id);
                    let mut conn = self.conn();
                    let data: Option<String> = self
                        .run(async move { conn.hget(key, "data").await })
                        .await?;
                    let Some(data) = data else { continue };
                    let raw: serde_json::Value = serde_json::from_str(&data)
                        .map_err(|e| StoreError::Internal(format!("subscription {id}: {e}")))?;
                    let stale = ["secret", "previous_secret"]
                        .iter()
                        .any(|f| raw[*f].as_str().is_some_and(|s| !self.sealer.is_current(s)));
                    if !stale {
                        continue;
                    }
                    let sub = self.subscription_from_json(&data)?;
                    let json = self.subscription_to_json(&sub)?;
                    // Same version: the content is unchanged, and a change
                    // made meanwhile (another version) wins; it seals anew.
                    if self
                        .write_subscription(&sub, Some(sub.version), Some(json), 0, None)
                        .await?
                        == PutOutcome::Ok
                    {
                        rewritten += 1;
                    }
                }
            }
        }
        Ok((rewritten, seen))
    }

    /// A stored subscription with its signing secrets opened.
    pub(super) fn subscription_from_json(&self, json: &str) -> Result<Subscription, StoreError> {
        let mut sub: Subscription = serde_json::from_str(json)
            .map_err(|e| StoreError::Internal(format!("a stored subscription: {e}")))?;
        let owner = sub.id.to_string();
        for secret in [&mut sub.secret, &mut sub.previous_secret] {
            if let Some(s) = secret.as_mut() {
                *s = self.sealer.open(s, &owner).map_err(|e| {
                    StoreError::Internal(format!("subscription {owner}'s signing secret: {e}"))
                })?;
            }
        }
        Ok(sub)
    }

    /// Creates (`expected_version` None) or replaces a subscription, and
    /// its routing entries, atomically; announces the change to replicas.
    pub async fn put_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
        max_per_account: usize,
    ) -> Result<PutOutcome, StoreError> {
        let json = self.subscription_to_json(sub)?;
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
        let json = self.subscription_to_json(sub)?;
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
    /// Its delivery indexes, which the janitor's trim no longer sees,
    /// expire a day after the retention (their deliveries do by then).
    pub async fn delete_subscription(&self, sub: &Subscription) -> Result<PutOutcome, StoreError> {
        let outcome = self
            .write_subscription(sub, Some(sub.version), None, 0, None)
            .await?;
        if outcome == PutOutcome::Ok {
            let ttl = self.retention.events_ms + 86_400_000;
            let mut pipe = redis::pipe();
            for key in [
                self.keys.subscription_deliveries(&sub.account_id, &sub.id),
                self.keys.failed_deliveries(&sub.account_id, &sub.id),
            ] {
                pipe.pexpire(key, ttl).ignore();
            }
            let mut conn = self.conn();
            self.run(async move { pipe.query_async::<()>(&mut conn).await })
                .await?;
        }
        Ok(outcome)
    }

    async fn write_subscription(
        &self,
        sub: &Subscription,
        expected_version: Option<u64>,
        json: Option<String>,
        max_per_account: usize,
        notice: Option<(&Notice, i64)>,
    ) -> Result<PutOutcome, StoreError> {
        self.call(&scripts::PutSubscription {
            sub,
            expected_version,
            json,
            max_per_account,
            notice,
        })
        .await
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
        let sub = self.subscription_from_json(&data)?;
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
            .filter_map(|d| self.subscription_from_json(&d).ok())
            .filter(|s| s.account_id == *account)
            .collect();
        Ok(Page {
            items,
            next: ids.next,
        })
    }
}
