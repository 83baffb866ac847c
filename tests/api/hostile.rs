//! Hostile endpoints: a webhook URL may lead to a server that never answers,
//! dribbles, floods, loops, resets, speaks garbage or stalls TLS. Each sits
//! beside a healthy endpoint on the same courier process: every attempt ends
//! by its timeout, only the response's start is read, memory stays flat, and
//! the healthy endpoint's deliveries are not held back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::ADMIN_KEY;
use crate::process::{create_account, Courier};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(20);

/// How long a hostile server keeps misbehaving on one connection (and
/// accepts new ones) before it stops by itself.
const LIFETIME: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and never answers.
    Silent,
    /// Answers one byte per second.
    Dribble,
    /// A 200 whose chunked body never ends.
    Flood,
    /// 302 to itself, for ever.
    RedirectLoop,
    /// Accepts, then resets the connection.
    Reset,
    /// Bytes that are not HTTP.
    Garbage,
    /// A TLS client hello that is never answered (use an https:// URL).
    TlsStall,
}

/// (accepted, ended) per connection.
type ConnectionLog = Arc<Mutex<Vec<(Instant, Option<Instant>)>>>;

/// A loopback server that misbehaves as told; records when each of its
/// connections started and ended.
pub struct Hostile {
    pub behaviour: Behaviour,
    pub port: u16,
    pub connections: ConnectionLog,
}

impl Hostile {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections: ConnectionLog = Arc::default();
        let log = connections.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + LIFETIME;
            while Instant::now() < until {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let index = {
                            let mut l = log.lock().unwrap();
                            l.push((Instant::now(), None));
                            l.len() - 1
                        };
                        let log = log.clone();
                        std::thread::spawn(move || {
                            misbehave(behaviour, stream, until);
                            log.lock().unwrap()[index].1 = Some(Instant::now());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            behaviour,
            port,
            connections,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.behaviour == Behaviour::TlsStall {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/hook", self.port)
    }

    /// Connections courier opened.
    pub fn accepted(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// When the first connection ended (courier gave up on it).
    pub fn first_end(&self) -> Option<Instant> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, end)| *end)
            .min()
    }
}

/// Reads until the peer closes (or `until`); true when it closed.
fn wait_for_close(stream: &mut TcpStream, until: Instant) -> bool {
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// Reads the request head (up to the blank line).
fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

fn misbehave(behaviour: Behaviour, mut stream: TcpStream, until: Instant) {
    stream.set_nonblocking(false).unwrap();
    match behaviour {
        Behaviour::Silent | Behaviour::TlsStall => {
            wait_for_close(&mut stream, until);
        }
        Behaviour::Dribble => {
            read_head(&mut stream);
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .iter()
                .cycle()
            {
                if Instant::now() > until || stream.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Behaviour::Flood => {
            read_head(&mut stream);
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head).is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            // At most 1 GiB, or until courier closes the connection.
            for _ in 0..16_384 {
                if Instant::now() > until || stream.write_all(&framed).is_err() {
                    return;
                }
            }
        }
        Behaviour::RedirectLoop => {
            read_head(&mut stream);
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: /hook\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            wait_for_close(&mut stream, until);
        }
        Behaviour::Reset => {
            read_head(&mut stream);
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        Behaviour::Garbage => {
            read_head(&mut stream);
            let _ =
                stream.write_all(b"\x00\xff\xfeSSH-2.0-not-http\r\n\x1b[31m<<garbage>>\r\n\r\n");
            wait_for_close(&mut stream, until);
        }
    }
}

const ALL: [Behaviour; 7] = [
    Behaviour::Silent,
    Behaviour::Dribble,
    Behaviour::Flood,
    Behaviour::RedirectLoop,
    Behaviour::Reset,
    Behaviour::Garbage,
    Behaviour::TlsStall,
];

/// Polls a subscription's deliveries until `n` have `status`.
async fn wait_for_status(c: &Courier, key: &str, sub: &str, status: &str, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, body) = c
            .get(
                &format!("/v1/subscriptions/{sub}/deliveries?status={status}&limit=100"),
                key,
            )
            .await;
        let got = body["data"].as_array().cloned().unwrap_or_default();
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn hostile_endpoints_end_by_their_timeout_and_do_not_hold_back_a_healthy_one() {
    const EVENTS: usize = 8;
    const TIMEOUT_MS: u64 = 1_000;
    let rx = Receiver::start().await;
    rx.default_reply("/ok", Reply::status(200));
    let hostile: Vec<Hostile> = ALL.into_iter().map(Hostile::start).collect();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let courier = Courier::start_with(
        &prefix,
        &[
            ("COURIER__DELIVERY__TIMEOUT_MS", "1000"),
            ("COURIER__DELIVERY__BREAKER_FAILURE_THRESHOLD", "1000"),
        ],
    )
    .await;
    let (account, key) = create_account(&courier, "ops@acme.example").await;
    let subscribe = |url: String| {
        let courier = &courier;
        let key = key.clone();
        async move {
            let r = courier
                .post(
                    "/v1/subscriptions",
                    &key,
                    &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": url}}),
                )
                .await;
            r["id"].as_str().expect("subscription created").to_owned()
        }
    };
    let ingest = |n: usize, tag: &'static str| {
        let courier = &courier;
        let account = account.clone();
        async move {
            for i in 0..n {
                let r = courier
                    .post(
                        "/v1/events",
                        ADMIN_KEY,
                        &json!({"type": "customer.created", "account_id": account,
                                "payload": {"customer_id": format!("{tag}_{i}")}}),
                    )
                    .await;
                assert_eq!(r["status"], "accepted", "{r}");
            }
        }
    };

    // Warm up with the healthy endpoint alone, then take the baseline.
    subscribe(rx.url("/ok")).await;
    ingest(EVENTS, "warm").await;
    assert_eq!(rx.wait_for("/ok", EVENTS, WAIT).await.len(), EVENTS);
    let rss_before = courier.rss_kib();

    let mut subs = Vec::new();
    for h in &hostile {
        subs.push(subscribe(h.url()).await);
    }
    ingest(EVENTS, "hostile").await;
    let healthy = rx.wait_for("/ok", 2 * EVENTS, WAIT).await;
    assert_eq!(
        healthy.len(),
        2 * EVENTS,
        "the healthy endpoint got every event"
    );
    let healthy_done = healthy.iter().map(|r| r.at).max().unwrap();

    for (h, sub) in hostile.iter().zip(&subs) {
        // A flood still answered 200: those deliveries succeed with only the
        // start of the body read. Every other behaviour fails each attempt.
        let status = if h.behaviour == Behaviour::Flood {
            "succeeded"
        } else {
            "failed"
        };
        let done = wait_for_status(&courier, &key, sub, status, EVENTS).await;
        assert_eq!(
            done.len(),
            EVENTS,
            "{:?}: {EVENTS} deliveries {status}",
            h.behaviour
        );
        for d in &done {
            let id = d["id"].as_str().unwrap();
            let (_, full) = courier.get(&format!("/v1/deliveries/{id}"), &key).await;
            let history = full["history"].as_array().unwrap();
            assert!(!history.is_empty(), "{full}");
            if d == &done[0] {
                println!("{:?}: first attempt {}", h.behaviour, history[0]);
            }
            for a in history {
                let took = a["duration_ms"].as_u64().unwrap();
                assert!(
                    took <= TIMEOUT_MS + 1_000,
                    "{:?}: an attempt took {took} ms, past its timeout: {a}",
                    h.behaviour
                );
                let response = a["response"].as_str().unwrap_or_default();
                assert!(
                    response.len() <= 4_096,
                    "{:?}: read {} bytes",
                    h.behaviour,
                    response.len()
                );
                match h.behaviour {
                    Behaviour::Flood => assert_eq!(a["status_code"], 200, "{a}"),
                    Behaviour::RedirectLoop => assert_eq!(a["status_code"], 302, "{a}"),
                    _ => assert!(
                        a["error"].as_str().is_some_and(|e| !e.is_empty()),
                        "{:?}: {a}",
                        h.behaviour
                    ),
                }
            }
        }
        // Slow hostility never held the healthy endpoint back: all of its
        // deliveries arrived before the first slow attempt was given up.
        if matches!(
            h.behaviour,
            Behaviour::Silent | Behaviour::Dribble | Behaviour::TlsStall
        ) {
            let first_end = h.first_end().expect("courier closed its connections");
            assert!(
                healthy_done < first_end,
                "{:?} held the healthy endpoint back",
                h.behaviour
            );
        }
        // Redirects are not followed: one connection per attempt.
        if h.behaviour == Behaviour::RedirectLoop {
            let attempts: usize = done
                .iter()
                .map(|d| d["attempts"].as_u64().unwrap() as usize)
                .sum();
            assert_eq!(h.accepted(), attempts);
        }
    }

    let rss_after = courier.rss_kib();
    assert!(
        rss_after <= rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    println!("hostile endpoints: RSS {rss_before} KiB before, {rss_after} KiB after");
    courier.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}
