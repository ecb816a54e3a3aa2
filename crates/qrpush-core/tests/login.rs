// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! The QR-login state machine against a real redis-server: every transition and its event,
//! refused calls (no state change, no event), expiry, the race for one transition, and what
//! Redis stores (hashes, never a secret).

use qrpush_test_support as support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use qrpush_core::login::{random, Login, LoginError, State, MAX_CODE_TRIES};
use qrpush_core::{Client, ErrorKind};
use redis::Value;
use serde_json::Value as Json;
use support::{RedisServer, Subscriber};

#[path = "common/login_race.rs"]
mod login_race;
use login_race::{login_err, racing_scans_pass_exactly};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(150);
const CHANNEL: &str = "qr-login-events";

fn kind(e: qrpush_core::Error) -> ErrorKind {
    e.kind()
}

/// The next event as JSON, checking the channel.
fn event(sub: &mut Subscriber, channel: &str) -> Json {
    let (c, payload) = sub.recv_messages(1, WAIT).pop().unwrap();
    assert_eq!(String::from_utf8_lossy(&c), channel);
    serde_json::from_slice(&payload).expect("events are JSON")
}

/// Checks the common envelope of an event, returns its `data`.
fn envelope(e: &Json, ty: &str, id: &str, seq: i64, with_session: bool) -> Json {
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let expected: Vec<&str> = if with_session {
        vec!["v", "type", "loginId", "sessionId", "seq", "ts", "data"]
    } else {
        vec!["v", "type", "loginId", "seq", "ts", "data"]
    };
    assert_eq!(keys, expected, "{e}");
    assert_eq!(e["v"], 1);
    assert_eq!(e["type"], ty, "{e}");
    assert_eq!(e["loginId"], id);
    if with_session {
        assert_eq!(e["sessionId"], id);
    }
    assert_eq!(e["seq"], seq, "{e}");
    assert!(e["ts"].as_i64().unwrap() > 1_600_000_000_000, "{e}");
    e["data"].clone()
}

fn setup(settings: &[(&str, &str)]) -> (RedisServer, Client) {
    let server = RedisServer::start();
    let client = server.client(settings);
    (server, client)
}

#[test]
fn login_happy_path_single_channel_with_session_id() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);

    let started = login.start("203.0.113.7", "Firefox/128").unwrap();
    let id = started.status.id.clone();
    assert_eq!(started.status.state, State::Pending);
    assert_eq!(started.status.version, 1);
    assert_eq!(started.status.channel, CHANNEL);
    let pending_left = started.status.expires_at_ms.unwrap() - started.status.created_at_ms;
    assert_eq!(pending_left, 120_000);
    assert!(started.qr.expose().starts_with(&format!("{id}.")));
    assert_eq!(started.browser_secret.expose().len(), 43);
    assert_eq!(format!("{started:?}").matches("<redacted>").count(), 2);

    let scanned = login
        .scan(started.qr.expose(), "user-42", "Pixel 8")
        .unwrap();
    assert_eq!(scanned.status.id, id);
    assert_eq!(scanned.status.state, State::Scanned);
    assert_eq!(scanned.status.version, 2);
    assert_eq!(scanned.browser_ip, "203.0.113.7");
    assert_eq!(scanned.browser_user_agent, "Firefox/128");
    assert_eq!(scanned.status.created_at_ms, started.status.created_at_ms);
    let e = event(&mut sub, CHANNEL);
    let data = envelope(&e, "scanned", &id, 2, true);
    assert_eq!(
        data,
        serde_json::json!({"expiresAt": started.status.expires_at_ms})
    );

    let approved = login.approve(&id, "user-42", "Ada L.").unwrap();
    let code = approved.confirmation_code.expose().to_string();
    assert!(
        code.len() == 2 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    assert_eq!(format!("{approved:?}").matches("<redacted>").count(), 1);
    let approved = approved.status;
    assert_eq!((approved.state, approved.version), (State::Approved, 3));
    assert!(approved.ticket.is_none());
    let e = event(&mut sub, CHANNEL);
    let data = envelope(&e, "approved", &id, 3, true);
    let ticket = data["ticket"].as_str().unwrap().to_string();
    assert_eq!(ticket.len(), 43);
    assert_eq!(
        data["expiresAt"].as_i64().unwrap(),
        approved.expires_at_ms.unwrap()
    );
    assert_eq!(
        approved.expires_at_ms.unwrap() - e["ts"].as_i64().unwrap(),
        30_000
    );

    let redeemed = login
        .redeem(&id, &ticket, started.browser_secret.expose(), &code)
        .unwrap();
    assert_eq!(redeemed.user_id, "user-42");
    assert_eq!(redeemed.device_info, "Pixel 8");
    assert_eq!(
        (redeemed.status.state, redeemed.status.version),
        (State::Redeemed, 4)
    );
    assert_eq!(redeemed.status.expires_at_ms, None);
    let e = event(&mut sub, CHANNEL);
    assert_eq!(
        envelope(&e, "redeemed", &id, 4, true),
        serde_json::json!({})
    );
    sub.nothing_more(QUIET);

    let status = login.status(&id, None).unwrap();
    assert_eq!((status.state, status.version), (State::Redeemed, 4));
    // Terminal: kept for login_terminal_ttl (60 s), then gone.
    let pttl = int(&server.cmd(&["PTTL", &Login::key(&id)]));
    assert!((55_000..=60_000).contains(&pttl), "{pttl}");
}

#[test]
fn login_per_login_channels_without_session_id_and_with_prefix() {
    let (server, client) = setup(&[
        ("login_channel_mode", "per_login"),
        ("login_channel", "logins"),
        ("channel_prefix", "app1:"),
    ]);
    let login = Login::new(&client);
    let started = login.start("::1", "ua").unwrap();
    let id = started.status.id.clone();
    let channel = format!("app1:logins:{id}");
    assert_eq!(started.status.channel, channel);
    let mut sub = server.subscribe(&[&channel]);
    let mut all = server.subscribe(&["app1:logins", CHANNEL]);

    login.scan(started.qr.expose(), "u", "").unwrap();
    login.reject(&id, "u").unwrap();
    envelope(&event(&mut sub, &channel), "scanned", &id, 2, false);
    let data = envelope(&event(&mut sub, &channel), "rejected", &id, 3, false);
    assert_eq!(data, serde_json::json!({}));
    sub.nothing_more(QUIET);
    all.nothing_more(Duration::from_millis(10));
    assert_eq!(login.status(&id, None).unwrap().state, State::Rejected);
}

#[test]
fn login_cancel_from_every_live_state_and_not_after() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);
    for steps in 0..3 {
        let s = login.start("", "").unwrap();
        let id = &s.status.id;
        let secret = s.browser_secret.expose();
        if steps >= 1 {
            login.scan(s.qr.expose(), "u", "").unwrap();
            event(&mut sub, CHANNEL);
        }
        if steps >= 2 {
            login.approve(id, "u", "U").unwrap();
            event(&mut sub, CHANNEL);
        }
        assert_eq!(
            login_err(login.cancel(id, "wrong").unwrap_err()),
            LoginError::WrongSecret
        );
        let c = login.cancel(id, secret).unwrap();
        assert_eq!((c.state, c.version), (State::Cancelled, 2 + steps));
        envelope(&event(&mut sub, CHANNEL), "cancelled", id, 2 + steps, true);
        assert_eq!(
            login_err(login.cancel(id, secret).unwrap_err()),
            LoginError::WrongState
        );
        assert_eq!(
            login_err(login.approve(id, "u", "U").unwrap_err()),
            LoginError::WrongState
        );
    }
    sub.nothing_more(QUIET);
}

#[test]
fn login_refused_calls_change_nothing_and_publish_nothing() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let s = login.start("1.2.3.4", "ua").unwrap();
    let id = s.status.id.clone();
    let secret = s.browser_secret.expose().to_string();
    let mut sub = server.subscribe(&[CHANNEL]);
    let key = Login::key(&id);
    let snapshot = || hgetall(&server, &key);

    // Pending: nothing but scan (and cancel) may happen.
    let before = snapshot();
    let pending_refusals: Vec<(LoginError, qrpush_core::Error)> = vec![
        (
            LoginError::WrongState,
            login.approve(&id, "u", "U").unwrap_err(),
        ),
        (LoginError::WrongState, login.reject(&id, "u").unwrap_err()),
        (
            LoginError::WrongState,
            login.redeem(&id, "t", &secret, "00").unwrap_err(),
        ),
        (
            LoginError::WrongSecret,
            login.redeem(&id, "t", "bad", "00").unwrap_err(),
        ),
        (
            LoginError::WrongSecret,
            login.status(&id, Some("bad")).unwrap_err(),
        ),
        (
            LoginError::NotFound,
            login
                .scan(&format!("{id}.{}", "A".repeat(43)), "u", "")
                .unwrap_err(),
        ),
    ];
    for (expected, e) in pending_refusals {
        assert_eq!(login_err(e), expected);
    }
    assert_eq!(snapshot(), before);
    sub.nothing_more(QUIET);

    login.scan(s.qr.expose(), "alice", "phone").unwrap();
    event(&mut sub, CHANNEL);
    let before = snapshot();
    assert_eq!(
        login_err(login.scan(s.qr.expose(), "mallory", "").unwrap_err()),
        LoginError::WrongState
    );
    assert_eq!(
        login_err(login.approve(&id, "mallory", "Mallory").unwrap_err()),
        LoginError::WrongUser
    );
    assert_eq!(
        login_err(login.reject(&id, "mallory").unwrap_err()),
        LoginError::WrongUser
    );
    assert_eq!(
        login_err(login.redeem(&id, "t", &secret, "00").unwrap_err()),
        LoginError::WrongState
    );
    assert_eq!(snapshot(), before);
    sub.nothing_more(QUIET);

    let code = login
        .approve(&id, "alice", "Alice")
        .unwrap()
        .confirmation_code
        .expose()
        .to_string();
    let ticket = envelope(&event(&mut sub, CHANNEL), "approved", &id, 3, true)["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot();
    assert_eq!(
        login_err(login.redeem(&id, &ticket, "bad", &code).unwrap_err()),
        LoginError::WrongSecret
    );
    assert_eq!(
        login_err(login.redeem(&id, "forged", &secret, &code).unwrap_err()),
        LoginError::WrongTicket
    );
    assert_eq!(
        login_err(login.approve(&id, "alice", "Alice").unwrap_err()),
        LoginError::WrongState
    );
    assert_eq!(snapshot(), before);
    sub.nothing_more(QUIET);

    assert_eq!(
        login.redeem(&id, &ticket, &secret, &code).unwrap().user_id,
        "alice"
    );
    event(&mut sub, CHANNEL);
    let before = snapshot();
    // The replayed ticket.
    let e = login.redeem(&id, &ticket, &secret, &code).unwrap_err();
    assert_eq!(login_err(e.clone()), LoginError::TicketUsed);
    assert!(!e.message().contains(&ticket) && !e.message().contains(&secret));
    assert_eq!(snapshot(), before);
    sub.nothing_more(QUIET);

    // Forged and unknown ids: NotFound; forged ones never reach Redis.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    for bad in [unknown, "forged", "", &format!("{id}x")] {
        assert_eq!(
            login_err(login.status(bad, None).unwrap_err()),
            LoginError::NotFound
        );
        assert_eq!(
            login_err(login.approve(bad, "alice", "Alice").unwrap_err()),
            LoginError::NotFound
        );
        assert_eq!(
            login_err(login.redeem(bad, &ticket, &secret, &code).unwrap_err()),
            LoginError::NotFound
        );
        assert_eq!(
            login_err(login.cancel(bad, &secret).unwrap_err()),
            LoginError::NotFound
        );
    }
    assert_eq!(
        login_err(login.scan("https://example.com/", "u", "").unwrap_err()),
        LoginError::NotFound
    );
    // Invalid arguments are the caller's bug, not a login outcome.
    assert_eq!(
        kind(login.approve(&id, "", "Alice").unwrap_err()),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(login.approve(&id, "alice", "").unwrap_err()),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(login.scan(s.qr.expose(), &"u".repeat(300), "").unwrap_err()),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(login.start(&"1".repeat(65), "").unwrap_err()),
        ErrorKind::InvalidArgument
    );
    sub.nothing_more(QUIET);
}

#[test]
fn login_deadlines_expire_logins_once_then_they_disappear() {
    let (server, client) = setup(&[
        ("login_pending_ttl", "0.3"),
        ("login_approved_ttl", "0.3"),
        ("login_terminal_ttl", "0.4"),
        ("login_scan_window", "0.5"),
    ]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);

    // A pending login nobody scanned.
    let a = login.start("", "").unwrap();
    thread::sleep(Duration::from_millis(350));
    assert_eq!(
        login_err(login.scan(a.qr.expose(), "u", "").unwrap_err()),
        LoginError::Expired
    );
    let data = envelope(&event(&mut sub, CHANNEL), "expired", &a.status.id, 2, true);
    assert_eq!(data, serde_json::json!({"from": "pending"}));
    let st = login.status(&a.status.id, None).unwrap();
    assert_eq!(
        (st.state, st.version, st.expires_at_ms),
        (State::Expired, 2, None)
    );
    assert_eq!(
        login_err(
            login
                .cancel(&a.status.id, a.browser_secret.expose())
                .unwrap_err()
        ),
        LoginError::Expired
    );
    sub.nothing_more(Duration::from_millis(50));

    // An approved login never redeemed: status() notices.
    let b = login.start("", "").unwrap();
    login.scan(b.qr.expose(), "u", "").unwrap();
    let code = login
        .approve(&b.status.id, "u", "U")
        .unwrap()
        .confirmation_code;
    let ticket = {
        event(&mut sub, CHANNEL);
        event(&mut sub, CHANNEL)["data"]["ticket"]
            .as_str()
            .unwrap()
            .to_string()
    };
    thread::sleep(Duration::from_millis(350));
    let st = login.status(&b.status.id, None).unwrap();
    assert_eq!((st.state, st.version), (State::Expired, 4));
    let data = envelope(&event(&mut sub, CHANNEL), "expired", &b.status.id, 4, true);
    assert_eq!(data, serde_json::json!({"from": "approved"}));
    assert_eq!(
        login_err(
            login
                .redeem(
                    &b.status.id,
                    &ticket,
                    b.browser_secret.expose(),
                    code.expose()
                )
                .unwrap_err()
        ),
        LoginError::Expired
    );
    sub.nothing_more(Duration::from_millis(50));

    // After the terminal TTL the login is gone: NotFound, and no key is left behind (the scans
    // are forgotten after login_scan_window).
    thread::sleep(Duration::from_millis(600));
    assert_eq!(
        login_err(login.status(&a.status.id, None).unwrap_err()),
        LoginError::NotFound
    );
    assert_eq!(
        login_err(login.scan(a.qr.expose(), "u", "").unwrap_err()),
        LoginError::NotFound
    );
    assert!(all_keys(&server).is_empty());
    sub.nothing_more(QUIET);
}

#[test]
fn login_status_with_the_browser_secret_replaces_the_ticket() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);
    let s = login.start("", "").unwrap();
    let (id, secret) = (&s.status.id, s.browser_secret.expose());
    assert!(login.status(id, Some(secret)).unwrap().ticket.is_none());
    login.scan(s.qr.expose(), "u", "").unwrap();
    let code = login.approve(id, "u", "Ursula").unwrap().confirmation_code;
    let code = code.expose();
    event(&mut sub, CHANNEL);
    let from_event = event(&mut sub, CHANNEL)["data"]["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(login.status(id, None).unwrap().ticket.is_none());
    let st = login.status(id, Some(secret)).unwrap();
    assert_eq!((st.state, st.version), (State::Approved, 3));
    let fresh = st.ticket.expect("a new ticket");
    assert_ne!(fresh.value.expose(), from_event);
    assert_eq!(fresh.approver_name, "Ursula");
    sub.nothing_more(QUIET); // no state change, no event
    assert_eq!(
        login_err(login.redeem(id, &from_event, secret, code).unwrap_err()),
        LoginError::WrongTicket
    );
    assert_eq!(
        login
            .redeem(id, fresh.value.expose(), secret, code)
            .unwrap()
            .user_id,
        "u"
    );
}

/// The defence against a QR code scanned by someone else first (shoulder surfing): the first
/// scanner binds the login, so a browser that redeemed whatever was approved could be logged into
/// the attacker's account (login CSRF). The browser learns who approved (the display name, with
/// its secret only) and must send the code the approving phone shows: without it redeem is
/// refused, and the last of MAX_CODE_TRIES wrong codes cancels the login.
#[test]
fn login_redeem_needs_the_confirmation_code_of_the_approving_phone() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);

    // The victim's browser shows a QR code; the attacker scans it first and approves.
    let s = login.start("192.0.2.10", "Victim/1").unwrap();
    let (id, secret) = (s.status.id.clone(), s.browser_secret.expose().to_string());
    login
        .scan(s.qr.expose(), "mallory", "attacker's phone")
        .unwrap();
    let code = login
        .approve(&id, "mallory", "Mallory M.")
        .unwrap()
        .confirmation_code
        .expose()
        .to_string();
    envelope(&event(&mut sub, CHANNEL), "scanned", &id, 2, true);
    let approved = envelope(&event(&mut sub, CHANNEL), "approved", &id, 3, true);
    assert_eq!(
        approved.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ticket", "expiresAt"],
        "neither the name nor the code is published"
    );
    // The browser, with its secret, learns who approved before it may redeem.
    let ticket = login.status(&id, Some(&secret)).unwrap().ticket.unwrap();
    assert_eq!(ticket.approver_name, "Mallory M.");
    assert!(login.status(&id, None).unwrap().ticket.is_none());

    // The victim does not have the code: ticket and secret alone are refused, each try counted.
    let key = Login::key(&id);
    let wrong = if code == "00" { "01" } else { "00" };
    for tries in 1..MAX_CODE_TRIES {
        let attempt = if tries == 1 { "" } else { wrong };
        let e = login
            .redeem(&id, ticket.value.expose(), &secret, attempt)
            .unwrap_err();
        assert_eq!(login_err(e.clone()), LoginError::WrongCode);
        assert_eq!(e.message(), "redeem: wrong confirmation code (the code the approving phone shows; 3 wrong codes cancel the login)");
        let st = login.status(&id, None).unwrap();
        assert_eq!((st.state, st.version), (State::Approved, 3));
        assert!(hgetall(&server, &key).contains(&("tries".into(), tries.to_string())));
    }
    sub.nothing_more(QUIET);
    // The last try: the login is cancelled, and the event says why.
    let e = login
        .redeem(&id, ticket.value.expose(), &secret, wrong)
        .unwrap_err();
    assert_eq!(login_err(e.clone()), LoginError::WrongCode);
    assert_eq!(
        e.message(),
        "redeem: wrong confirmation code, the last of 3 tries: the login is cancelled"
    );
    let data = envelope(&event(&mut sub, CHANNEL), "cancelled", &id, 4, true);
    assert_eq!(data, serde_json::json!({"reason": "wrong_code"}));
    assert_eq!(
        login_err(
            login
                .redeem(&id, ticket.value.expose(), &secret, &code)
                .unwrap_err()
        ),
        LoginError::WrongState,
        "not even the right code redeems a cancelled login"
    );
    sub.nothing_more(QUIET);

    // The legitimate user: their own phone shows the code, they type it (after one typo).
    let s = login.start("192.0.2.10", "Victim/1").unwrap();
    let (id, secret) = (s.status.id.clone(), s.browser_secret.expose().to_string());
    login.scan(s.qr.expose(), "alice", "").unwrap();
    let code = login
        .approve(&id, "alice", "Alice")
        .unwrap()
        .confirmation_code
        .expose()
        .to_string();
    let ticket = login.status(&id, Some(&secret)).unwrap().ticket.unwrap();
    assert_eq!(ticket.approver_name, "Alice");
    let typo = if code == "99" { "98" } else { "99" };
    assert_eq!(
        login_err(
            login
                .redeem(&id, ticket.value.expose(), &secret, typo)
                .unwrap_err()
        ),
        LoginError::WrongCode
    );
    let redeemed = login
        .redeem(&id, ticket.value.expose(), &secret, &code)
        .unwrap();
    assert_eq!(redeemed.user_id, "alice");
    assert_eq!(redeemed.status.state, State::Redeemed);

    // A login approved by a version that stored neither name nor code (a rolling upgrade): the
    // browser is told an empty name, and nothing redeems it without the confirmation.
    let s = login.start("", "").unwrap();
    let (id, secret) = (s.status.id.clone(), s.browser_secret.expose().to_string());
    login.scan(s.qr.expose(), "alice", "").unwrap();
    let code = login
        .approve(&id, "alice", "Alice")
        .unwrap()
        .confirmation_code;
    server.cmd(&["HDEL", &Login::key(&id), "name", "code"]);
    let ticket = login.status(&id, Some(&secret)).unwrap().ticket.unwrap();
    assert_eq!(ticket.approver_name, "");
    assert_eq!(
        login_err(
            login
                .redeem(&id, ticket.value.expose(), &secret, code.expose())
                .unwrap_err()
        ),
        LoginError::WrongCode
    );
}

/// Scans are limited per user, in the script (atomic: concurrent scans cannot overshoot), over a
/// sliding window: one account cannot bind many logins, nor collect many browsers' IP address
/// and user agent. A refused scan changes nothing and tells the phone nothing of the browser.
#[test]
fn login_scans_beyond_the_per_user_limit_are_refused() {
    let (server, client) = setup(&[("login_scan_limit", "3"), ("login_scan_window", "1")]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);
    let logins: Vec<_> = (0..5)
        .map(|_| login.start("198.51.100.7", "UA").unwrap())
        .collect();
    for s in &logins[..3] {
        login.scan(s.qr.expose(), "harvester", "").unwrap();
        envelope(&event(&mut sub, CHANNEL), "scanned", &s.status.id, 2, true);
    }
    let scans = Login::scans_key("harvester");
    let (key, before, scans_before) = {
        let key = Login::key(&logins[3].status.id);
        (
            key.clone(),
            hgetall(&server, &key),
            hgetall(&server, &scans),
        )
    };
    let e = login
        .scan(logins[3].qr.expose(), "harvester", "")
        .unwrap_err();
    assert_eq!(login_err(e.clone()), LoginError::RateLimited);
    assert_eq!(
        e.message(),
        "scan: this user already scanned 3 logins within 1 s, the most login_scan_limit allows; try again later"
    );
    assert_eq!(hgetall(&server, &key), before, "the login is still pending");
    assert_eq!(
        hgetall(&server, &scans),
        scans_before,
        "a refusal is not counted"
    );
    sub.nothing_more(QUIET);
    // Another user is not limited by the harvester's scans.
    login.scan(logins[4].qr.expose(), "alice", "").unwrap();
    envelope(
        &event(&mut sub, CHANNEL),
        "scanned",
        &logins[4].status.id,
        2,
        true,
    );
    // The window slides: once the first scans are older than it, a scan is accepted again; the
    // count is forgotten with the window.
    let pttl = int(&server.cmd(&["PTTL", &scans]));
    assert!((1..=1000).contains(&pttl), "{pttl}");
    thread::sleep(Duration::from_millis(1050));
    login.scan(logins[3].qr.expose(), "harvester", "").unwrap();
    envelope(
        &event(&mut sub, CHANNEL),
        "scanned",
        &logins[3].status.id,
        2,
        true,
    );
    sub.nothing_more(QUIET);

    // Twelve concurrent scans by one user: exactly the limit wins.
    let client = Arc::new(server.client(&[
        ("login_scan_limit", "3"),
        ("login_scan_window", "60"),
        ("pool_size", "12"),
    ]));
    let qrs: Vec<String> = (0..12)
        .map(|_| {
            Login::new(&client)
                .start("", "")
                .unwrap()
                .qr
                .expose()
                .to_string()
        })
        .collect();
    racing_scans_pass_exactly(&client, qrs, "racer", 3);

    // login_scan_limit 0: no limit, and nothing is counted.
    let unlimited = server.client(&[("login_scan_limit", "0")]);
    let login = Login::new(&unlimited);
    for _ in 0..12 {
        let s = login.start("", "").unwrap();
        login.scan(s.qr.expose(), "tester", "").unwrap();
    }
    assert_eq!(
        int(&server.cmd(&["EXISTS", &Login::scans_key("tester")])),
        0
    );
}

#[test]
fn login_twenty_racing_approves_and_redeems_have_exactly_one_winner() {
    let (server, client) = setup(&[("pool_size", "20")]);
    let client = Arc::new(client);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);
    let s = login.start("", "").unwrap();
    let id = s.status.id.clone();
    let secret = s.browser_secret.expose().to_string();
    login.scan(s.qr.expose(), "u", "").unwrap();
    event(&mut sub, CHANNEL);

    let race = |f: Arc<dyn Fn() -> Result<(), LoginError> + Send + Sync>| {
        let barrier = Arc::new(Barrier::new(20));
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (f, barrier) = (f.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    f()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    };

    let c = client.clone();
    let i = id.clone();
    let code = Arc::new(std::sync::Mutex::new(String::new()));
    let winners_code = code.clone();
    let approvals = race(Arc::new(move || {
        Login::new(&c)
            .approve(&i, "u", "U")
            .map(|a| *winners_code.lock().unwrap() = a.confirmation_code.expose().to_string())
            .map_err(login_err)
    }));
    let code = code.lock().unwrap().clone();
    assert_eq!(approvals.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(approvals
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(LoginError::WrongState))));
    let ticket = envelope(&event(&mut sub, CHANNEL), "approved", &id, 3, true)["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    sub.nothing_more(QUIET);

    let (c, i) = (client.clone(), id.clone());
    let redeems = race(Arc::new(move || {
        Login::new(&c)
            .redeem(&i, &ticket, &secret, &code)
            .map(|r| assert_eq!(r.user_id, "u"))
            .map_err(login_err)
    }));
    assert_eq!(redeems.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(redeems
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(LoginError::TicketUsed))));
    envelope(&event(&mut sub, CHANNEL), "redeemed", &id, 4, true);
    sub.nothing_more(QUIET);
}

#[test]
fn login_redis_holds_hashes_never_secrets() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let mut sub = server.subscribe(&[CHANNEL]);
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for n in 0..4 {
        let s = login.start("198.51.100.1", "Browser/1").unwrap();
        let id = s.status.id.clone();
        let (_, qr_token) = s.qr.expose().split_once('.').unwrap();
        secrets.extend([
            id.clone(),
            qr_token.to_string(),
            s.browser_secret.expose().to_string(),
        ]);
        if n >= 1 {
            login.scan(s.qr.expose(), "bob", "").unwrap();
            event(&mut sub, CHANNEL);
        }
        if n >= 2 {
            let code = login.approve(&id, "bob", "Bob").unwrap().confirmation_code;
            let ticket = event(&mut sub, CHANNEL)["data"]["ticket"]
                .as_str()
                .unwrap()
                .to_string();
            secrets.push(ticket.clone());
            if n == 3 {
                login
                    .redeem(&id, &ticket, s.browser_secret.expose(), code.expose())
                    .unwrap();
            } else {
                // Two digits are no "long piece" to search for: the code is not in its field.
                let stored = hgetall(&server, &Login::key(&id));
                assert!(stored.contains(&("code".into(), random::code_hash(&id, code.expose()))));
            }
        }
        ids.push(id);
    }
    let keys = all_keys(&server);
    // The logins, and bob's recent scans.
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.contains(&Login::scans_key("bob")), "{keys:?}");
    let mut dump = String::new();
    for key in &keys {
        assert!(key.starts_with("qrpush:login:"), "{key}");
        dump.push_str(key);
        dump.push('\n');
        for (field, value) in hgetall(&server, key) {
            dump.push_str(&format!("{field}={value}\n"));
        }
    }
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "{secret} is in Redis:\n{dump}"
        );
        // Not even a long piece of one.
        assert!(
            !dump.contains(&secret[..16]),
            "part of {secret} is in Redis"
        );
    }
    assert!(dump.contains("ip=198.51.100.1"));
    assert!(dump.contains("user=bob"));
    assert!(dump.contains("name=Bob"));
    // No user id (nor login id) in key names: after the prefix, each is a SHA-256 in base64url
    // (43 characters), which may of course spell "bob" by chance, so the shape is what is checked.
    let hashed = |key: &str| {
        let tail = key
            .strip_prefix("qrpush:login:scans:")
            .or_else(|| key.strip_prefix("qrpush:login:"));
        tail.is_some_and(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    assert!(
        keys.iter().all(|k| hashed(k)),
        "no user id in key names: {keys:?}"
    );
    assert!(!Login::scans_key("bob").contains("bob"));
}

#[test]
fn login_a_flushed_script_cache_falls_back_to_eval() {
    let (server, client) = setup(&[]);
    let login = Login::new(&client);
    let s = login.start("", "").unwrap();
    assert_eq!(server.cmd(&["SCRIPT", "FLUSH"]), Value::Okay);
    let mut sub = server.subscribe(&[CHANNEL]);
    let scanned = login.scan(s.qr.expose(), "u", "").unwrap();
    assert_eq!(scanned.status.version, 2);
    // Exactly one event: the NOSCRIPT attempt did not run anything.
    envelope(&event(&mut sub, CHANNEL), "scanned", &s.status.id, 2, true);
    sub.nothing_more(QUIET);
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

fn hgetall(server: &RedisServer, key: &str) -> Vec<(String, String)> {
    let Value::Array(items) = server.cmd(&["HGETALL", key]) else {
        panic!("HGETALL {key}")
    };
    let mut pairs: Vec<(String, String)> = items
        .chunks(2)
        .map(|p| (bulk(&p[0]), bulk(&p[1])))
        .collect();
    pairs.sort();
    pairs
}

/// Every key, by SCAN (what `redis-cli --scan` does).
fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut admin = server.admin();
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let Value::Array(reply) = admin.cmd(&["SCAN", &cursor, "COUNT", "1000"]) else {
            panic!("SCAN")
        };
        cursor = bulk(&reply[0]);
        if let Value::Array(batch) = &reply[1] {
            keys.extend(batch.iter().map(bulk));
        }
        if cursor == "0" {
            break;
        }
    }
    keys.sort();
    keys
}

/// The ACL user the documentation recommends for an app: only these commands, keys and channels.
const APP_ACL: &[&str] = &[
    "on",
    ">app-password",
    "resetkeys",
    "~qrpush:login:*",
    "resetchannels",
    "&qr-login-events",
    "&qr-login-events:*",
    "-@all",
    "+ping",
    "+publish",
    "+evalsha",
    "+eval",
    "+time",
    "+exists",
    "+hgetall",
    "+hset",
    "+hdel",
    "+pexpire",
    "+client|setname",
];

#[test]
fn login_runs_under_the_recommended_least_privilege_acl_user() {
    let server = RedisServer::start();
    let mut acl = vec!["ACL", "SETUSER", "qrpush-app"];
    acl.extend_from_slice(APP_ACL);
    assert_eq!(server.cmd(&acl), Value::Okay);
    for mode in ["single", "per_login"] {
        let mut config = server.config(&[("login_channel_mode", mode)]);
        config
            .set(
                "url",
                &server.url_with(Some("qrpush-app"), Some("app-password")),
            )
            .unwrap();
        let client = Client::new(config);
        let login = Login::new(&client);
        let s = login.start("", "").unwrap();
        let id = &s.status.id;
        login.scan(s.qr.expose(), "u", "").unwrap();
        let code = login.approve(id, "u", "U").unwrap().confirmation_code;
        let ticket = login
            .status(id, Some(s.browser_secret.expose()))
            .unwrap()
            .ticket
            .unwrap();
        assert_eq!(
            login
                .redeem(
                    id,
                    ticket.value.expose(),
                    s.browser_secret.expose(),
                    code.expose()
                )
                .unwrap()
                .user_id,
            "u"
        );
        let s = login.start("", "").unwrap();
        login
            .cancel(&s.status.id, s.browser_secret.expose())
            .unwrap();
        // ... and nothing more: the app cannot read other keys.
        client
            .publish(b"qr-login-events", b"allowed")
            .expect("publishing to the login channel is allowed");
        let e = client.publish(b"other", b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    }
}

#[test]
fn login_start_signs_a_gateway_token_valid_for_the_live_life() {
    use qrpush_core::login::gateway_token::{self, Key};
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let (server, client) = setup(&[
        ("gateway_secret", SECRET),
        ("login_pending_ttl", "120"),
        ("login_approved_ttl", "30"),
    ]);
    let s = Login::new(&client).start("", "").unwrap();
    let token = s.gateway_token.expect("a token with a gateway_secret");
    // Signed with the current secret's key, for this login, until created + pending + approved TTL.
    let key = Key::new(SECRET.as_bytes());
    let claims = gateway_token::verify(std::slice::from_ref(&key), token.expose(), 0).unwrap();
    assert_eq!(claims.login_id, s.status.id);
    assert_eq!(claims.key_id, key.id());
    assert_eq!(claims.expires_at_ms, s.status.created_at_ms + 150_000);
    assert_eq!(
        gateway_token::verify(&[key], token.expose(), claims.expires_at_ms),
        Err(gateway_token::TokenError::Expired)
    );
    // No secret, no token.
    let without = server.client(&[]);
    assert!(Login::new(&without)
        .start("", "")
        .unwrap()
        .gateway_token
        .is_none());
}
