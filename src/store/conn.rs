//! One connection type for a single Redis and a Redis Cluster, so every
//! store function and script runs unchanged on both; and [`RedisTarget`],
//! where it connects to and how (TLS with `rediss://`, trusting the public
//! roots or the CA of `redis.tls_ca_file`).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, TlsCertificates, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::{RedisSettings, SettingsError};

/// Where Redis is and how to reach it, checked when it is made (start-up
/// and `courier check-config`), so connecting later can only fail on the
/// network.
#[derive(Clone)]
pub struct RedisTarget {
    /// One URL, or the seed nodes of a cluster; secret (may hold a password).
    seeds: Vec<SecretString>,
    /// The PEM of `redis.tls_ca_file`: the only CAs trusted for TLS when set.
    ca_pem: Option<Vec<u8>>,
}

impl RedisTarget {
    /// Reads `redis.url` and `redis.tls_ca_file`; an error names the key.
    pub fn from_settings(r: &RedisSettings) -> Result<Self, SettingsError> {
        let seeds = r
            .url
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect::<Vec<_>>();
        if seeds.is_empty() {
            return Err(SettingsError::invalid("redis.url", "must not be empty"));
        }
        let ca_pem = match &r.tls_ca_file {
            None => None,
            Some(path) => {
                let bad = |m: String| {
                    SettingsError::invalid("redis.tls_ca_file", format!("{}: {m}", path.display()))
                };
                let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("is not PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(bad("holds no PEM certificate".into()));
                }
                Some(pem)
            }
        };
        let target = Self { seeds, ca_pem };
        for (i, seed) in target.seeds.iter().enumerate() {
            target
                .client(seed)
                .map_err(|e| SettingsError::invalid("redis.url", format!("seed {}: {e}", i + 1)))?;
        }
        Ok(target)
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        self.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }

    fn client(&self, seed: &SecretString) -> RedisResult<redis::Client> {
        match self.certificates() {
            Some(certs) => redis::Client::build_with_tls(seed.expose_secret(), certs),
            None => redis::Client::open(seed.expose_secret()),
        }
    }

    /// A client of one node (the first seed), e.g. for pub/sub, whose
    /// messages reach every node of a cluster.
    pub fn node_client(&self) -> RedisResult<redis::Client> {
        self.client(&self.seeds[0])
    }
}

/// A multiplexed, self-reconnecting connection; cheap to clone.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects to `target` (one Redis, or the seed nodes of a cluster). A
    /// single Redis is connected lazily, so courier starts (and reports "not
    /// ready") while Redis is down and recovers when it returns.
    pub async fn connect(
        target: &RedisTarget,
        command_timeout: Duration,
        connect_timeout: Duration,
    ) -> RedisResult<Self> {
        if target.seeds.len() > 1 {
            let seeds = target.seeds.iter().map(|s| s.expose_secret());
            let mut builder = ClusterClient::builder(seeds)
                .connection_timeout(connect_timeout)
                .response_timeout(command_timeout)
                // Each MOVED/ASK redirect and TRYAGAIN wait of one command
                // takes a retry: while a slot moves, a command may meet
                // ASK, then MOVED before the client's slot map is fresh.
                // The store's deadline still bounds the whole.
                .retries(5);
            if let Some(certs) = target.certificates() {
                builder = builder.certs(certs);
            }
            return Ok(RedisConn::Cluster(
                builder.build()?.get_async_connection().await?,
            ));
        }
        let client = target.node_client()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}
