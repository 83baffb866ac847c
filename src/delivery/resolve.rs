//! Where a webhook host name may be sent: the addresses it resolves to,
//! each judged by [`crate::domain::target`]. Static host entries
//! (`delivery.hosts`) are consulted before DNS. The HTTP client connects
//! only to the addresses returned here, so what was checked is what is
//! reached (no second lookup a DNS change could turn internal).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::target::{allowed, classify, classify_name, Reach};

/// How long a check at subscription time may wait for DNS.
pub const CREATE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a host cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It is, or resolves only to, addresses a webhook may not reach.
    Blocked(String),
    /// It could not be resolved (or not in time).
    Unresolved(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Blocked(why) | Refused::Unresolved(why) => f.write_str(why),
        }
    }
}

/// Resolves webhook hosts and keeps only the addresses allowed.
#[derive(Debug, Clone, Default)]
pub struct TargetResolver {
    allow_private: bool,
    /// Static entries, lower-case name → address.
    hosts: Arc<HashMap<String, IpAddr>>,
}

impl TargetResolver {
    pub fn new(allow_private: bool, hosts: &HashMap<String, IpAddr>) -> Self {
        Self {
            allow_private,
            hosts: Arc::new(hosts.iter().map(|(k, v)| (normalise(k), *v)).collect()),
        }
    }

    /// The addresses of `host` a webhook may be sent to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let name = normalise(host);
        let by_name = classify_name(&name);
        if !allowed(by_name, self.allow_private) {
            return Err(Refused::Blocked(format!(
                "blocked target: {host} is a {} host name",
                describe(by_name)
            )));
        }
        let all: Vec<SocketAddr> = match self.hosts.get(&name) {
            Some(ip) => vec![SocketAddr::new(*ip, port)],
            None => tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| Refused::Unresolved(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        self.keep_allowed(host, all)
    }

    fn keep_allowed(&self, host: &str, all: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = all
            .into_iter()
            .partition(|a| allowed(classify(a.ip()), self.allow_private));
        if ok.is_empty() {
            let list: Vec<String> = refused.iter().map(|a| a.ip().to_string()).collect();
            return Err(Refused::Blocked(format!(
                "blocked target: {host} resolves only to addresses a webhook may not reach ({})",
                list.join(", ")
            )));
        }
        Ok(ok)
    }

    /// A check at subscription time: refuses a name that resolves only to
    /// addresses not allowed; a name that does not resolve (yet) passes, it
    /// is checked again at every delivery.
    pub async fn check_at_create(&self, host: &str) -> Result<(), Refused> {
        match tokio::time::timeout(CREATE_LOOKUP_TIMEOUT, self.resolve(host, 443)).await {
            Ok(Err(Refused::Blocked(why))) => Err(Refused::Blocked(why)),
            _ => Ok(()),
        }
    }
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn describe(reach: Reach) -> &'static str {
    match reach {
        Reach::Forbidden => "cloud metadata",
        _ => "loopback or internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(allow_private: bool, entries: &[(&str, &str)]) -> TargetResolver {
        let hosts = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.parse().unwrap()))
            .collect();
        TargetResolver::new(allow_private, &hosts)
    }

    #[tokio::test]
    async fn static_entries_are_judged_like_dns_answers() {
        let r = resolver(
            false,
            &[
                ("Partner.Example", "10.0.0.7"),
                ("public.example", "93.184.216.34"),
            ],
        );
        let err = r.resolve("partner.example.", 443).await.unwrap_err();
        assert!(
            matches!(err, Refused::Blocked(ref m) if m.contains("10.0.0.7")),
            "{err}"
        );
        assert_eq!(
            r.resolve("public.example", 8443).await.unwrap(),
            vec!["93.184.216.34:8443".parse().unwrap()]
        );
        assert!(r.check_at_create("partner.example").await.is_err());
        assert!(r.check_at_create("public.example").await.is_ok());
    }

    #[tokio::test]
    async fn metadata_names_are_refused_before_any_lookup() {
        let r = resolver(true, &[("metadata.google.internal", "93.184.216.34")]);
        let err = r.resolve("metadata.google.internal", 80).await.unwrap_err();
        assert!(matches!(err, Refused::Blocked(_)), "{err}");
        let err = r.resolve("localhost", 80).await;
        assert!(err.is_ok(), "loopback is allowed with allow_private");
        let strict = resolver(false, &[]);
        assert!(matches!(
            strict.resolve("localhost", 80).await,
            Err(Refused::Blocked(_))
        ));
    }

    #[tokio::test]
    async fn link_local_answers_are_refused_even_with_private_targets_allowed() {
        let r = resolver(true, &[("meta.example", "169.254.169.254")]);
        assert!(matches!(
            r.resolve("meta.example", 80).await,
            Err(Refused::Blocked(_))
        ));
    }
}
