//! A password never shows: with it in the URL (plain and `rediss://` with a TLS configuration),
//! every kind of failure — wrong password, refused connection, timeouts (TCP connect, TLS
//! handshake, reply), NOPERM, a failed certificate check, an invalid URL — is checked in everything
//! QrPush can print: the error's message, `Display` and `Debug`, the stats (and their last error),
//! the config's `Debug` and every setting's displayed value.

use qrpush_test_support as support;

use qrpush_core::{Client, Config, ErrorKind, SETTINGS};
use std::net::TcpListener;
use support::{free_port, RedisServer};

/// Distinctive, with characters a URL must percent-encode.
const PASSWORD: &str = "Pw-9f2b@c/7:Kq%Zx";
/// Parts of it that must not show either (a truncated or partly encoded leak).
const FRAGMENTS: &[&str] = &["Pw-9f2b", "7:Kq", "Kq%Zx", "Pw-9f2b%40c%2F7%3AKq%25Zx"];

fn encoded() -> String {
    PASSWORD
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url(scheme: &str, user: Option<&str>, port: u16) -> String {
    let user = user.unwrap_or("");
    format!("{scheme}://{user}:{}@127.0.0.1:{port}/0", encoded())
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password: {text}"
    );
    for fragment in FRAGMENTS {
        assert!(
            !text.contains(fragment),
            "{what} shows a piece of the password ({fragment}): {text}"
        );
    }
}

/// Everything printable about a client after a failure.
fn assert_client_clean(case: &str, client: &Client, err: &qrpush_core::Error) {
    assert_clean(&format!("{case}: message"), err.message());
    assert_clean(&format!("{case}: Display"), &format!("{err}"));
    assert_clean(&format!("{case}: Debug"), &format!("{err:?}"));
    let stats = client.stats();
    assert!(
        stats.last_error.is_some(),
        "{case}: the failure is in the stats"
    );
    assert_clean(&format!("{case}: stats"), &format!("{stats:?} {stats:#?}"));
    assert_clean(
        &format!("{case}: config"),
        &format!("{:?}", client.config()),
    );
    for s in SETTINGS {
        assert_clean(
            &format!("{case}: setting {}", s.name),
            &client.config().display_value(s.name),
        );
    }
}

fn client(url: &str, settings: &[(&str, &str)]) -> Client {
    let mut config = Config::default();
    config.set("url", url).unwrap();
    config.set("connect_timeout", "0.3").unwrap();
    config.set("timeout", "0.3").unwrap();
    for (name, value) in settings {
        config.set(name, value).unwrap();
    }
    Client::new(config)
}

#[test]
fn the_password_never_shows_in_errors_stats_or_settings() {
    let mut checked = Vec::new();

    // Wrong password (the server wants another one).
    let server = RedisServer::start_with_password("the-right-one");
    let c = client(&url("redis", None, server.port()), &[]);
    let e = c.publish(b"c", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.message().starts_with("WRONGPASS"), "{e}");
    assert_client_clean("wrong password", &c, &e);
    checked.push("wrong password");

    // Wrong password for an ACL user, and NOPERM for a user with the right one.
    let server = RedisServer::start();
    server.admin().ok(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "&allowed",
        "+@all",
    ]);
    let c = client(&url("redis", Some("app"), server.port()), &[]);
    let e = c.publish(b"forbidden", b"x").unwrap_err();
    assert!(e.message().starts_with("NOPERM"), "{e}");
    assert_client_clean("NOPERM", &c, &e);
    checked.push("NOPERM");
    let c = client(&url("redis", Some("nobody"), server.port()), &[]);
    let e = c.ping().unwrap_err();
    assert!(e.message().starts_with("WRONGPASS"), "{e}");
    assert_client_clean("unknown user", &c, &e);

    // Refused connection (nothing listens).
    let closed = free_port();
    let c = client(&url("redis", Some("app"), closed), &[]);
    let e = c.publish(b"c", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_client_clean("refused", &c, &e);
    checked.push("refused");

    // A reply that never comes (frozen server: connect succeeds, AUTH is never answered).
    let mut frozen = RedisServer::start_with_password(PASSWORD);
    frozen.freeze();
    let c = client(&url("redis", None, frozen.port()), &[]);
    let e = c.publish(b"c", b"x").unwrap_err();
    frozen.thaw();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_client_clean("timeout", &c, &e);
    checked.push("timeout");

    // rediss:// with a TLS configuration: a TLS handshake that never completes, and a
    // certificate that does not verify (a plain TCP port answering garbage to the ClientHello).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_settings = [
        ("tls_ca_file", "/nonexistent/qrpush-test-ca.pem"),
        ("tls_server_name", "redis.internal"),
    ];
    let c = client(
        &url("rediss", Some("app"), silent.local_addr().unwrap().port()),
        &tls_settings,
    );
    let e = c.publish(b"c", b"x").unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Connection,
        "the CA file is missing: {e}"
    );
    assert_client_clean("tls: missing CA file", &c, &e);
    let c = client(
        &url("rediss", Some("app"), silent.local_addr().unwrap().port()),
        &[("tls_verify", "none")],
    );
    let e = c.publish(b"c", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_client_clean("tls: handshake timeout", &c, &e);
    let c = client(
        &url("rediss", Some("app"), server.port()),
        &[("tls_verify", "none")],
    );
    let e = c.publish(b"c", b"x").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{e}"
    );
    assert_client_clean("tls: not a TLS port", &c, &e);
    assert_clean(
        "rediss endpoint",
        &format!("{:?} {}", c.config().endpoint, c.stats().endpoint),
    );
    checked.push("tls");

    // Invalid URLs and settings: the message names the problem, never the password.
    let mut config = Config::default();
    for bad in [
        format!("rediss://app:{}@127.0.0.1:99999", encoded()),
        format!("rediss://app:{}@127.0.0.1/x", encoded()),
        format!("rediss://app:{}@127.0.0.1?ca_file=/x", encoded()),
        // Unencoded: the '/' moves the rest of the password into the database path.
        format!("redis://app:{PASSWORD}@127.0.0.1"),
        format!("unix:///run/redis.sock?password={PASSWORD}&db=x&cd"),
    ] {
        let e = config.set("url", &bad).unwrap_err();
        assert_clean("invalid URL", &format!("{e} {e:?}"));
    }
    assert_eq!(checked.len(), 5);
    drop(silent);
}
