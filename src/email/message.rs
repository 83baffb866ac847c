//! What courier writes: the messages for one event, a digest and an
//! operational notice, from templates (`templates/email/`; the HTML parts
//! escape every value). Pure: no I/O, unit-tested here.

use askama::Template;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use uuid::Uuid;

use crate::domain::event::format_ms;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::subscription::Digest;

/// Builds messages; made once from configuration.
#[derive(Debug, Clone)]
pub struct Composer {
    platform: String,
    from: Mailbox,
    /// The sender's domain, for `Message-ID`s.
    domain: String,
    /// `server.public_base_url` without a trailing slash.
    base_url: String,
    max_payload_bytes: usize,
}

/// One event for one email subscription.
#[derive(Debug, Clone)]
pub struct EventEmail<'a> {
    pub to: &'a str,
    pub subscription_id: Uuid,
    pub description: Option<&'a str>,
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at_ms: i64,
    /// The payload's JSON text as stored.
    pub payload: &'a str,
}

/// One event listed in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at_ms: i64,
}

/// A period's events for one digest subscription.
#[derive(Debug, Clone)]
pub struct DigestEmail<'a> {
    pub to: &'a str,
    pub subscription_id: Uuid,
    pub description: Option<&'a str>,
    pub digest: Digest,
    /// Identifies this digest (for its `Message-ID`).
    pub digest_id: &'a str,
    /// When the first and the last of its events arrived (ms).
    pub first_ms: i64,
    pub last_ms: i64,
    pub total: u64,
    /// Events per type, sorted by type.
    pub counts: Vec<(String, u64)>,
    /// The newest events, newest first.
    pub latest: Vec<DigestEntry>,
}

#[derive(Template)]
#[template(path = "email/event.txt")]
struct EventText<'a> {
    v: &'a EventView<'a>,
}

#[derive(Template)]
#[template(path = "email/event.html")]
struct EventHtml<'a> {
    v: &'a EventView<'a>,
}

/// What the event templates show (askama reads fields through `v`).
struct EventView<'a> {
    to: &'a str,
    event_type: &'a str,
    event_id: Uuid,
    delivery_id: Uuid,
    occurred_at: String,
    description: Option<&'a str>,
    payload: String,
    cut: bool,
    shown_bytes: usize,
    total_bytes: usize,
    event_url: String,
    event_api_url: String,
    subscription_id: Uuid,
    subscription_url: String,
}

struct DigestLine {
    event_id: Uuid,
    event_type: String,
    occurred_at: String,
    url: String,
}

struct DigestView<'a> {
    to: &'a str,
    digest: &'static str,
    description: Option<&'a str>,
    total: u64,
    period_start: String,
    period_end: String,
    counts: &'a [(String, u64)],
    latest: Vec<DigestLine>,
    events_url: String,
    subscription_id: Uuid,
    subscription_url: String,
}

#[derive(Template)]
#[template(path = "email/digest.txt")]
struct DigestText<'a> {
    v: &'a DigestView<'a>,
}

#[derive(Template)]
#[template(path = "email/digest.html")]
struct DigestHtml<'a> {
    v: &'a DigestView<'a>,
}

struct NoticeView {
    title: String,
    text: String,
    facts: Vec<(&'static str, String)>,
    link_text: &'static str,
    link: String,
    account_name: String,
    account_id: Uuid,
}

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeText<'a> {
    v: &'a NoticeView,
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct NoticeHtml<'a> {
    v: &'a NoticeView,
}

/// Text safe for a header: control characters (CR, LF, …) become spaces,
/// so no value can start a header of its own.
pub fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The payload pretty-printed, cut to at most `max` bytes at a character
/// boundary. Returns the text, whether it was cut, and the full length.
pub fn pretty_payload(payload: &str, max: usize) -> (String, bool, usize) {
    let pretty = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned());
    let total = pretty.len();
    if total <= max {
        return (pretty, false, total);
    }
    let mut end = max;
    while !pretty.is_char_boundary(end) {
        end -= 1;
    }
    (pretty[..end].to_owned(), true, total)
}

impl Composer {
    pub fn new(
        platform: &str,
        from: &str,
        base_url: &str,
        max_payload_bytes: usize,
    ) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("smtp.from is not an address: {e}"))?;
        let domain = from.email.domain().to_owned();
        Ok(Self {
            platform: header_text(platform),
            from,
            domain,
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_payload_bytes,
        })
    }

    pub fn from_settings(s: &crate::settings::Settings) -> Result<Self, String> {
        Self::new(
            &s.email.platform_name,
            &s.smtp.from,
            &s.server.public_base_url,
            s.email.max_payload_bytes,
        )
    }

    fn event_url(&self, id: &Uuid) -> String {
        format!("{}/dashboard/events/{id}", self.base_url)
    }

    fn subscription_url(&self, id: &Uuid) -> String {
        format!("{}/dashboard/subscriptions/{id}", self.base_url)
    }

    fn subject(&self, what: &str) -> String {
        header_text(&format!("[{}] {what}", self.platform))
    }

    fn message_id(&self, local: &str) -> String {
        format!("<{}@{}>", header_text(local).replace(' ', ""), self.domain)
    }

    fn build(
        &self,
        to: &str,
        subject: String,
        message_id: String,
        unsubscribe: Option<String>,
        text: String,
        html: String,
    ) -> Result<Message, String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("recipient `{}`: {e}", header_text(to)))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id));
        if let Some(link) = unsubscribe {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{}>", header_text(&link)),
            ));
        }
        b.multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| e.to_string())
    }

    /// The message for one event.
    pub fn event(&self, e: &EventEmail<'_>) -> Result<Message, String> {
        let (payload, cut, total_bytes) = pretty_payload(e.payload, self.max_payload_bytes);
        let view = EventView {
            to: e.to,
            event_type: e.event_type,
            event_id: e.event_id,
            delivery_id: e.delivery_id,
            occurred_at: format_ms(e.occurred_at_ms),
            description: e.description,
            shown_bytes: payload.len(),
            payload,
            cut,
            total_bytes,
            event_url: self.event_url(&e.event_id),
            event_api_url: format!("{}/v1/events/{}", self.base_url, e.event_id),
            subscription_id: e.subscription_id,
            subscription_url: self.subscription_url(&e.subscription_id),
        };
        let text = EventText { v: &view }.render().map_err(|e| e.to_string())?;
        let html = EventHtml { v: &view }.render().map_err(|e| e.to_string())?;
        self.build(
            e.to,
            self.subject(e.event_type),
            self.message_id(&e.delivery_id.to_string()),
            Some(view.subscription_url.clone()),
            text,
            html,
        )
    }

    /// The message gathering a digest period's events.
    pub fn digest(&self, d: &DigestEmail<'_>) -> Result<Message, String> {
        let view = DigestView {
            to: d.to,
            digest: d.digest.as_str(),
            description: d.description,
            total: d.total,
            period_start: format_ms(d.first_ms),
            period_end: format_ms(d.last_ms),
            counts: &d.counts,
            latest: d
                .latest
                .iter()
                .map(|l| DigestLine {
                    event_id: l.event_id,
                    event_type: l.event_type.clone(),
                    occurred_at: format_ms(l.occurred_at_ms),
                    url: self.event_url(&l.event_id),
                })
                .collect(),
            events_url: format!("{}/dashboard/events", self.base_url),
            subscription_id: d.subscription_id,
            subscription_url: self.subscription_url(&d.subscription_id),
        };
        let text = DigestText { v: &view }
            .render()
            .map_err(|e| e.to_string())?;
        let html = DigestHtml { v: &view }
            .render()
            .map_err(|e| e.to_string())?;
        let what = format!(
            "{} digest: {} event{}",
            d.digest.as_str(),
            d.total,
            if d.total == 1 { "" } else { "s" }
        );
        self.build(
            d.to,
            self.subject(&what),
            self.message_id(&format!("digest-{}", d.digest_id)),
            Some(view.subscription_url.clone()),
            text,
            html,
        )
    }

    /// The operational message for `notice`, to the account's contact.
    pub fn notice(&self, n: &Notice, to: &str, account_name: &str) -> Result<Message, String> {
        let at = format_ms(n.at_ms);
        let sub_url = n.subscription_id.map(|s| self.subscription_url(&s));
        let mut facts: Vec<(&'static str, String)> = Vec::new();
        if let Some(s) = n.subscription_id {
            facts.push(("Subscription", s.to_string()));
        }
        if let Some(e) = &n.endpoint {
            facts.push(("Endpoint", e.clone()));
        }
        let (subject, title, text, link_text, link) = match n.kind {
            NoticeKind::SubscriptionDisabled => {
                facts.push(("Reason", n.reason.clone().unwrap_or_default()));
                facts.push(("Disabled at", at));
                (
                    "Subscription disabled",
                    "A subscription was disabled".to_owned(),
                    "courier stopped delivering to this subscription. Its pending deliveries \
                     were marked failed. Once the endpoint works again, enable the subscription \
                     and recover the failed deliveries."
                        .to_owned(),
                    "Open the subscription",
                    sub_url.unwrap_or_else(|| format!("{}/dashboard", self.base_url)),
                )
            }
            NoticeKind::CircuitOpen => {
                if let Some(since) = n.failing_since_ms {
                    facts.push(("Failing since", format_ms(since)));
                }
                facts.push(("Noticed at", at));
                (
                    "Endpoint failing",
                    "An endpoint keeps failing".to_owned(),
                    "Deliveries to this endpoint have failed for a while, so courier holds them \
                     back (circuit open) and probes the endpoint now and then. Nothing is lost: \
                     they go out once the endpoint answers again. If it never does, the \
                     subscription is disabled."
                        .to_owned(),
                    "Open the subscription",
                    sub_url.unwrap_or_else(|| format!("{}/dashboard", self.base_url)),
                )
            }
            NoticeKind::ApiKeyRotated => {
                facts.push(("Rotated at", at));
                if let Some(e) = n.event_id {
                    facts.push(("Event", e.to_string()));
                }
                (
                    "API key rotated",
                    "Your API key was rotated".to_owned(),
                    "The account's API key was replaced; the previous key stopped working at \
                     once. If you did not do this, rotate the key again and check who has access."
                        .to_owned(),
                    "View the event",
                    n.event_id
                        .map(|e| self.event_url(&e))
                        .unwrap_or_else(|| format!("{}/dashboard", self.base_url)),
                )
            }
        };
        let view = NoticeView {
            title,
            text,
            facts,
            link_text,
            link,
            account_name: account_name.to_owned(),
            account_id: n.account_id,
        };
        let text = NoticeText { v: &view }
            .render()
            .map_err(|e| e.to_string())?;
        let html = NoticeHtml { v: &view }
            .render()
            .map_err(|e| e.to_string())?;
        self.build(
            to,
            self.subject(subject),
            self.message_id(&format!("notice-{}", n.id)),
            None,
            text,
            html,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composer() -> Composer {
        Composer::new(
            "Acme\r\nBcc: x@evil.example",
            "courier <courier@mail.example>",
            "https://api.example/",
            400,
        )
        .unwrap()
    }

    fn raw(m: &Message) -> String {
        String::from_utf8(m.formatted()).unwrap()
    }

    /// Both parts, decoded, one after the other.
    fn body(m: &Message) -> String {
        let bytes = m.formatted();
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        format!(
            "{}\n{}",
            parsed.body_text(0).unwrap_or_default(),
            parsed.body_html(0).unwrap_or_default()
        )
    }

    /// The header section of a formatted message.
    fn headers(m: &Message) -> String {
        let r = raw(m);
        r[..r.find("\r\n\r\n").unwrap()].to_owned()
    }

    fn event_email<'a>(payload: &'a str, description: Option<&'a str>) -> EventEmail<'a> {
        EventEmail {
            to: "ops@acme.example",
            subscription_id: Uuid::nil(),
            description,
            delivery_id: Uuid::from_u128(7),
            event_id: Uuid::from_u128(9),
            event_type: "hosted_consent.revoked",
            occurred_at_ms: 1_795_947_425_123,
            payload,
        }
    }

    #[test]
    fn an_event_message_has_subject_ids_links_and_both_parts() {
        let c = Composer::new(
            "Acme",
            "courier <courier@mail.example>",
            "https://api.example",
            4096,
        )
        .unwrap();
        let m = c
            .event(&event_email(r#"{"customer_id":"c_1"}"#, None))
            .unwrap();
        let h = headers(&m);
        assert!(
            h.contains("Subject: [Acme] hosted_consent.revoked\r\n"),
            "{h}"
        );
        assert!(
            h.contains("Message-ID: <00000000-0000-0000-0000-000000000007@mail.example>"),
            "{h}"
        );
        assert!(h.contains(
            "List-Unsubscribe: <https://api.example/dashboard/subscriptions/00000000-0000-0000-0000-000000000000>"
        ), "{h}");
        let r = raw(&m);
        assert!(r.contains("multipart/alternative"));
        assert!(r.contains("text/plain") && r.contains("text/html"));
        let r = body(&m);
        assert!(r.contains("00000000-0000-0000-0000-000000000009"));
        assert!(r.contains("2026-11-29T10:17:05.123Z"));
        assert!(
            r.contains("https://api.example/dashboard/events/00000000-0000-0000-0000-000000000009")
        );
    }

    #[test]
    fn nothing_from_a_value_becomes_a_header() {
        let m = composer()
            .event(&event_email(
                r#"{"note":"x\r\nBcc: victim@evil.example\r\n\r\n<script>alert(1)</script>"}"#,
                Some("line one\r\nX-Injected: yes"),
            ))
            .unwrap();
        let h = headers(&m);
        assert!(!h.contains("\r\nBcc:"), "{h}");
        assert!(!h.contains("\r\nX-Injected"), "{h}");
        // The platform name with CRLF stayed inside the subject.
        assert!(h.contains("Subject: [Acme  Bcc: x@evil.example]"), "{h}");
        let html = EventHtml {
            v: &EventView {
                to: "a@b.example",
                event_type: "t",
                event_id: Uuid::nil(),
                delivery_id: Uuid::nil(),
                occurred_at: String::new(),
                description: Some("<b>desc</b>"),
                payload: "<script>alert(1)</script>".into(),
                cut: false,
                shown_bytes: 0,
                total_bytes: 0,
                event_url: "https://x.example/?a=\"><script>".into(),
                event_api_url: String::new(),
                subscription_id: Uuid::nil(),
                subscription_url: String::new(),
            },
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>desc"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn large_payloads_are_cut_with_a_link() {
        let big = format!(r#"{{"data":"{}"}}"#, "é".repeat(1000));
        let (text, cut, total) = pretty_payload(&big, 401);
        assert!(cut);
        assert!(text.len() <= 401);
        assert!(total > 2000);
        let m = composer().event(&event_email(&big, None)).unwrap();
        let r = body(&m);
        assert!(
            r.contains("/v1/events/00000000-0000-0000-0000-000000000009"),
            "{r}"
        );
        let (small, cut, _) = pretty_payload(r#"{"a":1}"#, 400);
        assert!(!cut);
        assert_eq!(small, "{\n  \"a\": 1\n}");
    }

    #[test]
    fn a_digest_counts_and_lists() {
        let c = Composer::new("Acme", "courier@mail.example", "https://api.example", 400).unwrap();
        let m = c
            .digest(&DigestEmail {
                to: "ops@acme.example",
                subscription_id: Uuid::nil(),
                description: None,
                digest: Digest::Hourly,
                digest_id: "abc-3",
                first_ms: 1_795_946_400_000,
                last_ms: 1_795_949_000_000,
                total: 3,
                counts: vec![("customer.created".into(), 1), ("meter.created".into(), 2)],
                latest: vec![DigestEntry {
                    event_id: Uuid::from_u128(5),
                    event_type: "meter.created".into(),
                    occurred_at_ms: 1_795_949_000_000,
                }],
            })
            .unwrap();
        let h = headers(&m);
        assert!(h.contains("Subject: [Acme] hourly digest: 3 events"), "{h}");
        assert!(h.contains("Message-ID: <digest-abc-3@mail.example>"), "{h}");
        let r = body(&m);
        assert!(r.contains("meter.created: 2"), "{r}");
        assert!(
            r.contains("received between 2026-11-29T10:00:00.000Z and"),
            "{r}"
        );
    }

    #[test]
    fn notices_name_what_happened() {
        let c = Composer::new("Acme", "courier@mail.example", "https://api.example", 400).unwrap();
        let mut n = Notice::new(Uuid::nil(), NoticeKind::SubscriptionDisabled, 0);
        n.subscription_id = Some(Uuid::from_u128(3));
        n.reason = Some("the endpoint answered 410 Gone".into());
        let m = c.notice(&n, "ops@acme.example", "Acme <Energy>").unwrap();
        let h = headers(&m);
        assert!(h.contains("Subject: [Acme] Subscription disabled"), "{h}");
        assert!(!h.contains("List-Unsubscribe"), "{h}");
        let r = body(&m);
        assert!(r.contains("410 Gone"), "{r}");
        assert!(
            r.contains("Acme &#60;Energy&#62;") || r.contains("Acme &lt;Energy&gt;"),
            "{r}"
        );
        let rotated = Notice::new(Uuid::nil(), NoticeKind::ApiKeyRotated, 0);
        let h = headers(&c.notice(&rotated, "ops@acme.example", "Acme").unwrap());
        assert!(h.contains("Subject: [Acme] API key rotated"), "{h}");
    }

    #[test]
    fn bad_recipients_are_errors_not_panics() {
        assert!(composer()
            .event(&EventEmail {
                to: "not an address\r\nBcc: x@y.example",
                ..event_email("{}", None)
            })
            .is_err());
    }
}
