// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! The least-privilege ACL user of docs/SECURITY.md on a real Redis Cluster (3 primaries + 3
//! replicas on loopback), created from the docs' own lines (SECURITY.md's user, its Cluster line
//! and DURABLE.md's stream line) with `ACL SETUSER` on every node, and used through a
//! `redis-cluster://user:password@…` URL: sharded and global publishes, publishMany over every
//! shard, durable publishes and their replay read, whole QR logins, and a login script followed
//! through an ASK redirect (ASKING) all work, each checked by what a subscriber or the node holds;
//! a user without `+spublish` gets NOPERM, publishes nothing and sees no secret in the message.

use qrpush_test_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use qrpush_core::cluster::shared_cluster;
use qrpush_core::durable::{wire, Durable, Replay};
use qrpush_core::login::{Login, Started};
use qrpush_core::{Client, Config, ErrorKind};
use redis::Value;
use serde_json::Value as Json;
use support::{ClusterTopology, Subscriber};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);
const PASSWORD: &str = "cluster-app-pw-51d0";

/// The `ACL SETUSER qrpush-app …` lines of `doc`, verbatim, in order.
fn documented_lines(doc: &'static str) -> impl Iterator<Item = &'static str> {
    doc.lines()
        .filter(|line| line.starts_with("ACL SETUSER qrpush-app "))
}

/// Every line a Cluster deployment with durable publishes runs: the user of SECURITY.md, its
/// Cluster line, then the stream grants of DURABLE.md.
fn cluster_acl_lines() -> Vec<&'static str> {
    let lines: Vec<&str> = documented_lines(include_str!("../../../docs/SECURITY.md"))
        .chain(documented_lines(include_str!("../../../docs/DURABLE.md")))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "SECURITY.md's two lines and DURABLE.md's: {lines:?}"
    );
    assert!(lines[1].contains("+spublish"), "{lines:?}");
    lines
}

/// Creates the documented user as `user` with `PASSWORD` on every node, without the rules in
/// `without`.
fn create_user(cluster: &ClusterTopology, user: &str, without: &[&str]) {
    for line in cluster_acl_lines() {
        let line = line
            .replace("qrpush-app", user)
            .replace(">CHANGE-ME", &format!(">{PASSWORD}"));
        let args: Vec<&str> = line
            .split(' ')
            .filter(|rule| !without.contains(rule))
            .collect();
        for node in cluster.nodes() {
            assert_eq!(node.cmd(&args), Value::Okay, "port {}: {line}", node.port());
        }
    }
}

fn client(cluster: &ClusterTopology, user: &str, settings: &[(&str, &str)]) -> Client {
    let url = cluster.url().replacen(
        "redis-cluster://",
        &format!("redis-cluster://{user}:{PASSWORD}@"),
        1,
    );
    let mut config = Config::default();
    config.set("url", &url).unwrap();
    for (name, value) in settings {
        config.set(name, value).unwrap();
    }
    Client::new(config)
}

/// The next `n` login events on `sub` as their types, checking the login id.
fn event_types(sub: &mut Subscriber, n: usize, id: &str) -> Vec<String> {
    sub.recv(n, WAIT)
        .into_iter()
        .map(|payload| {
            let e: Json = serde_json::from_slice(&payload).expect("events are JSON");
            assert_eq!(e["loginId"], id, "{e}");
            e["type"].as_str().unwrap().to_string()
        })
        .collect()
}

/// scan, approve, the ticket from status (as a browser that missed the event), redeem.
fn complete(login: &Login<'_>, started: &Started, user: &str) {
    let id = &started.status.id;
    login.scan(started.qr.expose(), user, "phone").unwrap();
    let code = login.approve(id, user, "User").unwrap().confirmation_code;
    let ticket = login
        .status(id, Some(started.browser_secret.expose()))
        .unwrap()
        .ticket
        .expect("an approved login gives its browser a ticket");
    let redeemed = login
        .redeem(
            id,
            ticket.value.expose(),
            started.browser_secret.expose(),
            code.expose(),
        )
        .unwrap();
    assert_eq!(
        (redeemed.user_id.as_str(), redeemed.status.version),
        (user, 4)
    );
}

fn flow() -> Vec<String> {
    ["scanned", "approved", "redeemed"]
        .map(String::from)
        .to_vec()
}

#[test]
fn the_documented_user_publishes_replays_and_logs_in_on_every_shard() {
    let cluster = ClusterTopology::start();
    create_user(&cluster, "qrpush-app", &[]);
    // The scripts are not cached yet: the first run on each node goes EVALSHA → NOSCRIPT → EVAL.
    for node in cluster.primaries() {
        node.admin().ok(&["SCRIPT", "FLUSH"]);
    }
    let primaries: Vec<u16> = cluster.primaries().iter().map(|n| n.port()).collect();
    let channels: Vec<String> = primaries
        .iter()
        .map(|port| cluster.name_on(*port, "app:acl-"))
        .collect();
    let mut subs: Vec<_> = channels
        .iter()
        .map(|c| cluster.subscribe_sharded(c))
        .collect();
    let client = client(
        &cluster,
        "qrpush-app",
        &[("login_channel_mode", "per_login")],
    );

    // Sharded publishes (SPUBLISH) to each shard, then publishMany interleaved over all three.
    for (channel, sub) in channels.iter().zip(&mut subs) {
        assert_eq!(client.publish(channel.as_bytes(), b"one").unwrap(), 1);
        assert_eq!(sub.recv(1, WAIT), vec![b"one".to_vec()]);
    }
    let items: Vec<(String, String)> = (0..9)
        .map(|i| (channels[i % 3].clone(), format!("many-{i}")))
        .collect();
    assert_eq!(client.publish_many(&items).unwrap(), vec![1; 9]);
    for (k, sub) in subs.iter_mut().enumerate() {
        let want: Vec<Vec<u8>> = (0..9)
            .filter(|i| i % 3 == k)
            .map(|i| format!("many-{i}").into_bytes())
            .collect();
        assert_eq!(sub.recv(3, WAIT), want);
        sub.nothing_more(Duration::from_millis(50));
    }

    // Global mode: classic PUBLISH, heard by a SUBSCRIBE on a node that does not own the slot.
    let global = self::client(&cluster, "qrpush-app", &[("cluster_publish", "global")]);
    let mut classic = cluster.node(primaries[1]).subscribe(&[&channels[0]]);
    assert_eq!(
        global.publish(channels[0].as_bytes(), b"global").unwrap(),
        0
    );
    assert_eq!(classic.recv(1, WAIT), vec![b"global".to_vec()]);
    assert_eq!(
        global
            .publish_many(&[(&channels[1], "g1"), (&channels[0], "g2")])
            .unwrap(),
        vec![0, 0],
        "the count is the owner's own subscribers (the Cluster bus carries it to the others)"
    );
    assert_eq!(classic.recv(1, WAIT), vec![b"g2".to_vec()]);
    classic.nothing_more(Duration::from_millis(50));
    subs[0].nothing_more(Duration::from_millis(50));

    // Durable publishes on every shard (the script checks its grants before writing), then the
    // replay read of what a reader at the first one missed.
    let durable = Durable::new(&client);
    for (channel, sub) in channels.iter().zip(&mut subs) {
        let first = durable.publish(channel.as_bytes(), b"d1").unwrap();
        let second = durable.publish(channel.as_bytes(), b"d2").unwrap();
        assert_eq!((first.receivers, second.receivers), (1, 1));
        assert_eq!(
            sub.recv(2, WAIT),
            vec![
                wire::frame(&first.epoch, first.offset, b"d1"),
                wire::frame(&second.epoch, second.offset, b"d2"),
            ]
        );
        let read = durable
            .read_since(channel.as_bytes(), Some((&first.epoch, first.offset)), 10)
            .unwrap();
        let Replay::Recovered(entries) = read.replay else {
            panic!("{:?}", read.replay)
        };
        let got: Vec<_> = entries.into_iter().map(|e| (e.offset, e.message)).collect();
        assert_eq!(got, vec![(second.offset, b"d2".to_vec())]);
        let key = format!("qrpush:stream:{{{channel}}}");
        assert_eq!(cluster.owner_of(&key).cmd(&["XLEN", &key]), Value::Int(2));
        sub.nothing_more(Duration::from_millis(50));
    }

    // Whole logins with per-login channels until every shard ran one (each script run on the
    // owner of the login's slot, each event once on its sharded subscriber).
    let login = Login::new(&client);
    let mut shards_done = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let started = login.start("198.51.100.7", "Firefox/128").unwrap();
        let owner = cluster.owner_of(&started.status.channel).port();
        if !shards_done.insert(owner) {
            continue;
        }
        let mut sub = cluster.subscribe_sharded(&started.status.channel);
        complete(&login, &started, "alice");
        assert_eq!(event_types(&mut sub, 3, &started.status.id), flow());
        sub.nothing_more(Duration::from_millis(50));
        if shards_done.len() == primaries.len() {
            break;
        }
    }
    assert_eq!(shards_done.len(), 3, "a login on every shard");
    // The single channel (its one slot) and a refused transition, which is a login error.
    let single = self::client(&cluster, "qrpush-app", &[]);
    let login = Login::new(&single);
    let mut sub = cluster.subscribe_sharded("qr-login-events");
    let started = login.start("", "").unwrap();
    complete(&login, &started, "bob");
    assert_eq!(event_types(&mut sub, 3, &started.status.id), flow());
    let started = login.start("", "").unwrap();
    login.scan(started.qr.expose(), "carol", "").unwrap();
    login.reject(&started.status.id, "carol").unwrap();
    assert_eq!(
        event_types(&mut sub, 2, &started.status.id),
        ["scanned", "rejected"].map(String::from).to_vec()
    );
    let e = login
        .approve(&started.status.id, "carol", "Carol")
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Login(_)), "{e}");
    sub.nothing_more(QUIET);

    for c in [&client, &global, &single] {
        let stats = c.stats();
        assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
    }
    // Every connection QrPush holds is logged in as the app user.
    for node in cluster.primaries() {
        let mine = node.qrpush_clients();
        assert!(!mine.is_empty(), "port {}", node.port());
        assert!(mine.iter().all(|c| c.get("user") == Some("qrpush-app")));
    }

    // ASK: the login's key migrated to another node while its slot moves; the script runs there
    // after ASKING, once.
    let login = Login::new(&client);
    let started = login.start("", "").unwrap();
    let (id, channel) = (&started.status.id, &started.status.channel);
    login.scan(started.qr.expose(), "dave", "").unwrap();
    let slot = cluster.slot_of(channel);
    let from = cluster.owner_of_slot(slot).port();
    let to = *primaries.iter().find(|p| **p != from).unwrap();
    cluster.begin_move(slot, to);
    let key = Login::cluster_key(id, channel);
    cluster.migrate_keys(from, to, std::slice::from_ref(&key));
    let config = client.config().clone();
    let routing = shared_cluster(&config.endpoint, config.pool_size);
    let redirects = routing.redirects.load(Ordering::Relaxed);
    login.approve(id, "dave", "Dave").unwrap();
    assert_eq!(
        routing.redirects.load(Ordering::Relaxed),
        redirects + 1,
        "one ASK"
    );
    let mut admin = cluster.node(to).admin();
    admin.ok(&["ASKING"]);
    assert_eq!(
        admin.cmd(&["HMGET", &key, "state", "version"]),
        Value::Array(vec![
            Value::BulkString(b"approved".to_vec()),
            Value::BulkString(b"3".to_vec())
        ])
    );
}

/// One permission less than documented (`+spublish`): every sharded publish, durable or not, is
/// refused with NOPERM before anything is stored or delivered, with neither the password nor a
/// retry; the global mode, which needs no SPUBLISH, still works for the same user. Without the
/// slot map's grants nothing is sent at all (a ConnectionException in PHP, naming the NOPERM).
#[test]
fn a_user_missing_a_cluster_grant_gets_noperm_and_publishes_nothing() {
    let cluster = ClusterTopology::start_with(3, 0);
    create_user(&cluster, "qrpush-partial", &["+spublish"]);
    let channel = cluster.name_on(cluster.primaries()[0].port(), "app:partial-");
    let mut sharded = cluster.subscribe_sharded(&channel);
    let mut classic = cluster.owner_of(&channel).subscribe(&[&channel]);
    let client = client(&cluster, "qrpush-partial", &[]);

    let refused = [
        client.publish(channel.as_bytes(), b"x").unwrap_err(),
        client
            .publish_many(&[(&channel, "a"), (&channel, "b")])
            .unwrap_err(),
        Durable::new(&client)
            .publish(channel.as_bytes(), b"d")
            .unwrap_err(),
    ];
    for e in &refused {
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        assert!(!e.maybe_sent(), "an error reply: nothing ran");
        assert!(e.message().starts_with("NOPERM "), "{}", e.message());
        assert!(
            e.message().to_lowercase().contains("spublish"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains(PASSWORD), "{}", e.message());
        assert!(!format!("{e:?}").contains(PASSWORD));
    }
    let last = client.stats().last_error.unwrap_or_default();
    assert!(
        last.starts_with("NOPERM ") && !last.contains(PASSWORD),
        "{last}"
    );
    let key = format!("qrpush:stream:{{{channel}}}");
    assert_eq!(cluster.owner_of(&key).cmd(&["EXISTS", &key]), Value::Int(0));
    sharded.nothing_more(QUIET);
    classic.nothing_more(Duration::from_millis(50));

    let global = self::client(&cluster, "qrpush-partial", &[("cluster_publish", "global")]);
    assert_eq!(global.publish(channel.as_bytes(), b"global").unwrap(), 1);
    assert_eq!(classic.recv(1, WAIT), vec![b"global".to_vec()]);
    sharded.nothing_more(Duration::from_millis(50));

    // Without the slot map's two grants no call can be routed, in either mode: the Cluster is
    // unusable to this user, a connection error that names the refusal.
    create_user(
        &cluster,
        "qrpush-nomap",
        &["+cluster|shards", "+cluster|slots"],
    );
    for mode in ["sharded", "global"] {
        let client = self::client(&cluster, "qrpush-nomap", &[("cluster_publish", mode)]);
        let e = client.publish(channel.as_bytes(), b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(!e.maybe_sent());
        assert!(
            e.message()
                .starts_with("could not read the slot map of the Redis Cluster at 127.0.0.1:")
                && e.message().ends_with(
                    ": NOPERM User qrpush-nomap has no permissions to run the 'cluster|slots' \
                     command (CLUSTER SLOTS)"
                ),
            "{}",
            e.message()
        );
        assert!(!e.message().contains(PASSWORD), "{}", e.message());
    }
    sharded.nothing_more(Duration::from_millis(50));
    classic.nothing_more(Duration::from_millis(50));
}
