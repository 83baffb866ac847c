//! Disabling a subscription on the endpoint's behalf (410 Gone, days of
//! failure): the subscription is switched off with the reason, its pending
//! deliveries are made due so they end as failed at once, and the account
//! gets an operational email.

use super::engine::EngineCtx;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::subscription::{Channel, Subscription};
use crate::metrics as m;
use crate::store::PutOutcome;

/// Attempts of the read-modify-write before giving up.
const ATTEMPTS: usize = 5;

pub async fn disable(ctx: &EngineCtx, sub: &Subscription, reason: &str, now_ms: i64) {
    let store = &ctx.store;
    for _ in 0..ATTEMPTS {
        let current = match store.get_subscription(&sub.account_id, &sub.id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(subscription = %sub.id, error = %e, "could not disable subscription");
                return;
            }
        };
        if !current.enabled {
            return;
        }
        let mut notice = Notice::new(sub.account_id, NoticeKind::SubscriptionDisabled, now_ms);
        notice.subscription_id = Some(sub.id);
        notice.reason = Some(reason.to_owned());
        if let Channel::Webhook { url } = &sub.channel {
            notice.endpoint = Some(url.clone());
        }
        let mut next = current.clone();
        next.enabled = false;
        next.disabled_reason = Some(reason.to_owned());
        next.version += 1;
        next.updated_at_ms = now_ms;
        match store
            .put_subscription_noting(&next, current.version, &notice, now_ms)
            .await
        {
            Ok(PutOutcome::Ok) => {
                ctx.registry.invalidate(&sub.id);
                metrics::counter!(m::SUBSCRIPTIONS_DISABLED).increment(1);
                tracing::warn!(subscription = %sub.id, reason, "subscription disabled");
                if let Ok(pending) = store.pending_of(&sub.account_id, &sub.id).await {
                    let _ = store.requeue(&sub.account_id, &pending, now_ms).await;
                }
                ctx.wake.notify_one();
                return;
            }
            Ok(PutOutcome::Conflict) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(subscription = %sub.id, error = %e, "could not disable subscription");
                return;
            }
        }
    }
}
