//! The Redis key layout: every key courier writes is named here. Rust code
//! takes every key name from [`Keys`]; the Lua scripts, which must build
//! some names themselves (a delivery's id is only known inside the claim
//! script), join the shard base they are given with the kinds of [`kind`],
//! which every script receives as its table `K` (tests check that no script
//! spells a name of its own and that the two spellings agree).
//!
//! Keys read `<prefix>:{s<N>}:<kind>:<ids…>`. The `{s<N>}` part is a Redis
//! Cluster hash tag: all keys of one account live in one shard, `N` being a
//! stable hash of the account id modulo `redis.shards`, so that ingest (event,
//! indexes, idempotency record, and later the deliveries and the schedule
//! entries) is one atomic Lua script on a single Redis and on a cluster alike.
//! Scripts build further key names from the shard *base* (`<prefix>:{s<N>}:`);
//! those names always carry the same hash tag, so they stay in the slot of
//! the declared key.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<p>:meta` | hash | `shards`: the shard count data was written with |
//! | `<p>:{sN}:accounts` | zset | account ids of the shard, score = creation ms |
//! | `<p>:{sN}:account:<account>` | hash | id, name, contact_email, key_hash, created_at, key_rotated_at; its routes: `routes:<type>` (enabled subscriptions of a type, `*` = every type, space-separated; absent when none) and `routes_v` = `2` once they are complete (an account written before them gets them on its first ingest) |
//! | `<p>:{sN}:event:<event>` | hash | id, account_id, type, occurred_at, received_at, payload, deliveries (space-separated ids); deleted with its deliveries by the janitor's retention pass (no expiry; earlier versions set one) |
//! | `<p>:{sN}:events:<account>` | zset | the account's event ids, score = occurred_at ms |
//! | `<p>:{sN}:events:<account>:<type>` | zset | the same, one type |
//! | `<p>:{sN}:idem:<account>:<key>` | string | `<event id> <fingerprint>`; expires after the idempotency TTL |
//! | `<p>:{sN}:subs:<account>` | zset | the account's subscription ids, score = creation ms |
//! | `<p>:{sN}:sub:<subscription>` | hash | `data` (JSON record), `v` (version), `types`, `enabled` |
//! | `<p>:{sN}:route:<account>:<type>` | set | enabled subscriptions of the account for a type (`*` = all) |
//! | `<p>:{sN}:schedule` | zset | deliveries waiting, score = due time (ms) |
//! | `<p>:{sN}:leases` | zset | deliveries in flight, member `<delivery>\|<claim token>` (earlier versions: the bare id), score = lease deadline (ms) |
//! | `<p>:{sN}:claims` | string | the shard's claim counter: each claim batch takes the next value as its token |
//! | `<p>:{sN}:dlv:<delivery>` | hash | (deleted with its event; a replay of an event with an expiry gets the same) event_id, sub_id, account_id, event_type, status, attempts, created_at, next_attempt_at, last_attempt_at, replay, error; the first attempt: `a1` (`at\|duration\|status\|next`), `a1r` (response), `a1e` (error) |
//! | `<p>:{sN}:dlv:<delivery>:attempts` | list | one JSON object per attempt after the first (earlier versions wrote every attempt here) |
//! | `<p>:{sN}:sub-dlv:<subscription>` | zset | the subscription's deliveries, score = creation ms |
//! | `<p>:{sN}:sub-dlv:<subscription>:failed` | zset | the same, failed ones only |
//! | `<p>:{sN}:notices:<account>` | list | operational notices (endpoint disabled, …), JSON, newest first |
//! | `<p>:{sN}:notice:<notice>` | hash | `data` (notice JSON), `attempts`, `claim` (the latest claim's fencing token): an operational email not yet sent |
//! | `<p>:{sN}:outbox` | zset | notices to email, score = due ms (the lease deadline while one is sent, renewed by its sender) |
//! | `<p>:{sN}:reported:<account>:<what>` | string | the value last reported (e.g. since when an endpoint fails), so a condition is emailed once |
//! | `<p>:{sN}:digest:<subscription>` | list | delivery ids held for the subscription's next digest |
//! | `<p>:{sN}:digest:<subscription>:counts` | hash | event type → count in the next digest |
//! | `<p>:{sN}:digest:<subscription>:sending` (`:counts`, `:meta`) | list, hash, hash | the digest being sent: its deliveries, counts, `attempts` and `due` |
//! | `<p>:{sN}:digest:<subscription>:token` | string | fencing token of the latest digest claim |
//! | `<p>:{sN}:digests` | zset | subscriptions with an open digest, score = when it is due |
//! | `<p>:{sN}:digest-sending` | zset | digests being sent or waiting to retry, score = lease deadline or next attempt |
//! | `<p>:{sN}:rate:<subscription>` | string | the subscription's rate limit: theoretical arrival time (ms) of its next send; expires once past |
//! | `<p>:{sN}:stats:<subscription>:<hour>` | hash | the subscription's attempts in one hour (hours since the epoch): `a` attempts, `s` successes, `l<i>` attempts in latency bucket `i` (see `domain::stats`); expires 48 h after the hour |
//! | `<p>:{sN}:traffic:<minute>` | hash | the shard's traffic in one minute (minutes since the epoch): `i` events ingested, `s`/`f` attempts that succeeded/failed; expires 2 h after the minute |
//! | `<p>:{sN}:endpoint-failures:<hour>` | zset | failed attempts per endpoint (URL without credentials or query) in one hour; expires 48 h after the hour |
//! | `<p>:{sN}:open-circuits` | zset | endpoints (URL without credentials or query) last seen with an open circuit, score = open until (ms); removed when the circuit closes, trimmed a day after |
//! | `<p>:endpoint:<url>` | hash | the circuit (`failures`, `open_until`, `cooldown`, the probe lease `probe`/`probe_at`/`probe_until`), `last_success`, `failing_since`, `v` (bumped on each change); expires days after its last write |
//! | `<p>:subscription-changes` | pub/sub channel | `<account> <subscription>` on every change |
//! | `<p>:dash-link:<sha256 of token>` | string | a one-time dashboard link's grant (JSON: account, scope); taken with `GETDEL`, expires after `dashboard.link_ttl_secs` |
//! | `<p>:dash-session:<sha256 of id>` | hash | a dashboard session: `account` (an id, or `operator`), `scope`, `csrf`, `created_at`, `expires_at`; expires when idle |

use uuid::Uuid;

/// What follows the shard base in each kind of key, and the suffixes of
/// companion keys: spelled once, here. The `Keys` functions below build
/// names from them, and every script receives them as the Lua table `K`
/// ([`lua_names`], prepended to each script), so a script writes
/// `base .. K.dlv .. id` and never spells a key name of its own.
pub mod kind {
    pub const ACCOUNTS: &str = "accounts";
    pub const ACCOUNT: &str = "account:";
    pub const EVENT: &str = "event:";
    pub const EVENTS: &str = "events:";
    pub const IDEM: &str = "idem:";
    pub const SUBS: &str = "subs:";
    pub const SUB: &str = "sub:";
    pub const ROUTE: &str = "route:";
    pub const SCHEDULE: &str = "schedule";
    pub const LEASES: &str = "leases";
    pub const CLAIMS: &str = "claims";
    pub const DLV: &str = "dlv:";
    pub const SUB_DLV: &str = "sub-dlv:";
    pub const NOTICES: &str = "notices:";
    pub const NOTICE: &str = "notice:";
    pub const OUTBOX: &str = "outbox";
    pub const REPORTED: &str = "reported:";
    pub const DIGEST: &str = "digest:";
    pub const DIGESTS: &str = "digests";
    pub const DIGEST_SENDING: &str = "digest-sending";
    pub const RATE: &str = "rate:";
    /// `<delivery>:attempts`
    pub const ATTEMPTS: &str = ":attempts";
    /// `<subscription deliveries>:failed`
    pub const FAILED: &str = ":failed";
    /// `<digest>:sending`, and `:counts`, `:meta`, `:token` beside it.
    pub const SENDING: &str = ":sending";
    pub const COUNTS: &str = ":counts";
    pub const META: &str = ":meta";
    pub const TOKEN: &str = ":token";
}

/// The names the scripts know the kinds by (`K.<name>` in Lua).
const LUA_NAMES: [(&str, &str); 27] = [
    ("accounts", kind::ACCOUNTS),
    ("account", kind::ACCOUNT),
    ("event", kind::EVENT),
    ("events", kind::EVENTS),
    ("idem", kind::IDEM),
    ("subs", kind::SUBS),
    ("sub", kind::SUB),
    ("route", kind::ROUTE),
    ("schedule", kind::SCHEDULE),
    ("leases", kind::LEASES),
    ("claims", kind::CLAIMS),
    ("dlv", kind::DLV),
    ("sub_dlv", kind::SUB_DLV),
    ("notices", kind::NOTICES),
    ("notice", kind::NOTICE),
    ("outbox", kind::OUTBOX),
    ("reported", kind::REPORTED),
    ("digest", kind::DIGEST),
    ("digests", kind::DIGESTS),
    ("digest_sending", kind::DIGEST_SENDING),
    ("rate", kind::RATE),
    ("attempts", kind::ATTEMPTS),
    ("failed", kind::FAILED),
    ("sending", kind::SENDING),
    ("counts", kind::COUNTS),
    ("meta", kind::META),
    ("token", kind::TOKEN),
];

/// The Lua table `K` every script starts with: the key kinds above.
pub fn lua_names() -> String {
    let fields: Vec<String> = LUA_NAMES
        .iter()
        .map(|(name, value)| format!("{name} = '{value}'"))
        .collect();
    format!("local K = {{{}}}\n", fields.join(", "))
}

/// Builds key names for one deployment (one prefix, one shard count).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    shards: u16,
}

/// FNV-1a, 32 bit: tiny, stable across versions and platforms (a shard
/// assignment must never change for existing data).
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

impl Keys {
    pub fn new(prefix: impl Into<String>, shards: u16) -> Self {
        Self {
            prefix: prefix.into(),
            shards: shards.max(1),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard an account's keys live in.
    pub fn shard_of(&self, account: &Uuid) -> u16 {
        (fnv1a(account.as_bytes()) % u32::from(self.shards)) as u16
    }

    /// `<prefix>:{s<N>}:`, the start of every key of shard `shard`.
    pub fn shard_base(&self, shard: u16) -> String {
        format!("{}:{{s{shard}}}:", self.prefix)
    }

    /// The shard base of `account`.
    pub fn base(&self, account: &Uuid) -> String {
        self.shard_base(self.shard_of(account))
    }

    pub fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }

    pub fn accounts(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::ACCOUNTS)
    }

    pub fn account(&self, account: &Uuid) -> String {
        format!("{}{}{account}", self.base(account), kind::ACCOUNT)
    }

    pub fn event(&self, account: &Uuid, event: &Uuid) -> String {
        format!("{}{}{event}", self.base(account), kind::EVENT)
    }

    /// The account's event index, or its index of one type.
    pub fn events(&self, account: &Uuid, event_type: Option<&str>) -> String {
        match event_type {
            None => format!("{}{}{account}", self.base(account), kind::EVENTS),
            Some(t) => format!("{}{}{account}:{t}", self.base(account), kind::EVENTS),
        }
    }

    pub fn idempotency(&self, account: &Uuid, key: &str) -> String {
        format!("{}{}{account}:{key}", self.base(account), kind::IDEM)
    }

    pub fn subscriptions(&self, account: &Uuid) -> String {
        format!("{}{}{account}", self.base(account), kind::SUBS)
    }

    pub fn subscription(&self, account: &Uuid, subscription: &Uuid) -> String {
        self.subscription_in_shard(self.shard_of(account), subscription)
    }

    /// A subscription found by shard (a claimed delivery knows its shard,
    /// not its account).
    pub fn subscription_in_shard(&self, shard: u16, subscription: &Uuid) -> String {
        format!("{}{}{subscription}", self.shard_base(shard), kind::SUB)
    }

    pub fn route(&self, account: &Uuid, event_type: &str) -> String {
        format!(
            "{}{}{account}:{event_type}",
            self.base(account),
            kind::ROUTE
        )
    }

    /// A per-shard key every ingest script declares, so the script routes to
    /// the shard's slot (the delivery schedule, once deliveries exist).
    pub fn schedule(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::SCHEDULE)
    }

    /// In-flight deliveries of a shard, scored by lease deadline.
    pub fn leases(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::LEASES)
    }

    /// A shard's claim counter (the claim script takes its tokens from it).
    pub fn claims(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::CLAIMS)
    }

    pub fn delivery(&self, account: &Uuid, delivery: &Uuid) -> String {
        format!("{}{}{delivery}", self.base(account), kind::DLV)
    }

    /// A delivery's attempts, one JSON object each.
    pub fn delivery_attempts(&self, account: &Uuid, delivery: &Uuid) -> String {
        format!("{}{}", self.delivery(account, delivery), kind::ATTEMPTS)
    }

    /// A subscription's deliveries.
    pub fn subscription_deliveries(&self, account: &Uuid, subscription: &Uuid) -> String {
        format!("{}{}{subscription}", self.base(account), kind::SUB_DLV)
    }

    /// A subscription's failed deliveries.
    pub fn failed_deliveries(&self, account: &Uuid, subscription: &Uuid) -> String {
        format!(
            "{}{}",
            self.subscription_deliveries(account, subscription),
            kind::FAILED
        )
    }

    pub fn notices(&self, account: &Uuid) -> String {
        format!("{}{}{account}", self.base(account), kind::NOTICES)
    }

    /// Operational notices of a shard waiting to be emailed.
    pub fn outbox(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::OUTBOX)
    }

    /// One notice waiting in the outbox.
    pub fn notice(&self, shard: u16, notice: &Uuid) -> String {
        format!("{}{}{notice}", self.shard_base(shard), kind::NOTICE)
    }

    /// The value last reported to `account` about `what` (see
    /// [`Self::circuit_report`]), so a condition is emailed once.
    pub fn reported(&self, account: &Uuid, what: &str) -> String {
        format!("{}{}{account}:{what}", self.base(account), kind::REPORTED)
    }

    /// The `what` of [`Self::reported`] for an endpoint failing with its
    /// circuit open (the notice script builds the key from it).
    pub fn circuit_report(&self, url: &str) -> String {
        format!("circuit:{url}")
    }

    /// Subscriptions of a shard with an open digest, scored by due time.
    pub fn digests(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::DIGESTS)
    }

    /// Digests of a shard being sent, scored by lease deadline / retry time.
    pub fn digests_sending(&self, shard: u16) -> String {
        format!("{}{}", self.shard_base(shard), kind::DIGEST_SENDING)
    }

    /// The deliveries held for a subscription's next digest.
    pub fn digest(&self, account: &Uuid, subscription: &Uuid) -> String {
        format!("{}{}{subscription}", self.base(account), kind::DIGEST)
    }

    /// A subscription's rate limit, shared by every replica.
    pub fn rate(&self, account: &Uuid, subscription: &Uuid) -> String {
        format!("{}{}{subscription}", self.base(account), kind::RATE)
    }

    /// A subscription's attempt counts in hour `hour` (hours since the
    /// epoch); `shard` is its account's.
    pub fn sub_stats(&self, shard: u16, subscription: &Uuid, hour: i64) -> String {
        format!("{}stats:{subscription}:{hour}", self.shard_base(shard))
    }

    /// A shard's traffic in minute `minute` (minutes since the epoch).
    pub fn traffic(&self, shard: u16, minute: i64) -> String {
        format!("{}traffic:{minute}", self.shard_base(shard))
    }

    /// Failed attempts per endpoint of a shard in hour `hour`.
    pub fn endpoint_failures(&self, shard: u16, hour: i64) -> String {
        format!("{}endpoint-failures:{hour}", self.shard_base(shard))
    }

    /// Endpoints of a shard last seen with an open circuit.
    pub fn open_circuits(&self, shard: u16) -> String {
        format!("{}open-circuits", self.shard_base(shard))
    }

    /// State of one endpoint (webhook URL), shared by every account using it.
    /// One key: the scripts that change it touch nothing else, so they are
    /// single-slot on a cluster without a hash tag.
    pub fn endpoint(&self, url: &str) -> String {
        format!("{}:endpoint:{url}", self.prefix)
    }

    /// A one-time dashboard link, named by the SHA-256 of its token (a
    /// global key: following a link is a single command, so it needs no
    /// shard).
    pub fn dashboard_link(&self, token_hash: &str) -> String {
        format!("{}:dash-link:{token_hash}", self.prefix)
    }

    /// A dashboard session, named by the SHA-256 of its id.
    pub fn dashboard_session(&self, id_hash: &str) -> String {
        format!("{}:dash-session:{id_hash}", self.prefix)
    }

    /// Pub/sub channel announcing subscription changes to every replica.
    pub fn subscription_changes(&self) -> String {
        format!("{}:subscription-changes", self.prefix)
    }
}

/// The shard count recommended for a Redis Cluster of three masters (as
/// `redis-cli --cluster create` makes it: slots 0-5460, 5461-10922 and
/// 10923-16383): the slots of its tags `{s0}`..`{s16}` fall 6/5/6 on the
/// three masters (and 8/9 on two, 4/4/5/4 on four), where the default 16
/// falls 6/4/6. No multiple of three up to 128 splits exactly evenly, so 17
/// is as even as a count near the default can be. Only for new data: the
/// count is fixed once data exists (see `Store::check_layout`).
pub const CLUSTER_SHARDS: u16 = 17;

/// The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, or of the
/// whole key without one, modulo 16384), as Redis computes it.
pub fn key_slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    let mut crc: u16 = 0;
    for b in hashed.bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The Redis Cluster hash tag of a key: the part between the first `{` and
/// the next `}`, if non-empty (what decides the key's slot).
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &key[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_assignment_is_stable() {
        // Changing this mapping would strand existing data: pin it.
        let keys = Keys::new("courier", 16);
        let id = Uuid::parse_str("0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70").unwrap();
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(keys.shard_of(&id), (fnv1a(id.as_bytes()) % 16) as u16);
        assert_eq!(keys.shard_of(&id), keys.shard_of(&id));
    }

    #[test]
    fn accounts_spread_over_all_shards() {
        let keys = Keys::new("courier", 16);
        let mut seen = [0u32; 16];
        for _ in 0..4_000 {
            seen[keys.shard_of(&Uuid::now_v7()) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }

    #[test]
    fn every_key_of_an_account_shares_one_hash_tag() {
        let keys = Keys::new("courier", 16);
        let a = Uuid::now_v7();
        let e = Uuid::now_v7();
        let tag = hash_tag(&keys.account(&a)).unwrap().to_owned();
        for key in [
            keys.event(&a, &e),
            keys.events(&a, None),
            keys.events(&a, Some("meter.created")),
            keys.idempotency(&a, "k{x}"),
            keys.subscriptions(&a),
            keys.subscription(&a, &e),
            keys.route(&a, "*"),
            keys.schedule(keys.shard_of(&a)),
            keys.accounts(keys.shard_of(&a)),
            keys.leases(keys.shard_of(&a)),
            keys.claims(keys.shard_of(&a)),
            keys.delivery(&a, &e),
            keys.delivery_attempts(&a, &e),
            keys.subscription_in_shard(keys.shard_of(&a), &e),
            keys.reported(&a, &keys.circuit_report("https://x.example/{a}")),
            keys.subscription_deliveries(&a, &e),
            keys.failed_deliveries(&a, &e),
            keys.notices(&a),
            keys.outbox(keys.shard_of(&a)),
            keys.notice(keys.shard_of(&a), &e),
            keys.digests(keys.shard_of(&a)),
            keys.digests_sending(keys.shard_of(&a)),
            keys.digest(&a, &e),
            keys.rate(&a, &e),
        ] {
            assert_eq!(hash_tag(&key), Some(tag.as_str()), "{key}");
        }
    }

    #[test]
    fn keys_are_readable() {
        let keys = Keys::new("courier", 1);
        let a = Uuid::parse_str("0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70").unwrap();
        assert_eq!(
            keys.account(&a),
            "courier:{s0}:account:0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70"
        );
        assert_eq!(
            keys.events(&a, Some("meter.created")),
            "courier:{s0}:events:0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70:meter.created"
        );
        assert_eq!(keys.meta(), "courier:meta");
        assert_eq!(
            keys.delivery_attempts(&a, &a),
            "courier:{s0}:dlv:0190c7a6-5b3e-7d2a-9f10-2b3c4d5e6f70:attempts"
        );
        assert_eq!(keys.subscription_in_shard(0, &a), keys.subscription(&a, &a));
        assert_eq!(hash_tag("no tag"), None);
        assert_eq!(hash_tag("a{}b"), None);
    }

    #[test]
    fn slots_are_computed_as_redis_does() {
        // Values from `CLUSTER KEYSLOT` of Redis 7.0.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("courier:{s0}:accounts"), key_slot("s0"));
        assert_eq!(key_slot("a{}b"), 13694);
    }

    /// How many of `shards` shards' tags land on each of `masters` masters
    /// with the slot ranges `redis-cli --cluster create` gives them.
    fn spread(shards: u16, masters: usize) -> Vec<u16> {
        let per = 16384.0 / masters as f64;
        let mut last_slots = Vec::new();
        for i in 0..masters {
            let last = ((i + 1) as f64 * per - 1.0).round() as u16;
            last_slots.push(if i + 1 == masters { 16383 } else { last });
        }
        let keys = Keys::new("courier", shards);
        let mut counts = vec![0; masters];
        for shard in 0..shards {
            let slot = key_slot(&keys.shard_base(shard));
            counts[last_slots.iter().position(|&l| slot <= l).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn cluster_shards_spread_evenly_over_three_masters() {
        assert_eq!(spread(CLUSTER_SHARDS, 3), [6, 5, 6]);
        assert_eq!(spread(CLUSTER_SHARDS, 2), [8, 9]);
        assert_eq!(spread(CLUSTER_SHARDS, 4), [4, 4, 5, 4]);
        // The default count, kept for existing data, is lopsided on three.
        assert_eq!(spread(16, 3), [6, 4, 6]);
        // No multiple of three up to 128 splits exactly evenly over three
        // masters (hence a count one off a multiple of three).
        for n in (3..=128).step_by(3) {
            let c = spread(n, 3);
            assert!(c.iter().any(|&x| x != n / 3), "{n}: {c:?}");
        }
    }

    /// Every script, for the layout check below.
    const SCRIPTS: [&str; 27] = [
        include_str!("lua/claim.lua"),
        include_str!("lua/expire_events.lua"),
        include_str!("lua/common.lua"),
        include_str!("lua/digest_claim.lua"),
        include_str!("lua/digest_finish.lua"),
        include_str!("lua/digest_hold.lua"),
        include_str!("lua/digest_release.lua"),
        include_str!("lua/digest_renew.lua"),
        include_str!("lua/endpoint.lua"),
        include_str!("lua/endpoint_probe.lua"),
        include_str!("lua/endpoint_record.lua"),
        include_str!("lua/finish.lua"),
        include_str!("lua/ingest.lua"),
        include_str!("lua/notice.lua"),
        include_str!("lua/outbox_claim.lua"),
        include_str!("lua/outbox_done.lua"),
        include_str!("lua/outbox_release.lua"),
        include_str!("lua/outbox_renew.lua"),
        include_str!("lua/page.lua"),
        include_str!("lua/put_subscription.lua"),
        include_str!("lua/rate.lua"),
        include_str!("lua/reclaim.lua"),
        include_str!("lua/release.lua"),
        include_str!("lua/renew.lua"),
        include_str!("lua/replay.lua"),
        include_str!("lua/requeue.lua"),
        include_str!("lua/rotate_key.lua"),
    ];

    #[test]
    fn scripts_send_no_command_on_several_keys_that_may_be_missing() {
        // While a slot moves, the node importing it refuses (TRYAGAIN) a
        // command on several keys of which some are missing, which stops a
        // script halfway. The one left: the digest claim's RENAME (its
        // target never exists), see docs/architecture.md.
        let multi = [
            "SUNION",
            "SINTER",
            "SDIFF",
            "ZUNION",
            "ZINTER",
            "ZDIFF",
            "MGET",
            "MSET",
            "SMOVE",
            "LMOVE",
            "RPOPLPUSH",
            "COPY",
            "RENAME",
        ];
        for (i, script) in SCRIPTS.iter().enumerate() {
            for call in script.split("redis.call(").skip(1) {
                let command = call.split('\'').nth(1).unwrap_or("");
                let args = call.split(')').next().unwrap_or("").matches(',').count();
                let renames_held_digest = command == "RENAME" && script.contains("K.digest ");
                assert!(
                    !multi.iter().any(|m| command.starts_with(m)) || renames_held_digest,
                    "script {i} sends {command}"
                );
                assert!(
                    !matches!(command, "DEL" | "UNLINK" | "EXISTS" | "TOUCH") || args <= 1,
                    "script {i}: {command} on several keys"
                );
            }
        }
    }

    #[test]
    fn scripts_take_every_key_name_from_here() {
        let mut used = 0;
        for (i, script) in SCRIPTS.iter().enumerate() {
            // No key name spelled in a script: a literal appended to an
            // expression is a separator (`:`, ` `, `-`, `/`) or a value.
            for part in script.split(" .. '").skip(1) {
                let literal = part.split('\'').next().unwrap_or("");
                assert!(
                    !literal.chars().any(|c| c.is_ascii_lowercase()) || literal.contains(' '),
                    "script {i} spells a key name: `{literal}`"
                );
            }
            // Every `K.<name>` it uses is one of the kinds above.
            for part in script.split("K.").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    LUA_NAMES.iter().any(|(n, _)| *n == name),
                    "script {i} uses K.{name}, which keys.rs does not define"
                );
                used += 1;
            }
        }
        assert!(
            used > 40,
            "only {used} uses of K: has the script style changed?"
        );
    }

    #[test]
    fn the_scripts_names_are_the_rust_names() {
        let keys = Keys::new("p", 1);
        let (a, id) = (Uuid::nil(), Uuid::nil());
        let base = keys.shard_base(0);
        let lua = lua_names();
        let k = |name: &str| {
            let field = format!("{name} = '");
            let at = lua.find(&field).unwrap_or_else(|| panic!("K.{name}")) + field.len();
            lua[at..].split('\'').next().unwrap().to_owned()
        };
        let n = id.to_string();
        for (built, from_lua) in [
            (keys.accounts(0), format!("{base}{}", k("accounts"))),
            (keys.account(&a), format!("{base}{}{n}", k("account"))),
            (keys.event(&a, &id), format!("{base}{}{n}", k("event"))),
            (
                keys.events(&a, Some("t")),
                format!("{base}{}{n}:t", k("events")),
            ),
            (
                keys.idempotency(&a, "x"),
                format!("{base}{}{n}:x", k("idem")),
            ),
            (keys.subscriptions(&a), format!("{base}{}{n}", k("subs"))),
            (keys.subscription(&a, &id), format!("{base}{}{n}", k("sub"))),
            (keys.route(&a, "t"), format!("{base}{}{n}:t", k("route"))),
            (keys.schedule(0), format!("{base}{}", k("schedule"))),
            (keys.leases(0), format!("{base}{}", k("leases"))),
            (keys.claims(0), format!("{base}{}", k("claims"))),
            (keys.delivery(&a, &id), format!("{base}{}{n}", k("dlv"))),
            (
                keys.delivery_attempts(&a, &id),
                format!("{base}{}{n}{}", k("dlv"), k("attempts")),
            ),
            (
                keys.failed_deliveries(&a, &id),
                format!("{base}{}{n}{}", k("sub_dlv"), k("failed")),
            ),
            (keys.notices(&a), format!("{base}{}{n}", k("notices"))),
            (keys.notice(0, &id), format!("{base}{}{n}", k("notice"))),
            (keys.outbox(0), format!("{base}{}", k("outbox"))),
            (
                keys.reported(&a, "w"),
                format!("{base}{}{n}:w", k("reported")),
            ),
            (keys.digest(&a, &id), format!("{base}{}{n}", k("digest"))),
            (keys.digests(0), format!("{base}{}", k("digests"))),
            (
                keys.digests_sending(0),
                format!("{base}{}", k("digest_sending")),
            ),
            (keys.rate(&a, &id), format!("{base}{}{n}", k("rate"))),
        ] {
            assert_eq!(built, from_lua);
        }
        // Each companion suffix is listed in the table at the top.
        let table = include_str!("keys.rs")
            .lines()
            .filter(|l| l.starts_with("//! | `<p>:"))
            .collect::<Vec<_>>()
            .join("\n");
        for name in ["attempts", "failed", "sending", "counts", "meta", "token"] {
            assert!(table.contains(&k(name)), "{name}");
        }
    }
}
