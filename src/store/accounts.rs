//! Accounts and their API keys.

use std::collections::HashMap;

use redis::AsyncCommands;
use uuid::Uuid;

use super::events::IngestOutcome;
use super::{scripts, Store, StoreError};
use crate::domain::event::NewEvent;
use crate::domain::notice::{Notice, NoticeKind};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: Uuid,
    pub name: String,
    pub contact_email: String,
    /// SHA-256 of the current API key.
    pub key_hash: String,
    pub created_at_ms: i64,
    pub key_rotated_at_ms: Option<i64>,
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The new key is in force and the event is recorded.
    Rotated(IngestOutcome),
    /// The presented key had been rotated away meanwhile.
    Stale,
}

impl AccountRecord {
    fn from_hash(mut h: HashMap<String, String>) -> Option<Self> {
        let mut take = |k: &str| h.remove(k);
        Some(Self {
            id: Uuid::parse_str(&take("id")?).ok()?,
            name: take("name")?,
            contact_email: take("contact_email")?,
            key_hash: take("key_hash")?,
            created_at_ms: take("created_at")?.parse().ok()?,
            key_rotated_at_ms: take("key_rotated_at").and_then(|v| v.parse().ok()),
        })
    }
}

impl Store {
    /// Stores a new account and lists it in its shard, atomically.
    pub async fn create_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let shard = self.keys.shard_of(&a.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                self.keys.account(&a.id),
                &[
                    ("id", a.id.to_string()),
                    ("name", a.name.clone()),
                    ("contact_email", a.contact_email.clone()),
                    ("key_hash", a.key_hash.clone()),
                    ("created_at", a.created_at_ms.to_string()),
                    // Its route fields (`routes:<type>`, kept by
                    // `put_subscription`) are complete: none yet.
                    ("routes_v", "2".to_owned()),
                ],
            )
            .ignore()
            .zadd(self.keys.accounts(shard), a.id.to_string(), a.created_at_ms)
            .ignore();
        let mut conn = self.conn();
        self.run(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    pub async fn get_account(&self, id: &Uuid) -> Result<Option<AccountRecord>, StoreError> {
        let mut conn = self.conn();
        let key = self.keys.account(id);
        let h: HashMap<String, String> = self.run(async move { conn.hgetall(key).await }).await?;
        if h.is_empty() {
            return Ok(None);
        }
        AccountRecord::from_hash(h)
            .map(Some)
            .ok_or_else(|| StoreError::Internal(format!("account {id} is malformed")))
    }

    /// Swaps the key hash from `old_hash` to `new_hash` and records the
    /// `api_keys.rotated` event, in one script.
    pub async fn rotate_key(
        &self,
        account: &Uuid,
        old_hash: &str,
        new_hash: &str,
        event: &NewEvent,
        now_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        // The account's contact hears of it by email, recorded in the same
        // step.
        let mut notice = Notice::new(*account, NoticeKind::ApiKeyRotated, now_ms);
        notice.event_id = Some(event.id);
        let rotated = self
            .call(&scripts::RotateKey {
                account,
                now_ms,
                idempotency_ms: self.retention.idempotency_ms,
                old_hash,
                new_hash,
                event,
                notice_id: notice.id,
                notice_json: notice.to_json(),
            })
            .await?;
        Ok(rotated.map_or(RotateOutcome::Stale, RotateOutcome::Rotated))
    }
}
