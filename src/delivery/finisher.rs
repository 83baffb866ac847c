//! Outcomes recorded in batches: the endpoint deliverers' outcomes of one
//! shard that come in within a millisecond go to Redis as one `finish_many`
//! script call instead of one call each. Half of Redis's time per delivery
//! was the per-call cost of running a script (BENCHMARKS.md); each outcome
//! is still checked against its own claim token, exactly as alone.
//!
//! Runs on the engine's thread: the buffer needs no lock and the flush is a
//! local task.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::store::{Attempt, Claimed, Outcome, Store, StoreError};

/// Most outcomes in one script call.
pub const MAX_BATCH: usize = 128;
/// How long the first outcome of a batch waits for others.
pub const LINGER: Duration = Duration::from_millis(1);

struct Pending {
    claimed: Claimed,
    outcome: Outcome,
    attempt: Option<Attempt>,
    done: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(Clone)]
pub struct Finisher {
    store: Store,
    /// Outcomes waiting, per shard.
    pending: Rc<RefCell<HashMap<u16, Vec<Pending>>>>,
}

impl Finisher {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: Rc::default(),
        }
    }

    /// Records `outcome` for `claimed` (batched with others of its shard);
    /// false when the claim was superseded.
    pub async fn finish(
        &self,
        claimed: Claimed,
        outcome: Outcome,
        attempt: Option<Attempt>,
    ) -> Result<bool, StoreError> {
        let shard = claimed.shard;
        let (done, result) = oneshot::channel();
        let len = {
            let mut pending = self.pending.borrow_mut();
            let batch = pending.entry(shard).or_default();
            batch.push(Pending {
                claimed,
                outcome,
                attempt,
                done,
            });
            batch.len()
        };
        if len >= MAX_BATCH {
            self.flush(shard);
        } else if len == 1 {
            let this = self.clone();
            actix::spawn(async move {
                tokio::time::sleep(LINGER).await;
                this.flush(shard);
            });
        }
        result
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("the outcome batch was dropped".into())))
    }

    /// Sends what `shard` has waiting (nothing if another flush took it).
    fn flush(&self, shard: u16) {
        let batch = self
            .pending
            .borrow_mut()
            .get_mut(&shard)
            .map(std::mem::take)
            .unwrap_or_default();
        if batch.is_empty() {
            return;
        }
        let store = self.store.clone();
        actix::spawn(async move {
            let now = chrono::Utc::now().timestamp_millis();
            let items: Vec<_> = batch
                .iter()
                .map(|p| (&p.claimed, &p.outcome, p.attempt.as_ref()))
                .collect();
            let result = store.finish_many(shard, &items, now).await;
            drop(items);
            match result {
                Ok(oks) => {
                    for (p, ok) in batch.into_iter().zip(oks) {
                        let _ = p.done.send(Ok(ok));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    let unavailable = matches!(e, StoreError::Unavailable(_));
                    for p in batch {
                        let e = if unavailable {
                            StoreError::Unavailable(message.clone())
                        } else {
                            StoreError::Internal(message.clone())
                        };
                        let _ = p.done.send(Err(e));
                    }
                }
            }
        });
    }
}
