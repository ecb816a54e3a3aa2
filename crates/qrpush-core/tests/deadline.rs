// Unix only: the test support uses signals, fork and Unix permissions; the DNS case a mount
// namespace.
#![cfg(unix)]

//! One deadline per call: whatever a call waits for — a free pooled connection, a name server, a
//! Unix socket whose server stopped accepting, a write into a full socket, a read interrupted by
//! signals — it returns or throws within `connect_timeout + timeout` plus `CALL_BOUND_MARGIN`, and
//! the bound of a request is its caller's, not that of the client that opened the shared
//! connection.

use qrpush_test_support as support;

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::config::CALL_BOUND_MARGIN;
use qrpush_core::pool::shared_pool;
use qrpush_core::{Client, Config, Error, ErrorKind};
use support::RedisServer;

/// What a busy test machine may add to a measured call (scheduling), on top of the margin the
/// client itself promises.
const MACHINE_SLACK: Duration = Duration::from_millis(150);

/// Runs `call` on a thread and measures it. A call still running after `give_up` fails the test
/// instead of hanging it; `unblock` runs first (e.g. thaws the server) so the call can end.
fn bounded<T: Send>(
    give_up: Duration,
    unblock: impl FnOnce(),
    call: impl FnOnce() -> T + Send,
) -> (T, Duration) {
    thread::scope(|s| {
        let start = Instant::now();
        let handle = s.spawn(move || {
            let result = call();
            (result, start.elapsed())
        });
        while !handle.is_finished() {
            if start.elapsed() > give_up {
                unblock();
                let (_, elapsed) = handle.join().unwrap();
                panic!("the call was still blocked after {give_up:?} (it returned {elapsed:?} after the start, once unblocked)");
            }
            thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap()
    })
}

#[track_caller]
fn assert_within_bound(client: &Client, elapsed: Duration, what: &str) {
    let bound = client.config().call_bound() + CALL_BOUND_MARGIN + MACHINE_SLACK;
    assert!(
        elapsed <= bound,
        "{what} took {elapsed:?}, more than {bound:?}"
    );
}

/// A Unix-socket Redis that stopped accepting (SIGSTOP) keeps taking connections into its listen
/// backlog until it is full; a blocking connect then sleeps until the server accepts again. Every
/// call must still end within its bound, the ones that meet the full backlog included.
#[test]
fn unix_socket_server_frozen_with_a_full_backlog_is_bounded() {
    let socket = std::env::temp_dir().join(format!("qrpush-backlog-{}.sock", std::process::id()));
    let socket_arg = socket.display().to_string();
    let mut server = RedisServer::start_with(&[
        "--unixsocket",
        &socket_arg,
        "--unixsocketperm",
        "700",
        "--tcp-backlog",
        "2",
    ]);
    // No circuit breaker: every call must try to connect.
    let mut config = Config::default();
    config.set("url", &format!("unix://{socket_arg}")).unwrap();
    for (name, value) in [
        ("connect_timeout", "0.2"),
        ("timeout", "0.2"),
        ("breaker_cooldown", "0"),
    ] {
        config.set(name, value).unwrap();
    }
    let client = Client::new(config);
    assert_eq!(client.publish(b"c", b"warm").unwrap(), 0);
    // The warm connection is pooled; calls beyond it need new ones.
    server.freeze();
    let frozen = std::sync::Mutex::new(&mut server);
    let mut messages = Vec::new();
    for i in 0..6 {
        let (result, elapsed) = bounded(
            Duration::from_secs(3),
            || frozen.lock().unwrap().thaw(),
            || {
                // Hold the pooled connection so that this call opens a new one.
                let pool = shared_pool(&client.config().endpoint, 8);
                let _held = pool.lease(Duration::from_secs(1)).unwrap();
                client.publish(b"c", b"x")
            },
        );
        let err = result.expect_err("a frozen server cannot publish");
        assert_eq!(err.kind(), ErrorKind::Timeout, "call {i}: {err}");
        assert!(!err.maybe_sent(), "call {i}: nothing was sent: {err}");
        assert_within_bound(&client, elapsed, &format!("call {i}"));
        messages.push(err.message().to_string());
    }
    assert!(
        messages
            .iter()
            .any(|m| m.contains("listen backlog stayed full")),
        "the backlog never filled: {messages:?}"
    );
    frozen.into_inner().unwrap().thaw();
    assert_eq!(client.publish(b"c", b"thawed").unwrap(), 0);
    let _ = std::fs::remove_file(socket);
}

/// Under ZTS a call may wait for a free pooled connection and then open a new one: both come out
/// of the same `connect_timeout`, not one each.
#[test]
fn waiting_for_the_pool_and_connecting_share_connect_timeout() {
    let mut server = RedisServer::start();
    let client = server.client(&[
        ("pool_size", "1"),
        ("connect_timeout", "0.5"),
        ("timeout", "0.05"),
        ("breaker_cooldown", "0"),
    ]);
    let pool = shared_pool(&client.config().endpoint, 1);
    let held = pool
        .lease(Duration::from_secs(1))
        .expect("the only connection");
    server.freeze();
    let (result, elapsed) = thread::scope(|s| {
        // The holder gives the slot back (without its connection) after most of connect_timeout;
        // the waiting call then has to open a connection to the frozen server.
        s.spawn(move || {
            thread::sleep(Duration::from_millis(400));
            held.discard();
        });
        let start = Instant::now();
        let result = client.publish(b"c", b"x");
        (result, start.elapsed())
    });
    server.thaw();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_within_bound(&client, elapsed, "a pool wait then a connect");
}

/// Two clients of one endpoint share its connections. A request is bounded by its own caller's
/// `timeout` for writing too, not by the one of the client that happened to open the connection.
#[test]
fn the_send_bound_is_the_callers_not_the_openers() {
    let mut server = RedisServer::start();
    let patient = server.client(&[("pool_size", "1"), ("timeout", "5")]);
    patient.ping().unwrap();
    let hasty = server.client(&[
        ("pool_size", "1"),
        ("timeout", "0.3"),
        ("max_payload", "67108864"),
    ]);
    // About twice what loopback socket buffers absorb: the write blocks on the frozen server.
    let payload = vec![b'x'; 8 << 20];
    server.freeze();
    let start = Instant::now();
    let err = hasty.publish(b"c", &payload).unwrap_err();
    let elapsed = start.elapsed();
    server.thaw();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(
        hasty.stats().connections_created,
        1,
        "the connection was shared"
    );
    // Packing 8 MiB counts against the deadline too (slow in a debug build): allow for it.
    assert!(
        elapsed < Duration::from_secs(2),
        "a 0.3 s request on a connection opened with a 5 s timeout took {elapsed:?}"
    );
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// A read that a signal interrupts (EINTR: PHP's timers, pcntl handlers) goes on with what is
/// left of the deadline, not with a whole new `timeout`.
#[test]
fn signals_do_not_restart_the_read_timeout() {
    // SIGUSR1 runs a handler that does nothing, without SA_RESTART: recv() returns EINTR.
    // SAFETY: installs a handler that only returns, for a signal nothing else in this test
    // binary uses.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    let mut server = RedisServer::start();
    let client = server.client(&[("timeout", "0.5")]);
    client.ping().unwrap();
    server.freeze();
    let done = AtomicBool::new(false);
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let (result, elapsed) = thread::scope(|s| {
        s.spawn(|| {
            let until = Instant::now() + Duration::from_secs(3);
            while !done.load(Ordering::SeqCst) && Instant::now() < until {
                thread::sleep(Duration::from_millis(100));
                if !done.load(Ordering::SeqCst) {
                    // SAFETY: `me` is the scope's thread, alive until the scope ends.
                    unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                }
            }
        });
        let start = Instant::now();
        let result = client.publish(b"c", b"x");
        done.store(true, Ordering::SeqCst);
        (result, start.elapsed())
    });
    server.thaw();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        elapsed < Duration::from_millis(500) + CALL_BOUND_MARGIN + MACHINE_SLACK,
        "a 0.5 s request interrupted every 100 ms took {elapsed:?}"
    );
}

/// The loopback address of the stub name server that receives queries and never answers.
const SILENT_NAME_SERVER: &str = "127.0.0.153";
const INNER: &str = "QRPUSH_TEST_SILENT_DNS";

/// A name server that never answers makes the system resolver block for resolv.conf's timeout
/// (seconds); a call must still end within its `connect_timeout`. The test runs itself again in
/// a mount namespace whose /etc/resolv.conf names only a silent stub server on a loopback address
/// (never another name server), and checks the inner run (`silent_name_server_inner`).
#[test]
fn a_name_server_that_never_answers_is_bounded() {
    let stub = UdpSocket::bind((SILENT_NAME_SERVER, 53)).unwrap_or_else(|e| {
        panic!("binding the stub name server on {SILENT_NAME_SERVER}:53 (needs root, as the chroot's tests run): {e}")
    });
    let dir = std::env::temp_dir().join(format!("qrpush-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {SILENT_NAME_SERVER}\noptions timeout:4 attempts:1\n"),
    )
    .unwrap();
    let server = RedisServer::start();
    let exe = std::env::current_exe().unwrap();
    // The bind mount must not leave the new namespace. In the chroot, "/" is no mount point, so
    // its propagation cannot be changed; there every mount is private already (qr_run runs in a
    // private mount namespace), and the copies keep that.
    let propagation = if std::env::var_os("QRPUSH_IN_CHROOT").is_some() {
        "unchanged"
    } else {
        "private"
    };
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", propagation, "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/resolv.conf && exec "$2" --exact silent_name_server_inner --ignored --nocapture"#)
        .arg("sh")
        .arg(&resolv)
        .arg(&exe)
        .env(INNER, server.port().to_string())
        .output()
        .expect("running unshare");
    let _ = std::fs::remove_dir_all(&dir);
    let mut queries = 0;
    stub.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while stub.recv(&mut buf).is_ok() {
        queries += 1;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the inner run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner test did not run:\n{text}"
    );
    assert!(queries > 0, "the stub name server was never asked:\n{text}");
}

/// The inner half of `a_name_server_that_never_answers_is_bounded`; does nothing elsewhere.
#[test]
#[ignore = "run by a_name_server_that_never_answers_is_bounded in a mount namespace"]
fn silent_name_server_inner() {
    let Ok(port) = std::env::var(INNER) else {
        return;
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    assert!(resolv.contains(SILENT_NAME_SERVER), "{resolv}");
    let mut config = Config::default();
    config
        .set("url", &format!("redis://redis.qrpush-dns.test:{port}"))
        .unwrap();
    config.set("connect_timeout", "0.5").unwrap();
    config.set("timeout", "0.2").unwrap();
    // The breaker would fail the second call fast: it must wait for the name server instead.
    config.set("breaker_cooldown", "0").unwrap();
    let client = Client::new(config);
    // Twice: the second call finds the first lookup still running and waits for it, bounded too.
    for call in 0..2 {
        let start = Instant::now();
        let err: Error = client.publish(b"c", b"x").unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "call {call}: {err}");
        assert!(
            err.message().contains("no answer from the name server"),
            "call {call}: {err}"
        );
        assert!(!err.maybe_sent());
        assert_within_bound(
            &client,
            elapsed,
            "a call whose host name gets no DNS answer",
        );
    }
}
