//! The SMTP side: `smtp.url` parsed into a transport configuration (pure,
//! unit-tested), the pooled lettre transport built from it, and how an SMTP
//! reply is judged (accepted, retry later, rejected for good).

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::SmtpSettings;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain text (a local relay or a test server).
    None,
    /// `smtp+starttls://`: upgraded with STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// `smtp.url` and the rest of `[smtp]`, checked.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout: Duration,
    pub max_connections: u32,
}

impl SmtpConfig {
    /// Parses `smtp://host:port`, `smtp+starttls://user:pass@host:port` or
    /// `smtps://user:pass@host`; the message names what is wrong, never the
    /// credentials.
    pub fn from_settings(s: &SmtpSettings) -> Result<Self, String> {
        let url =
            url::Url::parse(s.url.expose_secret()).map_err(|e| format!("is not a URL ({e})"))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (Security::None, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            other => {
                return Err(format!(
                    "scheme `{other}` is not one of smtp, smtp+starttls, smtps"
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("needs a host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if url.path() != "" && url.path() != "/" {
            return Err("must not have a path".into());
        }
        let decode = |v: &str| {
            percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "credentials are not valid UTF-8 once decoded".to_owned())
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        if password.is_some() && username.is_none() {
            return Err("has a password but no user name".into());
        }
        if username.is_some() && security == Security::None && !is_loopback(&host) {
            return Err(
                "sends credentials in clear text: use smtp+starttls:// or smtps:// for a remote server"
                    .into(),
            );
        }
        if security != Security::None {
            lettre::transport::smtp::client::TlsParameters::new(host.clone())
                .map_err(|e| format!("host `{host}` cannot be used for TLS: {e}"))?;
        }
        Ok(Self {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            username,
            password: password.map(SecretString::from),
            timeout: s.timeout_ms.get(),
            max_connections: s.max_connections.get(),
        })
    }

    /// The pooled transport. Building connects to nothing: an unreachable
    /// server shows up as failed (and retried) messages, not as a failed
    /// start.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        type T = AsyncSmtpTransport<Tokio1Executor>;
        let builder = match self.security {
            Security::None => T::builder_dangerous(self.host.as_str()),
            Security::StartTls => T::starttls_relay(&self.host).map_err(|e| e.to_string())?,
            Security::Tls => T::relay(&self.host).map_err(|e| e.to_string())?,
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(self.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(self.max_connections)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(user) = &self.username {
            let pass = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), pass));
        }
        Ok(builder.build())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpResult {
    pub verdict: SmtpVerdict,
    /// The server's reply code, when it gave one.
    pub code: Option<u16>,
    /// The server's reply text (accepted) or the error.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpVerdict {
    /// 2xx: the server took the message.
    Accepted,
    /// 4xx, a timeout or a connection problem: try again later.
    Transient,
    /// 5xx: the server refused the message for good.
    Permanent,
}

/// Judges a reply code the way SMTP defines it (RFC 5321 §4.2.1).
pub fn judge_code(code: u16) -> SmtpVerdict {
    match code {
        200..=399 => SmtpVerdict::Accepted,
        500..=599 => SmtpVerdict::Permanent,
        _ => SmtpVerdict::Transient,
    }
}

/// Sends `message` and judges the outcome; never fails otherwise.
pub async fn send(transport: &AsyncSmtpTransport<Tokio1Executor>, message: Message) -> SmtpResult {
    match transport.send(message).await {
        Ok(reply) => {
            let code = u16::from(reply.code());
            SmtpResult {
                verdict: judge_code(code),
                code: Some(code),
                text: reply.message().collect::<Vec<_>>().join(" "),
            }
        }
        Err(e) => {
            let code = e.status().map(u16::from);
            let verdict = if e.is_permanent() {
                SmtpVerdict::Permanent
            } else {
                SmtpVerdict::Transient
            };
            SmtpResult {
                verdict,
                code,
                text: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: SecretString::from(url),
            from: "courier <courier@example.com>".into(),
            timeout_ms: crate::settings::PositiveDuration::from_millis(5_000).unwrap(),
            max_connections: std::num::NonZeroU32::new(2).unwrap(),
        }
    }

    #[test]
    fn urls_of_each_kind_parse() {
        let c = SmtpConfig::from_settings(&settings("smtp://127.0.0.1:2525")).unwrap();
        assert_eq!(
            (c.security, c.host.as_str(), c.port),
            (Security::None, "127.0.0.1", 2525)
        );
        assert!(c.username.is_none());
        let c =
            SmtpConfig::from_settings(&settings("smtp+starttls://mailer:p%40ss@mail.example.com"))
                .unwrap();
        assert_eq!((c.security, c.port), (Security::StartTls, 587));
        assert_eq!(c.username.as_deref(), Some("mailer"));
        assert_eq!(c.password.unwrap().expose_secret(), "p@ss");
        let c = SmtpConfig::from_settings(&settings("smtps://u:p@mail.example.com")).unwrap();
        assert_eq!((c.security, c.port), (Security::Tls, 465));
        assert_eq!(
            SmtpConfig::from_settings(&settings("smtp://[::1]:25"))
                .unwrap()
                .host,
            "::1"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_secrets() {
        for (url, why) in [
            ("http://mail.example.com", "scheme"),
            ("smtp://", "host"),
            ("smtp://mail.example.com/x", "path"),
            ("smtp://u:hunter2@mail.example.com", "clear text"),
            ("smtps://:hunter2@mail.example.com", "no user"),
            ("not a url", "not a URL"),
        ] {
            let e = SmtpConfig::from_settings(&settings(url)).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        // Credentials over plain SMTP to a local relay are allowed.
        assert!(SmtpConfig::from_settings(&settings("smtp://u:p@127.0.0.1:25")).is_ok());
    }

    #[tokio::test]
    async fn transports_build_without_connecting() {
        for url in [
            "smtp://127.0.0.1:1",
            "smtp+starttls://u:p@mail.example.com",
            "smtps://u:p@mail.example.com",
        ] {
            let c = SmtpConfig::from_settings(&settings(url)).unwrap();
            assert!(c.transport().is_ok(), "{url}");
        }
    }

    #[test]
    fn reply_codes_are_judged_as_smtp_defines() {
        assert_eq!(judge_code(250), SmtpVerdict::Accepted);
        assert_eq!(judge_code(421), SmtpVerdict::Transient);
        assert_eq!(judge_code(451), SmtpVerdict::Transient);
        assert_eq!(judge_code(550), SmtpVerdict::Permanent);
        assert_eq!(judge_code(554), SmtpVerdict::Permanent);
    }
}
