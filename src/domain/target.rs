//! Where a webhook may be sent: absolute http(s) URLs whose host is not this
//! machine, a private network, a link-local range or a cloud metadata
//! service (server-side request forgery). The delivery engine runs
//! [`is_public_ip`] again on every address a host name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::Invalid;

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Host names of cloud metadata services: never a target, whatever the
/// configuration.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// What an address is, as a webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Globally routable unicast: always allowed.
    Public,
    /// Loopback, private networks, carrier-grade NAT, unique-local IPv6,
    /// documentation ranges: allowed only with `allow_private_targets`
    /// (local testing).
    Private,
    /// Link-local (where cloud metadata services live), metadata addresses,
    /// unspecified, multicast, broadcast and reserved: never.
    Forbidden,
}

/// A validated webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Validates `text`; with `allow_private` loopback and private
    /// addresses are accepted (local testing); link-local and metadata
    /// targets never are, and the shape checks always apply.
    pub fn parse(field: &str, text: &str, allow_private: bool) -> Result<Self, Invalid> {
        if text.len() > MAX_URL_LEN {
            return Err(Invalid::new(
                field,
                format!("must be at most {MAX_URL_LEN} bytes"),
            ));
        }
        let url = Url::parse(text)
            .map_err(|e| Invalid::new(field, format!("is not an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Invalid::new(field, "must use http or https"));
        }
        let host = url
            .host()
            .ok_or_else(|| Invalid::new(field, "must name a host"))?;
        if url.fragment().is_some() {
            return Err(Invalid::new(field, "must not contain a #fragment"));
        }
        let reach = match host {
            Host::Ipv4(ip) => classify(IpAddr::V4(ip)),
            Host::Ipv6(ip) => classify(IpAddr::V6(ip)),
            Host::Domain(name) => classify_name(name),
        };
        if !allowed(reach, allow_private) {
            return Err(Invalid::new(field, refusal(reach)));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host name, when the URL names one (not an IP literal).
    pub fn domain(&self) -> Option<&str> {
        self.0.domain()
    }
}

/// A webhook URL as it may be logged: scheme, host, port and path, without
/// credentials, query or fragment (they often carry tokens).
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let query = if u.query().is_some() { "?…" } else { "" };
            format!("{}://{host}{port}{}{query}", u.scheme(), u.path())
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Why a target of `reach` is refused.
pub fn refusal(reach: Reach) -> &'static str {
    match reach {
        Reach::Forbidden => {
            "must not point at a link-local or cloud metadata address (never allowed)"
        }
        _ => "must not point at a loopback, private, link-local or metadata address",
    }
}

/// Whether a target of `reach` may be sent to.
pub fn allowed(reach: Reach, allow_private: bool) -> bool {
    match reach {
        Reach::Public => true,
        Reach::Private => allow_private,
        Reach::Forbidden => false,
    }
}

/// What a host name is known to be before it is resolved: metadata names
/// are forbidden, `localhost` and `*.localhost`/`*.internal` private,
/// anything else is judged by the addresses it resolves to.
pub fn classify_name(name: &str) -> Reach {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&name.as_str()) {
        Reach::Forbidden
    } else if name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal") {
        Reach::Private
    } else {
        Reach::Public
    }
}

/// True when `ip` is a globally routable unicast address a webhook may reach.
pub fn is_public_ip(ip: IpAddr) -> bool {
    classify(ip) == Reach::Public
}

/// Classifies an address; IPv4 embedded in IPv6 (mapped, compatible,
/// NAT64) is judged as the IPv4 address, and never better than private.
pub fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Reach {
    let [a, b, c, d] = ip.octets();
    let forbidden = a == 0                                // "this network"
        || (a == 169 && b == 254)                         // link-local, cloud metadata
        || (a == 100 && b == 100 && c == 100 && d == 200) // Alibaba Cloud metadata
        || (a == 192 && b == 0 && c == 0)                 // IETF protocol assignments
        || a >= 224; // multicast, reserved, broadcast
    let private = a == 10                                 // private
        || (a == 100 && (64..128).contains(&b))           // carrier-grade NAT
        || a == 127                                       // loopback
        || (a == 172 && (16..32).contains(&b))            // private
        || (a == 192 && b == 0 && c == 2)                 // documentation
        || (a == 192 && b == 168)                         // private
        || (a == 198 && (18..20).contains(&b))            // benchmarking
        || (a == 198 && b == 51 && c == 100)              // documentation
        || (a == 203 && b == 0 && c == 113); // documentation
    if forbidden {
        Reach::Forbidden
    } else if private {
        Reach::Private
    } else {
        Reach::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Reach {
    if ip.is_loopback() {
        return Reach::Private;
    }
    if ip.is_unspecified() {
        return Reach::Forbidden;
    }
    let seg = ip.segments();
    let embedded = ip
        .to_ipv4_mapped()
        .or_else(|| {
            (seg[..6] == [0, 0, 0, 0, 0, 0]).then(|| ip.to_ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED))
        })
        .or_else(|| {
            // NAT64: 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
            let nat64 = (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1);
            nat64.then(|| {
                let o = ip.octets();
                Ipv4Addr::new(o[12], o[13], o[14], o[15])
            })
        });
    if let Some(v4) = embedded {
        return match classify_v4(v4) {
            Reach::Public => Reach::Private,
            other => other,
        };
    }
    if ip.is_unspecified()
        || (seg[0] & 0xffc0) == 0xfe80                    // link-local
        || (seg[0] & 0xff00) == 0xff00                    // multicast
        || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
    // AWS metadata over IPv6
    {
        Reach::Forbidden
    } else if ip.is_loopback()
        || (seg[0] & 0xfe00) == 0xfc00                    // unique local (fc00::/7)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
    // documentation
    {
        Reach::Private
    } else {
        Reach::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> bool {
        WebhookUrl::parse("url", url, false).is_ok()
    }

    #[test]
    fn public_https_urls_are_accepted() {
        assert!(ok("https://hooks.example.com/courier?x=1"));
        assert!(ok("http://93.184.216.34:8080/in"));
        assert!(ok("https://[2606:4700::1111]/hook"));
    }

    #[test]
    fn shapes_other_than_absolute_http_are_rejected() {
        for bad in [
            "",
            "/relative",
            "ftp://example.com/",
            "mailto:a@b.example",
            "https://example.com/#frag",
            "javascript:alert(1)",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(!ok(&format!(
            "https://example.com/{}",
            "a".repeat(MAX_URL_LEN)
        )));
    }

    #[test]
    fn internal_targets_are_rejected_in_every_spelling() {
        for bad in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://[64:ff9b::7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://100.127.255.254/",
            "http://instance-data/",
        ] {
            assert!(!ok(bad), "{bad} should be blocked");
        }
    }

    #[test]
    fn private_targets_are_allowed_when_configured() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/hook",
            "http://10.1.2.3/",
            "http://[::1]:9000/",
            "http://build.internal/",
        ] {
            assert!(WebhookUrl::parse("url", url, true).is_ok(), "{url}");
        }
        assert!(WebhookUrl::parse("url", "ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn link_local_and_metadata_targets_are_refused_even_when_private_ones_are_allowed() {
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            "http://169.254.1.1:8080/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA/",
            "http://instance-data/latest/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
        ] {
            let err = WebhookUrl::parse("url", bad, true).expect_err(bad);
            assert!(
                err.message.contains("never allowed"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn embedded_ipv4_is_judged_as_the_ipv4_address() {
        assert_eq!(classify("::ffff:10.0.0.1".parse().unwrap()), Reach::Private);
        assert_eq!(classify("64:ff9b::a00:1".parse().unwrap()), Reach::Private);
        assert_eq!(
            classify("64:ff9b:1::a00:1".parse().unwrap()),
            Reach::Private
        );
        assert_eq!(classify("::127.0.0.1".parse().unwrap()), Reach::Private);
        // A public IPv4 through NAT64 is still not a plain public target.
        assert_eq!(
            classify("64:ff9b::808:808".parse().unwrap()),
            Reach::Private
        );
    }

    #[test]
    fn logged_urls_carry_no_credentials_or_query() {
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example.com:8443/in/x?token=abc#f"),
            "https://hooks.example.com:8443/in/x?…"
        );
        assert_eq!(redact_url("http://127.0.0.1/hook"), "http://127.0.0.1/hook");
        assert_eq!(redact_url("::"), "(not a URL)");
    }

    #[test]
    fn ip_classification() {
        assert!(is_public_ip("8.8.8.8".parse().unwrap()));
        assert!(!is_public_ip("172.31.255.255".parse().unwrap()));
        assert!(is_public_ip("172.32.0.1".parse().unwrap()));
        assert!(!is_public_ip("::".parse().unwrap()));
        assert!(is_public_ip("2a00:1450::1".parse().unwrap()));
    }
}
