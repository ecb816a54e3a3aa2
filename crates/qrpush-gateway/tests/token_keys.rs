//! The gateway's token keys and clocks, against a real redis-server: rotating the secret keeps the
//! reconnects of tokens signed with the old one (the gateway holds the current and the previous
//! key, and each token names its key), and a token's expiry, set on Redis's clock, is checked on
//! the gateway's with exactly `--clock-skew` of allowance.
//!
//! Run: `source scripts/lib.sh; qr_run "cargo test -q -p qrpush-gateway --test token_keys"`.

mod common;

use common::{now_ms, wait_for, Ws, BOUND};
use qrpush_test_support as support;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures_util::StreamExt;
use qrpush_core::login::gateway_token::{self, Key};
use qrpush_core::login::{Login, Started};
use qrpush_core::Client;
use qrpush_gateway::{Gateway, Settings};
use serde_json::Value as Json;
use support::RedisServer;
use tokio_tungstenite::tungstenite::Message;

const OLD: &str = "the-old-gateway-secret-0123456789";
const NEW: &str = "the-new-gateway-secret-9876543210";

// ---- helpers ----------------------------------------------------------------------------------

/// A file holding `secret` (with a newline, as `echo` writes it), removed on drop.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(secret: &str) -> SecretFile {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "qrpush-gateway-secret-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Relaxed)
        ));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        SecretFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A gateway for `redis` whose current secret is `secret`; waits until it is subscribed.
async fn gateway(redis: &RedisServer, secret: &str, flags: &[&str]) -> Gateway {
    let url = redis.url();
    let mut all = vec!["--listen", "127.0.0.1:0", "--redis-url", url.as_str()];
    all.extend_from_slice(&["--redis-timeout", "1s", "--shutdown-timeout", "2s"]);
    all.extend_from_slice(flags);
    let settings = Settings::from_flags(all, secret).expect("settings");
    let gw = qrpush_gateway::start(settings).await.expect("start");
    wait_for("the gateway to subscribe", || {
        gw.metrics().subscriptions.load(Relaxed) == 1
    })
    .await;
    gw
}

/// PHP with `gateway_secret` = `secret`.
fn php(redis: &RedisServer, secret: &str) -> Arc<Client> {
    Arc::new(Client::new(redis.config(&[("gateway_secret", secret)])))
}

async fn start_login(client: &Arc<Client>) -> Started {
    let c = client.clone();
    tokio::task::spawn_blocking(move || Login::new(&c).start("127.0.0.1", "test").expect("start"))
        .await
        .unwrap()
}

fn token_of(started: &Started) -> String {
    started
        .gateway_token
        .as_ref()
        .expect("a token")
        .expose()
        .to_string()
}

async fn connect(gw: &Gateway, token: &str) -> Ws {
    let url = format!("ws://{}/ws/?token={token}", gw.local_addr());
    let (ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// The next message: `Ok(json)` for a text, `Err((code, reason))` for the close frame.
async fn next(ws: &mut Ws) -> Result<Json, (u16, String)> {
    loop {
        match tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(Some(frame)))) => {
                return Err((u16::from(frame.code), frame.reason.to_string()))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a message or a close frame, got {other:?}"),
        }
    }
}

/// The socket is accepted: its first message is the status.
async fn accepted(ws: &mut Ws) {
    let status = next(ws).await.expect("the status, not a close");
    assert_eq!(status["type"], "status");
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_keeps_the_reconnects_of_tokens_signed_before() {
    let redis = RedisServer::start();
    let old_file = SecretFile::new(OLD);

    // Before: PHP and the gateway share the old secret; a browser follows its login.
    let before = gateway(&redis, OLD, &[]).await;
    let old_php = php(&redis, OLD);
    let login = start_login(&old_php).await;
    let old_token = token_of(&login);
    assert!(
        old_token.contains(&format!(".{}.", Key::new(OLD.as_bytes()).id())),
        "the token names its key: {old_token}"
    );
    let mut ws = connect(&before, &old_token).await;
    accepted(&mut ws).await;

    // Step 1: the gateways restart with the new secret, the old one as the previous. The browser
    // is closed with 1001 and reconnects with the token it has: still accepted.
    let during = gateway(&redis, NEW, &["--previous-secret-file", old_file.path()]).await;
    before.stop().await;
    assert_eq!(next(&mut ws).await.unwrap_err().0, 1001);
    let mut ws = connect(&during, &old_token).await;
    accepted(&mut ws).await;
    assert_eq!(during.metrics().previous_key.load(Relaxed), 1);

    // Step 2: PHP signs with the new secret; both kinds of token work, events flow.
    let new_php = php(&redis, NEW);
    let fresh = start_login(&new_php).await;
    let mut ws_new = connect(&during, &token_of(&fresh)).await;
    accepted(&mut ws_new).await;
    assert_eq!(
        during.metrics().previous_key.load(Relaxed),
        1,
        "counted once"
    );
    let qr = login.qr.expose().to_string();
    let c = old_php.clone();
    tokio::task::spawn_blocking(move || Login::new(&c).scan(&qr, "alice", "phone").unwrap())
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "scanned");

    // Step 3: the previous secret is dropped; its tokens are refused, the new ones are not.
    let after = gateway(&redis, NEW, &[]).await;
    let mut refused = connect(&after, &old_token).await;
    assert_eq!(
        next(&mut refused).await.unwrap_err(),
        (4001, "unknown token key".to_string())
    );
    let mut ws_new = connect(&after, &token_of(&fresh)).await;
    accepted(&mut ws_new).await;

    // A previous secret is validated like the current one.
    let short = SecretFile::new("short");
    let e = Settings::from_flags(["--previous-secret-file", short.path()], NEW).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the previous secret must be at least 16 bytes, got 5"
    );
    during.stop().await;
    after.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_is_checked_with_exactly_the_configured_clock_skew() {
    let redis = RedisServer::start();
    let key = Key::new(NEW.as_bytes());
    let php = php(&redis, NEW);
    let id = start_login(&php).await.status.id;
    let skewed = gateway(&redis, NEW, &["--clock-skew", "2s"]).await;

    // Expired 1 s ago on Redis's clock, as this gateway reads it: within the 2 s allowed, so
    // accepted, and closed when the allowance runs out (1 s from now).
    let expires_at = now_ms() - 1_000;
    let mut ws = connect(&skewed, &gateway_token::issue(&key, &id, expires_at)).await;
    accepted(&mut ws).await;
    let (code, reason) = next(&mut ws).await.unwrap_err();
    let at = now_ms();
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert!(
        at >= expires_at + 2_000,
        "closed {} ms early",
        expires_at + 2_000 - at
    );
    assert!(
        at < expires_at + 3_000,
        "closed {} ms late",
        at - expires_at - 2_000
    );

    // Expired 3 s ago: beyond the allowance, refused at the handshake.
    let mut ws = connect(&skewed, &gateway_token::issue(&key, &id, now_ms() - 3_000)).await;
    assert_eq!(
        next(&mut ws).await.unwrap_err(),
        (4001, "token expired".to_string())
    );

    // With no allowance, expired is expired.
    let exact = gateway(&redis, NEW, &["--clock-skew", "0s"]).await;
    let mut ws = connect(&exact, &gateway_token::issue(&key, &id, now_ms() - 1_000)).await;
    assert_eq!(next(&mut ws).await.unwrap_err().0, 4001);

    // The allowance is bounded, and the gateway measures Redis's clock against its own (here
    // one host: they agree within a second).
    let e = Settings::from_flags(["--clock-skew", "6m"], NEW).unwrap_err();
    assert_eq!(e.to_string(), "--clock-skew must be at most 5m");
    let metrics = skewed.metrics().render();
    let offset: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("qrpush_gateway_redis_clock_offset_seconds "))
        .expect("the offset gauge")
        .parse()
        .unwrap();
    assert!(offset.abs() < 1.0, "{offset}");
    skewed.stop().await;
    exact.stop().await;
}
