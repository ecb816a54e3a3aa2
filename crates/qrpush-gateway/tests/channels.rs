//! General channels (subscription tokens) against a real redis-server: live delivery of durable
//! and plain publishes, the replay of what a browser missed while the gateway was down (exactly
//! the missed events, in order, then live ones), resync when history is gone (trimmed stream,
//! stream made again), private channels, refusals, no gap and no duplicate under a concurrent
//! publisher, and a Redis restart.
//!
//! Run: `source scripts/lib.sh; qr_run "cargo test -q -p qrpush-gateway --test channels"`.

mod common;

use common::{close_code, next_json, now_ms, quick_gateway, wait_for, Ws, BOUND, SECRET};
use qrpush_test_support as support;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qrpush_core::channel_token;
use qrpush_core::login::gateway_token::Key;
use qrpush_core::{Client, Durable};
use qrpush_gateway::Gateway;
use serde_json::Value as Json;
use support::RedisServer;
use tokio_tungstenite::tungstenite::Message;

async fn gateway(redis: &RedisServer) -> Gateway {
    gateway_with(redis, &[]).await
}

async fn gateway_with(redis: &RedisServer, extra: &[&str]) -> Gateway {
    quick_gateway(&redis.url(), ["20ms", "200ms"], extra).await
}

fn client(redis: &RedisServer, extra: &[(&str, &str)]) -> Arc<Client> {
    let mut settings = vec![("gateway_secret", SECRET)];
    settings.extend_from_slice(extra);
    Arc::new(Client::new(redis.config(&settings)))
}

fn token(client: &Client, channels: &[&str], user: Option<&str>) -> String {
    channel_token::issue_for(
        client.config(),
        channels,
        Duration::from_secs(600),
        user,
        now_ms(),
    )
    .expect("token")
    .expose()
    .to_string()
}

async fn connect(gw: &Gateway, token: &str, since: &[String]) -> Ws {
    let mut url = format!("ws://{}/ws?token={token}", gw.local_addr());
    for s in since {
        url.push_str("&since=");
        url.push_str(&s.replace('#', "%23").replace(',', "%2C"));
    }
    let (ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// Nothing arrives within `wait`.
async fn assert_quiet(ws: &mut Ws, wait: Duration) {
    if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(wait, ws.next()).await {
        panic!("unexpected message: {text}");
    }
}

async fn publish_durable(client: &Arc<Client>, channel: &str, message: String) -> (String, String) {
    let (c, channel) = (client.clone(), channel.to_string());
    tokio::task::spawn_blocking(move || {
        let p = Durable::new(&c)
            .publish(channel.as_bytes(), message.as_bytes())
            .expect("durable publish");
        (p.epoch, p.offset.to_string())
    })
    .await
    .unwrap()
}

fn since(epoch: &str, offset: &str, channel: &str) -> String {
    format!("{epoch}:{offset}:{channel}")
}

/// Reads `ready` for `channel` and returns its position.
async fn ready(ws: &mut Ws, channel: &str) -> (Json, Json) {
    let m = next_json(ws).await;
    assert_eq!(m["type"], "ready", "{m}");
    assert_eq!(m["channel"], channel);
    (m["epoch"].clone(), m["offset"].clone())
}

// ---- tests ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_durable_and_plain_messages_reach_the_socket() {
    let redis = RedisServer::start();
    let gw = gateway(&redis).await;
    let c = client(&redis, &[]);
    let mut ws = connect(&gw, &token(&c, &["news"], None), &[]).await;
    assert_eq!(ready(&mut ws, "news").await, (Json::Null, Json::Null));

    let (epoch, offset) = publish_durable(&c, "news", r#"{"title":"hi"}"#.into()).await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        m,
        serde_json::json!({"type":"message","channel":"news","epoch":epoch,"offset":offset,"data":{"title":"hi"}})
    );
    publish_durable(&c, "news", "plain text, \"quoted\"".into()).await;
    assert_eq!(next_json(&mut ws).await["data"], "plain text, \"quoted\"");
    // A plain PUBLISH on the channel: no position.
    let c2 = c.clone();
    tokio::task::spawn_blocking(move || c2.publish(b"news", b"[1,2]").unwrap())
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        serde_json::json!({"type":"message","channel":"news","data":[1,2]})
    );
    // Another channel is not delivered.
    publish_durable(&c, "sports", "x".into()).await;
    assert_quiet(&mut ws, Duration::from_millis(200)).await;
    gw.stop().await;
}

/// The acceptance scenario: the gateway is down while 100 events are published; a client that
/// reconnects with its last position gets exactly those 100, in order, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_restart_replays_exactly_the_missed_events_then_live_ones() {
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let channel = "notifications#42";
    let token = token(&c, &[channel], Some("42"));
    let gw = gateway(&redis).await;
    let mut ws = connect(&gw, &token, &[]).await;
    ready(&mut ws, channel).await;
    let (epoch, last) = publish_durable(&c, channel, r#"{"n":0}"#.into()).await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["epoch"].as_str(), m["offset"].as_str()),
        (Some(&*epoch), Some(&*last))
    );

    gw.stop().await;
    assert_eq!(close_code(&mut ws).await, Some(1001));
    let mut missed = Vec::new();
    for n in 1..=100 {
        missed.push(
            publish_durable(&c, channel, format!(r#"{{"n":{n}}}"#))
                .await
                .1,
        );
    }

    let gw = gateway(&redis).await;
    let mut ws = connect(&gw, &token, &[since(&epoch, &last, channel)]).await;
    for (n, offset) in (1..=100).zip(&missed) {
        let m = next_json(&mut ws).await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["replayed"], true);
        assert_eq!(m["data"]["n"], n);
        assert_eq!(m["offset"].as_str(), Some(offset.as_str()));
        assert_eq!(m["epoch"].as_str(), Some(epoch.as_str()));
    }
    let (e, o) = ready(&mut ws, channel).await;
    assert_eq!(
        (e.as_str(), o.as_str()),
        (Some(&*epoch), Some(missed[99].as_str()))
    );
    let (_, live) = publish_durable(&c, channel, r#"{"n":101}"#.into()).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["data"]["n"], 101);
    assert_eq!(m["offset"].as_str(), Some(live.as_str()));
    assert!(m.get("replayed").is_none());
    assert_quiet(&mut ws, Duration::from_millis(200)).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_or_remade_stream_is_a_resync_not_a_silent_gap() {
    let redis = RedisServer::start();
    let c = client(&redis, &[("stream_maxlen", "10")]);
    let gw = gateway(&redis).await;
    let t = token(&c, &["news"], None);
    let (epoch, first) = publish_durable(&c, "news", "first".into()).await;
    // MAXLEN ~ trims whole nodes of 100 entries: 1000 more publishes trim the first one.
    for n in 0..1000 {
        publish_durable(&c, "news", format!("m{n}")).await;
    }
    let (_, head) = publish_durable(&c, "news", "head".into()).await;
    let mut ws = connect(&gw, &t, &[since(&epoch, &first, "news")]).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "resync", "{m}");
    assert_eq!(m["reason"], "offset_gone");
    assert_eq!(m["offset"].as_str(), Some(head.as_str()));
    assert_eq!(ready(&mut ws, "news").await.1.as_str(), Some(head.as_str()));
    drop(ws);

    // The stream made again: another epoch.
    redis.cmd(&["DEL", "qrpush:stream:{news}"]);
    let (new_epoch, new_head) = publish_durable(&c, "news", "again".into()).await;
    assert_ne!(new_epoch, epoch);
    let mut ws = connect(&gw, &t, &[since(&epoch, &head, "news")]).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "resync", "{m}");
    assert_eq!(m["reason"], "epoch_changed");
    assert_eq!(m["epoch"].as_str(), Some(new_epoch.as_str()));
    assert_eq!(m["offset"].as_str(), Some(new_head.as_str()));
    ready(&mut ws, "news").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_and_no_duplicate_while_a_publisher_runs_during_the_replay() {
    let gw = no_gap_and_no_duplicate(&[]).await;
    // Live messages after the replay were written by the fan-out itself.
    assert!(gw.metrics().fanout_direct.load(Relaxed) > 0);
    gw.stop().await;
}

/// The same with every message queued to the socket's task (the only way off Unix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_and_no_duplicate_with_queued_writes() {
    let gw = no_gap_and_no_duplicate(&["--fanout", "queue"]).await;
    assert_eq!(gw.metrics().fanout_direct.load(Relaxed), 0);
    assert!(gw.metrics().fanout_queued.load(Relaxed) > 0);
    gw.stop().await;
}

/// 600 messages: 300 before the socket connects, 300 published while it subscribes and replays.
async fn no_gap_and_no_duplicate(flags: &[&str]) -> Gateway {
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let gw = gateway_with(&redis, flags).await;
    let t = token(&c, &["feed"], None);
    let (epoch, start) = publish_durable(&c, "feed", "0".into()).await;
    for n in 1..=300 {
        publish_durable(&c, "feed", n.to_string()).await;
    }
    // A publisher keeps going while the socket connects, subscribes and replays.
    let publisher = {
        let c = c.clone();
        tokio::task::spawn_blocking(move || {
            for n in 301..=600 {
                Durable::new(&c)
                    .publish(b"feed", n.to_string().as_bytes())
                    .unwrap();
            }
        })
    };
    let mut ws = connect(&gw, &t, &[since(&epoch, &start, "feed")]).await;
    let mut seen = Vec::new();
    let mut offsets = Vec::new();
    while seen.len() < 600 {
        let m = next_json(&mut ws).await;
        match m["type"].as_str() {
            Some("message") => {
                seen.push(m["data"].as_i64().unwrap());
                offsets.push(m["offset"].as_str().unwrap().to_string());
            }
            Some("ready") => {}
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    publisher.await.unwrap();
    assert_eq!(seen, (1..=600).collect::<Vec<i64>>());
    let parsed: Vec<qrpush_core::durable::Offset> =
        offsets.iter().map(|o| o.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]));
    // Then live ones, once the socket is idle.
    for n in 601..=605 {
        publish_durable(&c, "feed", n.to_string()).await;
        let m = next_json(&mut ws).await;
        if m["type"] == "ready" {
            assert_eq!(next_json(&mut ws).await["data"], n);
        } else {
            assert_eq!(m["data"], n, "{m}");
        }
    }
    assert_quiet(&mut ws, Duration::from_millis(200)).await;
    gw
}

/// Frames far larger than a socket's buffers, to a socket that reads nothing for a while: the
/// fan-out writes what the socket takes, the socket's task writes the rest of a frame cut in
/// part and queues the others, and the late reader still gets every frame whole and in order
/// (a socket that reads at once gets them all too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_reads_late_gets_every_large_frame_whole_and_in_order() {
    const COUNT: usize = 64;
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let gw = gateway(&redis).await;
    let t = token(&c, &["big"], None);
    let mut prompt = connect(&gw, &t, &[]).await;
    ready(&mut prompt, "big").await;
    let mut late = connect(&gw, &t, &[]).await;
    ready(&mut late, "big").await;
    let message = |n: usize| format!("{n:04}-{}", "x".repeat(256 * 1024));
    let reader = tokio::spawn(async move {
        let mut offsets = Vec::new();
        for n in 0..COUNT {
            let m = next_json(&mut prompt).await;
            assert_eq!(m["data"].as_str().map(|d| d.len()), Some(5 + 256 * 1024));
            assert!(m["data"].as_str().unwrap().starts_with(&format!("{n:04}-")));
            offsets.push(m["offset"].as_str().unwrap().to_string());
        }
        (prompt, offsets)
    });
    for n in 0..COUNT {
        publish_durable(&c, "big", message(n)).await;
    }
    let (_prompt, prompt_offsets) = tokio::time::timeout(BOUND, reader).await.unwrap().unwrap();
    // 16 MiB is waiting for the late socket, more than loopback's buffers hold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut late_offsets = Vec::new();
    for n in 0..COUNT {
        let m = next_json(&mut late).await;
        assert_eq!(m["type"], "message", "{n}");
        assert_eq!(m["data"].as_str(), Some(message(n).as_str()), "frame {n}");
        late_offsets.push(m["offset"].as_str().unwrap().to_string());
    }
    assert_eq!(late_offsets, prompt_offsets);
    assert_quiet(&mut late, Duration::from_millis(200)).await;
    let metrics = gw.metrics();
    let (direct, partly, queued) = (
        metrics.fanout_direct.load(Relaxed),
        metrics.fanout_partly.load(Relaxed),
        metrics.fanout_queued.load(Relaxed),
    );
    eprintln!("fan-out writes: direct {direct}, partly {partly}, queued {queued}");
    assert!(
        direct > COUNT as u64,
        "the prompt socket's frames are written directly"
    );
    assert!(
        partly >= 1,
        "a frame was cut by the late socket's full buffer"
    );
    assert_eq!(direct + partly + queued, 2 * COUNT as u64);
    assert_eq!(metrics.dropped_slow.load(Relaxed), 0);
    assert_eq!(metrics.connections.load(Relaxed), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_replays_what_was_published_while_the_subscription_was_down() {
    let mut redis = RedisServer::start();
    let c = client(&redis, &[]);
    let gw = gateway(&redis).await;
    let mut ws = connect(&gw, &token(&c, &["news"], None), &[]).await;
    ready(&mut ws, "news").await;
    publish_durable(&c, "news", "before".into()).await;
    assert_eq!(next_json(&mut ws).await["data"], "before");
    // Without persistence the restarted Redis has no stream: the socket is told to resync.
    redis.restart();
    let deadline = Instant::now() + BOUND;
    loop {
        let c2 = c.clone();
        let ok = tokio::task::spawn_blocking(move || c2.ping().is_ok())
            .await
            .unwrap();
        if ok && gw.metrics().redis_connected.load(Relaxed) == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "redis did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "resync", "{m}");
    assert_eq!(m["reason"], "epoch_changed");
    ready(&mut ws, "news").await;
    publish_durable(&c, "news", "after".into()).await;
    assert_eq!(next_json(&mut ws).await["data"], "after");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_private_channels_and_login_channels() {
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let gw = gateway(&redis).await;
    // Forged: signed with another secret.
    let forged = channel_token::issue(
        &Key::new(b"another-secret-0123456789"),
        &["news"],
        None,
        now_ms() + 60_000,
    );
    let expired = channel_token::issue(
        &Key::new(SECRET.as_bytes()),
        &["news"],
        None,
        now_ms() - 60_000,
    );
    // A token the app could never issue: someone else's private channel.
    let not_theirs = channel_token::issue(
        &Key::new(SECRET.as_bytes()),
        &["notifications#42"],
        Some("43"),
        now_ms() + 60_000,
    );
    for (what, t) in [
        ("forged", forged),
        ("expired", expired),
        ("not theirs", not_theirs),
    ] {
        let mut ws = connect(&gw, &t, &[]).await;
        assert_eq!(close_code(&mut ws).await, Some(4001), "{what}");
    }
    // The QR login's channel, signed as a subscription token: 4003.
    let login = channel_token::issue(
        &Key::new(SECRET.as_bytes()),
        &["qr-login-events"],
        None,
        now_ms() + 60_000,
    );
    let mut ws = connect(&gw, &login, &[]).await;
    assert_eq!(close_code(&mut ws).await, Some(4003));
    // A malformed since: 4400.
    let good = token(&c, &["notifications#42"], Some("42"));
    let mut ws = connect(&gw, &good, &["e:01-0:notifications#42".into()]).await;
    assert_eq!(close_code(&mut ws).await, Some(4400));
    // The owner's socket gets its private channel.
    let mut ws = connect(&gw, &good, &[]).await;
    ready(&mut ws, "notifications#42").await;
    publish_durable(&c, "notifications#42", r#"{"unread":1}"#.into()).await;
    assert_eq!(next_json(&mut ws).await["data"]["unread"], 1);
    assert_eq!(gw.metrics().rejected_token.load(Relaxed), 5);
    gw.stop().await;
}

/// A channel socket's task polls its read side, its timers and the shutdown wait only when they
/// woke it, not for every message: pings still go out between messages, a socket that stops
/// answering is dropped, one that answers keeps getting every message in order, and a shutdown
/// still closes it with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_order_and_shutdown_close_on_a_channel_socket() {
    let redis = RedisServer::start();
    let gw = gateway_with(
        &redis,
        &["--ping-interval", "150ms", "--ping-timeout", "150ms"],
    )
    .await;
    let c = client(&redis, &[]);
    let t = token(&c, &["news"], None);
    let mut live = connect(&gw, &t, &[]).await;
    ready(&mut live, "news").await;
    // The silent one reads its `ready`, then never reads again: it never answers a ping.
    let mut silent = connect(&gw, &t, &[]).await;
    ready(&mut silent, "news").await;
    // The live one keeps reading (so tungstenite answers every ping).
    let reader = tokio::spawn(async move {
        let mut data = Vec::new();
        while data.len() < 6 {
            data.push(next_json(&mut live).await["data"].clone());
        }
        (live, data)
    });
    publish_durable(&c, "news", "0".into()).await;
    wait_for("the silent socket to be dropped", || {
        gw.metrics().dropped_heartbeat.load(Relaxed) == 1
    })
    .await;
    for i in 1..6 {
        tokio::time::sleep(Duration::from_millis(120)).await; // pings between the messages
        publish_durable(&c, "news", i.to_string()).await;
    }
    let (mut live, data) = tokio::time::timeout(BOUND, reader).await.unwrap().unwrap();
    assert_eq!(data, (0..6).map(Json::from).collect::<Vec<_>>());
    assert_eq!(gw.metrics().dropped_heartbeat.load(Relaxed), 1);
    assert_eq!(gw.metrics().connections.load(Relaxed), 1);
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(close_code(&mut live).await, Some(1001));
    tokio::time::timeout(BOUND, stopping)
        .await
        .unwrap()
        .unwrap();
}

/// Sockets connect and vanish (no close handshake) while a channel is fanned out: the fan-out
/// writes to borrowed descriptors, so one written after its socket's end could land on a new
/// connection reusing the number. Every new socket's handshake succeeds and it gets only whole
/// messages, in order, and its `ready`; the steady socket gets every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_come_and_go_during_a_fanout_never_get_a_foreign_frame() {
    const COUNT: i64 = 400;
    let redis = RedisServer::start();
    let c = client(&redis, &[]);
    let gw = gateway(&redis).await;
    let t = token(&c, &["churn"], None);
    let mut steady = connect(&gw, &t, &[]).await;
    ready(&mut steady, "churn").await;
    let publisher = {
        let c = c.clone();
        tokio::task::spawn_blocking(move || {
            for n in 1..=COUNT {
                c.publish(b"churn", n.to_string().as_bytes()).unwrap();
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let mut churned = 0;
    while !publisher.is_finished() {
        let mut ws = connect(&gw, &t, &[]).await;
        let mut last = 0;
        // Live messages held during the (empty) replay come before `ready`, then live ones.
        let mut after_ready = 0;
        while after_ready < 3 {
            let Ok(m) = tokio::time::timeout(Duration::from_millis(500), next_json(&mut ws)).await
            else {
                assert!(publisher.is_finished(), "a socket got nothing for 500 ms");
                break; // the last message was published before this socket subscribed
            };
            if m["type"] == "ready" {
                after_ready = 1;
                continue;
            }
            after_ready += (after_ready > 0) as i32;
            assert_eq!(m["type"], "message", "{m}");
            let n = m["data"].as_i64().expect("a whole message");
            assert!(n > last, "{n} after {last}");
            last = n;
            if n == COUNT {
                break;
            }
        }
        drop(ws);
        churned += 1;
    }
    publisher.await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < COUNT as usize {
        seen.push(next_json(&mut steady).await["data"].as_i64().unwrap());
    }
    assert_eq!(seen, (1..=COUNT).collect::<Vec<_>>());
    assert!(churned >= 10, "only {churned} sockets came and went");
    assert!(gw.metrics().fanout_direct.load(Relaxed) > COUNT as u64);
    gw.stop().await;
}
