//! HTTP-level tests: each test spawns courier on a random port with its own
//! Redis key prefix, so all of them run in parallel against one Redis.

mod accounts;
mod claims;
mod crash;
mod delivery;
mod email;
mod events;
mod helpers;
mod operations;
mod receiver;
mod redis_outage;
mod smtp;
mod subscriptions;
