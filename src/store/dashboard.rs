//! What the dashboard keeps in Redis: one-time sign-in links and sessions,
//! both named by the SHA-256 of their token (see `domain::session`), and
//! the reading of an account's notice list.

use std::collections::HashMap;

use redis::AsyncCommands;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::notice::Notice;
use crate::domain::session::{Grant, Scope, Session};

impl Store {
    /// Stores a one-time link's grant under its token's hash for `ttl_ms`.
    pub async fn put_dashboard_link(
        &self,
        token_hash: &str,
        grant: &Grant,
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        let key = self.keys.dashboard_link(token_hash);
        let json = serde_json::to_string(grant).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut conn = self.conn();
        self.run(async move { conn.pset_ex::<_, _, ()>(key, json, ttl_ms).await })
            .await
    }

    /// Takes a link's grant: the first caller gets it, every later one (and
    /// every caller after it expired) gets None. `GETDEL` makes the read and
    /// the removal one step, so two replicas cannot both honour a link.
    pub async fn take_dashboard_link(&self, token_hash: &str) -> Result<Option<Grant>, StoreError> {
        let key = self.keys.dashboard_link(token_hash);
        let mut conn = self.conn();
        let json: Option<String> = self
            .run(async move { redis::cmd("GETDEL").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Stores a new session under its id's hash, expiring after `ttl_ms`.
    pub async fn put_session(
        &self,
        id_hash: &str,
        s: &Session,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("account", s.account_id.to_string()),
                    ("scope", s.scope.as_str().to_owned()),
                    ("csrf", s.csrf.clone()),
                    ("created_at", s.created_at_ms.to_string()),
                    ("expires_at", s.expires_at_ms.to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl_ms)
            .ignore();
        let mut conn = self.conn();
        self.run(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// The session stored under `id_hash`, if it still lives.
    pub async fn get_session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        let mut h: HashMap<String, String> =
            self.run(async move { conn.hgetall(key).await }).await?;
        let mut take = |k: &str| h.remove(k);
        Ok((|| {
            Some(Session {
                account_id: Uuid::parse_str(&take("account")?).ok()?,
                scope: Scope::parse(&take("scope")?)?,
                csrf: take("csrf")?,
                created_at_ms: take("created_at")?.parse().ok()?,
                expires_at_ms: take("expires_at")?.parse().ok()?,
            })
        })())
    }

    /// Sets how long the session may stay idle from now (each request
    /// extends it). A session deleted meanwhile stays deleted.
    pub async fn touch_session(&self, id_hash: &str, ttl_ms: i64) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        self.run(async move { conn.pexpire::<_, ()>(key, ttl_ms).await })
            .await
    }

    /// Ends a session (sign-out, or found past its absolute end).
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let key = self.keys.dashboard_session(id_hash);
        let mut conn = self.conn();
        self.run(async move { conn.del::<_, ()>(key).await }).await
    }

    /// The account's newest `limit` operational notices, newest first (the
    /// list keeps the last 1,000).
    pub async fn list_notices(
        &self,
        account: &Uuid,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        let key = self.keys.notices(account);
        let stop = limit.max(1) as isize - 1;
        let mut conn = self.conn();
        let rows: Vec<String> = self
            .run(async move { conn.lrange(key, 0, stop).await })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Notice>(r).ok())
            .filter(|n| n.account_id == *account)
            .collect())
    }
}
