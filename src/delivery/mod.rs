//! The delivery engine: the pure core (retry schedule, circuit breaker,
//! signing, the notification and how a response is judged) and the actors
//! that drive it.

pub mod backlog;
pub mod breaker;
pub mod claims;
pub mod deliverer;
pub mod disable;
pub mod engine;
pub mod janitor;
pub mod notification;
pub mod ratelimit;
pub mod registry;
pub mod retry;
pub mod scheduler;
pub mod sender;
pub mod signing;
