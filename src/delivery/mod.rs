//! The delivery engine: the pure core (retry schedule, circuit breaker,
//! signing, the notification and how a response is judged) and the actors
//! that drive it.

pub mod breaker;
pub mod retry;
pub mod signing;
