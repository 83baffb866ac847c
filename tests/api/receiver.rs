//! A real HTTP receiver on a random loopback port: records every request and
//! answers with scripted statuses, headers and delays.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("notification body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            headers: vec![],
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Answers per path, used in order; then the default.
    scripts: HashMap<String, VecDeque<Reply>>,
    defaults: HashMap<String, Reply>,
    /// Requests per path whose answer has been sent.
    completed: HashMap<String, usize>,
}

pub struct Receiver {
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let reply = {
        let mut s = state.lock().unwrap();
        s.received.push(Received {
            path: path.clone(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.to_vec(),
            at: Instant::now(),
        });
        let scripted = s.scripts.get_mut(&path).and_then(VecDeque::pop_front);
        scripted
            .or_else(|| s.defaults.get(&path).cloned())
            .unwrap_or_else(|| Reply::status(200))
    };
    if !reply.delay.is_zero() {
        actix_web::rt::time::sleep(reply.delay).await;
    }
    *state.lock().unwrap().completed.entry(path).or_default() += 1;
    let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        res.insert_header((k.as_str(), v.as_str()));
    }
    res.body("ok")
}

impl Receiver {
    pub async fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let data = web::Data::new(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Answers the next requests to `path` with `replies`, in order.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), replies.into());
    }

    /// Answers every unscripted request to `path` with `reply`.
    pub fn default_reply(&self, path: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .defaults
            .insert(path.into(), reply);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn completed(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .completed
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits (up to `limit`) until `path` got at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        let until = Instant::now() + limit;
        loop {
            let got = self.received(path);
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
