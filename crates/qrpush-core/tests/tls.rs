//! `rediss://` against a real TLS redis-server: a CA and a server certificate generated per test
//! (qrpush-test-support's `TlsServer`, rcgen), redis-server started with `--tls-port`. With the right CA it publishes and reuses its
//! connection; with a wrong CA or a wrong name it fails closed, before any command is sent.
//!
//! The server also listens on a plain port, used only by the test's own admin connection and
//! subscriber (independent of the code under test).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use qrpush_core::{Client, Config, ErrorKind};
use qrpush_test_support::{Pki, TlsServer};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn publishes_over_tls_with_the_right_ca_and_reuses_the_connection() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    let client = tls.client(&[]);
    for i in 0..50 {
        assert_eq!(client.publish(b"t", format!("m{i}").as_bytes()).unwrap(), 1);
    }
    let got = sub.recv(50, WAIT);
    assert_eq!(got[0], b"m0");
    assert_eq!(got[49], b"m49");
    assert_eq!(
        client.publish_many(&[(b"t", b"a"), (b"t", b"b")]).unwrap(),
        vec![1, 1]
    );
    assert_eq!(sub.recv(2, WAIT), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(client.ping().is_ok());

    // One connection for all of it: the liveness check before each reuse saw nothing to read
    // (the session tickets were consumed with the handshake's replies).
    let stats = client.stats();
    assert_eq!(stats.connections_created, 1, "{stats:?}");
    assert_eq!(stats.reconnects, 0, "{stats:?}");
    assert_eq!(stats.published, 52);
    assert_eq!(
        stats.endpoint,
        format!("rediss://127.0.0.1:{}/0", tls.tls_port)
    );
    // ... and it is the TLS port's.
    let clients = tls.server.qrpush_clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        clients[0].get("laddr"),
        Some(format!("127.0.0.1:{}", tls.tls_port).as_str())
    );
}

#[test]
fn the_host_name_in_the_url_is_verified_too() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    let client = tls.client(&[("url", &format!("rediss://localhost:{}/0", tls.tls_port))]);
    assert_eq!(client.publish(b"t", b"by name").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"by name".to_vec()]);
    // tls_server_name names the certificate's name when connecting by address.
    let client = tls.client(&[("tls_server_name", "localhost")]);
    assert_eq!(client.publish(b"t", b"by address").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"by address".to_vec()]);
}

#[test]
fn a_wrong_ca_fails_closed() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    let other_ca = tls.pki.path("other-ca.pem");
    // Another CA's file, and the built-in Mozilla roots (no CA file): both refuse the test CA.
    for client in [
        tls.client(&[("tls_ca_file", &other_ca)]),
        tls.client(&[("tls_ca_file", "")]),
    ] {
        for _ in 0..2 {
            let err = client.publish(b"t", b"must not arrive").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
            assert!(!err.maybe_sent(), "nothing was sent: {err}");
            assert!(
                err.message().starts_with(&format!(
                    "connecting to Redis at 127.0.0.1:{} failed: TLS certificate verification failed: the server's certificate is not signed by a trusted CA",
                    tls.tls_port
                )),
                "{}",
                err.message()
            );
        }
        let stats = client.stats();
        assert_eq!(stats.connections_created, 0);
        assert_eq!(stats.failed, 2);
        assert!(stats
            .last_error
            .unwrap()
            .contains("certificate verification failed"));
    }
    sub.nothing_more(Duration::from_millis(200));
    assert!(tls.server.qrpush_clients().is_empty());
}

#[test]
fn a_wrong_host_name_fails_closed() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    let client = tls.client(&[("tls_server_name", "redis.example.com")]);
    let err = client.publish(b"t", b"must not arrive").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(!err.maybe_sent());
    assert!(
        err.message().contains(
            "TLS certificate verification failed: certificate not valid for name \"redis.example.com\"; certificate is only valid for "
        ),
        "{}",
        err.message()
    );
    sub.nothing_more(Duration::from_millis(200));
    assert!(tls.server.qrpush_clients().is_empty());
    assert_eq!(client.stats().connections_created, 0);
}

#[test]
fn verify_none_accepts_any_certificate() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    // No CA file and a name the certificate does not have: only `none` gets through.
    let client = tls.client(&[
        ("tls_ca_file", ""),
        ("tls_server_name", "redis.example.com"),
        ("tls_verify", "none"),
    ]);
    assert_eq!(client.publish(b"t", b"insecure").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"insecure".to_vec()]);
    assert_eq!(client.config().display_value("tls_verify"), "none");
}

#[test]
fn tls_options_are_part_of_the_pool_key() {
    let tls = TlsServer::start();
    let a = tls.client(&[]);
    let b = tls.client(&[("tls_server_name", "localhost")]);
    let a2 = tls.client(&[]);
    a.publish(b"t", b"x").unwrap();
    b.publish(b"t", b"x").unwrap();
    a2.publish(b"t", b"x").unwrap();
    assert_eq!(a.stats().connections_created, 1);
    assert_eq!(b.stats().connections_created, 1);
    assert_eq!(a.stats().published, 2, "a and a2 share one pool");
    assert_eq!(
        b.stats().published,
        1,
        "b trusts by another name: its own pool"
    );
    // A failing client (another CA) never borrows the good pool's verified connection.
    let bad = tls.client(&[("tls_ca_file", &tls.pki.path("other-ca.pem"))]);
    assert_eq!(
        bad.publish(b"t", b"x").unwrap_err().kind(),
        ErrorKind::Connection
    );
    // Settings order does not matter: TLS settings before the URL apply as well.
    let mut config = Config::default();
    config
        .set("tls_ca_file", &tls.pki.path("other-ca.pem"))
        .unwrap();
    config.set("url", &tls.url()).unwrap();
    assert_eq!(
        Client::new(config).publish(b"t", b"x").unwrap_err().kind(),
        ErrorKind::Connection
    );
}

#[test]
fn a_server_closed_tls_connection_is_replaced_silently() {
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["t"]);
    let client = tls.client(&[]);
    assert_eq!(client.publish(b"t", b"before").unwrap(), 1);
    let id = tls.server.qrpush_clients()[0].id().to_string();
    tls.server.admin().cmd(&["CLIENT", "KILL", "ID", &id]);
    tls.server
        .wait_until("the kill", WAIT, |s| s.qrpush_clients().is_empty());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(client.publish(b"t", b"after").unwrap(), 1);
    assert_eq!(
        sub.recv(2, WAIT),
        vec![b"before".to_vec(), b"after".to_vec()]
    );
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.reconnects, 1, "{stats:?}");
    assert_eq!(stats.connections_created, 2, "{stats:?}");
}

#[test]
fn the_server_idle_timeout_is_survived() {
    let tls = TlsServer::start_with(&["--timeout", "1"]);
    let mut sub = tls.server.subscribe(&["t"]);
    let client = tls.client(&[]);
    assert_eq!(client.publish(b"t", b"1").unwrap(), 1);
    // Redis closes idle clients (>1 s idle) in its cron.
    tls.server
        .wait_until("the idle close", Duration::from_secs(5), |s| {
            s.qrpush_clients().is_empty()
        });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(client.publish(b"t", b"2").unwrap(), 1);
    sub.recv(1, WAIT);
    let got = sub.recv(1, WAIT);
    assert_eq!(got, vec![b"2".to_vec()]);
    assert_eq!(client.stats().failed, 0);
    assert_eq!(client.stats().reconnects, 1);
}

#[test]
fn the_handshake_counts_against_connect_timeout() {
    // Accepts TCP connections and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pki = Pki::new();
    let mut config = Config::default();
    config
        .set("url", &format!("rediss://127.0.0.1:{port}"))
        .unwrap();
    config.set("tls_ca_file", &pki.path("ca.pem")).unwrap();
    config.set("connect_timeout", "0.3").unwrap();
    config.set("timeout", "5").unwrap();
    let client = Client::new(config);
    let start = Instant::now();
    let err = client.publish(b"t", b"x").unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        elapsed >= Duration::from_millis(280) && elapsed < Duration::from_millis(1000),
        "{elapsed:?}"
    );
    assert!(
        err.message().starts_with(&format!(
            "connecting to Redis at 127.0.0.1:{port} timed out"
        )),
        "{}",
        err.message()
    );
    drop(listener);
}

#[test]
fn timeouts_apply_to_a_tls_connection() {
    let tls = TlsServer::start();
    let client = tls.client(&[("timeout", "0.3")]);
    assert_eq!(client.publish(b"t", b"warm").unwrap(), 0);
    let mut server = tls.server;
    server.freeze();
    let start = Instant::now();
    let err = client.publish(b"t", b"frozen").unwrap_err();
    let elapsed = start.elapsed();
    server.thaw();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.maybe_sent());
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    assert_eq!(client.publish(b"t", b"thawed").unwrap(), 0);
}

#[test]
fn plain_and_tls_ports_mixed_up_fail_clearly_within_the_bound() {
    let tls = TlsServer::start();
    // rediss:// to the plain port: Redis takes the ClientHello for a command.
    let mut config = tls.config(&[("connect_timeout", "0.5")]);
    config
        .set("url", &format!("rediss://127.0.0.1:{}", tls.server.port()))
        .unwrap();
    let start = Instant::now();
    let err = Client::new(config).publish(b"t", b"x").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_millis(1500));
    // redis:// to the TLS port: the server drops the connection.
    let client = Client::new(tls.config(&[
        ("url", &format!("redis://127.0.0.1:{}", tls.tls_port)),
        ("connect_timeout", "0.5"),
    ]));
    let start = Instant::now();
    let err = client.publish(b"t", b"x").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[test]
fn a_bad_ca_file_is_a_connection_error_that_names_it() {
    let tls = TlsServer::start();
    let missing = tls.pki.path("missing.pem");
    let err = tls
        .client(&[("tls_ca_file", &missing)])
        .publish(b"t", b"x")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(
        err.message()
            .contains(&format!("cannot read tls_ca_file {missing}: ")),
        "{}",
        err.message()
    );
    // A key instead of a certificate: its content is never echoed.
    let key = tls.pki.path("server.key");
    let err = tls
        .client(&[("tls_ca_file", &key)])
        .publish(b"t", b"x")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(
        err.message().contains(&format!(
            "tls_ca_file {key} holds no certificate (-----BEGIN CERTIFICATE-----)"
        )),
        "{}",
        err.message()
    );
    let key_text = std::fs::read_to_string(&key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!err.message().contains(body));
}

#[test]
fn tls_settings_are_validated() {
    let mut config = Config::default();
    for (name, value, message) in [
        (
            "tls_verify",
            "off",
            "tls_verify: expected full or none (insecure, for testing only), got 'off'",
        ),
        (
            "tls_ca_file",
            "certs/ca.pem",
            "tls_ca_file: must be an absolute path to a PEM file, got 'certs/ca.pem'",
        ),
        (
            "tls_server_name",
            "not a name",
            "tls_server_name: expected a DNS name or an IP address, got 'not a name'",
        ),
    ] {
        let err = config.set(name, value).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.message(), message);
    }
    assert_eq!(config, Config::default());
    assert_eq!(config.display_value("tls_verify"), "full");
    assert_eq!(config.display_value("tls_ca_file"), "");
}

/// A child forked with a pooled TLS connection drops it (closing its descriptor only, sending
/// no close_notify): the parent's session must go on as if nothing happened. Runs in a child test
/// process of its own, because fork() must not happen while other tests' threads hold locks.
#[test]
fn a_forked_child_leaves_the_parents_tls_session_alone() {
    const NAME: &str = "a_forked_child_leaves_the_parents_tls_session_alone";
    if std::env::var_os("QRPUSH_TLS_FORK_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env("QRPUSH_TLS_FORK_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let tls = TlsServer::start();
    let mut sub = tls.server.subscribe(&["f"]);
    let client = tls.client(&[]);
    assert_eq!(client.publish(b"f", b"parent 1").unwrap(), 1);
    // SAFETY: this process runs this one test on one thread; the child publishes through the core
    // (which must be fork-safe) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match client.publish(b"f", b"child") {
                Ok(1) if client.stats().connections_created == 1 => 0,
                Ok(_) => 11,
                Err(_) => 12,
            }
        }))
        .unwrap_or(10);
        // The child's first lease dropped the inherited connection (its Stream's destructor ran
        // in this process) before opening its own.
        // SAFETY: leave without the parent's atexit handlers or the test harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status}"
    );
    assert_eq!(client.publish(b"f", b"parent 2").unwrap(), 1);
    assert_eq!(
        sub.recv(3, WAIT),
        vec![
            b"parent 1".to_vec(),
            b"child".to_vec(),
            b"parent 2".to_vec()
        ]
    );
    let stats = client.stats();
    assert_eq!(
        (stats.connections_created, stats.reconnects, stats.failed),
        (1, 0, 0),
        "the parent kept its one TLS connection: {stats:?}"
    );
}
