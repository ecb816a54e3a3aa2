//! The gateway against a real redis-server: handshake auth, routing in both channel modes,
//! status on (re)subscribe, heartbeats, slow clients, Redis restarts, two gateways on one Redis,
//! and the binary's SIGTERM. Each test has its own redis-server (qrpush-test-support) and its
//! own gateways on ephemeral loopback ports.
//!
//! Run: `source scripts/lib.sh; qr_run "cargo test -q -p qrpush-gateway"` (redis-server on PATH).

mod common;

use common::{close_code, next_json, now_ms, quick_gateway, wait_for, Ws, BOUND, SECRET};
use qrpush_test_support as support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use qrpush_core::login::gateway_token::{self, Key};
use qrpush_core::login::{Login, Started};
use qrpush_core::Client;
use qrpush_gateway::Gateway;
use serde_json::Value as Json;
use support::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

// ---- helpers ----------------------------------------------------------------------------------

/// A gateway on an ephemeral port for `redis`, with quick Redis timings; waits until subscribed.
async fn gateway(redis: &RedisServer, flags: &[&str]) -> Gateway {
    quick_gateway(&redis.url(), ["20ms", "200ms"], flags).await
}

/// The extension's view of `redis`: what PHP would run with (`mode`, the same secret).
fn client(redis: &RedisServer, mode: &str) -> Client {
    Client::new(redis.config(&[("login_channel_mode", mode), ("gateway_secret", SECRET)]))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

async fn start_login(client: &std::sync::Arc<Client>) -> Started {
    let c = client.clone();
    blocking(move || Login::new(&c).start("127.0.0.1", "test").expect("start")).await
}

async fn scan(client: &std::sync::Arc<Client>, started: &Started) {
    let (c, qr) = (client.clone(), started.qr.expose().to_string());
    blocking(move || Login::new(&c).scan(&qr, "alice", "phone").expect("scan")).await;
}

async fn approve(client: &std::sync::Arc<Client>, id: &str) {
    let (c, id) = (client.clone(), id.to_string());
    blocking(move || {
        Login::new(&c)
            .approve(&id, "alice", "Alice")
            .expect("approve")
    })
    .await;
}

fn token_of(started: &Started) -> String {
    started
        .gateway_token
        .as_ref()
        .expect("a token")
        .expose()
        .to_string()
}

fn url(gw: &Gateway, token: &str) -> String {
    format!("ws://{}/ws/?token={token}", gw.local_addr())
}

async fn connect(gw: &Gateway, token: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url(gw, token)))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

fn state_of(message: &Json) -> String {
    if message["type"] == "status" {
        message["data"]["state"].as_str().unwrap().to_string()
    } else {
        message["type"].as_str().unwrap().to_string()
    }
}

fn numsub(redis: &RedisServer, channel: &str) -> i64 {
    match redis.cmd(&["PUBSUB", "NUMSUB", channel]) {
        redis::Value::Array(items) => match items.get(1) {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("NUMSUB: {other:?}"),
        },
        other => panic!("NUMSUB: {other:?}"),
    }
}

/// A plain HTTP GET (the tests have no HTTP client): status code and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refuses_missing_wrong_forged_and_expired_tokens_with_4001() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &["--allowed-origins", "http://app.test"]).await;
    let c = std::sync::Arc::new(client(&redis, "single"));
    let started = start_login(&c).await;
    let id = started.status.id.clone();
    let good = token_of(&started);

    let other_secret = gateway_token::issue(
        &Key::new(b"another-secret-0123456789"),
        &id,
        now_ms() + 60_000,
    );
    // Expired a minute ago: beyond the clock-skew allowance (5 s by default).
    let expired = gateway_token::issue(&Key::new(SECRET.as_bytes()), &id, now_ms() - 60_000);
    let mut tampered = good.clone();
    tampered.replace_range(0..1, if good.starts_with('A') { "B" } else { "A" });
    for (what, token) in [
        ("no token", String::new()),
        ("garbage", "x.y.z".to_string()),
        ("another secret", other_secret),
        ("expired", expired),
        ("another login id", tampered),
    ] {
        let mut ws = connect(&gw, &token).await;
        assert_eq!(close_code(&mut ws).await, Some(4001), "{what}");
    }
    assert_eq!(gw.metrics().rejected_token.load(Relaxed), 5);
    assert_eq!(gw.metrics().connections_total.load(Relaxed), 0);

    // Origin allow-list: refused before the upgrade (HTTP 403); an allowed one, and none, pass.
    let mut request = url(&gw, &good).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://evil.test".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(gw.metrics().rejected_origin.load(Relaxed), 1);
    let mut request = url(&gw, &good).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://app.test".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(state_of(&next_json(&mut ws).await), "pending");
    let mut ws2 = connect(&gw, &good).await;
    assert_eq!(state_of(&next_json(&mut ws2).await), "pending");

    // A valid token whose login does not exist (any more): 4004.
    let ghost = "AAAAAAAAAAAAAAAAAAAAAA";
    let mut ws = connect(
        &gw,
        &gateway_token::issue(&Key::new(SECRET.as_bytes()), ghost, now_ms() + 60_000),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, Some(4004));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_routes_by_session_id_and_two_gateways_each_serve_their_own_sockets() {
    let redis = RedisServer::start();
    let gw1 = gateway(&redis, &[]).await;
    let gw2 = gateway(&redis, &[]).await;
    let c = std::sync::Arc::new(client(&redis, "single"));
    let a = start_login(&c).await;
    let b = start_login(&c).await;
    // Login A: one socket on each gateway (round robin put the two tabs on both); B: one on gw1.
    let mut a1 = connect(&gw1, &token_of(&a)).await;
    let mut a2 = connect(&gw2, &token_of(&a)).await;
    let mut b1 = connect(&gw1, &token_of(&b)).await;
    for ws in [&mut a1, &mut a2, &mut b1] {
        let status = next_json(ws).await;
        assert_eq!(
            (status["type"].as_str(), status["seq"].as_i64()),
            (Some("status"), Some(1))
        );
        assert_eq!(status["sessionId"], status["loginId"]);
    }
    assert_eq!(
        numsub(&redis, "qr-login-events"),
        2,
        "one subscription per gateway"
    );

    scan(&c, &a).await;
    approve(&c, &a.status.id).await;
    for ws in [&mut a1, &mut a2] {
        let scanned = next_json(ws).await;
        assert_eq!(
            (scanned["type"].as_str(), scanned["seq"].as_i64()),
            (Some("scanned"), Some(2))
        );
        let approved = next_json(ws).await;
        assert_eq!(approved["type"], "approved");
        assert_eq!(approved["sessionId"].as_str(), Some(a.status.id.as_str()));
        assert_eq!(approved["data"]["ticket"].as_str().map(str::len), Some(43));
    }
    // B's socket saw nothing of A; each gateway wrote each event once per socket it holds.
    scan(&c, &b).await;
    let scanned = next_json(&mut b1).await;
    assert_eq!(
        (scanned["type"].as_str(), scanned["loginId"].as_str()),
        (Some("scanned"), Some(b.status.id.as_str()))
    );
    // Each gateway reads the channel on its own task: wait for both to have handled B's scan (gw2
    // drops it as unrouted, with no socket to show for it) before reading their counters.
    wait_for("gw1 to forward 3 events", || {
        gw1.metrics().events_forwarded.load(Relaxed) == 3
    })
    .await;
    wait_for("gw2 to handle B's scan", || {
        gw2.metrics().events_unrouted.load(Relaxed) == 1
    })
    .await;
    assert_eq!(gw2.metrics().events_forwarded.load(Relaxed), 2);
    assert_eq!(
        gw2.metrics().events_unrouted.load(Relaxed),
        1,
        "B's scan: no socket on gw2"
    );
    assert_eq!(gw1.metrics().events_received.load(Relaxed), 3);
    let metrics = http_get(gw1.local_addr(), "/metrics").1;
    assert!(
        metrics.contains("qrpush_gateway_connections 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("qrpush_gateway_publish_to_send_lag_seconds_count 3\n"),
        "{metrics}"
    );
    let (code, health) = http_get(gw1.local_addr(), "/healthz");
    assert_eq!(code, 200, "{health}");
    assert!(health.contains("\"redis\":\"up\""), "{health}");
    gw1.stop().await;
    gw2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_login_mode_subscribes_on_demand_and_unsubscribes_with_the_last_socket() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &["--channel-mode", "per_login"]).await;
    let c = std::sync::Arc::new(client(&redis, "per_login"));
    let a = start_login(&c).await;
    let b = start_login(&c).await;
    let channel_a = format!("qr-login-events:{}", a.status.id);
    let channel_b = format!("qr-login-events:{}", b.status.id);
    assert_eq!(a.status.channel, channel_a);
    assert_eq!(
        numsub(&redis, &channel_a),
        0,
        "nothing subscribed before a socket"
    );

    let mut a1 = connect(&gw, &token_of(&a)).await;
    let mut a2 = connect(&gw, &token_of(&a)).await;
    let mut b1 = connect(&gw, &token_of(&b)).await;
    for ws in [&mut a1, &mut a2, &mut b1] {
        let status = next_json(ws).await;
        assert_eq!(status["type"], "status");
        assert!(
            status.get("sessionId").is_none(),
            "per_login events carry no sessionId"
        );
    }
    assert_eq!(numsub(&redis, &channel_a), 1);
    assert_eq!(numsub(&redis, &channel_b), 1);

    scan(&c, &a).await;
    for ws in [&mut a1, &mut a2] {
        assert_eq!(next_json(ws).await["type"], "scanned");
    }
    // The first of A's sockets leaves: still subscribed; the last: unsubscribed. B unaffected.
    a1.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(numsub(&redis, &channel_a), 1);
    approve(&c, &a.status.id).await;
    assert_eq!(next_json(&mut a2).await["type"], "approved");
    a2.close(None).await.unwrap();
    wait_for("A's channel to be unsubscribed", || {
        numsub(&redis, &channel_a) == 0
    })
    .await;
    assert_eq!(numsub(&redis, &channel_b), 1);
    scan(&c, &b).await;
    assert_eq!(next_json(&mut b1).await["type"], "scanned");
    wait_for("one subscription left", || {
        gw.metrics().subscriptions.load(Relaxed) == 1
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_is_the_current_status_so_a_late_socket_misses_nothing() {
    let redis = RedisServer::start();
    let c = std::sync::Arc::new(client(&redis, "single"));
    let gw = gateway(&redis, &[]).await;
    let started = start_login(&c).await;
    // Scanned and approved before the browser's socket exists (it was reconnecting).
    scan(&c, &started).await;
    approve(&c, &started.status.id).await;
    let mut ws = connect(&gw, &token_of(&started)).await;
    let status = next_json(&mut ws).await;
    assert_eq!(status["type"], "status");
    assert_eq!(status["seq"], 3);
    assert_eq!(status["data"]["state"], "approved");
    assert!(status["data"]["expiresAt"].as_i64().unwrap() > now_ms());
    assert!(
        status["data"].get("ticket").is_none(),
        "the status never carries a ticket: the browser gets one with its secret"
    );
    wait_for("the status to be counted", || {
        gw.metrics().status_sent.load(Relaxed) == 1
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_drop_a_socket_that_stops_answering_and_keep_one_that_answers() {
    let redis = RedisServer::start();
    let gw = gateway(
        &redis,
        &["--ping-interval", "150ms", "--ping-timeout", "150ms"],
    )
    .await;
    let c = std::sync::Arc::new(client(&redis, "single"));
    let started = start_login(&c).await;
    let token = token_of(&started);
    // The live one keeps reading (so tungstenite answers every ping).
    let mut live = connect(&gw, &token).await;
    assert_eq!(next_json(&mut live).await["type"], "status");
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        while let Some(Ok(message)) = live.next().await {
            if let Message::Text(t) = message {
                texts.push(t.to_string());
                if texts.len() == 1 {
                    return (live, texts);
                }
            }
        }
        panic!("the live socket was closed");
    });
    // The silent one reads its status, then never reads again: it never answers a ping.
    let mut silent = connect(&gw, &token).await;
    assert_eq!(next_json(&mut silent).await["type"], "status");
    wait_for("the silent socket to be dropped", || {
        gw.metrics().dropped_heartbeat.load(Relaxed) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await; // four more ping rounds
    assert_eq!(gw.metrics().dropped_heartbeat.load(Relaxed), 1);
    assert_eq!(gw.metrics().connections.load(Relaxed), 1);
    scan(&c, &started).await;
    let (_live, texts) = tokio::time::timeout(BOUND, reader).await.unwrap().unwrap();
    assert!(texts[0].contains("\"type\":\"scanned\""), "{texts:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_while_a_fast_one_gets_everything() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &["--send-queue", "16", "--send-timeout", "500ms"]).await;
    let c = std::sync::Arc::new(client(&redis, "single"));
    let started = start_login(&c).await;
    let id = started.status.id.clone();
    let token = token_of(&started);
    let mut slow = connect(&gw, &token).await;
    assert_eq!(next_json(&mut slow).await["type"], "status");
    let mut fast = connect(&gw, &token).await;
    assert_eq!(next_json(&mut fast).await["type"], "status");
    const EVENTS: usize = 400;
    const BATCH: usize = 8;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let fast_reader = tokio::spawn(async move {
        while counter.load(Relaxed) < EVENTS {
            match fast.next().await {
                Some(Ok(Message::Text(_))) => {
                    counter.fetch_add(1, Relaxed);
                }
                Some(Ok(_)) => {}
                other => panic!("the fast socket ended: {other:?}"),
            }
        }
        fast
    });
    // 400 events of 64 KiB (25 MiB): far more than the socket buffers between the gateway and a
    // client that does not read. Fake events (the right envelope, padding in data), but routable.
    // Published in batches the fast client keeps up with: a queue bounds bursts, not throughput.
    let pad = "x".repeat(64 * 1024);
    for batch in 0..EVENTS / BATCH {
        let payloads: Vec<String> = (0..BATCH)
            .map(|i| {
                format!(
                    r#"{{"v":1,"type":"scanned","loginId":"{id}","sessionId":"{id}","seq":{},"ts":{},"data":{{"pad":"{pad}"}}}}"#,
                    batch * BATCH + i + 2, // the status had seq 1
                    now_ms()
                )
            })
            .collect();
        let publisher = c.clone();
        blocking(move || {
            for p in &payloads {
                publisher.publish(b"qr-login-events", p.as_bytes()).unwrap();
            }
        })
        .await;
        let want = (batch + 1) * BATCH;
        wait_for("the fast client to keep up", || got.load(Relaxed) >= want).await;
    }
    let _fast = tokio::time::timeout(BOUND, fast_reader)
        .await
        .unwrap()
        .unwrap();
    wait_for("the slow socket to be dropped", || {
        gw.metrics().dropped_slow.load(Relaxed) == 1
    })
    .await;
    assert_eq!(gw.metrics().connections.load(Relaxed), 1);
    // The slow client finds its connection gone once it reads again (after what was in flight).
    let mut received = 0;
    loop {
        match tokio::time::timeout(BOUND, slow.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    assert!(
        received < EVENTS,
        "the slow socket got {received} of {EVENTS}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_the_gateway_resubscribes_resends_the_status_and_keeps_delivering() {
    // AOF with fsync always: the logins survive a SIGKILL (a Redis that loses its data loses
    // the logins themselves, and then the sockets are closed with 4004).
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    // A slow first reconnect, so that an event is surely published while nobody listens.
    let gw = gateway(
        &redis,
        &["--redis-backoff-min", "700ms", "--redis-backoff-max", "1s"],
    )
    .await;
    let c = std::sync::Arc::new(client(&redis, "single"));
    let started = start_login(&c).await;
    let mut ws = connect(&gw, &token_of(&started)).await;
    assert_eq!(state_of(&next_json(&mut ws).await), "pending");

    redis.stop();
    wait_for("the gateway to notice", || {
        gw.metrics().redis_connected.load(Relaxed) == 0
    })
    .await;
    redis.restart();
    // The gateway is still backing off: this scan's event reaches no subscriber...
    wait_for(
        "the AOF to be loaded",
        || matches!(redis.cmd(&["PING"]), redis::Value::SimpleString(ref s) if s == "PONG"),
    )
    .await;
    assert_eq!(numsub(&redis, "qr-login-events"), 0);
    scan(&c, &started).await;
    // ...but the status sent on resubscribe carries its outcome.
    let message = next_json(&mut ws).await;
    assert_eq!(
        (message["type"].as_str(), message["seq"].as_i64()),
        (Some("status"), Some(2))
    );
    assert_eq!(state_of(&message), "scanned");
    assert_eq!(gw.metrics().redis_reconnects.load(Relaxed), 1);

    // And events flow again.
    approve(&c, &started.status.id).await;
    let approved = next_json(&mut ws).await;
    assert_eq!(
        (approved["type"].as_str(), approved["seq"].as_i64()),
        (Some("approved"), Some(3))
    );
    gw.stop().await;
}

// SIGTERM is Unix's; on Windows the binary stops on Ctrl-C (main.rs).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_closes_sockets_with_1001_on_sigterm_and_exits_cleanly() {
    use std::time::Instant;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let redis = RedisServer::start();
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_qrpush-gateway"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--redis-url",
            &redis.url(),
        ])
        .args(["--log", "warn"])
        .env("QRPUSH_GATEWAY_SECRET", SECRET)
        .spawn()
        .expect("spawn the gateway");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + BOUND;
    while std::net::TcpStream::connect(addr).is_err() || http_get(addr, "/healthz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the gateway did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = std::sync::Arc::new(client(&redis, "single"));
    let started = start_login(&c).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/?token={}", token_of(&started)))
            .await
            .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "status");
    let t0 = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = loop {
        match tokio::time::timeout(BOUND, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Away));
    let status = blocking(move || child.wait().unwrap()).await;
    assert!(status.success(), "{status:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}
