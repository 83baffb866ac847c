//! Hostile endpoints: a webhook URL may lead to a server that never answers,
//! dribbles, floods, loops, resets, speaks garbage or stalls TLS. Each sits
//! beside a healthy endpoint on the same courier process: every attempt ends
//! by its timeout, only the response's start is read, memory stays flat, and
//! the healthy endpoint's deliveries are not held back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A loopback server that misbehaves as told; records when each of its
/// connections started and ended.
pub struct Hostile {
    pub behaviour: Behaviour,
    pub port: u16,
    /// (accepted, ended) per connection.
    pub connections: Arc<Mutex<Vec<(Instant, Option<Instant>)>>>,
}

impl Hostile {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections: Arc<Mutex<Vec<(Instant, Option<Instant>)>>> = Arc::default();
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
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// Reads the request head (up to the blank line).
fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
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
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".iter().cycle() {
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
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
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
            let _ = stream.write_all(b"\x00\xff\xfeSSH-2.0-not-http\r\n\x1b[31m<<garbage>>\r\n\r\n");
            wait_for_close(&mut stream, until);
        }
    }
}
