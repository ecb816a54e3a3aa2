// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Publishing through Redis Sentinel (1 primary + 1 replica + 3 Sentinels on loopback): the
//! client finds the primary through the Sentinels, verifies it with ROLE, and follows a
//! `SENTINEL FAILOVER` to the new primary with every call either delivered once or failed, and
//! nothing published to the demoted node.

use qrpush_test_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use qrpush_core::sentinel::shared_sentinel;
use qrpush_core::{Client, Config, ErrorKind};
use support::SentinelTopology;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn client(url: &str) -> Client {
    let mut config = Config::default();
    config.set("url", url).unwrap();
    Client::new(config)
}

/// The first call asks the Sentinels; publishes reach the primary's subscriber exactly; after a
/// failover the next call notices the demoted node (its connection killed by Sentinel, its ROLE
/// now replica), asks again and publishes on the new primary: every message once, in order.
#[test]
fn a_sentinel_failover_is_followed_without_loss_or_duplicates() {
    let topology = SentinelTopology::start();
    let first = topology.primary().port();
    let client = client(&topology.url());
    let routing = shared_sentinel(&client.config().endpoint, client.config().pool_size);

    let mut before = topology.primary().subscribe(&["events"]);
    for i in 0..20 {
        assert_eq!(
            client
                .publish(b"events", format!("before-{i}").as_bytes())
                .unwrap(),
            1
        );
    }
    let want: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("before-{i}").into_bytes())
        .collect();
    assert_eq!(before.recv(20, WAIT), want);
    assert_eq!(routing.current_primary().map(|n| n.port), Some(first));
    let stats = client.stats();
    assert!(
        stats.endpoint.starts_with("redis-sentinel://127.0.0.1:"),
        "{}",
        stats.endpoint
    );
    assert!(stats.endpoint.ends_with("/0#qrpush"), "{}", stats.endpoint);

    let second = topology.failover();
    let mut after = topology.primary().subscribe(&["events"]);
    for i in 0..20 {
        assert_eq!(
            client
                .publish(b"events", format!("after-{i}").as_bytes())
                .unwrap(),
            1,
            "publish #{i} after the failover"
        );
    }
    let want: Vec<Vec<u8>> = (0..20).map(|i| format!("after-{i}").into_bytes()).collect();
    assert_eq!(after.recv(20, WAIT), want);
    after.nothing_more(QUIET);
    assert_eq!(routing.current_primary().map(|n| n.port), Some(second));
    assert_eq!(routing.failovers.load(Ordering::Relaxed), 1);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (40, 0));
    assert_eq!(stats.topology.kind, "sentinel");
    assert_eq!(stats.topology.service.as_deref(), Some("qrpush"));
    assert_eq!(stats.topology.primary, Some(format!("127.0.0.1:{second}")));
    assert_eq!(stats.topology.failovers, 1);
}

/// kill -9 of the primary: calls fail typed until the Sentinels have promoted the replica; then
/// the client asks them again and every message reaches the new primary exactly once.
#[test]
fn a_killed_primary_is_replaced_through_the_sentinels() {
    let mut topology = SentinelTopology::start();
    let first = topology.primary().port();
    let mut config = Config::default();
    config.set("url", &topology.url()).unwrap();
    config.set("connect_timeout", "0.3").unwrap();
    config.set("timeout", "0.3").unwrap();
    config.set("breaker_cooldown", "0").unwrap();
    let client = Client::new(config);
    assert_eq!(client.publish(b"events", b"before").unwrap(), 0);

    let victim = topology
        .nodes()
        .iter()
        .position(|n| n.port() == first)
        .unwrap();
    topology.nodes_mut()[victim].stop();
    let start = std::time::Instant::now();
    let mut failed = 0;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no publish succeeded within 30 s ({failed} failed)"
        );
        match client.publish(b"events", b"probe") {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                    "{:?}: {}",
                    e.kind(),
                    e.message()
                );
                failed += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let window = start.elapsed();
    let second = topology.nodes()[1 - victim].port();
    let mut sub = topology.node(second).subscribe(&["events"]);
    for i in 0..10 {
        assert_eq!(
            client
                .publish(b"events", format!("after-{i}").as_bytes())
                .unwrap(),
            1
        );
    }
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("after-{i}").into_bytes()).collect();
    assert_eq!(sub.recv(10, WAIT), want);
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!(stats.topology.primary, Some(format!("127.0.0.1:{second}")));
    assert_eq!(stats.topology.failovers, 1);
    eprintln!("publish unavailable for {failed} calls ({window:?}) after kill -9 of the primary");
}

/// With the first Sentinel of the URL down, the primary is found through the next one.
#[test]
fn a_sentinel_down_is_skipped() {
    let mut topology = SentinelTopology::start();
    topology.sentinels_mut()[0].stop();
    let mut sub = topology.primary().subscribe(&["events"]);
    let client = client(&topology.url());
    assert_eq!(client.publish(b"events", b"via the second").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"via the second".to_vec()]);
    assert_eq!(
        client.stats().topology.primary,
        Some(format!("127.0.0.1:{}", topology.primary().port()))
    );
}

/// A Sentinel list where nothing answers fails typed and within the time bound; an unknown
/// service is named in the error.
#[test]
fn no_sentinel_or_an_unknown_service_fails_typed() {
    let port = support::free_port();
    let mut config = Config::default();
    config
        .set("url", &format!("redis-sentinel://127.0.0.1:{port}#qrpush"))
        .unwrap();
    config.set("connect_timeout", "0.2").unwrap();
    config.set("timeout", "0.2").unwrap();
    let start = std::time::Instant::now();
    let e = Client::new(config).publish(b"c", b"m").unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.message());

    let topology = SentinelTopology::start();
    let url = topology.url().replace("#qrpush", "#nosuch");
    let e = client(&url).publish(b"c", b"m").unwrap_err();
    assert!(e.message().contains("'nosuch'"), "{}", e.message());
}

fn client_with(url: &str, settings: &[(&str, &str)]) -> Client {
    let mut config = Config::default();
    config.set("url", url).unwrap();
    for (name, value) in settings {
        config.set(name, value).unwrap();
    }
    Client::new(config)
}

/// Right after `SENTINEL FAILOVER` the old primary still says master and runs PUBLISH for the
/// subscribers it has: none, once they moved to the new primary. With the answer cached for
/// long (so only the 0-receiver check can notice), every call either reaches the subscriber on
/// the new primary (returns 1, the message arrives) or throws `Replica` naming both nodes;
/// none returns 0; and what was thrown is never delivered later (not re-sent).
#[test]
fn a_publish_for_nobody_on_a_switched_primary_throws_instead_of_returning_0() {
    let topology = SentinelTopology::start();
    let old = topology.primary().port();
    let client = client_with(&topology.url(), &[("sentinel_check_interval", "60")]);
    let routing = shared_sentinel(&client.config().endpoint, client.config().pool_size);
    {
        let mut before = topology.primary().subscribe(&["events"]);
        assert_eq!(client.publish(b"events", b"before").unwrap(), 1);
        assert_eq!(before.recv(1, WAIT), vec![b"before".to_vec()]);
    }
    let new = topology.begin_failover();
    let mut after = topology.node(new).subscribe(&["events"]);
    let (mut delivered, mut thrown) = (Vec::new(), 0);
    for i in 0..200 {
        let message = format!("after-{i}");
        match client.publish(b"events", message.as_bytes()) {
            Ok(n) => {
                assert_eq!(n, 1, "publish #{i} returned {n}");
                delivered.push(message.into_bytes());
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Replica, "{}", e.message());
                assert!(e.maybe_sent(), "{}", e.message());
                assert!(
                    e.message().contains(&format!("127.0.0.1:{old}"))
                        && e.message().contains(&format!("127.0.0.1:{new}")),
                    "{}",
                    e.message()
                );
                thrown += 1;
            }
        }
    }
    assert_eq!(
        thrown, 1,
        "only the first call after the switch went to the old primary"
    );
    assert_eq!(after.recv(delivered.len(), WAIT), delivered);
    after.nothing_more(QUIET);
    assert_eq!(routing.current_primary().map(|n| n.port), Some(new));
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (200, 1));

    // A batch with messages for nobody on the old primary: the same question, once.
    let _ = topology.begin_failover();
    drop(after);
    let mut back = topology.node(old).subscribe(&["events"]);
    let e = client
        .publish_many(&[(b"events", b"m0"), (b"events", b"m1")])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Replica, "{}", e.message());
    assert_eq!(
        client
            .publish_many(&[(b"events", b"m2"), (b"events", b"m3")])
            .unwrap(),
        vec![1, 1]
    );
    assert_eq!(back.recv(2, WAIT), vec![b"m2".to_vec(), b"m3".to_vec()]);
}

/// With the 0-receiver check off, `sentinel_check_interval` alone bounds how long calls go to a
/// demoted primary: a call made one interval after the Sentinels switched reaches the new one.
#[test]
fn the_primary_is_asked_again_after_the_check_interval() {
    let topology = SentinelTopology::start();
    let client = client_with(
        &topology.url(),
        &[
            ("sentinel_check_interval", "0.5"),
            ("sentinel_zero_check", "off"),
        ],
    );
    assert_eq!(client.publish(b"events", b"warm").unwrap(), 0);
    let new = topology.begin_failover();
    let mut after = topology.node(new).subscribe(&["events"]);
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..10 {
        assert_eq!(
            client
                .publish(b"events", format!("m{i}").as_bytes())
                .unwrap(),
            1,
            "publish #{i}"
        );
    }
    assert_eq!(after.recv(10, WAIT).len(), 10);
    assert_eq!(
        client.stats().topology.primary,
        Some(format!("127.0.0.1:{new}"))
    );
}

/// The Sentinels are asked over pooled connections: 50 calls that each ask (interval 0) open
/// one connection to one Sentinel, not 50. A Sentinel that is down is skipped for the next one.
#[test]
fn sentinel_connections_are_pooled_and_a_down_sentinel_is_skipped() {
    let mut topology = SentinelTopology::start();
    let received = |topology: &SentinelTopology| -> u64 {
        topology
            .sentinels()
            .iter()
            .map(|s| {
                SentinelTopology::info(s, "stats", "total_connections_received")
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("INFO stats of a Sentinel")
            })
            .sum()
    };
    let client = client_with(
        &topology.url(),
        &[("sentinel_check_interval", "0"), ("breaker_cooldown", "0")],
    );
    let mut subscriber = topology.primary().subscribe(&["events"]);
    let before = received(&topology);
    for _ in 0..50 {
        assert_eq!(client.publish(b"events", b"m").unwrap(), 1);
    }
    // Our INFO calls above and below are one connection each, to every Sentinel.
    let opened = received(&topology) - before - topology.sentinels().len() as u64;
    assert!(
        opened <= 1,
        "{opened} connections opened to the Sentinels for 50 calls"
    );
    assert_eq!(subscriber.recv(50, WAIT).len(), 50);

    // The Sentinel that answered is stopped: the next one answers, every call still publishes.
    topology.sentinels_mut()[0].stop();
    for _ in 0..20 {
        assert_eq!(client.publish(b"events", b"n").unwrap(), 1);
    }
    assert_eq!(subscriber.recv(20, WAIT).len(), 20);
}

/// Durable publishes (one and a batch) that reached nobody on a switched primary throw
/// `Replica` the same way; the next one reaches the subscriber on the new primary.
#[test]
fn a_durable_publish_for_nobody_on_a_switched_primary_throws() {
    use qrpush_core::durable::Durable;

    let topology = SentinelTopology::start();
    let client = client_with(&topology.url(), &[("sentinel_check_interval", "60")]);
    let durable = Durable::new(&client);
    assert_eq!(durable.publish(b"news", b"warm").unwrap().receivers, 0);

    let new = topology.begin_failover();
    let mut after = topology.node(new).subscribe(&["news"]);
    let e = durable.publish(b"news", b"lost").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Replica, "{}", e.message());
    assert_eq!(durable.publish(b"news", b"one").unwrap().receivers, 1);
    // A durable message goes out framed with its offset: the body is last.
    assert!(after.recv(1, WAIT)[0].ends_with(b"\none"));

    let old = topology.begin_failover();
    drop(after);
    let mut back = topology.node(old).subscribe(&["news"]);
    let mut batch = durable.batch::<&[u8]>(2);
    batch.push_encoded(b"news", || Ok(b"b0")).unwrap();
    batch.push_encoded(b"news", || Ok(b"b1")).unwrap();
    let e = batch.publish().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Replica, "{}", e.message());
    assert_eq!(durable.publish(b"news", b"two").unwrap().receivers, 1);
    assert!(back.recv(1, WAIT)[0].ends_with(b"\ntwo"));
    back.nothing_more(QUIET);
}

/// A login transition whose event reached nobody on a switched primary throws `Replica` (its
/// state change there is lost when the node is demoted); the same scan on the new primary then
/// goes through and its event reaches the subscriber there.
#[test]
fn a_login_event_for_nobody_on_a_switched_primary_throws() {
    use qrpush_core::login::{Login, State};

    let topology = SentinelTopology::start();
    let client = client_with(&topology.url(), &[("sentinel_check_interval", "60")]);
    let login = Login::new(&client);
    let started = login.start("203.0.113.7", "Firefox/128").unwrap();
    let id = started.status.id.clone();

    let new = topology.begin_failover();
    let mut events = topology.node(new).subscribe(&["qr-login-events"]);
    let e = login
        .scan(started.qr.expose(), "user-42", "Pixel 8")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Replica, "{}", e.message());
    login
        .scan(started.qr.expose(), "user-42", "Pixel 8")
        .unwrap();
    let event = String::from_utf8(events.recv(1, WAIT).remove(0)).unwrap();
    assert!(
        event.contains("\"type\":\"scanned\"") && event.contains(&id),
        "{event}"
    );
    assert_eq!(login.status(&id, None).unwrap().state, State::Scanned);
    events.nothing_more(QUIET);
}

/// A Sentinel that stops answering on its pooled connection (SIGSTOP: the kernel still accepts
/// the bytes) costs a re-check only its share of half of `connect_timeout`: the next Sentinel
/// answers in the same call, every call still publishes within its bound, and the next calls
/// ask the one that answered first.
#[test]
fn a_frozen_sentinel_is_passed_over_within_the_call_bound() {
    let mut topology = SentinelTopology::start();
    let client = client_with(
        &topology.url(),
        &[
            ("sentinel_check_interval", "0"),
            ("connect_timeout", "0.3"),
            ("timeout", "0.3"),
        ],
    );
    let mut subscriber = topology.primary().subscribe(&["events"]);
    assert_eq!(client.publish(b"events", b"warm").unwrap(), 1);
    topology.sentinels_mut()[0].freeze();
    let bound = client.config().call_bound() + qrpush_core::config::CALL_BOUND_MARGIN;
    let mut took = Vec::new();
    for i in 0..10 {
        let start = std::time::Instant::now();
        assert_eq!(client.publish(b"events", b"m").unwrap(), 1, "publish #{i}");
        took.push(start.elapsed());
        assert!(took[i] < bound, "publish #{i} took {:?}", took[i]);
    }
    // Had the frozen Sentinel stayed first, each re-check would wait out its share there.
    assert!(
        took[1..].iter().all(|t| *t < Duration::from_millis(40)),
        "{took:?}"
    );
    topology.sentinels_mut()[0].thaw();
    assert_eq!(subscriber.recv(11, WAIT).len(), 11);
}
