//! Resharding a Redis Cluster under load (cluster run only): while events
//! stream into courier, the slot of one shard moves to another master and
//! back. Nothing may be lost or doubled: every accepted event is delivered,
//! under exactly one delivery id, each delivery id once.
//!
//! The slot moves atomically (see [`move_slot`]): one script on the source
//! master marks the slot MIGRATING and MIGRATEs every key of the slot, so
//! courier meets ASK (until the new owner is announced) and MOVED (after),
//! which the cluster client follows. A slot moved key by key (as
//! `redis-cli --cluster reshard` does) would let a script of courier's meet
//! some of its keys moved and others not, which Redis refuses in the middle
//! of the script (see the cluster notes in README.md).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use courier::store::keys::{key_slot, CLUSTER_SHARDS};
use courier::store::Keys;

use crate::helpers::{
    cluster, cluster_masters, master_connections, redis_url, spawn_app_with, ADMIN_KEY,
};
use crate::receiver::Receiver;

/// Events the producer sends.
const EVENTS: usize = 300;

/// Marks `slot` MIGRATING on the master running it and moves every key of
/// the slot to the target, all in one script: no other command runs on the
/// source in between.
const MOVE_KEYS: &str = r"
local keys = redis.call('CLUSTER', 'GETKEYSINSLOT', ARGV[1], 1000000)
redis.call('CLUSTER', 'SETSLOT', ARGV[1], 'MIGRATING', ARGV[2])
for i = 1, #keys, 500 do
  redis.call('MIGRATE', ARGV[3], ARGV[4], '', 0, 10000, 'KEYS',
    unpack(keys, i, math.min(i + 499, #keys)))
end
return #keys
";

/// One master: (node id, host:port, slot ranges).
struct Master {
    id: String,
    addr: String,
    ranges: Vec<(u16, u16)>,
}

fn masters() -> Vec<Master> {
    let mut conn = master_connections(&redis_url()).remove(0);
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
    let serving = cluster_masters(&nodes);
    nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?.to_owned();
            serving.contains(&addr).then(|| Master {
                id: f[0].to_owned(),
                addr,
                ranges: f[8..]
                    .iter()
                    .filter(|r| !r.starts_with('['))
                    .filter_map(|r| match r.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => r.parse().ok().map(|s| (s, s)),
                    })
                    .collect(),
            })
        })
        .collect()
}

fn node(addr: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// The master serving `slot` now.
fn owner(slot: u16) -> String {
    masters()
        .into_iter()
        .find(|m| m.ranges.iter().any(|&(a, b)| (a..=b).contains(&slot)))
        .expect("a master serves every slot")
        .addr
}

/// Moves `slot` to the master at `to`, or to the next one in address order;
/// returns (from, to, keys moved).
fn move_slot(slot: u16, to: Option<&str>) -> (String, String, i64) {
    let mut all = masters();
    all.sort_by(|a, b| a.addr.cmp(&b.addr));
    let from = all
        .iter()
        .position(|m| m.ranges.iter().any(|&(a, b)| (a..=b).contains(&slot)))
        .expect("a master serves every slot");
    let to = match to {
        Some(addr) => all.iter().position(|m| m.addr == addr).expect("a master"),
        None => (from + 1) % all.len(),
    };
    let (src, dst) = (&all[from], &all[to]);
    let setslot = |conn: &mut redis::Connection, args: &[&str]| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(args)
            .query(conn)
            .unwrap();
    };
    setslot(&mut node(&dst.addr), &["IMPORTING", &src.id]);
    let (host, port) = dst.addr.rsplit_once(':').unwrap();
    let moved: i64 = redis::cmd("EVAL")
        .arg(MOVE_KEYS)
        .arg(0)
        .arg(slot)
        .arg(&dst.id)
        .arg(host)
        .arg(port)
        .query(&mut node(&src.addr))
        .unwrap();
    // The new owner first, then the old one, then the rest.
    setslot(&mut node(&dst.addr), &["NODE", &dst.id]);
    setslot(&mut node(&src.addr), &["NODE", &dst.id]);
    for m in all.iter().filter(|m| m.id != src.id && m.id != dst.id) {
        setslot(&mut node(&m.addr), &["NODE", &dst.id]);
    }
    (src.addr.clone(), dst.addr.clone(), moved)
}

/// What the producer saw.
#[derive(Default)]
struct Produced {
    /// Event id of each event, by its number.
    ids: HashMap<usize, String>,
    /// 503s and requests without an answer, each retried.
    retried: usize,
    unexpected: Vec<String>,
}

#[actix_web::test]
async fn moving_a_shards_slot_while_events_flow_loses_and_doubles_nothing() {
    if !cluster() {
        return;
    }
    let rx = Receiver::start().await;
    let app = spawn_app_with(|s| s.redis.shards = CLUSTER_SHARDS).await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/hook"), &["customer.created"], json!({}))
        .await;
    let keys = Keys::new(app.prefix.clone(), CLUSTER_SHARDS);
    let shard = keys.shard_of(&uuid::Uuid::parse_str(&account).unwrap());
    let slot = key_slot(&keys.shard_base(shard));
    let first_owner = owner(slot);

    // The slot moves away once a third of the events are in, and back
    // once two thirds are, on a thread of its own (blocking commands).
    let accepted = Arc::new(AtomicUsize::new(0));
    let moves = Arc::new(Mutex::new(Vec::new()));
    let mover = {
        let (accepted, moves) = (accepted.clone(), moves.clone());
        let home = first_owner.clone();
        std::thread::spawn(move || {
            let give_up = Instant::now() + Duration::from_secs(60);
            for (when, to) in [(EVENTS / 3, None), (2 * EVENTS / 3, Some(home.as_str()))] {
                while accepted.load(Ordering::SeqCst) < when && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(5));
                }
                moves.lock().unwrap().push(move_slot(slot, to));
            }
        })
    };

    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut produced = Produced::default();
    let give_up = Instant::now() + Duration::from_secs(60);
    'events: for n in 0..EVENTS {
        let body = json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{n}")}});
        // A 503 (Redis briefly refusing) is retried with the same
        // Idempotency-Key: the retry stores the event at most once.
        for _ in 0..50 {
            if Instant::now() > give_up {
                produced.unexpected.push(format!("event {n}: out of time"));
                break 'events;
            }
            let res = client
                .post(app.url("/v1/events"))
                .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
                .insert_header(("Idempotency-Key", format!("ev-{n}")))
                .send_json(&body)
                .await;
            let mut res = match res {
                Ok(r) => r,
                Err(_) => {
                    produced.retried += 1;
                    continue;
                }
            };
            let reply: Value = res.json().await.unwrap_or(Value::Null);
            match (res.status().as_u16(), reply["id"].as_str()) {
                (202, Some(id)) => {
                    produced.ids.insert(n, id.to_owned());
                    accepted.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                (503, _) => {
                    produced.retried += 1;
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
                (status, _) => {
                    produced
                        .unexpected
                        .push(format!("event {n}: {status} {reply}"));
                    break;
                }
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    // The mover ends within its bound once the producer is done.
    while !mover.is_finished() {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    mover.join().expect("the slot moves");

    let events: HashSet<&str> = produced.ids.values().map(String::as_str).collect();
    let until = Instant::now() + Duration::from_secs(30);
    let received = loop {
        let received = rx.received("/hook");
        let arrived: HashSet<String> = received
            .iter()
            .map(|r| r.json()["event_id"].as_str().unwrap_or("").to_owned())
            .collect();
        if events.iter().all(|e| arrived.contains(*e)) || Instant::now() > until {
            break received;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    // Let a late duplicate (a delivery sent twice) show up.
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let received = {
        let later = rx.received("/hook");
        if later.len() > received.len() {
            later
        } else {
            received
        }
    };

    let mut per_event: HashMap<String, HashSet<String>> = HashMap::new();
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for r in &received {
        let delivery = r.header("webhook-id").to_owned();
        per_event
            .entry(r.json()["event_id"].as_str().unwrap_or("").to_owned())
            .or_default()
            .insert(delivery.clone());
        *per_delivery.entry(delivery).or_default() += 1;
    }
    let missing: Vec<&&str> = events
        .iter()
        .filter(|e| !per_event.contains_key(**e))
        .collect();
    let split: Vec<_> = per_event.iter().filter(|(_, d)| d.len() != 1).collect();
    let doubled: Vec<_> = per_delivery.iter().filter(|(_, &n)| n != 1).collect();
    let moves = moves.lock().unwrap();
    eprintln!(
        "resharding: slot {slot} (shard {shard}) moved {:?}; {} events accepted, {} retries, {} received",
        *moves,
        events.len(),
        produced.retried,
        received.len()
    );
    assert!(produced.unexpected.is_empty(), "{:?}", produced.unexpected);
    assert_eq!(events.len(), EVENTS, "every event is accepted once");
    assert_eq!(moves.len(), 2, "the slot moved away and back");
    assert_ne!(moves[0].0, moves[0].1);
    assert!(moves[0].2 > 0, "the shard's keys moved with its slot");
    assert_eq!(owner(slot), first_owner, "the slot is back where it was");
    assert!(
        missing.is_empty(),
        "{} events never delivered",
        missing.len()
    );
    assert!(
        split.is_empty(),
        "events under several deliveries: {split:?}"
    );
    assert!(
        doubled.is_empty(),
        "deliveries sent more than once: {doubled:?}"
    );
}
