//! Helpers every gateway test file uses: a gateway with quick Redis timings, a socket's next JSON
//! message or its close code within the tests' bound, waiting for a condition, the wall clock in
//! milliseconds.
// Each test file is a crate of its own and uses only some of these.
#![allow(dead_code)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qrpush_gateway::{Gateway, Settings};
use serde_json::Value as Json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound of every wait in these tests.
pub const BOUND: Duration = Duration::from_secs(10);

/// The gateway secret the tests share with the PHP side (`gateway_secret`).
pub const SECRET: &str = "gateway-test-secret-0123456789";

/// A gateway on an ephemeral port for `url` with quick Redis timings (reconnect backoff
/// `backoff` = [min, max], ping every 250 ms, 1 s reply bound, 2 s shutdown) and `flags` after
/// them; returns once it is connected to Redis.
pub async fn quick_gateway(url: &str, backoff: [&str; 2], flags: &[&str]) -> Gateway {
    let mut all = vec![
        "--listen",
        "127.0.0.1:0",
        "--redis-url",
        url,
        "--redis-backoff-min",
        backoff[0],
        "--redis-backoff-max",
        backoff[1],
        "--redis-ping-interval",
        "250ms",
        "--redis-timeout",
        "1s",
        "--shutdown-timeout",
        "2s",
    ];
    all.extend_from_slice(flags);
    let settings = Settings::from_flags(all, SECRET).expect("settings");
    let gw = qrpush_gateway::start(settings).await.expect("start");
    wait_for("the gateway to connect to Redis", || {
        gw.metrics().redis_connected.load(Relaxed) == 1
    })
    .await;
    gw
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next text message as JSON (pings are answered by tungstenite while reading).
pub async fn next_json(ws: &mut Ws) -> Json {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("no error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Reads until the socket closes; returns the close code.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Waits (up to the bound) until `cond` holds; fails the test naming `what` otherwise.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Milliseconds since the Unix epoch (token expiry times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
