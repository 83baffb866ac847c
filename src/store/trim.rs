//! The periodic trim of the time indexes (an account's events, per type,
//! and each subscription's deliveries and failed deliveries): entries older
//! than the retention go, and each index gets an expiry a day past the
//! retention, so an index nobody trims any more (a deleted subscription's)
//! goes too. Ingest and outcomes then only ZADD, without reading or
//! pushing expiries on every write.

use uuid::Uuid;

use super::{Store, StoreError};

/// How far past the retention an index expires when no pass trims it.
const SLACK_MS: i64 = 86_400_000;

/// Accounts handled per round trip.
const CHUNK: usize = 100;

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
}
