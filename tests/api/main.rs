//! HTTP-level tests: each test spawns courier on a random port with its own
//! Redis key prefix, so all of them run in parallel against one Redis.

mod accounts;
mod browser;
mod claims;
mod config;
mod crash;
mod dashboard;
mod delivery;
mod email;
mod events;
mod fleet;
mod helpers;
mod hostile;
mod isolation;
mod listen;
mod logs;
mod operations;
mod process;
mod queues;
mod receiver;
mod redis_kill;
mod redis_outage;
mod redis_tls;
mod replicas;
mod resharding;
mod retention;
mod secrets;
mod shared_limits;
mod smtp;
mod ssrf;
mod subscriptions;
