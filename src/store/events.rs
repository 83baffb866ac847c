//! Ingest and the event archive.

use std::collections::HashMap;

use futures_util::future::join_all;
use uuid::Uuid;

use super::{scripts, Cursor, Page, Store, StoreError};
use crate::domain::event::NewEvent;

/// What ingest did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now, with this many deliveries created.
    Created { id: Uuid, deliveries: u32 },
    /// The Idempotency-Key was seen with the same request: the first event.
    Duplicate(Uuid),
    /// The Idempotency-Key was seen with a different request.
    Conflict(Uuid),
    /// No such account.
    NoAccount,
    /// Not stored: the script of the event's shard failed while other
    /// shards' events of the same batch were stored. Safe to retry.
    NotStored(String),
}

impl IngestOutcome {
    pub(super) fn from_reply(triple: &[String]) -> Result<Self, StoreError> {
        let id = |s: &str| {
            Uuid::parse_str(s).map_err(|_| StoreError::Internal(format!("bad event id `{s}`")))
        };
        match triple {
            [status, event, deliveries] => match status.as_str() {
                "created" => Ok(Self::Created {
                    id: id(event)?,
                    deliveries: deliveries.parse().unwrap_or(0),
                }),
                "duplicate" => Ok(Self::Duplicate(id(event)?)),
                "conflict" => Ok(Self::Conflict(id(event)?)),
                "no_account" => Ok(Self::NoAccount),
                other => Err(StoreError::Internal(format!("ingest status `{other}`"))),
            },
            _ => Err(StoreError::Internal(
                "ingest reply of the wrong length".into(),
            )),
        }
    }
}

/// An archived event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: Uuid,
    pub account_id: Uuid,
    pub event_type: String,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
    /// The payload's JSON text as ingested.
    pub payload: String,
}

/// Which events a listing returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    /// Inclusive bounds on occurred_at, ms.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub cursor: Option<Cursor>,
    pub limit: usize,
}

const EVENT_FIELDS: [&str; 6] = [
    "id",
    "account_id",
    "type",
    "occurred_at",
    "received_at",
    "payload",
];

fn record_from_fields(fields: Vec<Option<String>>) -> Option<EventRecord> {
    let mut it = fields.into_iter();
    let mut next = || it.next().flatten();
    Some(EventRecord {
        id: Uuid::parse_str(&next()?).ok()?,
        account_id: Uuid::parse_str(&next()?).ok()?,
        event_type: next()?,
        occurred_at_ms: next()?.parse().ok()?,
        received_at_ms: next()?.parse().ok()?,
        payload: next()?,
    })
}

impl Store {
    /// Stores `events` (any accounts), one atomic script per shard, the
    /// shards in parallel. Outcomes come back in input order. Returns only
    /// once every created event is in Redis. When some shards fail and
    /// others succeed, the failed shards' events are
    /// [`IngestOutcome::NotStored`]; when all fail, the error.
    pub async fn ingest(
        &self,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut by_shard: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            by_shard
                .entry(self.keys.shard_of(&e.account_id))
                .or_default()
                .push(i);
        }
        let calls = by_shard.into_iter().map(|(shard, idx)| {
            let call = scripts::Ingest {
                shard,
                now_ms,
                idempotency_ms: self.retention.idempotency_ms,
                events: idx.iter().map(|&i| &events[i]).collect(),
            };
            async move {
                match self.call(&call).await {
                    Ok(outcomes) => Ok(idx.into_iter().zip(outcomes).collect::<Vec<_>>()),
                    Err(e) => Err((idx, e)),
                }
            }
        });
        let replies = join_all(calls).await;
        if replies.iter().all(Result::is_err) {
            if let Some(Err((_, e))) = replies.into_iter().next() {
                return Err(e);
            }
            return Ok(vec![]);
        }
        let mut out = vec![IngestOutcome::NoAccount; events.len()];
        for reply in replies {
            match reply {
                Ok(stored) => {
                    for (i, outcome) in stored {
                        out[i] = outcome;
                    }
                }
                Err((idx, e)) => {
                    tracing::warn!(error = %e, events = idx.len(), "a shard's ingest failed");
                    for i in idx {
                        out[i] = IngestOutcome::NotStored(e.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    /// One archived event of `account`, None once it is past the retention
    /// at `now_ms` (the janitor's next retention pass deletes it).
    pub async fn get_event(
        &self,
        account: &Uuid,
        id: &Uuid,
        now_ms: i64,
    ) -> Result<Option<EventRecord>, StoreError> {
        let key = self.keys.event(account, id);
        let mut conn = self.conn();
        let fields: Vec<Option<String>> = self
            .run(async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&EVENT_FIELDS)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let oldest = now_ms - self.retention.events_ms;
        Ok(record_from_fields(fields)
            .filter(|e| e.account_id == *account && e.occurred_at_ms >= oldest))
    }

    /// A page of `account`'s events, newest first.
    pub async fn list_events(
        &self,
        account: &Uuid,
        filter: &EventFilter,
        now_ms: i64,
    ) -> Result<Page<EventRecord>, StoreError> {
        let oldest = now_ms - self.retention.events_ms;
        let min = Some(filter.from_ms.map_or(oldest, |f| f.max(oldest)));
        let index = self.keys.events(account, filter.event_type.as_deref());
        let ids = self
            .page_ids(
                index,
                min,
                filter.to_ms,
                filter.cursor.as_ref(),
                filter.limit,
            )
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
                pipe.cmd("HMGET")
                    .arg(self.keys.event(account, &id))
                    .arg(&EVENT_FIELDS);
            }
        }
        let mut conn = self.conn();
        let rows: Vec<Vec<Option<String>>> = self
            .run(async move { pipe.query_async(&mut conn).await })
            .await?;
        // Events past retention may linger in an index until it is trimmed:
        // they are skipped, never shown half-present.
        let items = rows
            .into_iter()
            .filter_map(record_from_fields)
            .filter(|e| e.account_id == *account)
            .collect();
        Ok(Page {
            items,
            next: ids.next,
        })
    }
}
