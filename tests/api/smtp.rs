//! A real SMTP server for a test: aiosmtpd (Debian's python3-aiosmtpd) on a
//! free loopback port with the handler in `tests/smtp/`, writing every
//! accepted message to a maildir of the test's own; recipients starting
//! with `reject` get 550, with `busy` 451, with `slow` an answer only after
//! a minute, with `late` an acceptance after five seconds. Stopped when
//! dropped. And [`SilentServer`]: a listener that accepts connections and
//! never answers, so a message sent to it is in flight until the sender's
//! timeout.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use super::helpers::free_port;

/// aiosmtpd comes from Debian's package, seen by Debian's python.
const PYTHON: &str = "/usr/bin/python3";

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The header section as sent.
    pub head: String,
    pub subject: String,
    pub to: String,
    pub message_id: String,
    pub list_unsubscribe: String,
    pub text: String,
    pub html: String,
}

impl SmtpServer {
    pub fn start() -> Self {
        let mut s = Self::stopped(free_port());
        s.run();
        s
    }

    /// A server that will listen on `port` once `run` is called.
    pub fn stopped(port: u16) -> Self {
        Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts listening; returns once the port answers.
    pub fn run(&mut self) {
        let handler_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp");
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "courier_test_smtp.Handler"])
            .arg(self.dir.path().join("maildir"))
            .env("PYTHONPATH", handler_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test installs python3-aiosmtpd)");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("aiosmtpd exited ({status}); is python3-aiosmtpd installed?");
            }
            assert!(Instant::now() < until, "aiosmtpd did not listen in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let dir = self.dir.path().join("maildir/new");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|raw| parse(&raw))
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let until = Instant::now() + limit;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > until {
                return m;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts SMTP connections on a free loopback port and never sends the
/// greeting: whatever is sent to it stays in flight until the sender's
/// timeout (or until the sender dies). Stopped when dropped.
pub struct SilentServer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (count, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            // Held open, unanswered, until the server stops.
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            accepted,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn parse(raw: &[u8]) -> Mail {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let head = text[..text.find("\n\n").unwrap_or(text.len())].to_owned();
    let m = MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    Mail {
        head,
        subject: m.subject().unwrap_or_default().to_owned(),
        to: m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned(),
        message_id: m.message_id().unwrap_or_default().to_owned(),
        list_unsubscribe: m
            .header_raw("List-Unsubscribe")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        text: m.body_text(0).unwrap_or_default().into_owned(),
        html: m.body_html(0).unwrap_or_default().into_owned(),
    }
}
