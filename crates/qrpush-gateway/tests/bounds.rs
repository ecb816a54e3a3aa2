//! What bounds a client of the gateway, against a real redis-server: a socket ends when its token
//! expires (4001) and right after its login's final state reached it (1000); one client address
//! holds a bounded number of sockets (the TCP peer's, or what a trusted proxy says); a burst of
//! handshakes never opens more than `--max-connections`; a client that sends its request head too
//! slowly is disconnected.
//!
//! Run: `source scripts/lib.sh; qr_run "cargo test -q -p qrpush-gateway --test bounds"`.

mod common;

use common::{next_json, now_ms, wait_for, Ws, BOUND};
use qrpush_test_support as support;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qrpush_core::login::gateway_token::{self, Key};
use qrpush_core::login::{Login, Started};
use qrpush_core::Client;
use qrpush_gateway::{Gateway, Settings};
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const SECRET: &str = "gateway-test-secret-0123456789";

// ---- helpers ----------------------------------------------------------------------------------

/// A gateway on an ephemeral port for `redis`; waits until it is subscribed.
async fn gateway(redis: &RedisServer, flags: &[&str]) -> Gateway {
    let url = redis.url();
    let mut all = vec!["--listen", "127.0.0.1:0", "--redis-url", url.as_str()];
    all.extend_from_slice(&["--redis-timeout", "1s", "--shutdown-timeout", "2s"]);
    all.extend_from_slice(flags);
    let settings = Settings::from_flags(all, SECRET).expect("settings");
    let gw = qrpush_gateway::start(settings).await.expect("start");
    wait_for("the gateway to subscribe", || {
        gw.metrics().subscriptions.load(Relaxed) == 1
    })
    .await;
    gw
}

/// What PHP would run with: the same secret, `extra` settings.
fn client(redis: &RedisServer, extra: &[(&str, &str)]) -> Arc<Client> {
    let mut settings = vec![("gateway_secret", SECRET)];
    settings.extend_from_slice(extra);
    Arc::new(Client::new(redis.config(&settings)))
}

/// Runs one blocking login call of the core on tokio's blocking pool.
async fn login<T: Send + 'static>(
    client: &Arc<Client>,
    call: impl FnOnce(Login<'_>) -> T + Send + 'static,
) -> T {
    let client = client.clone();
    tokio::task::spawn_blocking(move || call(Login::new(&client)))
        .await
        .expect("blocking task")
}

async fn start_login(client: &Arc<Client>) -> Started {
    login(client, |l| l.start("127.0.0.1", "test").expect("start")).await
}

fn token_of(started: &Started) -> String {
    started
        .gateway_token
        .as_ref()
        .expect("a token")
        .expose()
        .to_string()
}

/// A handshake: the socket, or the HTTP status it was refused with.
async fn try_connect(gw: &Gateway, token: &str, forwarded_for: Option<&str>) -> Result<Ws, u16> {
    let mut request = format!("ws://{}/ws/?token={token}", gw.local_addr())
        .into_client_request()
        .unwrap();
    if let Some(value) = forwarded_for {
        request
            .headers_mut()
            .insert("X-Forwarded-For", value.parse().unwrap());
    }
    match tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(request))
        .await
        .expect("a handshake answer in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// A socket that was accepted and got its first message, the status (in state `state`).
async fn open(gw: &Gateway, token: &str, forwarded_for: Option<&str>, state: &str) -> Ws {
    let mut ws = try_connect(gw, token, forwarded_for)
        .await
        .unwrap_or_else(|status| panic!("refused with HTTP {status}"));
    let status = next_json(&mut ws).await;
    assert_eq!(
        (status["type"].as_str(), status["data"]["state"].as_str()),
        (Some("status"), Some(state))
    );
    ws
}

/// The next message must be the close frame: its code and reason.
async fn next_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a close frame in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

// ---- a socket lives as long as its token and its login ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_with_4001_when_its_token_expires() {
    let redis = RedisServer::start();
    // The expiry is on Redis's clock: the socket ends when the clock-skew allowance has passed too.
    let gw = gateway(&redis, &["--clock-skew", "500ms"]).await;
    let c = client(&redis, &[]);
    let started = start_login(&c).await;
    let id = started.status.id.clone();
    // A token of this login that expires in 1 s (+ 0.5 s), and the login's own (minutes).
    let expires_at = now_ms() + 1_000;
    let short = gateway_token::issue(&Key::new(SECRET.as_bytes()), &id, expires_at);
    let mut expiring = open(&gw, &short, None, "pending").await;
    let mut lasting = open(&gw, &token_of(&started), None, "pending").await;

    let (code, reason) = next_close(&mut expiring).await;
    let at = now_ms();
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    let end = expires_at + 500;
    assert!(at >= end, "closed {} ms before the expiry", end - at);
    assert!(at < end + 1_000, "closed {} ms after the expiry", at - end);
    assert_eq!(gw.metrics().closed_token_expired.load(Relaxed), 1);
    wait_for("one socket left", || {
        gw.metrics().connections.load(Relaxed) == 1
    })
    .await;

    // The login's other socket is untouched and still gets its events.
    let qr = started.qr.expose().to_string();
    login(&c, move |l| l.scan(&qr, "alice", "phone").expect("scan")).await;
    assert_eq!(next_json(&mut lasting).await["type"], "scanned");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_each_final_state_the_sockets_get_it_and_are_closed_with_1000() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &[]).await;
    let c = client(&redis, &[]);

    // redeemed: the event reaches the socket, then the close.
    let a = start_login(&c).await;
    let mut ws = open(&gw, &token_of(&a), None, "pending").await;
    let (qr, id) = (a.qr.expose().to_string(), a.status.id.clone());
    let code = login(&c, move |l| {
        l.scan(&qr, "alice", "phone").expect("scan");
        l.approve(&id, "alice", "Alice")
            .expect("approve")
            .confirmation_code
    })
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "scanned");
    let approved = next_json(&mut ws).await;
    assert_eq!(approved["type"], "approved");
    let ticket = approved["data"]["ticket"].as_str().unwrap().to_string();
    let (id, secret) = (a.status.id.clone(), a.browser_secret.expose().to_string());
    login(&c, move |l| {
        l.redeem(&id, &ticket, &secret, code.expose())
            .expect("redeem")
    })
    .await;
    let redeemed = next_json(&mut ws).await;
    assert_eq!(
        (redeemed["type"].as_str(), redeemed["seq"].as_i64()),
        (Some("redeemed"), Some(4))
    );
    assert_eq!(
        next_close(&mut ws).await,
        (1000, "login finished".to_string())
    );
    // A socket opened later, with the same (still valid) token: the final status, then the close.
    let mut late = open(&gw, &token_of(&a), None, "redeemed").await;
    assert_eq!(
        next_close(&mut late).await,
        (1000, "login finished".to_string())
    );

    // cancelled and rejected.
    let b = start_login(&c).await;
    let mut ws = open(&gw, &token_of(&b), None, "pending").await;
    let (id, secret) = (b.status.id.clone(), b.browser_secret.expose().to_string());
    login(&c, move |l| l.cancel(&id, &secret).expect("cancel")).await;
    assert_eq!(next_json(&mut ws).await["type"], "cancelled");
    assert_eq!(next_close(&mut ws).await.0, 1000);
    let d = start_login(&c).await;
    let mut ws = open(&gw, &token_of(&d), None, "pending").await;
    let (qr, id) = (d.qr.expose().to_string(), d.status.id.clone());
    login(&c, move |l| {
        l.scan(&qr, "alice", "phone").expect("scan");
        l.reject(&id, "alice").expect("reject");
    })
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "scanned");
    assert_eq!(next_json(&mut ws).await["type"], "rejected");
    assert_eq!(next_close(&mut ws).await.0, 1000);

    // expired: a login with a 1 s deadline; the first status call after it publishes "expired".
    let quick = client(&redis, &[("login_pending_ttl", "1")]);
    let e = start_login(&quick).await;
    let mut ws = open(&gw, &token_of(&e), None, "pending").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let id = e.status.id.clone();
    login(&quick, move |l| l.status(&id, None).expect("status")).await;
    assert_eq!(next_json(&mut ws).await["type"], "expired");
    assert_eq!(next_close(&mut ws).await.0, 1000);

    assert_eq!(gw.metrics().closed_login_finished.load(Relaxed), 5);
    wait_for("every socket gone", || {
        gw.metrics().connections.load(Relaxed) == 0 && gw.metrics().logins.load(Relaxed) == 0
    })
    .await;
    gw.stop().await;
}

// ---- caps ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_max_sockets_per_address_and_only_a_trusted_proxy_names_another()
{
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let started = start_login(&c).await;
    let token = token_of(&started);

    // No trusted proxy: every socket here comes from 127.0.0.1, whatever a header says.
    let direct = gateway(&redis, &["--max-sockets-per-address", "2"]).await;
    let first = open(&direct, &token, None, "pending").await;
    let _second = open(&direct, &token, None, "pending").await;
    assert_eq!(try_connect(&direct, &token, None).await.err(), Some(429));
    assert_eq!(
        try_connect(&direct, &token, Some("198.51.100.9"))
            .await
            .err(),
        Some(429),
        "a header from an untrusted peer is ignored"
    );
    assert_eq!(direct.metrics().rejected_per_address.load(Relaxed), 2);
    // A socket that ends gives its place back.
    drop(first);
    wait_for("the socket to end", || {
        direct.metrics().connections.load(Relaxed) == 1
    })
    .await;
    let _third = open(&direct, &token, None, "pending").await;

    // Behind a trusted proxy (127.0.0.1 here): its X-Forwarded-For names the client.
    let proxied = gateway(
        &redis,
        &[
            "--max-sockets-per-address",
            "2",
            "--trusted-proxies",
            "127.0.0.1/32,::1",
        ],
    )
    .await;
    let client_a = Some("203.0.113.7");
    let _a1 = open(&proxied, &token, client_a, "pending").await;
    let _a2 = open(&proxied, &token, client_a, "pending").await;
    assert_eq!(
        try_connect(&proxied, &token, client_a).await.err(),
        Some(429)
    );
    // The rightmost entry is what the proxy saw: forged entries to its left change nothing.
    assert_eq!(
        try_connect(&proxied, &token, Some("198.51.100.1, 203.0.113.7"))
            .await
            .err(),
        Some(429)
    );
    // Another client behind the same proxy, and the proxy's own address, have their own count.
    let _b1 = open(&proxied, &token, Some("203.0.113.8"), "pending").await;
    let _p1 = open(
        &proxied,
        &token,
        Some("203.0.113.7, 198.51.100.1"),
        "pending",
    )
    .await;
    let _own = open(&proxied, &token, None, "pending").await;
    assert_eq!(proxied.metrics().rejected_per_address.load(Relaxed), 2);
    assert_eq!(proxied.metrics().connections.load(Relaxed), 5);
    direct.stop().await;
    proxied.stop().await;
}

/// Many worker threads, as on a server with many cores: handshakes are handled in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 16)]
async fn a_burst_of_handshakes_never_opens_more_than_max_connections() {
    const MAX: usize = 5;
    const BURST: usize = 40;
    let redis = RedisServer::start();
    let gw = gateway(&redis, &["--max-connections", "5"]).await;
    let addr = gw.local_addr();
    let c = client(&redis, &[]);

    // Sockets that will be refused (a token expired a minute ago) are sockets too while they close: a burst
    // of them gets no more upgrades than there is room for.
    let expired: Vec<String> = (0..BURST)
        .map(|_| {
            gateway_token::issue(
                &Key::new(SECRET.as_bytes()),
                "AAAAAAAAAAAAAAAAAAAAAA",
                now_ms() - 60_000,
            )
        })
        .collect();
    let (upgraded, refused) = burst(addr, &expired).await;
    assert_eq!(
        upgraded.len(),
        MAX,
        "upgraded sockets, held open by the client"
    );
    assert_eq!(refused, BURST - MAX);
    drop(upgraded);

    // Sockets of valid logins: exactly MAX accepted, each counted and kept.
    let mut tokens = Vec::new();
    for _ in 0..BURST {
        tokens.push(token_of(&start_login(&c).await));
    }
    let (mut accepted, refused) = loop {
        // The refused sockets above may still hold their slots for a moment.
        let (accepted, refused) = burst(addr, &tokens[..1]).await;
        if accepted.len() == 1 {
            drop(accepted);
            wait_for("the probe to end", || {
                gw.metrics().connections.load(Relaxed) == 0
            })
            .await;
            break burst(addr, &tokens).await;
        }
        assert_eq!(refused, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        accepted.len(),
        MAX,
        "sockets accepted (every one still open)"
    );
    assert_eq!(refused, BURST - MAX);
    wait_for("the accepted sockets to be counted", || {
        gw.metrics().connections.load(Relaxed) == MAX as i64
    })
    .await;
    // Capacity comes back as sockets end.
    drop(accepted.pop());
    wait_for("a free slot", || {
        gw.metrics().connections.load(Relaxed) == MAX as i64 - 1
    })
    .await;
    let started = start_login(&c).await;
    let _again = open(&gw, &token_of(&started), None, "pending").await;
    gw.stop().await;
}

/// The tightest burst a client can make: one connection per token, all open first, then every
/// WebSocket handshake written before any answer is read. Returns the upgraded connections (HTTP
/// 101, left open) and how many were refused with 503.
async fn burst(addr: std::net::SocketAddr, tokens: &[String]) -> (Vec<TcpStream>, usize) {
    let mut streams = Vec::new();
    for _ in tokens {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the gateway accept them all, so that the requests arrive at connections it waits on.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (stream, token) in streams.iter_mut().zip(tokens) {
        let request = format!(
            "GET /ws/?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
    }
    let mut upgraded = Vec::new();
    let mut refused = 0;
    for mut stream in streams {
        match response_status(&mut stream).await {
            101 => upgraded.push(stream),
            503 => refused += 1,
            other => panic!("unexpected HTTP {other}"),
        }
    }
    (upgraded, refused)
}

/// Reads an HTTP response head from `stream`: its status code.
async fn response_status(stream: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(BOUND, stream.read(&mut byte))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(
            n, 1,
            "the connection closed before the response head ended: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"))
}

// ---- the HTTP request head ------------------------------------------------------------------

/// Sends `head` one byte every `pace` until the server closes the connection; returns how long
/// the connection lasted and how many bytes went out.
async fn trickle(addr: std::net::SocketAddr, head: &[u8], pace: Duration) -> (Duration, usize) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let t0 = Instant::now();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        // The server may answer something before it closes; only the end of the stream counts.
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        t0.elapsed()
    });
    let mut sent = 0;
    for byte in head {
        if closed.is_finished() || write.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(pace).await;
    }
    let lasted = tokio::time::timeout(BOUND, closed)
        .await
        .expect("the server closed the connection")
        .unwrap();
    (lasted, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_request_head_too_slowly_is_disconnected() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &["--header-read-timeout", "500ms"]).await;
    let addr = gw.local_addr();
    // 200 bytes at 25 ms each would take 5 s: each byte comes well within any per-read timeout,
    // but the head as a whole is far too slow.
    let head = format!(
        "GET /ws/?token=x HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(100)
    );
    assert!(head.len() >= 200);
    let (lasted, sent) = trickle(addr, head.as_bytes(), Duration::from_millis(25)).await;
    assert!(
        lasted >= Duration::from_millis(450),
        "closed after {lasted:?}"
    );
    assert!(
        lasted < Duration::from_millis(2_000),
        "closed after {lasted:?}"
    );
    assert!(sent < head.len(), "the whole head went out ({sent} bytes)");
    // A connection that sends nothing at all is closed too.
    let (lasted, _) = trickle(addr, b"", Duration::ZERO).await;
    assert!(
        lasted < Duration::from_millis(2_000),
        "closed after {lasted:?}"
    );
    // A client that sends its head at once is served.
    let c = client(&redis, &[]);
    let started = start_login(&c).await;
    let _ws = open(&gw, &token_of(&started), None, "pending").await;
    gw.stop().await;
}
