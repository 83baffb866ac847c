//! Where a webhook may be sent: absolute http(s) URLs whose host is not this
//! machine, a private network, a link-local range or a cloud metadata
//! service (server-side request forgery). The delivery engine runs
//! [`is_public_ip`] again on every address a host name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::Invalid;

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Host names that always mean "this machine" or a metadata service.
const BLOCKED_NAMES: &[&str] = &["localhost", "metadata.google.internal", "metadata"];

/// A validated webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Validates `text`; with `allow_private` the address checks are skipped
    /// (local testing), the shape checks are not.
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
        if !allow_private {
            let blocked = match host {
                Host::Ipv4(ip) => !is_public_ip(IpAddr::V4(ip)),
                Host::Ipv6(ip) => !is_public_ip(IpAddr::V6(ip)),
                Host::Domain(name) => is_blocked_name(name),
            };
            if blocked {
                return Err(Invalid::new(
                    field,
                    "must not point at a loopback, private, link-local or metadata address",
                ));
            }
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn is_blocked_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    BLOCKED_NAMES.contains(&name.as_str())
        || name.ends_with(".localhost")
        || name.ends_with(".internal")
}

/// True when `ip` is a globally routable unicast address a webhook may reach.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0                                  // "this network"
        || a == 10                                        // private
        || (a == 100 && (64..128).contains(&b))           // carrier-grade NAT
        || a == 127                                       // loopback
        || (a == 169 && b == 254)                         // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))            // private
        || (a == 192 && b == 0 && c == 0)                 // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                 // documentation
        || (a == 192 && b == 168)                         // private
        || (a == 198 && (18..20).contains(&b))            // benchmarking
        || (a == 198 && b == 51 && c == 100)              // documentation
        || (a == 203 && b == 0 && c == 113)               // documentation
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || (seg[0] & 0xfe00) == 0xfc00                    // unique local (fc00::/7)
        || (seg[0] & 0xffc0) == 0xfe80                    // link-local
        || (seg[0] & 0xff00) == 0xff00                    // multicast
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)         // documentation
        || (seg[0] == 0x0064 && seg[1] == 0xff9b)         // NAT64 (embeds IPv4)
        || seg[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible
    !blocked
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
        ] {
            assert!(!ok(bad), "{bad} should be blocked");
        }
    }

    #[test]
    fn private_targets_are_allowed_when_configured() {
        assert!(WebhookUrl::parse("url", "http://127.0.0.1:9000/hook", true).is_ok());
        assert!(WebhookUrl::parse("url", "ftp://127.0.0.1/", true).is_err());
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
