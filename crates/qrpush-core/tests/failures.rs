// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! What happens when Redis goes away, stalls or refuses: stale pooled connections are replaced
//! without an error, unreachable and frozen servers fail within the configured bounds with the
//! right error kind, and login problems are server errors that never show the password.

use qrpush_test_support as support;

use std::time::{Duration, Instant};

use qrpush_core::{Client, Error, ErrorKind};
use support::{assert_within, RedisServer};

const WAIT: Duration = Duration::from_secs(5);
/// Scheduling slack on top of a configured bound.
const SLACK: Duration = Duration::from_millis(500);

/// Runs `call` and measures how long it took.
fn timed<T>(call: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let result = call();
    (result, start.elapsed())
}

/// Publishes `payload` on channel `c` while `server` is frozen (SIGSTOP), and thaws it again:
/// the publish must fail, and its error comes back with the time it took.
fn publish_to_frozen_server(
    server: &mut RedisServer,
    client: &Client,
    payload: &[u8],
) -> (Error, Duration) {
    server.freeze();
    let (result, elapsed) = timed(|| client.publish(b"c", payload));
    server.thaw();
    (result.unwrap_err(), elapsed)
}

/// Creates the ACL user `name` with `password` and the given rules (`~*`, `+@all`, ...).
fn add_acl_user(server: &RedisServer, name: &str, password: &str, rules: &[&str]) {
    let password = format!(">{password}");
    let mut args = vec!["ACL", "SETUSER", name, "on", &password];
    args.extend_from_slice(rules);
    server.admin().ok(&args);
}

/// A client that logs in to `server` as the ACL user `user`.
fn client_as(server: &RedisServer, user: &str, password: &str) -> Client {
    server.client(&[("url", &server.url_with(Some(user), Some(password)))])
}

/// A client logged in as the user "reader", who may do anything but PUBLISH.
fn client_without_publish_grant(server: &RedisServer) -> Client {
    add_acl_user(
        server,
        "reader",
        "pw-reader",
        &["~*", "&*", "+@all", "-publish"],
    );
    client_as(server, "reader", "pw-reader")
}

#[test]
fn restarted_server_is_reconnected_silently() {
    let mut server = RedisServer::start();
    let client = server.client(&[]);
    assert_eq!(client.publish(b"c", b"before").unwrap(), 0);
    assert_eq!(server.qrpush_clients().len(), 1);

    server.restart();
    let mut sub = server.subscribe(&["c"]);
    assert_eq!(client.publish(b"c", b"after").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"after".to_vec()]);
    sub.nothing_more(Duration::from_millis(100));

    let stats = client.stats();
    assert_eq!(stats.published, 2);
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.connections_created, 2);
    assert_eq!(
        server.qrpush_clients().len(),
        1,
        "one connection on the new server"
    );
}

#[test]
fn killed_connection_is_replaced_silently() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    let id = server.qrpush_clients()[0].id();

    let killed = server.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]);
    assert_eq!(killed, redis::Value::Int(1));
    server.wait_until("the killed client to disappear", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });

    assert_eq!(client.publish(b"c", b"two").unwrap(), 1);
    assert_eq!(sub.recv(2, WAIT), vec![b"one".to_vec(), b"two".to_vec()]);
    sub.nothing_more(Duration::from_millis(100));
    let clients = server.qrpush_clients();
    assert_eq!(clients.len(), 1);
    assert_ne!(
        clients[0].id(),
        id,
        "a new connection replaced the killed one"
    );
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
    assert_eq!(stats.reconnects, 1);
    assert_eq!(stats.connections_created, 2);
}

/// The same when Redis kills by type (every connection but Pub/Sub ones and the caller's own).
#[test]
fn connections_killed_by_type_are_replaced_silently() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    let id = server.qrpush_clients()[0].id();

    match server.cmd(&["CLIENT", "KILL", "TYPE", "normal"]) {
        redis::Value::Int(killed) => assert!(killed >= 1, "killed {killed}"),
        other => panic!("CLIENT KILL TYPE normal answered {other:?}"),
    }
    server.wait_until("the killed client to disappear", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });

    assert_eq!(client.publish(b"c", b"two").unwrap(), 1);
    assert_eq!(sub.recv(2, WAIT), vec![b"one".to_vec(), b"two".to_vec()]);
    let clients = server.qrpush_clients();
    assert_eq!(clients.len(), 1);
    assert_ne!(clients[0].id(), id);
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
}

#[test]
fn server_idle_timeout_is_survived() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]); // Pub/Sub clients are exempt from the idle timeout
    let client = server.client(&[]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    assert_eq!(
        server.cmd(&["CONFIG", "SET", "timeout", "1"]),
        redis::Value::Okay
    );
    server.wait_until("Redis to close the idle connection", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });
    assert_eq!(client.publish(b"c", b"two").unwrap(), 1);
    assert_eq!(sub.recv(2, WAIT), vec![b"one".to_vec(), b"two".to_vec()]);
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{:?}", stats.last_error);
    assert!(stats.reconnects >= 1);
    assert_eq!(stats.connections_created, 2);
}

#[test]
fn stopped_server_is_a_connection_error_within_the_bound() {
    let mut server = RedisServer::start();
    let client = server.client(&[("connect_timeout", "0.5"), ("timeout", "0.5")]);
    let bound = client.config().call_bound() + SLACK;
    server.stop();

    for (what, result) in [
        ("publish", timed(|| client.publish(b"c", b"x").map(|_| ()))),
        ("ping", timed(|| client.ping().map(|_| ()))),
    ] {
        let (result, elapsed) = result;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{what}: {err}");
        assert!(!err.maybe_sent(), "{what}: nothing can have been sent");
        assert!(
            err.message().starts_with(&format!(
                "connecting to Redis at 127.0.0.1:{} failed:",
                server.port()
            )),
            "{what}: {}",
            err.message()
        );
        assert!(
            err.message()
                .ends_with("(is redis-server running and is qrpush.url right?)"),
            "{}",
            err.message()
        );
        assert!(elapsed <= bound, "{what} took {elapsed:?}");
    }
    let stats = client.stats();
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.connections_created, 0);
    assert_eq!(stats.pool_in_use, 0, "a failed connect gives its slot back");
}

#[test]
fn stopped_server_behind_a_pooled_connection_is_a_connection_error() {
    let mut server = RedisServer::start();
    let client = server.client(&[("connect_timeout", "0.5"), ("timeout", "0.5")]);
    assert_eq!(client.publish(b"c", b"x").unwrap(), 0);
    server.stop();
    let (result, elapsed) = timed(|| client.publish(b"c", b"y"));
    let err = result.unwrap_err();
    assert!(elapsed <= client.config().call_bound() + SLACK);
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        !err.maybe_sent(),
        "the dead pooled connection is detected before writing: {err}"
    );
    // And it comes back once the server does.
    server.restart();
    assert_eq!(client.publish(b"c", b"z").unwrap(), 0);
    let stats = client.stats();
    assert_eq!(stats.published, 2);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.pool_in_use, 0);
}

#[test]
fn frozen_server_times_out_on_a_fresh_connection() {
    let mut server = RedisServer::start();
    // No circuit breaker: it would fail the call right after the thaw fast (tests/breaker.rs).
    let client = server.client(&[
        ("connect_timeout", "0.3"),
        ("timeout", "0.3"),
        ("breaker_cooldown", "0"),
    ]);
    let (err, elapsed) = publish_to_frozen_server(&mut server, &client, b"x");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        !err.maybe_sent(),
        "the handshake timed out, PUBLISH was never written"
    );
    assert_within(
        elapsed,
        Duration::from_millis(250),
        client.config().call_bound() + SLACK,
        "publish to a frozen server",
    );
    assert!(err
        .message()
        .contains(&format!("127.0.0.1:{}", server.port())));
    // After SIGCONT everything works again.
    let mut sub = server.subscribe(&["c"]);
    assert_eq!(client.publish(b"c", b"thawed").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"thawed".to_vec()]);
    sub.nothing_more(Duration::from_millis(100));
}

#[test]
fn frozen_server_times_out_on_a_pooled_connection() {
    let mut server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[("connect_timeout", "1"), ("timeout", "0.3")]);
    assert_eq!(client.publish(b"c", b"warm").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"warm".to_vec()]);

    let (err, elapsed) = publish_to_frozen_server(&mut server, &client, b"stalled");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        err.maybe_sent(),
        "PUBLISH was written before the wait: it may still run"
    );
    assert_within(
        elapsed,
        Duration::from_millis(250),
        Duration::from_millis(300) + SLACK,
        "publish on a pooled connection to a frozen server",
    );
    assert_eq!(
        err.message(),
        format!(
            "Redis at 127.0.0.1:{} did not answer in time (qrpush.timeout; is the server overloaded or stopped?)",
            server.port()
        )
    );

    // The stalled PUBLISH was in Redis's socket buffer: it ran on the thaw, exactly once (no
    // re-send).
    assert_eq!(sub.recv(1, WAIT), vec![b"stalled".to_vec()]);
    assert_eq!(client.publish(b"c", b"after").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"after".to_vec()]);
    sub.nothing_more(Duration::from_millis(200));
    let stats = client.stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.published, 2);
    assert_eq!(
        stats.connections_created, 2,
        "the timed-out connection was dropped"
    );
    assert_eq!(server.qrpush_clients().len(), 1);
}

/// A request may use its whole `timeout`, whatever an earlier, shorter deadline (here the
/// handshake's `connect_timeout`) left in the socket's receive timeout.
#[test]
fn a_request_is_not_cut_short_by_the_handshake_deadline() {
    let mut server = RedisServer::start();
    let client = server.client(&[("connect_timeout", "0.4"), ("timeout", "0.7")]);
    assert_eq!(client.publish(b"c", b"warm").unwrap(), 0);
    let (err, elapsed) = publish_to_frozen_server(&mut server, &client, b"x");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_within(
        elapsed,
        Duration::from_millis(650),
        Duration::from_millis(700) + SLACK,
        "a request with timeout=0.7 on a frozen server",
    );
}

/// Same bug without any handshake: a batch whose replies came late leaves a shorter receive
/// timeout behind, and the next request on that connection gives up before its `timeout`.
#[test]
fn a_slow_batch_does_not_shorten_the_next_request() {
    let mut server = RedisServer::start();
    let client = server.client(&[("connect_timeout", "1"), ("timeout", "0.8")]);
    client.ping().unwrap();
    // The batch's replies arrive after ~0.25 s: fine, within its 0.8 s.
    server.freeze();
    let thaw_later = std::thread::scope(|s| {
        let batch = s.spawn(|| client.publish_many(&[("c", "a"), ("c", "b")]));
        std::thread::sleep(Duration::from_millis(250));
        server.thaw();
        batch.join().unwrap()
    });
    assert_eq!(thaw_later.unwrap(), vec![0, 0]);
    // The next request on the same connection gets its full 0.8 s.
    let (err, elapsed) = publish_to_frozen_server(&mut server, &client, b"x");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(client.stats().connections_created, 1);
    assert_within(
        elapsed,
        Duration::from_millis(750),
        Duration::from_millis(800) + SLACK,
        "a request with timeout=0.8 on a frozen server",
    );
}

#[test]
fn a_write_to_a_stalled_server_times_out() {
    let mut server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    // `timeout` also covers packing the command; 1 s leaves room for packing 8 MiB in a debug
    // build on a busy machine, so the deadline is spent waiting on the socket.
    let client = server.client(&[("max_payload", "67108864"), ("timeout", "1")]);
    client.ping().unwrap();
    // About twice what loopback socket buffers absorb (~4 MiB here): the write itself blocks on
    // the frozen server.
    let payload = vec![b'x'; 8 << 20];
    let (err, elapsed) = publish_to_frozen_server(&mut server, &client, &payload);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        err.maybe_sent(),
        "part of the command was written ({err}, after {elapsed:?})"
    );
    assert_eq!(
        err.message(),
        format!("sending to Redis at 127.0.0.1:{} timed out", server.port())
    );
    // One write call may block for a whole SO_SNDTIMEO (= timeout) after the time spent packing
    // the command, which already counts against the deadline: allow for that.
    assert_within(
        elapsed,
        Duration::from_millis(950),
        Duration::from_millis(2000) + SLACK,
        "a blocked write",
    );
    // The half-sent command was dropped with its connection: it never runs.
    sub.nothing_more(Duration::from_millis(300));
    assert_eq!(client.publish(b"c", b"small").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"small".to_vec()]);
}

#[test]
fn unsolicited_bytes_make_a_pooled_connection_unusable() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let proxy = support::Proxy::start(server.port());
    let client = server.client(&[("url", &proxy.url())]);
    assert_eq!(client.publish(b"c", b"one").unwrap(), 1);
    // Something arrives that nobody asked for: taken as the next reply, it would make this
    // publish return 42 and every later reply on the connection answer the previous command.
    proxy.inject_existing(b":42\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(client.publish(b"c", b"two").unwrap(), 1);
    assert_eq!(client.publish(b"c", b"three").unwrap(), 1);
    assert_eq!(
        sub.recv(3, WAIT),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert_eq!(proxy.accepted(), 2, "the tainted connection was replaced");
    let stats = client.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.reconnects, 1);
}

/// When Redis refuses a connection ("max number of clients reached", then it closes), the
/// caller must learn why, instead of a later "Broken pipe" on a connection counted as created.
#[test]
fn max_clients_refusal_is_reported() {
    let server = RedisServer::start_with(&["--maxclients", "2"]);
    let _admin = server.admin();
    let _sub = server.subscribe(&["c"]);
    let client = server.client(&[]);
    let err = client.publish(b"c", b"x").unwrap_err();
    assert!(
        err.message().contains("max number of clients reached"),
        "{:?}: {}",
        err.kind(),
        err.message()
    );
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(!err.maybe_sent());
    assert_eq!(client.stats().connections_created, 0);
}

#[test]
fn wrong_password_is_a_server_error_without_the_password() {
    let server = RedisServer::start_with_password("right-pass");
    let secret = "hunter2-XYZ";
    let client = server.client(&[("url", &server.url_with(None, Some(secret)))]);
    let err = client.publish(b"c", b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(!err.maybe_sent());
    assert!(
        err.message().starts_with("WRONGPASS ")
            && err
                .message()
                .ends_with(&format!("(AUTH to 127.0.0.1:{})", server.port())),
        "{}",
        err.message()
    );
    for shown in [
        err.message().to_string(),
        format!("{err:?}"),
        format!("{err}"),
        format!("{:?}", client.stats()),
        format!("{:?}", client.config()),
    ] {
        assert!(!shown.contains(secret), "the password leaked: {shown}");
    }
    assert_eq!(client.stats().failed, 1);
    assert_eq!(client.stats().connections_created, 0);
    assert_eq!(client.stats().pool_in_use, 0);

    // No password at all: the server refuses the PUBLISH itself.
    let anonymous = server.client(&[]);
    let err = anonymous.publish(b"c", b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(err.message().contains("NOAUTH"), "{}", err.message());
    assert!(
        !err.maybe_sent(),
        "an error reply means the command did not run"
    );

    // The right one works.
    let mut sub = server.subscribe(&["c"]);
    let good = server.client(&[("url", &server.url_with(None, Some("right-pass")))]);
    assert_eq!(good.publish(b"c", b"in").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"in".to_vec()]);
}

#[test]
fn acl_user_with_password_in_the_url() {
    let server = RedisServer::start();
    let password = "p@ss:w/rd %#?";
    add_acl_user(&server, "app", password, &["~*", "&*", "+@all"]);
    let mut sub = server.subscribe(&["orders"]);
    let client = client_as(&server, "app", password);
    assert_eq!(client.publish(b"orders", b"acl").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"acl".to_vec()]);
    let clients = server.qrpush_clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].get("user"), Some("app"));
    assert!(!format!("{:?}", client.config()).contains("p@ss"));
    assert!(!client.stats().endpoint.contains("p@ss"));
}

#[test]
fn acl_user_without_publish_gets_noperm() {
    let server = RedisServer::start();
    let client = client_without_publish_grant(&server);
    let mut sub = server.subscribe(&["c"]);
    for _ in 0..2 {
        let err = client.publish(b"c", b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server, "{err}");
        assert!(!err.maybe_sent());
        assert!(
            err.message().starts_with("NOPERM") && err.message().ends_with("(PUBLISH)"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("pw-reader"));
    }
    let err = client.publish_many(&[("c", "a"), ("c", "b")]).unwrap_err();
    assert!(err.message().starts_with("NOPERM"), "{}", err.message());
    sub.nothing_more(Duration::from_millis(200));
    // An error reply leaves the connection usable: no reconnect for it.
    let stats = client.stats();
    assert_eq!(stats.connections_created, 1);
    assert_eq!(stats.reconnects, 0);
    assert_eq!(server.qrpush_clients().len(), 1);
}

/// A PUBLISH that Redis refused (an error reply) was not published: stats must count it as
/// failed, with its message as `last_error`, exactly as a connection failure is counted.
#[test]
fn refused_publishes_count_as_failed_in_stats() {
    let server = RedisServer::start();
    let client = client_without_publish_grant(&server);
    let err = client.publish(b"c", b"x").unwrap_err();
    let batch_err = client.publish_many(&[("c", "a"), ("c", "b")]).unwrap_err();
    let stats = client.stats();
    assert_eq!(stats.published, 0, "nothing was published");
    assert_eq!(
        stats.failed, 3,
        "one publish and a batch of two were refused"
    );
    assert_eq!(stats.last_error.as_deref(), Some(batch_err.message()));
    assert_ne!(err.message(), "");
}

#[test]
fn least_privilege_user_can_publish_without_client_setname() {
    let server = RedisServer::start();
    add_acl_user(
        &server,
        "minimal",
        "pw-min",
        &["resetchannels", "&*", "-@all", "+publish", "+ping"],
    );
    let mut sub = server.subscribe(&["c"]);
    let client = client_as(&server, "minimal", "pw-min");
    assert_eq!(client.publish(b"c", b"least").unwrap(), 1);
    client.ping().unwrap();
    assert_eq!(sub.recv(1, WAIT), vec![b"least".to_vec()]);
    let list = support::client_list(&server.cmd(&["CLIENT", "LIST"]));
    let mine: Vec<_> = list
        .iter()
        .filter(|c| c.get("user") == Some("minimal"))
        .collect();
    assert_eq!(mine.len(), 1, "{list:?}");
    assert_eq!(mine[0].get("name"), Some(""), "CLIENT SETNAME was refused");
}

#[test]
fn database_out_of_range_is_a_server_error() {
    let server = RedisServer::start();
    let client = server.client(&[("url", &format!("{}/99", server.url()))]);
    let err = client.publish(b"c", b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(
        err.message(),
        format!(
            "ERR DB index is out of range (SELECT to 127.0.0.1:{})",
            server.port()
        )
    );
    assert_eq!(client.stats().pool_in_use, 0);
}
