// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Publishing on a real Redis Cluster (3 primaries + 3 replicas on loopback): each message goes
//! to the primary owning its channel's slot, as the servers compute slots, proved by a sharded
//! subscriber (SSUBSCRIBE) on each owner receiving exactly its messages; publishMany keeps input
//! order across nodes; `global` mode reaches classic subscribers on any node; a slot moved after
//! the map was cached is followed through MOVED without a duplicate.

use qrpush_test_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use qrpush_core::cluster::slot;
use qrpush_core::{Client, Config, ErrorKind};
use support::{cluster_routing, ClusterTopology};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// Slots, sharded routing, publishMany order and the global mode, on one Cluster.
#[test]
fn messages_go_to_the_owner_of_their_slot() {
    let cluster = ClusterTopology::start();

    // Our slot of a name is the server's (CLUSTER KEYSLOT), hash tags included.
    for name in [
        "foo",
        "bar",
        "{login-1}:events",
        "user:{42}",
        "a{}b",
        "qr-login-events",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..200).map(|i| format!("channel-{i}")))
    {
        assert_eq!(
            slot::slot(name.as_bytes()),
            cluster.slot_of(&name),
            "{name}"
        );
    }

    let primaries = cluster.primary_ports();
    let channels = cluster.name_per_primary("shard-");
    let mut subs: Vec<_> = channels
        .iter()
        .map(|c| cluster.subscribe_sharded(c))
        .collect();
    let client = cluster.client(&[]);

    // Single publishes: each subscriber gets exactly its own channel's messages.
    for round in 0..5 {
        for channel in &channels {
            let payload = format!("{channel}/{round}");
            assert_eq!(
                client
                    .publish(channel.as_bytes(), payload.as_bytes())
                    .unwrap(),
                1
            );
        }
    }
    for (sub, channel) in subs.iter_mut().zip(&channels) {
        let want: Vec<Vec<u8>> = (0..5)
            .map(|r| format!("{channel}/{r}").into_bytes())
            .collect();
        assert_eq!(sub.recv(5, WAIT), want);
        sub.nothing_more(QUIET);
    }

    // publishMany across the three nodes, interleaved, plus a channel nobody listens to:
    // counts in input order, each subscriber gets its items in order.
    let silent = cluster.name_on(primaries[1], "nobody-");
    let mut items: Vec<(String, String)> = Vec::new();
    for i in 0..30 {
        let channel = &channels[i % 3];
        items.push((channel.clone(), format!("many-{i}")));
        if i == 13 {
            items.push((silent.clone(), "to nobody".to_string()));
        }
    }
    let counts = client.publish_many(&items).unwrap();
    let want: Vec<i64> = items
        .iter()
        .map(|(c, _)| if *c == silent { 0 } else { 1 })
        .collect();
    assert_eq!(counts, want);
    for (k, sub) in subs.iter_mut().enumerate() {
        let want: Vec<Vec<u8>> = (0..30)
            .filter(|i| i % 3 == k)
            .map(|i| format!("many-{i}").into_bytes())
            .collect();
        assert_eq!(sub.recv(10, WAIT), want);
        sub.nothing_more(QUIET);
    }

    // Global mode: classic PUBLISH, which the Cluster bus carries to a SUBSCRIBE on any node.
    let global = client_global(&cluster);
    let elsewhere = cluster.node(primaries[2]);
    let mut classic = elsewhere.subscribe(&[&channels[0]]);
    global.publish(channels[0].as_bytes(), b"global").unwrap();
    assert_eq!(classic.recv(1, WAIT), vec![b"global".to_vec()]);
    classic.nothing_more(QUIET);
    // ...and not as a sharded message.
    subs[0].nothing_more(QUIET);

    // Stats are per Cluster (like per pool), shared by both clients.
    assert!(client.ping().unwrap() < WAIT);
    let stats = client.stats();
    assert_eq!(stats.published, 5 * 3 + items.len() as u64 + 1);
    assert_eq!(stats.failed, 0);
    assert!(stats.endpoint.starts_with("redis-cluster://127.0.0.1:"));
}

fn client_global(cluster: &ClusterTopology) -> Client {
    cluster.client(&[("cluster_publish", "global")])
}

/// A slot moved after the client cached the map: the old owner answers MOVED, its connection is
/// retired, the message is sent once to the new owner, the map is read again, and nothing
/// arrives twice.
#[test]
fn a_moved_slot_is_followed_without_duplicates() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let channel = cluster.name_on(primaries[0], "moving-");
    let client = cluster.client(&[]);
    let routing = cluster_routing(&client);

    let mut before = cluster.subscribe_sharded(&channel);
    assert_eq!(client.publish(channel.as_bytes(), b"before").unwrap(), 1);
    assert_eq!(before.recv(1, WAIT), vec![b"before".to_vec()]);
    let refreshes = routing.refreshes.load(Ordering::Relaxed);

    cluster.move_slot(cluster.slot_of(&channel), primaries[1]);
    let mut after = cluster.subscribe_sharded(&channel);
    assert_eq!(client.publish(channel.as_bytes(), b"after").unwrap(), 1);
    assert_eq!(after.recv(1, WAIT), vec![b"after".to_vec()]);
    after.nothing_more(QUIET);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1);
    // MOVED is one of the replies that retire a connection: the one that got it is closed.
    cluster.node(primaries[0]).wait_until(
        "the connection that got MOVED to be closed",
        WAIT,
        |node| node.qrpush_clients().is_empty(),
    );

    // The next publish reads the new map once and goes straight to the new owner.
    assert_eq!(client.publish(channel.as_bytes(), b"again").unwrap(), 1);
    assert_eq!(after.recv(1, WAIT), vec![b"again".to_vec()]);
    after.nothing_more(QUIET);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1);
    assert_eq!(routing.refreshes.load(Ordering::Relaxed), refreshes + 1);
    let stats = client.stats();
    assert_eq!(stats.published, 3);
    assert_eq!(
        (stats.topology.kind, stats.topology.redirects),
        ("cluster", 1)
    );
}

/// While a slot is migrating (MIGRATING on its owner, IMPORTING on the target), Redis 8 still
/// serves SPUBLISH for it on the owner (no ASK: a shard channel is no key to look up): the
/// publishes keep reaching the owner's subscribers, with no redirect and no map refresh.
#[test]
fn a_migrating_slot_keeps_delivering_on_its_owner() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let channel = cluster.name_on(primaries[0], "migrating-");
    let mut sub = cluster.subscribe_sharded(&channel);
    let client = cluster.client(&[]);
    let routing = cluster_routing(&client);
    assert_eq!(client.publish(channel.as_bytes(), b"before").unwrap(), 1);
    let refreshes = routing.refreshes.load(Ordering::Relaxed);

    cluster.begin_move(cluster.slot_of(&channel), primaries[1]);
    assert_eq!(client.publish(channel.as_bytes(), b"during").unwrap(), 1);
    let many = [(channel.as_str(), "a"), (channel.as_str(), "b")];
    assert_eq!(client.publish_many(&many).unwrap(), vec![1, 1]);
    let want: Vec<Vec<u8>> = ["before", "during", "a", "b"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    assert_eq!(sub.recv(4, WAIT), want);
    sub.nothing_more(QUIET);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 0);
    assert_eq!(routing.refreshes.load(Ordering::Relaxed), refreshes);
}

/// kill -9 of the primary owning a channel: once the Cluster has promoted its replica, the next
/// publish finds the old node unreachable before sending anything, reads the new slot map and
/// publishes once on the new primary; calls made before the promotion fail typed, none is lost
/// silently or delivered twice.
#[test]
fn a_killed_primary_is_replaced_by_its_promoted_replica() {
    let mut cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let channel = cluster.name_on(primaries[0], "failover-");
    let client = cluster.client(&[
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("breaker_cooldown", "0"),
    ]);
    assert_eq!(client.publish(channel.as_bytes(), b"before").unwrap(), 0);

    let victim = cluster
        .nodes()
        .iter()
        .position(|n| n.port() == primaries[0])
        .unwrap();
    cluster.nodes_mut()[victim].stop();
    let start = std::time::Instant::now();
    let (mut failed, mut ok) = (0, None);
    while start.elapsed() < Duration::from_secs(20) {
        match client.publish(channel.as_bytes(), b"probe") {
            Ok(n) => {
                ok = Some(n);
                break;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Server
                    ),
                    "{:?}: {}",
                    e.kind(),
                    e.message()
                );
                failed += 1;
                if failed % 20 == 1 {
                    eprintln!("{:?} after the kill: {}", start.elapsed(), e.message());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    if ok.is_none() {
        let live = cluster.node(primaries[1]);
        eprintln!(
            "CLUSTER NODES:\n{}",
            support::text(&live.cmd(&["CLUSTER", "NODES"]))
        );
    }
    assert_eq!(
        ok,
        Some(0),
        "no publish succeeded within 20 s ({failed} failed)"
    );
    cluster.wait_settled();
    let new_owner = cluster.owner_of(&channel).port();
    assert_ne!(new_owner, primaries[0]);

    let mut sub = cluster.subscribe_sharded(&channel);
    for i in 0..10 {
        assert_eq!(
            client
                .publish(channel.as_bytes(), format!("after-{i}").as_bytes())
                .unwrap(),
            1
        );
    }
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("after-{i}").into_bytes()).collect();
    assert_eq!(sub.recv(10, WAIT), want);
    sub.nothing_more(QUIET);
    eprintln!(
        "publish unavailable for {failed} calls ({:?}) after kill -9 of a primary",
        start.elapsed()
    );
}

/// An unreachable Cluster fails with a typed error naming the slot map, within the time bound.
#[test]
fn unroutable_and_unreachable_fail_typed() {
    let port = support::free_port();
    let mut config = Config::default();
    config
        .set("url", &format!("redis-cluster://127.0.0.1:{port}"))
        .unwrap();
    config.set("connect_timeout", "0.2").unwrap();
    config.set("timeout", "0.2").unwrap();
    let client = Client::new(config);
    let start = std::time::Instant::now();
    let e = client.publish(b"c", b"m").unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.message());
    assert!(e.message().contains("slot map"), "{}", e.message());
    let e = client.ping().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.message());
}

/// A publishMany over two nodes, one of them just killed (before the Cluster noticed: the
/// node timeout is 2 s): the live node publishes its message, the dead node's fail without
/// having been sent (a fresh slot map still names the dead node, so the one re-route fails
/// too), and the error carries the per-message outcome, as a partly published batch on one
/// server does.
#[test]
fn a_batch_over_a_live_and_a_dead_node_reports_its_partial_outcome() {
    let mut cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let dead = cluster.name_on(primaries[0], "dead-");
    let live = cluster.name_on(primaries[1], "live-");
    let client = cluster.client(&[
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("breaker_cooldown", "0"),
    ]);
    let mut sub = cluster.subscribe_sharded(&live);
    assert_eq!(client.publish(live.as_bytes(), b"warm").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"warm".to_vec()]);

    let victim = cluster
        .nodes()
        .iter()
        .position(|n| n.port() == primaries[0])
        .unwrap();
    cluster.nodes_mut()[victim].stop();
    let batch: [(&[u8], &[u8]); 3] = [
        (dead.as_bytes(), b"a"),
        (live.as_bytes(), b"b"),
        (dead.as_bytes(), b"c"),
    ];
    let e = client.publish_many(&batch).unwrap_err();
    let outcome = e.batch_outcome().expect("a partial outcome");
    assert_eq!(outcome.published, vec![(1, 1)]);
    let failed: Vec<(usize, ErrorKind, bool)> = outcome
        .failed
        .iter()
        .map(|(i, e)| (*i, e.kind(), e.maybe_sent()))
        .collect();
    assert_eq!(
        failed,
        vec![
            (0, ErrorKind::Connection, false),
            (2, ErrorKind::Connection, false)
        ],
        "{}",
        e.message()
    );
    assert!(
        e.message().starts_with("1 of 3 messages were published"),
        "{}",
        e.message()
    );
    assert_eq!(sub.recv(1, WAIT), vec![b"b".to_vec()]);
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (2, 2));
}

/// Socket.IO on a Cluster: the sharded adapter's SPUBLISH goes to the owner of its channel's slot
/// whatever `cluster_publish` says (its servers SSUBSCRIBE there), and the classic adapter's
/// PUBLISH stays a PUBLISH in the default sharded mode (its servers PSUBSCRIBE, on any node).
#[test]
fn socketio_emits_reach_each_adapters_subscribers() {
    use qrpush_core::formats::socketio::{self, Adapter, SubscriptionMode, Target};

    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    // A room whose channel, socket.io#/#<room>#, lives on each primary.
    let rooms: Vec<String> = primaries
        .iter()
        .map(|&port| {
            (0..10_000)
                .map(|i| format!("room-{i}"))
                .find(|room| cluster.owner_of(&format!("socket.io#/#{room}#")).port() == port)
                .expect("a room on that node")
        })
        .collect();
    let channels: Vec<String> = rooms.iter().map(|r| format!("socket.io#/#{r}#")).collect();
    let mut subs: Vec<_> = channels
        .iter()
        .map(|c| cluster.subscribe_sharded(c))
        .collect();
    let sharded = Target::new(Adapter::Sharded(SubscriptionMode::Dynamic), "socket.io").unwrap();
    for client in [cluster.client(&[]), client_global(&cluster)] {
        for (room, sub) in rooms.iter().zip(subs.iter_mut()) {
            let encoded = sharded
                .to(&[room.as_str()], true)
                .unwrap()
                .encode("news", &[serde_json::json!(room)])
                .unwrap();
            assert_eq!(socketio::emit(&client, &encoded).unwrap(), 1);
            assert_eq!(sub.recv(1, WAIT), vec![encoded.message.clone()]);
            sub.nothing_more(QUIET);
        }
    }

    let classic = Target::new(Adapter::Classic, "socket.io").unwrap();
    let encoded = classic.encode("news", &[]).unwrap();
    // A subscriber on a node that does not own the channel's slot: PUBLISH reaches it through the
    // Cluster bus, and Redis counts only the receivers on the node that ran it (none).
    let owner = cluster.owner_of("socket.io#/#").port();
    let other = *primaries.iter().find(|&&p| p != owner).unwrap();
    let mut elsewhere = cluster.node(other).subscribe(&["socket.io#/#"]);
    let mut sharded_sub = cluster.subscribe_sharded("socket.io#/#");
    assert_eq!(socketio::emit(&cluster.client(&[]), &encoded).unwrap(), 0);
    assert_eq!(elsewhere.recv(1, WAIT), vec![encoded.message.clone()]);
    sharded_sub.nothing_more(QUIET);
}

/// A batch over the 3 primaries is written to every node before any reply is read. After one
/// channel's slot moved, that channel's messages alone get MOVED from their old owner and go
/// once more to the new one: every message arrives once, the counts keep input order, and the
/// connection that got MOVED is closed.
#[test]
fn a_batch_over_every_node_follows_a_moved_slot_once() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let names = cluster.name_per_primary("spread-");
    let client = cluster.client(&[]);
    let routing = cluster_routing(&client);

    // Warm: the slot map cached, a connection open to every primary.
    let mut subs: Vec<_> = names.iter().map(|n| cluster.subscribe_sharded(n)).collect();
    let warm: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b"warm"[..])).collect();
    assert_eq!(client.publish_many(&warm).unwrap(), vec![1, 1, 1]);
    for sub in &mut subs {
        assert_eq!(sub.recv(1, WAIT), vec![b"warm".to_vec()]);
    }

    cluster.move_slot(cluster.slot_of(&names[0]), primaries[1]);
    let mut moved = cluster.subscribe_sharded(&names[0]);
    let batch: [(&[u8], &[u8]); 4] = [
        (names[0].as_bytes(), b"m0"),
        (names[1].as_bytes(), b"m1"),
        (names[2].as_bytes(), b"m2"),
        (names[0].as_bytes(), b"m3"),
    ];
    assert_eq!(client.publish_many(&batch).unwrap(), vec![1, 1, 1, 1]);
    assert_eq!(moved.recv(2, WAIT), vec![b"m0".to_vec(), b"m3".to_vec()]);
    assert_eq!(subs[1].recv(1, WAIT), vec![b"m1".to_vec()]);
    assert_eq!(subs[2].recv(1, WAIT), vec![b"m2".to_vec()]);
    moved.nothing_more(QUIET);
    subs[1].nothing_more(QUIET);
    subs[2].nothing_more(QUIET);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 2);
    cluster.node(primaries[0]).wait_until(
        "the connection that got MOVED to be closed",
        WAIT,
        |node| node.qrpush_clients().is_empty(),
    );
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (7, 0));
}

/// A batch over the 3 primaries checks every pooled connection it is about to write to, for one
/// system call in all: two connections that their servers closed while idle are replaced before
/// anything is written to them, silently. Every message arrives once, over a new connection to
/// each of those two nodes, and the third node's connection is kept.
#[test]
fn a_batch_over_every_node_replaces_connections_closed_while_idle() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let names: Vec<String> = primaries
        .iter()
        .map(|port| cluster.name_on(*port, "idle-"))
        .collect();
    let client = cluster.client(&[]);
    let mut subs: Vec<_> = names.iter().map(|n| cluster.subscribe_sharded(n)).collect();
    let warm: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b"warm"[..])).collect();
    assert_eq!(client.publish_many(&warm).unwrap(), vec![1, 1, 1]);
    for sub in &mut subs {
        assert_eq!(sub.recv(1, WAIT), vec![b"warm".to_vec()]);
    }
    let only_id = |port: u16| {
        let clients = cluster.node(port).qrpush_clients();
        assert_eq!(clients.len(), 1, "one pooled connection to {port}");
        clients[0].id()
    };
    let before: Vec<u64> = primaries.iter().map(|&port| only_id(port)).collect();

    for (&port, id) in primaries.iter().zip(&before).take(2) {
        let node = cluster.node(port);
        node.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]);
        node.wait_until("the pooled connection to be closed", WAIT, |node| {
            node.qrpush_clients().is_empty()
        });
    }
    let batch: Vec<(&[u8], &[u8])> = names
        .iter()
        .zip([&b"b0"[..], b"b1", b"b2"])
        .map(|(n, payload)| (n.as_bytes(), payload))
        .collect();
    assert_eq!(client.publish_many(&batch).unwrap(), vec![1, 1, 1]);
    for (sub, want) in subs.iter_mut().zip(["b0", "b1", "b2"]) {
        assert_eq!(sub.recv(1, WAIT), vec![want.as_bytes().to_vec()]);
        sub.nothing_more(QUIET);
    }

    let after: Vec<u64> = primaries.iter().map(|&port| only_id(port)).collect();
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed, stats.reconnects), (6, 0, 2));
}
