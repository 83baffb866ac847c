//! The delivery engine: the pure core (retry schedule, circuit breaker,
//! rate limit, signing, the notification, how a response is judged and what
//! follows an attempt) and the actors that drive it.

pub mod backlog;
pub mod breaker;
pub mod claims;
pub mod decision;
pub mod deliverer;
pub mod disable;
pub mod engine;
pub mod janitor;
pub mod notification;
pub mod ratelimit;
pub mod registry;
pub mod resolve;
pub mod retry;
pub mod scheduler;
pub mod sender;
pub mod signing;
pub mod test_send;
