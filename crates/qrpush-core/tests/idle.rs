// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Idle connections: a NAT or load balancer that forgets an idle flow sends no RST, so the
//! liveness peek still says "alive" and a PUBLISH written into it is never answered. A connection
//! unused for `idle_check_after` answers a PING before it is reused (within half of what is left of
//! `connect_timeout`), and TCP keepalive probes every idle connection.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::config::CALL_BOUND_MARGIN;
use qrpush_core::ErrorKind;
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

/// A TCP path that can forget the flows it carries: after `forget()`, the connections open then
/// swallow everything both ways and stay open (no FIN, no RST), as behind a NAT that dropped
/// their state; connections made later pass.
struct ForgetfulPath {
    port: u16,
    flows: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    accepted: Arc<AtomicUsize>,
}

impl ForgetfulPath {
    fn to(server: &RedisServer) -> ForgetfulPath {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = server.port();
        let flows: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (known, count) = (flows.clone(), accepted.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let forgotten = Arc::new(AtomicBool::new(false));
                known.lock().unwrap().push(forgotten.clone());
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let forgotten = forgotten.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if !forgotten.load(Ordering::SeqCst)
                                && into.write_all(&buf[..n]).is_err()
                            {
                                break;
                            }
                        }
                        // Keep `into` open: a forgotten flow never closes.
                        if !forgotten.load(Ordering::SeqCst) {
                            let _ = into.shutdown(std::net::Shutdown::Both);
                        } else {
                            thread::sleep(Duration::from_secs(30));
                        }
                    });
                }
            }
        });
        ForgetfulPath {
            port,
            flows,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn forget(&self) {
        for flow in self.flows.lock().unwrap().iter() {
            flow.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_connection_a_silent_path_forgot_is_replaced_before_publishing() {
    let server = RedisServer::start();
    let path = ForgetfulPath::to(&server);
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[
        ("url", &path.url()),
        ("connect_timeout", "0.5"),
        ("timeout", "0.5"),
        ("idle_check_after", "0.2"),
    ]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    path.forget();
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
    assert_eq!(path.accepted.load(Ordering::SeqCst), 2);

    // A connection used again soon is not checked: no PING, no new connection.
    assert_eq!(client.publish(b"c", b"three").unwrap(), 1);
    assert_eq!(client.stats().connections_created, 2);
}

/// Without the check (idle_check_after = 0) the same publish is written into the forgotten flow
/// and times out: reported (maybe sent), but not delivered. The check is what delivers it.
#[test]
fn without_the_idle_check_the_forgotten_flow_times_out() {
    let server = RedisServer::start();
    let path = ForgetfulPath::to(&server);
    let client = server.client(&[
        ("url", &path.url()),
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("idle_check_after", "0"),
    ]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 0);
    path.forget();
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
