//! The least-privilege Redis ACL user docs/SECURITY.md recommends, tested as written: with it, publishing
//! on the app's channels and the whole QR login flow work; anything else is refused with NOPERM,
//! which QrPush reports as a server error (`ServerException` in PHP).

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::{Client, ErrorKind, Login};
use redis::Value;
use support::{Admin, RedisServer};

const WAIT: Duration = Duration::from_secs(5);

/// The line of docs/SECURITY.md (its one source), verbatim: `&app:*` stands for the app's own
/// channels; the password is replaced.
fn documented_acl() -> &'static str {
    include_str!("../../../docs/SECURITY.md")
        .lines()
        .find(|line| line.starts_with("ACL SETUSER qrpush-app "))
        .expect("docs/SECURITY.md has the ACL SETUSER qrpush-app line")
}
const PASSWORD: &str = "app-pw-7f3c9e";

/// Creates the documented user on `server` with `PASSWORD`, optionally without some rules.
fn create_app_user(server: &RedisServer, without: &[&str]) {
    let line = documented_acl().replace(">CHANGE-ME", &format!(">{PASSWORD}"));
    let args: Vec<&str> = line
        .split(' ')
        .filter(|rule| !without.contains(rule))
        .collect();
    assert_eq!(server.cmd(&args), Value::Okay, "{line}");
}

fn app_url(server: &RedisServer) -> String {
    server.url_with(Some("qrpush-app"), Some(PASSWORD))
}

/// A raw connection logged in as the app user, for commands QrPush never sends.
fn app_admin(server: &RedisServer) -> Admin {
    Admin::connect(
        server.port(),
        &support::Login {
            user: Some("qrpush-app".into()),
            password: Some(PASSWORD.into()),
        },
    )
    .unwrap()
}

fn is_noperm(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "NOPERM")
}

fn full_login_flow(client: &Client) {
    let login = Login::new(client);
    // start → scan → approve → status (ticket) → redeem
    let s = login.start("203.0.113.7", "Firefox").unwrap();
    let id = s.status.id.clone();
    login.scan(s.qr.expose(), "alice", "phone").unwrap();
    let code = login
        .approve(&id, "alice", "Alice")
        .unwrap()
        .confirmation_code;
    let ticket = login
        .status(&id, Some(s.browser_secret.expose()))
        .unwrap()
        .ticket
        .expect("an approved login has a ticket");
    let redeemed = login
        .redeem(
            &id,
            ticket.value.expose(),
            s.browser_secret.expose(),
            code.expose(),
        )
        .unwrap();
    assert_eq!(redeemed.user_id, "alice");
    // start → scan → reject, start → cancel
    let s = login.start("", "").unwrap();
    login.scan(s.qr.expose(), "bob", "").unwrap();
    login.reject(&s.status.id, "bob").unwrap();
    let s = login.start("", "").unwrap();
    login
        .cancel(&s.status.id, s.browser_secret.expose())
        .unwrap();
    // A refused transition is a login error, not an ACL one.
    let e = login.approve(&s.status.id, "alice", "Alice").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Login(_)), "{e}");
}

#[test]
fn the_documented_user_publishes_and_runs_the_whole_login_flow() {
    let server = RedisServer::start();
    create_app_user(&server, &[]);
    // The scripts are not cached yet: the first call goes EVALSHA → NOSCRIPT → EVAL.
    server.admin().ok(&["SCRIPT", "FLUSH"]);
    let mut sub = server.subscribe(&["app:orders", "qr-login-events"]);
    for mode in ["single", "per_login"] {
        let mut config = server.config(&[("login_channel_mode", mode)]);
        config.set("url", &app_url(&server)).unwrap();
        let client = Client::new(config);
        assert_eq!(client.publish(b"app:orders", b"one").unwrap(), 1);
        assert_eq!(
            client
                .publish_many(&[(&b"app:orders"[..], &b"two"[..]), (b"app:orders", b"three"),])
                .unwrap(),
            vec![1, 1]
        );
        client.ping().unwrap();
        full_login_flow(&client);
        let stats = client.stats();
        assert_eq!(stats.failed, 0, "{stats:?}");
    }
    let got = sub.recv_messages(6 + 6, WAIT);
    let on = |channel: &str| got.iter().filter(|(c, _)| c == channel.as_bytes()).count();
    assert_eq!(on("app:orders"), 6);
    // single mode: scanned, approved, redeemed, scanned, rejected, cancelled on one channel
    // (per_login mode publishes on qr-login-events:<id>, also granted).
    assert_eq!(on("qr-login-events"), 6);
    sub.nothing_more(Duration::from_millis(100));
    // The connection is named (CLIENT SETNAME is granted) and logged in as the app user.
    let mine = server.qrpush_clients();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|c| c.get("user") == Some("qrpush-app")));
}

#[test]
fn anything_else_is_refused_with_noperm() {
    let server = RedisServer::start();
    create_app_user(&server, &[]);
    server.admin().ok(&["SET", "other:key", "kept"]);
    let client = Client::new({
        let mut c = server.config(&[]);
        c.set("url", &app_url(&server)).unwrap();
        c
    });
    let mut sub = server.subscribe(&["other", "app-orders"]);

    // Through QrPush: a channel outside the patterns is a server error that starts with NOPERM,
    // and the connection stays usable.
    for channel in [&b"other"[..], b"app-orders"] {
        let e = client.publish(channel, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        assert!(!e.maybe_sent(), "an error reply: the command did not run");
        assert!(
            e.message().starts_with("NOPERM ") && e.message().ends_with("(PUBLISH)"),
            "{}",
            e.message()
        );
    }
    assert_eq!(client.publish(b"app:ok", b"y").unwrap(), 0);
    assert_eq!(client.stats().connections_created, 1);
    sub.nothing_more(Duration::from_millis(200));

    // Raw commands as the same user: nothing beyond the list.
    let mut app = app_admin(&server);
    for args in [
        &["SET", "other:key", "x"][..],
        &["SET", "qrpush:login:x", "x"],
        &["GET", "other:key"],
        &["GET", "qrpush:login:x"],
        &["DEL", "qrpush:login:x"],
        &["HSET", "other:key", "f", "v"],
        &["HGETALL", "other:key"],
        &["KEYS", "*"],
        &["SCAN", "0"],
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["CONFIG", "GET", "*"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["ACL", "LIST"],
        &["CLIENT", "LIST"],
        &["CLIENT", "KILL", "ID", "1"],
        &["SUBSCRIBE", "app:orders"],
        &["SCRIPT", "FLUSH"],
        &["FUNCTION", "FLUSH"],
        &["SHUTDOWN", "NOSAVE"],
        &["MONITOR"],
        &["SELECT", "1"],
        &["PUBLISH", "other", "x"],
    ] {
        let reply = app.cmd(args);
        assert!(is_noperm(&reply), "{args:?} answered {reply:?}");
    }
    // EVAL runs any script, but the script's commands are checked against the same ACL: it
    // reaches neither other keys nor other commands nor other channels.
    for (script, key) in [
        ("return redis.call('SET', KEYS[1], 'x')", "qrpush:login:x"),
        ("return redis.call('HSET', KEYS[1], 'f', 'v')", "other:key"),
        ("return redis.call('HGETALL', KEYS[1])", "other:key"),
        ("return redis.call('FLUSHALL')", "qrpush:login:x"),
        (
            "return redis.call('PUBLISH', 'other', 'x')",
            "qrpush:login:x",
        ),
    ] {
        let reply = app.cmd(&["EVAL", script, "1", key]);
        match &reply {
            Value::ServerError(e) => assert!(
                e.code() == "NOPERM" || e.details().unwrap_or("").contains("ACL failure in script"),
                "{script}: {reply:?}"
            ),
            other => panic!("{script} on {key} was allowed: {other:?}"),
        }
    }
    sub.nothing_more(Duration::from_millis(100));
    assert_eq!(
        server.cmd(&["GET", "other:key"]),
        Value::BulkString(b"kept".to_vec())
    );
    assert_eq!(server.cmd(&["EXISTS", "qrpush:login:x"]), Value::Int(0));
}

/// A client whose login events' channel is not in the user's patterns (`qrpush.channel_prefix` or
/// `qrpush.login_channel` changed without updating the ACL).
fn misconfigured_login_client(server: &RedisServer) -> Client {
    let mut config = server.config(&[("channel_prefix", "tenant1:")]);
    config.set("url", &app_url(server)).unwrap();
    Client::new(config)
}

/// Starts a login on `client` and scans it as "alice", which must fail (the scan is the first
/// call that publishes: start publishes nothing). Returns the login's id and the scan's error.
fn refused_scan(client: &Client) -> (String, qrpush_core::Error) {
    let login = Login::new(client);
    let s = login.start("", "").unwrap();
    let e = login.scan(s.qr.expose(), "alice", "").unwrap_err();
    (s.status.id, e)
}

/// The script's PUBLISH is refused, and the login call reports it as a server error (Redis words
/// an ACL refusal inside a script "ERR ACL failure in script: No permissions to access a channel"),
/// not as a login refusal.
#[test]
fn a_login_channel_outside_the_acl_is_a_server_error() {
    let server = RedisServer::start();
    create_app_user(&server, &[]);
    let client = misconfigured_login_client(&server);
    let (_, e) = refused_scan(&client);
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert!(
        e.message().contains("NOPERM")
            || e.message()
                .contains("ACL failure in script: No permissions to access a channel"),
        "{}",
        e.message()
    );
    assert!(
        e.message().ends_with("(the QrPush login script failed)"),
        "{}",
        e.message()
    );
}

/// What the login promises for every refusal: nothing changed. A Lua script is not rolled back,
/// so the script must check the PUBLISH grant before its first write (`redis.acl_check_cmd`, Redis
/// >= 7.0); without that check the refused scan above leaves the login "scanned" with no event.
#[test]
fn a_login_refused_by_the_acl_changes_nothing() {
    let server = RedisServer::start();
    create_app_user(&server, &[]);
    let client = misconfigured_login_client(&server);
    let (id, e) = refused_scan(&client);
    assert!(e.message().starts_with("NOPERM "), "{}", e.message());
    let status = Login::new(&client).status(&id, None).unwrap();
    assert_eq!(
        (status.state.as_str(), status.version),
        ("pending", 1),
        "{status:?}"
    );
}

#[test]
fn client_setname_is_optional_and_select_needs_its_own_grant() {
    let server = RedisServer::start();
    create_app_user(&server, &["+client|setname"]);
    let mut sub = server.subscribe(&["app:x"]);
    let mut config = server.config(&[]);
    config.set("url", &app_url(&server)).unwrap();
    let client = Client::new(config);
    assert_eq!(client.publish(b"app:x", b"unnamed").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"unnamed".to_vec()]);
    full_login_flow(&client);
    assert!(
        server.qrpush_clients().is_empty(),
        "no name without the grant"
    );

    // A database other than 0 needs +select: without it the login (AUTH + SELECT) is refused.
    let mut config = server.config(&[]);
    config
        .set("url", &format!("{}/2", app_url(&server)))
        .unwrap();
    let e = Client::new(config.clone())
        .publish(b"app:x", b"x")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert!(
        e.message().starts_with("NOPERM ") && e.message().contains("(SELECT to 127.0.0.1:"),
        "{}",
        e.message()
    );
    server
        .admin()
        .ok(&["ACL", "SETUSER", "qrpush-app", "+select"]);
    // A new client of the same endpoint opens a new connection (the refused one was never pooled).
    assert_eq!(Client::new(config).publish(b"app:x", b"db2").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"db2".to_vec()]);
}

#[test]
fn a_wrong_password_for_the_acl_user_is_a_server_error() {
    let server = RedisServer::start();
    create_app_user(&server, &[]);
    let mut config = server.config(&[]);
    config
        .set(
            "url",
            &server.url_with(Some("qrpush-app"), Some("not-the-password")),
        )
        .unwrap();
    let e = Client::new(config).publish(b"app:x", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.message().starts_with("WRONGPASS "), "{}", e.message());
    assert!(!e.message().contains("not-the-password"));
}
