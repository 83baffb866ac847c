//! `courier listen`: a webhook receiver for development. It answers every
//! request on 127.0.0.1 with one status (200 unless told otherwise, so a
//! developer can watch retries or a 410 disabling the subscription), and
//! prints each one: method and path, the Standard Webhooks headers, whether
//! the signature holds for the subscription's secret, and the body
//! pretty-printed. It needs no configuration and no Redis.
//!
//! The pure parts ([`verdict`], [`render`], [`pretty_json`]) are tested
//! here; [`run`] only wires them to an HTTP server.

use std::io::Write;
use std::net::TcpListener;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::delivery::signing::SigningKey;

/// Largest body taken: far above courier's own notifications (the payload
/// is at most `limits.max_payload_bytes`), so none is cut short.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What `courier listen` was asked to do.
pub struct Options {
    /// The key of the subscription's `whsec_` secret; without it signatures
    /// are shown but not checked.
    pub key: Option<SigningKey>,
    /// The status every request is answered with.
    pub status: StatusCode,
}

/// One request as it arrived: what is printed and verified.
pub struct Received<'a> {
    pub at: DateTime<Utc>,
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The `signature: …` line for `r`: valid, INVALID with the reason, or not
/// checked when no secret was given.
pub fn verdict(key: Option<&SigningKey>, r: &Received) -> String {
    let Some(key) = key else {
        return "signature: not checked (no --secret or COURIER_LISTEN_SECRET)".to_owned();
    };
    let missing: Vec<&str> = [
        ("webhook-id", r.id),
        ("webhook-timestamp", r.timestamp),
        ("webhook-signature", r.signature),
    ]
    .iter()
    .filter(|(_, v)| v.is_none())
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        return format!("signature: INVALID (no {} header)", missing.join(", "));
    }
    let (id, ts, sig) = (
        r.id.unwrap_or_default(),
        r.timestamp.unwrap_or_default(),
        r.signature.unwrap_or_default(),
    );
    match key.verify(id, ts, sig, r.body, r.at.timestamp()) {
        Ok(()) => "signature: valid".to_owned(),
        Err(e) => format!("signature: INVALID ({e})"),
    }
}

/// The text printed for one request answered with `status`.
pub fn render(r: &Received, verdict: &str, status: StatusCode) -> String {
    let mut out = format!(
        "--- {} {} ({} bytes) at {}\n",
        r.method,
        r.target,
        r.body.len(),
        r.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    for (name, value) in [
        ("webhook-id", r.id),
        ("webhook-timestamp", r.timestamp),
        ("webhook-signature", r.signature),
    ] {
        out += &format!("{name}: {}\n", value.unwrap_or("(none)"));
    }
    out += verdict;
    out.push('\n');
    match std::str::from_utf8(r.body) {
        Ok("") => out += "(empty body)\n",
        Ok(text) => {
            let shown = pretty_json(text).unwrap_or_else(|| text.to_owned());
            out += &shown;
            if !shown.ends_with('\n') {
                out.push('\n');
            }
        }
        Err(_) => out += &format!("(binary body, {} bytes)\n", r.body.len()),
    }
    out += &format!("answered {status}\n\n");
    out
}

/// `text` indented two spaces per level, when it is JSON; `None` otherwise.
/// Re-indents the text itself, so keys keep their order and numbers their
/// digits, exactly as courier sent them.
pub fn pretty_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or_default());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// The first lines printed, before any request.
pub fn banner(port: u16, options: &Options) -> String {
    let check = if options.key.is_some() {
        "signatures are checked with the secret given"
    } else {
        "signatures are not checked: give the subscription's secret with --secret whsec_… or COURIER_LISTEN_SECRET"
    };
    format!(
        "courier listen: receiving webhooks on http://127.0.0.1:{port}/ (any path), answering {}\n{check}\nCtrl-C stops it.\n\n",
        options.status
    )
}

/// Serves on `listener` until Ctrl-C or SIGTERM, printing each request on
/// stdout.
pub async fn run(listener: TcpListener, options: Options) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    print(&banner(port, &options));
    let options = web::Data::new(options);
    HttpServer::new(move || {
        App::new()
            .app_data(options.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .default_service(web::to(receive))
    })
    .workers(1)
    .shutdown_timeout(0)
    .listen(listener)?
    .run()
    .await
}

async fn receive(req: HttpRequest, body: web::Bytes, options: web::Data<Options>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.to_string());
    let received = Received {
        at: Utc::now(),
        method: req.method().as_str(),
        target: &target,
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: &body,
    };
    let verdict = verdict(options.key.as_ref(), &received);
    print(&render(&received, &verdict, options.status));
    HttpResponse::build(options.status).finish()
}

/// Writes `text` to stdout at once and flushes it, so a request's lines
/// stay together and reach a file or pipe straight away.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn key() -> SigningKey {
        SigningKey::from_secret(SECRET).unwrap()
    }

    fn signed<'a>(body: &'a [u8], ts: &'a str, sig: &'a str) -> Received<'a> {
        Received {
            at: DateTime::from_timestamp(ts.parse().unwrap(), 0).unwrap(),
            method: "POST",
            target: "/hooks",
            id: Some("msg_1"),
            timestamp: Some(ts),
            signature: Some(sig),
            body,
        }
    }

    #[test]
    fn a_signature_made_with_the_secret_is_valid() {
        let sig = key().sign("msg_1", 1_700_000_000, b"{}");
        let r = signed(b"{}", "1700000000", &sig);
        assert_eq!(verdict(Some(&key()), &r), "signature: valid");
    }

    #[test]
    fn another_secret_makes_it_invalid_with_the_reason() {
        let other = SigningKey::from_secret(&crate::domain::api_key::new_signing_secret()).unwrap();
        let sig = other.sign("msg_1", 1_700_000_000, b"{}");
        let r = signed(b"{}", "1700000000", &sig);
        assert_eq!(
            verdict(Some(&key()), &r),
            "signature: INVALID (no signature matches the secret)"
        );
    }

    #[test]
    fn an_old_timestamp_makes_it_invalid() {
        let sig = key().sign("msg_1", 1_700_000_000, b"{}");
        let mut r = signed(b"{}", "1700000000", &sig);
        r.at += chrono::Duration::minutes(10);
        assert!(verdict(Some(&key()), &r)
            .starts_with("signature: INVALID (webhook-timestamp is 600 s old"));
    }

    #[test]
    fn missing_headers_are_named() {
        let mut r = signed(b"{}", "1700000000", "v1,x");
        r.id = None;
        r.signature = None;
        assert_eq!(
            verdict(Some(&key()), &r),
            "signature: INVALID (no webhook-id, webhook-signature header)"
        );
    }

    #[test]
    fn without_a_secret_nothing_is_checked() {
        let r = signed(b"{}", "1700000000", "v1,x");
        assert!(verdict(None, &r).starts_with("signature: not checked"));
    }

    #[test]
    fn json_is_indented_keeping_key_order_and_digits() {
        let text = r#"{"z":1,"a":{"list":[1.50, 12345678901234567890, "a,b:{c}\"]"],"empty":{},"none":[ ]}}"#;
        let expected = r#"{
  "z": 1,
  "a": {
    "list": [
      1.50,
      12345678901234567890,
      "a,b:{c}\"]"
    ],
    "empty": {},
    "none": []
  }
}"#;
        assert_eq!(pretty_json(text).as_deref(), Some(expected));
    }

    #[test]
    fn text_that_is_not_json_is_left_alone() {
        assert_eq!(pretty_json("hello, world"), None);
        let r = Received {
            body: b"hello, world",
            ..signed(b"", "1700000000", "v1,x")
        };
        assert!(render(&r, "signature: valid", StatusCode::OK).contains("\nhello, world\n"));
    }

    #[test]
    fn a_request_is_printed_with_headers_verdict_body_and_answer() {
        let r = signed(br#"{"event_id":"e1"}"#, "1700000000", "v1,abc");
        let text = render(&r, "signature: valid", StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            text,
            "--- POST /hooks (17 bytes) at 2023-11-14T22:13:20.000Z\n\
             webhook-id: msg_1\n\
             webhook-timestamp: 1700000000\n\
             webhook-signature: v1,abc\n\
             signature: valid\n\
             {\n  \"event_id\": \"e1\"\n}\n\
             answered 500 Internal Server Error\n\n"
        );
    }
}
