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
