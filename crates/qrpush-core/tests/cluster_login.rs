// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! QR logins on a real Redis Cluster (3 primaries + 3 replicas on loopback): every script run
//! touches one slot (the login's key is in its event channel's slot), runs on that slot's
//! owner, and its events reach a sharded subscriber (SSUBSCRIBE) on that owner exactly once, in
//! order, for logins on every shard; the `global` mode reaches a classic subscriber on another
//! node; the single channel works (on its one slot); the per-user scan limit, whose key is in
//! another slot, is never exceeded, also by racing scans, and a refused scan does not use it up;
//! a slot moved under a login is followed through MOVED without running anything twice.

use qrpush_test_support as support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use qrpush_core::login::{Login, LoginError, Redeemed, Started, State};
use redis::Value;
use serde_json::Value as Json;
use support::{cluster_routing, ClusterTopology, Subscriber};

#[path = "common/login_race.rs"]
mod login_race;
use login_race::{login_err, racing_scans_pass_exactly};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// The next `n` events on `sub` as (type, seq), checking their channel and login id.
fn events(sub: &mut Subscriber, n: usize, channel: &str, id: &str) -> Vec<(String, i64)> {
    sub.recv_messages(n, WAIT)
        .into_iter()
        .map(|(c, payload)| {
            assert_eq!(String::from_utf8_lossy(&c), channel);
            let e: Json = serde_json::from_slice(&payload).expect("events are JSON");
            assert_eq!(e["loginId"], id, "{e}");
            (
                e["type"].as_str().unwrap().to_string(),
                e["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn flow_events() -> Vec<(String, i64)> {
    [("scanned", 2), ("approved", 3), ("redeemed", 4)]
        .iter()
        .map(|(t, s)| (t.to_string(), *s))
        .collect()
}

/// scan, approve (the ticket from status, as a browser that missed the event), redeem.
fn complete(login: &Login<'_>, started: &Started, user: &str) {
    let id = &started.status.id;
    let scanned = login.scan(started.qr.expose(), user, "phone").unwrap();
    assert_eq!(scanned.status.state, State::Scanned);
    assert_eq!(scanned.browser_ip, "198.51.100.7");
    let code = login.approve(id, user, "User").unwrap().confirmation_code;
    let redeemed = redeem_as_browser(login, started, code.expose());
    assert_eq!(
        (redeemed.user_id.as_str(), redeemed.status.version),
        (user, 4)
    );
}

/// Redeems an approved login as its browser does: the ticket read from status (a browser that
/// missed the approved event), then the confirmation `code` the phone showed.
fn redeem_as_browser(login: &Login<'_>, started: &Started, code: &str) -> Redeemed {
    let browser_secret = started.browser_secret.expose();
    let ticket = login
        .status(&started.status.id, Some(browser_secret))
        .unwrap()
        .ticket
        .expect("an approved login gives its browser a ticket");
    login
        .redeem(
            &started.status.id,
            ticket.value.expose(),
            browser_secret,
            code,
        )
        .unwrap()
}

/// A login started and scanned, its scanned event heard once on its shard, for a test that then
/// moves its slot.
struct LoginToMove {
    started: Started,
    /// The slot of its channel (and key).
    slot: u16,
    /// The slot's owner now.
    from: u16,
    /// Another primary, to move the slot to.
    to: u16,
    /// A sharded subscriber to its channel on `from`, the scanned event already read.
    sub: Subscriber,
}

fn scanned_login_to_move(cluster: &ClusterTopology, login: &Login<'_>, user: &str) -> LoginToMove {
    let started = login.start("198.51.100.7", "UA").unwrap();
    let (id, channel) = (&started.status.id, &started.status.channel);
    let slot = cluster.slot_of(channel);
    let from = cluster.owner_of_slot(slot).port();
    let to = cluster.primary_other_than(from);
    let mut sub = cluster.subscribe_sharded(channel);
    login.scan(started.qr.expose(), user, "").unwrap();
    assert_eq!(
        events(&mut sub, 1, channel, id),
        vec![("scanned".to_string(), 2)]
    );
    LoginToMove {
        started,
        slot,
        from,
        to,
        sub,
    }
}

/// Starts logins until one has its channel on each primary; returns them by owner port.
fn one_login_per_shard(cluster: &ClusterTopology, login: &Login<'_>) -> BTreeMap<u16, Started> {
    let shards = cluster.primaries().len();
    let mut by_owner = BTreeMap::new();
    for _ in 0..200 {
        let started = login.start("198.51.100.7", "Firefox/128").unwrap();
        let owner = cluster.owner_of(&started.status.channel).port();
        by_owner.entry(owner).or_insert(started);
        if by_owner.len() == shards {
            return by_owner;
        }
    }
    panic!("200 logins did not cover {shards} shards");
}

/// Per-login channels, sharded: a whole flow per shard, each event once, in order, on the
/// channel's owner; the login's key is on that owner, in the channel's slot; no classic
/// subscriber elsewhere hears a sharded message. Then the global mode and the single channel.
#[test]
fn login_flows_on_every_shard_reach_the_sharded_subscriber_once_in_order() {
    let cluster = ClusterTopology::start();
    let client = cluster.client(&[("login_channel_mode", "per_login")]);
    let login = Login::new(&client);
    let logins = one_login_per_shard(&cluster, &login);
    assert_eq!(logins.len(), 3);

    for (owner, started) in &logins {
        let id = &started.status.id;
        let channel = &started.status.channel;
        assert_eq!(
            *channel,
            format!("qr-login-events:{id}"),
            "names as anywhere else"
        );
        let key = Login::cluster_key(id, channel);
        assert_eq!(cluster.slot_of(&key), cluster.slot_of(channel), "{key}");
        assert!(key.starts_with("qrpush:login:{"), "{key}");
        assert!(!key.contains(id.as_str()), "no login id in key names");
        assert_eq!(cluster.node(*owner).cmd(&["EXISTS", &key]), Value::Int(1));

        let mut sharded = cluster.subscribe_sharded(channel);
        let other = cluster.primary_other_than(*owner);
        let mut classic = cluster.node(other).subscribe(&[channel]);
        complete(&login, started, "alice");
        assert_eq!(events(&mut sharded, 3, channel, id), flow_events());
        sharded.nothing_more(QUIET);
        classic.nothing_more(Duration::from_millis(50));
    }
    // 3 flows of 5 script runs plus the starts, all on the right node at once: no redirect.
    let routing = cluster_routing(&client);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 0);
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);

    // Global mode: classic PUBLISH from the script, which the Cluster bus carries to a
    // SUBSCRIBE on every node (here: one that does not own the channel's slot).
    let global = cluster.client(&[
        ("login_channel_mode", "per_login"),
        ("cluster_publish", "global"),
    ]);
    let login = Login::new(&global);
    let started = login.start("198.51.100.7", "UA").unwrap();
    let (id, channel) = (&started.status.id, &started.status.channel);
    let owner = cluster.owner_of(channel).port();
    let elsewhere = cluster.primary_other_than(owner);
    let mut classic = cluster.node(elsewhere).subscribe(&[channel]);
    let mut sharded = cluster.subscribe_sharded(channel);
    complete(&login, &started, "bob");
    assert_eq!(events(&mut classic, 3, channel, id), flow_events());
    classic.nothing_more(QUIET);
    sharded.nothing_more(Duration::from_millis(50));

    // The single channel: every login's key and event in the channel's one slot (the hot slot
    // docs/TOPOLOGY.md warns of), events with sessionId, for logins started anywhere.
    let single = cluster.client(&[]);
    let login = Login::new(&single);
    let mut sub = cluster.subscribe_sharded("qr-login-events");
    let owner = cluster.owner_of("qr-login-events").port();
    for _ in 0..3 {
        let started = login.start("198.51.100.7", "UA").unwrap();
        let id = &started.status.id;
        assert_eq!(started.status.channel, "qr-login-events");
        let key = Login::cluster_key(id, "qr-login-events");
        assert_eq!(cluster.node(owner).cmd(&["EXISTS", &key]), Value::Int(1));
        complete(&login, &started, "carol");
        let got = sub.recv_messages(3, WAIT);
        let mut seen = Vec::new();
        for (_, payload) in got {
            let e: Json = serde_json::from_slice(&payload).unwrap();
            assert_eq!(
                (&e["loginId"], &e["sessionId"]),
                (&e["sessionId"], &Json::from(id.as_str()))
            );
            seen.push((
                e["type"].as_str().unwrap().to_string(),
                e["seq"].as_i64().unwrap(),
            ));
        }
        assert_eq!(seen, flow_events());
    }
    sub.nothing_more(QUIET);
}

/// The scan limit's key is the user's, in its own slot: a reservation there, then the login's
/// move on the login's node, then a release when the move is refused. Scans of logins on all
/// three shards count against one limit; a refused scan (wrong state, unknown QR) gives its
/// reservation back; racing scans never pass the limit.
#[test]
fn the_scan_limit_holds_across_shards_and_refusals_do_not_use_it_up() {
    let cluster = ClusterTopology::start();
    let client = cluster.client(&[
        ("login_channel_mode", "per_login"),
        ("login_scan_limit", "3"),
        ("login_scan_window", "60"),
    ]);
    let login = Login::new(&client);
    let logins: Vec<Started> = one_login_per_shard(&cluster, &login)
        .into_values()
        .collect();
    for started in &logins {
        login.scan(started.qr.expose(), "harvester", "").unwrap();
    }
    let fourth = login.start("198.51.100.7", "UA").unwrap();
    let mut sub = cluster.subscribe_sharded(&fourth.status.channel);
    let e = login.scan(fourth.qr.expose(), "harvester", "").unwrap_err();
    assert_eq!(
        e.message(),
        "scan: this user already scanned 3 logins within 60 s, the most login_scan_limit allows; try again later"
    );
    assert_eq!(login_err(e), LoginError::RateLimited);
    assert_eq!(
        login.status(&fourth.status.id, None).unwrap().state,
        State::Pending
    );
    sub.nothing_more(QUIET);
    let scans = Login::scans_key("harvester");
    assert_eq!(recent_scans(&cluster, &scans), 3);

    // Refused moves give their reservation back: a scanned login scanned again, an unknown QR
    // of a real login id. Then the limit still allows exactly 3 accepted scans.
    let bob: Vec<Started> = (0..4)
        .map(|_| login.start("198.51.100.7", "UA").unwrap())
        .collect();
    login.scan(bob[0].qr.expose(), "bob", "").unwrap();
    let again = login.scan(bob[0].qr.expose(), "bob", "").unwrap_err();
    assert_eq!(login_err(again), LoginError::WrongState);
    let forged = format!("{}.{}", bob[1].status.id, "A".repeat(43));
    assert_eq!(
        login_err(login.scan(&forged, "bob", "").unwrap_err()),
        LoginError::NotFound
    );
    assert_eq!(recent_scans(&cluster, &Login::scans_key("bob")), 1);
    login.scan(bob[1].qr.expose(), "bob", "").unwrap();
    login.scan(bob[2].qr.expose(), "bob", "").unwrap();
    let e = login.scan(bob[3].qr.expose(), "bob", "").unwrap_err();
    assert_eq!(login_err(e), LoginError::RateLimited);
    assert_eq!(recent_scans(&cluster, &Login::scans_key("bob")), 3);

    // Twelve racing scans by one user of logins on all shards: exactly the limit wins, and
    // exactly the winners' logins moved.
    let racing = Arc::new(cluster.client(&[
        ("login_channel_mode", "per_login"),
        ("login_scan_limit", "3"),
        ("login_scan_window", "60"),
        ("pool_size", "12"),
    ]));
    let starts: Vec<Started> = (0..12)
        .map(|_| Login::new(&racing).start("", "").unwrap())
        .collect();
    let qrs = starts.iter().map(|s| s.qr.expose().to_string()).collect();
    racing_scans_pass_exactly(&racing, qrs, "racer", 3);
    let scanned = starts
        .iter()
        .filter(|s| {
            Login::new(&racing)
                .status(&s.status.id, None)
                .unwrap()
                .state
                == State::Scanned
        })
        .count();
    assert_eq!(scanned, 3);
    assert_eq!(recent_scans(&cluster, &Login::scans_key("racer")), 3);
}

/// The scans recorded in a user's scan-limit key, read on the node that owns it.
fn recent_scans(cluster: &ClusterTopology, key: &str) -> usize {
    match cluster.owner_of(key).cmd(&["HGET", key, "at"]) {
        Value::BulkString(b) => String::from_utf8(b).unwrap().split_whitespace().count(),
        Value::Nil => 0,
        other => panic!("{other:?}"),
    }
}

/// A login's slot moved to another node between two calls: the old owner answers MOVED (the
/// script did not run), the call goes once to the new owner, the key moved with the slot, and
/// every event arrives exactly once.
#[test]
fn a_login_whose_slot_moved_follows_moved_once() {
    let cluster = ClusterTopology::start();
    let client = cluster.client(&[("login_channel_mode", "per_login")]);
    let routing = cluster_routing(&client);
    let login = Login::new(&client);
    let LoginToMove {
        started,
        slot,
        to,
        sub: _before,
        ..
    } = scanned_login_to_move(&cluster, &login, "dave");
    let (id, channel) = (&started.status.id, &started.status.channel);
    cluster.move_slot(slot, to);
    let mut after = cluster.subscribe_sharded(channel);
    let code = login.approve(id, "dave", "Dave").unwrap().confirmation_code;
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1);
    let approved = events(&mut after, 1, channel, id);
    assert_eq!(approved, vec![("approved".to_string(), 3)]);
    redeem_as_browser(&login, &started, code.expose());
    assert_eq!(
        events(&mut after, 1, channel, id),
        vec![("redeemed".to_string(), 4)]
    );
    after.nothing_more(QUIET);
    assert_eq!(
        routing.redirects.load(Ordering::Relaxed),
        1,
        "the new map is used after"
    );
    let key = Login::cluster_key(id, channel);
    assert_eq!(cluster.node(to).cmd(&["EXISTS", &key]), Value::Int(1));
}

/// What Redis 8 allows inside a script on Cluster, the reason for the login key's name.
/// SPUBLISH to a channel owned by another node than the script's keys fails; to another slot
/// of the same node it runs only in a script without flags (EVAL's compatibility mode allows
/// cross-slot access, and a slot migration can split the two slots at any time), a `#!lua`
/// script refuses it; in the keys' own slot it always runs. PUBLISH (no slot) runs anywhere.
#[test]
fn redis_allows_a_script_spublish_only_in_its_keys_slot() {
    let cluster = ClusterTopology::start();
    let channel = "qr-login-events:probe";
    let owner = cluster.owner_of(channel);
    let slot = cluster.slot_of(channel);
    let own_key = format!("k{{{}}}", qrpush_core::cluster::slot::tag_for_slot(slot));
    let same_node = (0..)
        .map(|i| format!("other-{i}"))
        .find(|k| cluster.slot_of(k) != slot && cluster.owner_of(k).port() == owner.port())
        .unwrap();
    let elsewhere = (0..)
        .map(|i| format!("other-{i}"))
        .find(|k| cluster.owner_of(k).port() != owner.port())
        .unwrap();
    let run = |flags: &str, command: &str, key: &str| {
        let script = format!("{flags}return redis.call('{command}', ARGV[1], 'x')");
        // The key is declared and the EVAL sent to its owner; the channel is ARGV[1].
        cluster
            .owner_of(key)
            .cmd(&["EVAL", &script, "1", key, channel])
    };
    let refused = |reply: Value, why: &str| match reply {
        Value::ServerError(e) => assert!(e.details().unwrap_or("").contains(why), "{e:?}"),
        other => panic!("expected {why:?}, got {other:?}"),
    };
    let mut sub = cluster.subscribe_sharded(channel);
    assert_eq!(run("", "SPUBLISH", &own_key), Value::Int(1));
    assert_eq!(run("#!lua\n", "SPUBLISH", &own_key), Value::Int(1));
    assert_eq!(sub.recv(2, WAIT).len(), 2);
    refused(
        run("", "SPUBLISH", &elsewhere),
        "Script attempted to access a non local key in a cluster node",
    );
    refused(
        run("#!lua\n", "SPUBLISH", &same_node),
        "Script attempted to access keys that do not hash to the same slot",
    );
    assert_eq!(run("", "SPUBLISH", &same_node), Value::Int(1));
    assert_eq!(sub.recv(1, WAIT).len(), 1);
    assert_eq!(run("", "PUBLISH", &elsewhere), Value::Int(0));
    sub.nothing_more(QUIET);
}

/// A login whose slot is migrating, its key already moved: the old owner answers ASK (the
/// script did not run), the call goes once to the importing node after ASKING (which does not
/// know the script yet: EVAL after NOSCRIPT, still after ASKING) and runs there, its SPUBLISH
/// included (Redis allows it in the importing slot after ASKING); once the slot's move ends, the
/// login completes on the new owner, nothing ran twice.
#[test]
fn a_login_in_a_migrating_slot_follows_ask_once() {
    let cluster = ClusterTopology::start();
    let client = cluster.client(&[("login_channel_mode", "per_login")]);
    let routing = cluster_routing(&client);
    let login = Login::new(&client);
    let LoginToMove {
        started,
        slot,
        from,
        to,
        mut sub,
    } = scanned_login_to_move(&cluster, &login, "erin");
    let (id, channel) = (&started.status.id, &started.status.channel);

    cluster.begin_move(slot, to);
    let key = Login::cluster_key(id, channel);
    cluster.migrate_keys(from, to, std::slice::from_ref(&key));
    let code = login.approve(id, "erin", "Erin").unwrap().confirmation_code;
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1, "one ASK");
    // It ran on the importing node, once: the key there is approved, version 3. Its SPUBLISH
    // went to that node's shard, not to the old owner's subscriber (after a move, subscribers
    // resubscribe and read the status, as the gateway does).
    let mut admin = cluster.node(to).admin();
    admin.ok(&["ASKING"]);
    assert_eq!(
        admin.cmd(&["HMGET", &key, "state", "version"]),
        Value::Array(vec![
            Value::BulkString(b"approved".to_vec()),
            Value::BulkString(b"3".to_vec())
        ])
    );
    sub.nothing_more(QUIET);

    cluster.move_slot(slot, to);
    let mut after = cluster.subscribe_sharded(channel);
    redeem_as_browser(&login, &started, code.expose());
    assert_eq!(
        events(&mut after, 1, channel, id),
        vec![("redeemed".to_string(), 4)]
    );
    after.nothing_more(QUIET);
    assert_eq!(
        login.status(id, None).unwrap().version,
        4,
        "nothing ran twice"
    );
}
