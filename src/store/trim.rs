//! The retention pass. First each account's events older than the
//! retention go with their deliveries (`expire_events.lua`: events and
//! deliveries carry no expiry of their own, which saves two commands per
//! event and an entry in Redis's table of expiring keys each). Then the
//! time indexes (an account's events, per type, and each subscription's
//! deliveries and failed deliveries) lose their entries older than the
//! retention, and each gets an expiry a day past the retention, so an index
//! nobody trims any more (a deleted subscription's) goes too. Ingest and
//! outcomes then only ZADD, without reading or pushing expiries on every
//! write.

use uuid::Uuid;

use super::{scripts, Store, StoreError};

/// How far past the retention an index expires when no pass trims it.
const SLACK_MS: i64 = 86_400_000;

/// Accounts handled per round trip.
const CHUNK: usize = 100;

/// Events expired per script call (a few milliseconds of Redis's time).
const EXPIRE_BATCH: usize = 500;

/// Most script calls per account in one pass; what is left waits for the
/// next pass.
const EXPIRE_CALLS: usize = 10_000;

impl Store {
    /// Trims every index of `shard` at `now_ms`; `types` are the event types
    /// whose per-type indexes exist. Returns how many entries went.
    pub async fn trim_indexes(
        &self,
        shard: u16,
        now_ms: i64,
        types: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let accounts: Vec<String> = {
            let key = self.keys.accounts(shard);
            let mut c = conn.clone();
            self.run(async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?
        };
        let accounts: Vec<Uuid> = accounts
            .iter()
            .filter_map(|a| Uuid::parse_str(a).ok())
            .collect();
        let cutoff = format!("({}", now_ms - self.retention.events_ms);
        let expires = now_ms + self.retention.events_ms + SLACK_MS;
        let mut removed = 0;
        for a in &accounts {
            removed += self.expire_events(a, now_ms).await?;
        }
        for chunk in accounts.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for a in chunk {
                pipe.zrange(self.keys.subscriptions(a), 0, -1);
            }
            let mut c = conn.clone();
            let subs: Vec<Vec<String>> = self
                .run(async move { pipe.query_async(&mut c).await })
                .await?;
            let mut pipe = redis::pipe();
            let mut indexes = 0;
            for (a, subs) in chunk.iter().zip(subs) {
                let mut keys = vec![self.keys.events(a, None)];
                keys.extend(types.iter().map(|t| self.keys.events(a, Some(t))));
                for s in subs.iter().filter_map(|s| Uuid::parse_str(s).ok()) {
                    keys.push(self.keys.subscription_deliveries(a, &s));
                    keys.push(self.keys.failed_deliveries(a, &s));
                }
                for k in keys {
                    pipe.zrembyscore(&k, "-inf", &cutoff)
                        .pexpire_at(&k, expires)
                        .ignore();
                    indexes += 1;
                }
            }
            let counts: Vec<u64> = self
                .run(async move { pipe.query_async(&mut conn).await })
                .await?;
            debug_assert_eq!(counts.len(), indexes);
            removed += counts.iter().sum::<u64>();
            conn = self.conn();
        }
        Ok(removed)
    }

    /// Expires `account`'s events past the retention at `now_ms`, with
    /// their deliveries; how many events went.
    pub async fn expire_events(&self, account: &Uuid, now_ms: i64) -> Result<u64, StoreError> {
        let call = scripts::ExpireEvents {
            account,
            cutoff_ms: now_ms - self.retention.events_ms,
            max: EXPIRE_BATCH,
        };
        let mut expired = 0;
        for _ in 0..EXPIRE_CALLS {
            let n = self.call(&call).await?;
            expired += n;
            if (n as usize) < EXPIRE_BATCH {
                break;
            }
        }
        Ok(expired)
    }
}
