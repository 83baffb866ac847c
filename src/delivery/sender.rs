//! Sending one webhook request: awc with a bounded timeout, no redirects,
//! a per-endpoint connection limit, and a resolver that refuses private
//! addresses (checked on every resolution, so a DNS change cannot turn a
//! public host name into an internal target).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use actix_tls::connect::{Connector as TcpConnector, Resolve, Resolver};
use actix_web::web::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;

use super::notification::MAX_RESPONSE_BYTES;
use super::resolve::TargetResolver;
use crate::domain::target::{allowed, classify};

/// What came of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResult {
    pub started_ms: i64,
    pub duration_ms: u64,
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    /// The start of the response body, lossily decoded.
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Resolves host names for awc, keeping only addresses a webhook may reach.
struct GuardedResolver(TargetResolver);

impl Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            self.0
                .resolve(host, port)
                .await
                .map_err(|e| e.to_string().into())
        })
    }
}

/// An HTTP client for webhooks. Not `Send` (awc): made and used on one
/// arbiter thread.
pub struct Sender {
    client: awc::Client,
    timeout: Duration,
    allow_private: bool,
}

impl Sender {
    /// `connections` bounds the open connections of this client.
    pub fn new(
        timeout: Duration,
        allow_private: bool,
        resolver: TargetResolver,
        connections: NonZeroUsize,
    ) -> Self {
        let tcp = TcpConnector::new(Resolver::custom(GuardedResolver(resolver))).service();
        let connector = awc::Connector::new()
            .connector(tcp)
            .timeout(timeout.min(Duration::from_secs(10)))
            .limit(connections.get());
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .timeout(timeout)
            .add_default_header(("user-agent", concat!("courier/", env!("CARGO_PKG_VERSION"))))
            .finish();
        Self {
            client,
            timeout,
            allow_private,
        }
    }

    /// POSTs `body` as JSON with `headers`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> HttpResult {
        let started_ms = chrono::Utc::now().timestamp_millis();
        let clock = Instant::now();
        let mut result = HttpResult {
            started_ms,
            ..Default::default()
        };
        if let Some(reason) = self.blocked_literal(url) {
            result.error = Some(reason);
            return result;
        }
        let mut req = self
            .client
            .post(url)
            .insert_header(("content-type", "application/json"));
        for (name, value) in headers {
            req = req.insert_header((*name, value.as_str()));
        }
        match req.send_body(body).await {
            Ok(mut res) => {
                result.status = Some(res.status().as_u16());
                result.retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let remaining = self.timeout.saturating_sub(clock.elapsed());
                let mut buf = Vec::new();
                let read = async {
                    while let Some(chunk) = res.next().await {
                        match chunk {
                            Ok(c) => {
                                buf.extend_from_slice(&c);
                                if buf.len() >= MAX_RESPONSE_BYTES {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                };
                let _ = tokio::time::timeout(remaining, read).await;
                buf.truncate(MAX_RESPONSE_BYTES);
                if !buf.is_empty() {
                    result.response = Some(String::from_utf8_lossy(&buf).into_owned());
                }
            }
            Err(e) => {
                result.error = Some(match e {
                    awc::error::SendRequestError::Timeout => {
                        format!(
                            "timeout: no response within {} ms",
                            self.timeout.as_millis()
                        )
                    }
                    other => other.to_string(),
                });
            }
        }
        result.duration_ms = clock.elapsed().as_millis() as u64;
        result
    }

    /// An IP-literal host that is not allowed (names go through the resolver).
    fn blocked_literal(&self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url).ok()?;
        let ip: IpAddr = match parsed.host()? {
            url::Host::Ipv4(ip) => ip.into(),
            url::Host::Ipv6(ip) => ip.into(),
            url::Host::Domain(_) => return None,
        };
        (!allowed(classify(ip), self.allow_private))
            .then(|| format!("blocked target: {ip} is not an address a webhook may reach"))
    }
}
