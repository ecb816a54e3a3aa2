// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Idle connections: a NAT or load balancer that forgets an idle flow sends no RST, so the
//! liveness peek still says "alive" and a PUBLISH written into it is never answered. A connection
//! unused for `idle_check_after` answers a PING before it is reused (within half of what is left of
//! `connect_timeout`), and TCP keepalive probes every idle connection.

use qrpush_test_support as support;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::config::CALL_BOUND_MARGIN;
use qrpush_core::ErrorKind;
use support::{Proxy, RedisServer};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

#[test]
fn a_connection_a_silent_path_forgot_is_replaced_before_publishing() {
    let server = RedisServer::start();
    let path = Proxy::start(server.port());
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[
        ("url", &path.url()),
        ("connect_timeout", "0.5"),
        ("timeout", "0.5"),
        ("idle_check_after", "0.2"),
    ]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    path.forget_existing();
    thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    assert_eq!(client.publish(b"c", b"two").unwrap(), 1);
    let elapsed = start.elapsed();
    assert!(
        elapsed <= client.config().call_bound() + CALL_BOUND_MARGIN,
        "{elapsed:?}"
    );
    assert_eq!(sub.recv(2, WAIT), vec![b"one".to_vec(), b"two".to_vec()]);
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
    assert_eq!(stats.reconnects, 1);
    assert_eq!(stats.connections_created, 2);
    assert_eq!(path.accepted(), 2);

    // A connection used again soon is not checked: no PING, no new connection.
    assert_eq!(client.publish(b"c", b"three").unwrap(), 1);
    assert_eq!(client.stats().connections_created, 2);
}

/// Without the check (idle_check_after = 0) the same publish is written into the forgotten flow
/// and times out: reported (maybe sent), but not delivered. The check is what delivers it.
#[test]
fn without_the_idle_check_the_forgotten_flow_times_out() {
    let server = RedisServer::start();
    let path = Proxy::start(server.port());
    let client = server.client(&[
        ("url", &path.url()),
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("idle_check_after", "0"),
    ]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 0);
    path.forget_existing();
    let err = client.publish(b"c", b"two").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.maybe_sent());
}

/// TCP keepalive is on for pooled connections, so the kernel probes an idle one and the
/// liveness peek sees a dead path as an error (`ss` shows the keepalive timer).
#[test]
fn pooled_tcp_connections_have_keepalive() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    client.ping().unwrap();
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( dport = :{} )", server.port()))
        .output()
        .expect("running ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(ours.len(), 1, "{text}");
    assert!(ours[0].contains("timer:(keepalive,"), "{text}");
}
