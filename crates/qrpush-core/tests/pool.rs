// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! The process-wide pool as Redis sees it: one connection reused across calls, never more than
//! `pool_size` connections under concurrency, and a bounded wait when every connection is busy.

use qrpush_test_support as support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::pool::shared_pool;
use qrpush_core::ErrorKind;
use support::{assert_within, qrpush_name, RedisServer};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn sequential_publishes_share_one_connection() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["seq"]);
    let client = server.client(&[("pool_size", "4")]);
    assert!(
        server.qrpush_clients().is_empty(),
        "Client::new must not connect"
    );
    assert_eq!(client.stats().connections_created, 0);

    assert_eq!(client.publish(b"seq", b"0").unwrap(), 1);
    let first = server.qrpush_clients();
    assert_eq!(first.len(), 1, "{first:?}");
    let id = first[0].id();
    assert_eq!(first[0].get("name"), Some(qrpush_name().as_str()));

    for i in 1..50 {
        assert_eq!(client.publish(b"seq", i.to_string().as_bytes()).unwrap(), 1);
        if i % 10 == 0 {
            let now = server.qrpush_clients();
            assert_eq!(now.len(), 1, "after {i} publishes: {now:?}");
            assert_eq!(now[0].id(), id, "the same server connection is reused");
        }
    }
    // A second client of the same endpoint shares the pool and its connection.
    let other = server.client(&[("pool_size", "4")]);
    assert_eq!(other.publish(b"seq", b"50").unwrap(), 1);
    client.ping().unwrap();
    let now = server.qrpush_clients();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].id(), id);

    let got = sub.recv(51, WAIT);
    let expected: Vec<Vec<u8>> = (0..51).map(|i: i32| i.to_string().into_bytes()).collect();
    assert_eq!(got, expected);

    let stats = client.stats();
    assert_eq!(stats.published, 51);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.connections_created, 1);
    assert_eq!(stats.reconnects, 0);
    assert_eq!(stats.pool_size, 4);
    assert_eq!(stats.pool_idle, 1);
    assert_eq!(stats.pool_in_use, 0);
    assert_eq!(stats.last_error, None);
    assert_eq!(stats.latency.count, 52, "51 publishes and a ping");
    assert!(stats.latency.max_us > 0);
    assert!(stats.latency.p50_us <= stats.latency.p99_us);
    assert!(stats.latency.p99_us <= stats.latency.max_us);
    assert_eq!(
        stats.endpoint,
        format!("redis://127.0.0.1:{}/0", server.port())
    );
    assert_eq!(stats.pid, std::process::id());
    assert_eq!(
        other.stats(),
        stats,
        "clients of one endpoint share the pool's stats"
    );
}

#[test]
fn pool_is_bounded_under_threads() {
    const THREADS: usize = 16;
    const EACH: usize = 200;
    let server = Arc::new(RedisServer::start());
    let mut sub = server.subscribe(&["load"]);
    let client = Arc::new(server.client(&[("pool_size", "4"), ("connect_timeout", "5")]));

    // Sample the server's view of our connections while the publishers run.
    let running = Arc::new(AtomicBool::new(true));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let max_in_use = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (server, running, max_seen) = (server.clone(), running.clone(), max_seen.clone());
        let (client, max_in_use) = (client.clone(), max_in_use.clone());
        thread::spawn(move || {
            let mut samples = 0;
            while running.load(Ordering::SeqCst) || samples < 3 {
                let n = server.qrpush_clients().len();
                max_seen.fetch_max(n, Ordering::SeqCst);
                max_in_use.fetch_max(client.stats().pool_in_use, Ordering::SeqCst);
                samples += 1;
                thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };

    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut receivers = 0;
                for i in 0..EACH {
                    receivers += client
                        .publish(b"load", format!("{t}:{i}").as_bytes())
                        .unwrap_or_else(|e| panic!("thread {t} publish {i}: {e}"));
                }
                receivers
            })
        })
        .collect();
    let receivers: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    running.store(false, Ordering::SeqCst);
    let samples = sampler.join().unwrap();

    assert_eq!(receivers, (THREADS * EACH) as i64);
    let got = sub.recv(THREADS * EACH, WAIT);
    sub.nothing_more(Duration::from_millis(200));
    // Every message once, and each thread's messages in its own order.
    let mut next = [0usize; THREADS];
    for p in &got {
        let text = String::from_utf8(p.clone()).unwrap();
        let (t, i) = text.split_once(':').unwrap();
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(
            i, next[t],
            "thread {t}'s messages arrive in order, once each"
        );
        next[t] += 1;
    }
    assert!(next.iter().all(|n| *n == EACH));

    assert!(samples >= 3);
    let seen = max_seen.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&seen),
        "the server saw {seen} qrpush connections at once"
    );
    assert!(max_in_use.load(Ordering::SeqCst) <= 4);
    let stats = client.stats();
    assert_eq!(stats.published, (THREADS * EACH) as u64);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.reconnects, 0);
    assert!(
        (1..=4).contains(&stats.connections_created),
        "{} connections created",
        stats.connections_created
    );
    assert_eq!(stats.pool_in_use, 0);
    assert_eq!(stats.pool_idle as u64, stats.connections_created);
    assert!(server.qrpush_clients().len() <= 4);
    assert_eq!(stats.latency.count, (THREADS * EACH) as u64);
}

#[test]
fn a_full_pool_waits_then_times_out() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["busy"]);
    let client = server.client(&[
        ("pool_size", "2"),
        ("connect_timeout", "0.2"),
        ("timeout", "1"),
    ]);
    let endpoint = client.config().endpoint.clone();
    // The client's own pool (same endpoint): hold every connection.
    let pool = shared_pool(&endpoint, 2);
    let first = pool.lease(Duration::from_secs(1)).unwrap();
    let second = pool.lease(Duration::from_secs(1)).unwrap();
    assert!(first.fresh && second.fresh);
    assert_eq!(client.stats().pool_in_use, 2);

    let start = Instant::now();
    let err = client.publish(b"busy", b"never").unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(!err.maybe_sent());
    assert_eq!(
        err.message(),
        format!(
            "all 2 connections to Redis at 127.0.0.1:{} are busy (raise qrpush.pool_size)",
            server.port()
        )
    );
    assert_within(
        elapsed,
        Duration::from_millis(190),
        Duration::from_millis(1000),
        "waiting for a full pool",
    );
    let stats = client.stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.last_error.as_deref(), Some(err.message()));
    assert_eq!(stats.connections_created, 2);
    assert_eq!(
        server.qrpush_clients().len(),
        2,
        "no third connection was opened"
    );

    // A waiter gets the connection another thread gives back.
    let patient = server.client(&[("pool_size", "2"), ("connect_timeout", "3")]);
    let waited = thread::scope(|s| {
        s.spawn(move || {
            thread::sleep(Duration::from_millis(150));
            drop(first);
        });
        let start = Instant::now();
        assert_eq!(patient.publish(b"busy", b"after wait").unwrap(), 1);
        start.elapsed()
    });
    assert_within(
        waited,
        Duration::from_millis(100),
        Duration::from_millis(2500),
        "waiting for a returned connection",
    );
    drop(second);
    assert_eq!(sub.recv(1, WAIT), vec![b"after wait".to_vec()]);
    sub.nothing_more(Duration::from_millis(200));
    let stats = client.stats();
    assert_eq!(
        stats.connections_created, 2,
        "the returned connection was reused"
    );
    assert_eq!(stats.pool_in_use, 0);
    assert_eq!(stats.pool_idle, 2);
}

#[test]
fn a_discarded_lease_frees_its_slot() {
    let server = RedisServer::start();
    let client = server.client(&[("pool_size", "1"), ("connect_timeout", "0.5")]);
    let pool = shared_pool(&client.config().endpoint, 1);
    let lease = pool.lease(Duration::from_secs(1)).unwrap();
    lease.discard();
    assert_eq!(client.stats().pool_in_use, 0);
    assert_eq!(client.stats().pool_idle, 0);
    server.wait_until("the discarded connection to close", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });
    assert_eq!(client.publish(b"c", b"m").unwrap(), 0);
    assert_eq!(client.stats().connections_created, 2);
    assert_eq!(server.qrpush_clients().len(), 1);
}

#[test]
fn the_first_client_fixes_the_pool_size() {
    let server = RedisServer::start();
    let first = server.client(&[("pool_size", "3")]);
    let second = server.client(&[("pool_size", "7")]);
    assert_eq!(first.stats().pool_size, 3);
    assert_eq!(
        second.stats().pool_size,
        3,
        "one pool per endpoint and process"
    );
    // Other credentials or another database are another pool.
    let other_db = server.client(&[("url", &format!("{}/1", server.url())), ("pool_size", "5")]);
    assert_eq!(other_db.stats().pool_size, 5);
    first.ping().unwrap();
    other_db.ping().unwrap();
    assert_eq!(first.stats().connections_created, 1);
    assert_eq!(other_db.stats().connections_created, 1);
    assert_eq!(server.qrpush_clients().len(), 2);
}
