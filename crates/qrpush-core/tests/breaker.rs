//! The circuit breaker against a real redis-server: a connection attempt that times out makes the
//! following calls fail fast for `breaker_cooldown`, then one trial reconnects; refusals never trip
//! it; a live pooled connection is still used while it is open; 0 turns it off.

use qrpush_test_support as support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qrpush_core::breaker::BreakerState;
use qrpush_core::pool::{LeaseTerms, Pool};
use qrpush_core::{Endpoint, ErrorKind};
use support::{assert_within, RedisServer};

const WAIT: Duration = Duration::from_secs(5);
/// Scheduling slack on top of a configured bound.
const SLACK: Duration = Duration::from_millis(500);
/// What a call that fails fast may take: no connection attempt, no I/O.
const FAST: Duration = Duration::from_millis(50);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_timed_out_connection_attempt_makes_calls_fail_fast_until_one_trial_reconnects() {
    let mut server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("breaker_cooldown", "1"),
    ]);
    server.freeze();

    // The first call pays connect_timeout: the kernel accepts, the handshake is never answered.
    let start = Instant::now();
    let err = client.publish(b"c", b"first").unwrap_err();
    let opened = Instant::now();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_within(
        start.elapsed(),
        Duration::from_millis(250),
        Duration::from_millis(300) + SLACK,
        "the attempt that opens the breaker",
    );
    let s = client.stats().breaker;
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!((s.trips, s.fast_failures), (1, 0));
    let opened_at = s.opened_at.expect("opened_at while open");
    assert!(
        (unix_now() - opened_at).abs() < 2.0,
        "opened_at {opened_at}"
    );

    // The next ones fail at once, with the reason and when it retries: 20 calls in well under
    // one connect_timeout instead of 20 of them.
    let start = Instant::now();
    for i in 0..20 {
        let t = Instant::now();
        let err = client.publish(b"c", b"fast").unwrap_err();
        assert!(t.elapsed() < FAST, "call {i} took {:?}", t.elapsed());
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(!err.maybe_sent());
        let m = err.message();
        let prefix = format!(
            "circuit open for Redis at 127.0.0.1:{} since ",
            server.port()
        );
        assert!(m.starts_with(&prefix), "{m}");
        assert!(
            m.contains("did not complete the login in time"),
            "the cause is named: {m}"
        );
        let retry: f64 = m
            .split("; retrying after ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no 'retrying after <seconds>' in {m}"));
        assert!(retry > 0.5 && retry <= 1.0, "{m}");
        assert!(m.ends_with(" s (qrpush.breaker_cooldown)"), "{m}");
    }
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    let stats = client.stats();
    assert_eq!(stats.breaker.fast_failures, 20);
    assert_eq!(stats.failed, 21);
    assert_eq!(stats.connections_created, 0);
    assert!(stats.last_error.unwrap().starts_with("circuit open"));

    // Redis is back, but the cool-down is not over: still failing fast (the price of the breaker).
    server.thaw();
    assert!(client.publish(b"c", b"too early").is_err());

    // After the cool-down: half-open, and the next call is the trial, which reconnects.
    std::thread::sleep(Duration::from_millis(1000).saturating_sub(opened.elapsed()) + FAST);
    assert_eq!(client.stats().breaker.state, BreakerState::HalfOpen);
    assert_eq!(client.publish(b"c", b"trial").unwrap(), 1);
    let s = client.stats().breaker;
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!(s.opened_at, None);
    assert_eq!((s.trips, s.fast_failures), (1, 21));
    assert_eq!(client.publish(b"c", b"after").unwrap(), 1);

    // Nothing of the failed calls reached Redis: the handshake never completed, and the fast
    // failures never touched a socket.
    assert_eq!(
        sub.recv(2, WAIT),
        vec![b"trial".to_vec(), b"after".to_vec()]
    );
    sub.nothing_more(Duration::from_millis(200));
}

#[test]
fn a_trial_that_times_out_opens_it_again() {
    let mut server = RedisServer::start();
    let client = server.client(&[
        ("connect_timeout", "0.2"),
        ("timeout", "0.2"),
        ("breaker_cooldown", "0.3"),
    ]);
    server.freeze();
    assert_eq!(
        client.publish(b"c", b"x").unwrap_err().kind(),
        ErrorKind::Timeout
    );
    let first_opened = client.stats().breaker.opened_at.unwrap();
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(client.stats().breaker.state, BreakerState::HalfOpen);

    // The trial pays connect_timeout again and fails; the breaker opens from then.
    let start = Instant::now();
    let err = client.publish(b"c", b"trial").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(150));
    let s = client.stats().breaker;
    assert_eq!(s.state, BreakerState::Open);
    assert_eq!(s.trips, 2);
    assert!(s.opened_at.unwrap() > first_opened);
    let t = Instant::now();
    assert!(client
        .publish(b"c", b"fast")
        .unwrap_err()
        .message()
        .starts_with("circuit open"));
    assert!(t.elapsed() < FAST);
    server.thaw();
}

#[test]
fn refused_connections_never_open_it() {
    let mut server = RedisServer::start();
    let client = server.client(&[("connect_timeout", "0.5"), ("breaker_cooldown", "5")]);
    assert_eq!(client.publish(b"c", b"up").unwrap(), 0);
    server.stop(); // the port is closed: connecting is refused at once
    for _ in 0..5 {
        let start = Instant::now();
        let err = client.publish(b"c", b"down").unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(!err.message().starts_with("circuit open"), "{err}");
    }
    let s = client.stats().breaker;
    assert_eq!(
        (s.state, s.trips, s.fast_failures),
        (BreakerState::Closed, 0, 0)
    );

    // So a restart is picked up by the very next call, not after a cool-down.
    server.restart();
    let mut sub = server.subscribe(&["c"]);
    assert_eq!(client.publish(b"c", b"back").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"back".to_vec()]);
}

#[test]
fn zero_cooldown_turns_it_off() {
    let mut server = RedisServer::start();
    let client = server.client(&[
        ("connect_timeout", "0.2"),
        ("timeout", "0.2"),
        ("breaker_cooldown", "0"),
    ]);
    server.freeze();
    for _ in 0..2 {
        let start = Instant::now();
        let err = client.publish(b"c", b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "every call tries: {err}");
        assert!(start.elapsed() >= Duration::from_millis(150));
    }
    server.thaw();
    let s = client.stats().breaker;
    assert_eq!(
        (s.state, s.trips, s.fast_failures),
        (BreakerState::Closed, 0, 0)
    );
    assert_eq!(client.publish(b"c", b"x").unwrap(), 0);
}

/// Only opening a connection is guarded: a live idle connection is lent even while it is open.
#[test]
fn an_idle_live_connection_is_still_lent_while_it_is_open() {
    let server = RedisServer::start();
    let pool = Pool::new(Endpoint::parse(&server.url()).unwrap(), 2);
    let cooldown = Duration::from_secs(5);
    let terms = || LeaseTerms {
        breaker_cooldown: cooldown,
        ..LeaseTerms::from_now(Duration::from_millis(500))
    };
    drop(pool.lease_within(&terms()).expect("first connection"));

    // Open it as a timed-out attempt would.
    let now = Instant::now();
    pool.breaker
        .admit(now, cooldown)
        .unwrap_or_else(|_| panic!("closed"))
        .failed(now, true, "a test's timeout");

    let mut held = pool.lease_within(&terms()).expect("the idle connection");
    assert!(!held.fresh);
    held.connection();
    // A second connection would have to be opened: refused at once.
    let err = pool.lease_within(&terms()).err().expect("open");
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(
        err.message().contains("(a test's timeout)"),
        "{}",
        err.message()
    );
    // Unguarded leases (breaker_cooldown 0) are not affected.
    drop(pool.lease(Duration::from_millis(500)).expect("unguarded"));
    drop(held);
    assert_eq!(pool.snapshot().breaker.fast_failures, 1);
    assert_eq!(pool.snapshot().breaker.state, BreakerState::Open);
}
