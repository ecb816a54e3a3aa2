// Unix only: the test topologies use signals (kill -9 of a node).
#![cfg(unix)]

//! The gateway on the real test topologies (qrpush-test-support): 1 primary + 1 replica +
//! 3 Sentinels, and a Redis Cluster of 3 primaries + 3 replicas, each on loopback ports.
//!
//! - Sentinel: a browser-like socket waiting on a login keeps getting its events after
//!   `SENTINEL FAILOVER` and after kill -9 of the primary, and after each move it first gets the
//!   login's current status (what was published while nobody listened is in it).
//! - Cluster: sockets whose channels live on all 3 shards each get their messages (SSUBSCRIBE on
//!   each slot's owner, checked with PUBSUB SHARDNUMSUB); a slot moved to another primary, a
//!   manual CLUSTER FAILOVER (the old primary demoted, its connections kept) and a
//!   killed primary replaced by its replica are all followed: the socket is subscribed again
//!   where the slot is now and keeps getting messages. The same for per-login channels of logins
//!   on all 3 shards: each socket gets its status again after its slot moved or its primary was
//!   killed, then its login's events.
//!
//! Run: `source scripts/lib.sh; qr_run "cargo test -q -p qrpush-gateway --test topologies"`.

mod common;

use common::{next_json, quick_gateway, wait_for, Ws, BOUND, SECRET};
use qrpush_test_support as support;

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qrpush_core::login::{Login, Started};
use qrpush_core::{channel_token, Client, Config, ErrorKind};
use qrpush_gateway::Gateway;
use serde_json::Value as Json;
use support::{ClusterTopology, RedisServer, SentinelTopology};

/// A failover after kill -9 takes the Sentinels' (or the Cluster's) detection time, then an
/// election: seconds, more on a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(40);

async fn gateway(url: &str, flags: &[&str]) -> Gateway {
    quick_gateway(url, ["50ms", "500ms"], flags).await
}

fn config(url: &str, settings: &[(&str, &str)]) -> Config {
    let mut config = Config::default();
    config.set("url", url).unwrap();
    config.set("gateway_secret", SECRET).unwrap();
    // Short bounds: calls during a failover fail fast and are retried by the test.
    config.set("connect_timeout", "0.5").unwrap();
    config.set("timeout", "0.5").unwrap();
    config.set("breaker_cooldown", "0").unwrap();
    for (name, value) in settings {
        config.set(name, value).unwrap();
    }
    config
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Whether `e` is how a call fails while a primary is being replaced: no connection, or on
/// Cluster a slot no primary serves yet (the core's CLUSTERDOWN), or a map still settling.
fn during_failover(e: &qrpush_core::Error) -> bool {
    match e.kind() {
        ErrorKind::Connection | ErrorKind::Timeout => true,
        ErrorKind::Server => ["CLUSTERDOWN", "TRYAGAIN", "MOVED"]
            .iter()
            .any(|code| e.message().contains(code)),
        _ => false,
    }
}

/// Runs `op` until it succeeds, while it fails the way calls fail during a failover; returns how
/// many attempts failed.
fn until_served<T>(what: &str, mut op: impl FnMut() -> qrpush_core::Result<T>) -> (T, u32) {
    let start = Instant::now();
    let mut failed = 0;
    loop {
        match op() {
            Ok(value) => return (value, failed),
            Err(e) if during_failover(&e) => {
                assert!(
                    start.elapsed() < FAILOVER_BOUND,
                    "{what}: still failing after {FAILOVER_BOUND:?}: {}",
                    e.message()
                );
                failed += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{what}: {:?}: {}", e.kind(), e.message()),
        }
    }
}

async fn connect(gw: &Gateway, token: &str) -> Ws {
    let url = format!("ws://{}/ws?token={token}", gw.local_addr());
    let (ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// The next message, waiting up to `bound` (a failover's length).
async fn next_within(ws: &mut Ws, bound: Duration) -> Json {
    tokio::time::timeout(bound, next_json(ws))
        .await
        .expect("a message within the failover bound")
}

fn state_of(message: &Json) -> String {
    if message["type"] == "status" {
        message["data"]["state"].as_str().unwrap().to_string()
    } else {
        message["type"].as_str().unwrap().to_string()
    }
}

fn kind_and_seq(message: &Json) -> (String, i64) {
    (
        message["type"].as_str().unwrap_or("").to_string(),
        message["seq"].as_i64().unwrap_or(-1),
    )
}

fn int(value: &redis::Value) -> i64 {
    match value {
        redis::Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// Subscribers of `channel` on `node`: `PUBSUB NUMSUB` or, for a sharded one, `SHARDNUMSUB`.
fn subscribers(node: &RedisServer, channel: &str, sharded: bool) -> i64 {
    let command = if sharded { "SHARDNUMSUB" } else { "NUMSUB" };
    match node.cmd(&["PUBSUB", command, channel]) {
        redis::Value::Array(items) => int(&items[1]),
        other => panic!("PUBSUB {command}: {other:?}"),
    }
}

// ---- Sentinel ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sentinel_a_waiting_socket_follows_a_failover_and_a_killed_primary() {
    let mut topology = blocking(SentinelTopology::start).await;
    let url = topology.url();
    let gw = gateway(&url, &["--channel-mode", "per_login"]).await;
    let client = Arc::new(Client::new(config(
        &url,
        &[("login_channel_mode", "per_login")],
    )));
    let c = client.clone();
    let started: Started =
        blocking(move || Login::new(&c).start("127.0.0.1", "test").expect("start")).await;
    let id = started.status.id.clone();
    let channel = Login::new(&client).channel(&id);
    let token = started.gateway_token.as_ref().unwrap().expose().to_string();
    let mut ws = connect(&gw, &token).await;
    assert_eq!(state_of(&next_json(&mut ws).await), "pending");
    let first = topology.primary_port();
    assert_eq!(subscribers(topology.node(first), &channel, false), 1);

    // An event while the first primary serves.
    let (c, qr) = (client.clone(), started.qr.expose().to_string());
    blocking(move || Login::new(&c).scan(&qr, "alice", "phone").expect("scan")).await;
    let m = next_json(&mut ws).await;
    assert_eq!(kind_and_seq(&m), ("scanned".into(), 2));

    // SENTINEL FAILOVER: the Sentinels name the new primary at once, while the old one goes on
    // saying "master" until Sentinel reconfigures it about 10 s later. The gateway asks the
    // Sentinels again every sentinel_check_interval (1 s), leaves the old node, subscribes on
    // the new primary, and first re-sends the status — well before that reconfiguration.
    let reconnects = gw.metrics().redis_reconnects.load(Relaxed);
    let failover_at = Instant::now();
    let second = tokio::task::block_in_place(|| topology.begin_failover());
    assert_ne!(second, first);
    let m = next_within(&mut ws, FAILOVER_BOUND).await;
    let switched = failover_at.elapsed();
    // Before the kill below: the old primary must replicate from the new one first.
    tokio::task::block_in_place(|| topology.wait_settled(second));
    assert_eq!(kind_and_seq(&m), ("status".into(), 2), "{m}");
    assert!(
        switched < Duration::from_secs(7),
        "the status came {switched:?} after SENTINEL FAILOVER: the gateway waited for the \
         old primary's demotion instead of asking the Sentinels"
    );
    assert_eq!(state_of(&m), "scanned");
    assert!(gw.metrics().redis_reconnects.load(Relaxed) > reconnects);
    wait_for("the subscription on the new primary", || {
        subscribers(topology.node(second), &channel, false) == 1
    })
    .await;

    // kill -9 of the new primary: the gateway backs off until the Sentinels promote the other
    // node, subscribes there and re-sends the status again.
    let victim = topology
        .nodes()
        .iter()
        .position(|n| n.port() == second)
        .unwrap();
    let killed_at = Instant::now();
    topology.nodes_mut()[victim].stop();
    let m = next_within(&mut ws, FAILOVER_BOUND).await;
    let window = killed_at.elapsed();
    assert_eq!(kind_and_seq(&m), ("status".into(), 2), "{m}");
    assert_eq!(state_of(&m), "scanned");
    assert_eq!(
        subscribers(topology.node(first), &channel, false),
        1,
        "subscribed on the promoted node"
    );

    // Events flow again: the approval reaches the socket, which then closes (a final state).
    let (c, login) = (client.clone(), id.clone());
    let (_, failed) = blocking(move || {
        until_served("approve", || {
            Login::new(&c).approve(&login, "alice", "Alice")
        })
    })
    .await;
    let m = next_json(&mut ws).await;
    assert_eq!(kind_and_seq(&m), ("approved".into(), 3), "{m}");
    eprintln!(
        "gateway on Sentinel: status re-sent {switched:?} after SENTINEL FAILOVER and \
         {window:?} after kill -9 of the primary; the approve needed {failed} retries"
    );
    gw.stop().await;
}

// ---- Cluster ----------------------------------------------------------------------------------

/// `CLUSTER FAILOVER` on the replica on `replica`, until it owns `slot` and the Cluster has
/// settled. The command only starts a manual failover, which gives up after a few
/// seconds when the replica cannot catch up in time (a loaded machine): then it is asked again.
fn manual_failover(cluster: &ClusterTopology, replica: u16, slot: u16) {
    for _ in 0..3 {
        match cluster.node(replica).cmd(&["CLUSTER", "FAILOVER"]) {
            redis::Value::Okay => {}
            other => panic!("CLUSTER FAILOVER: {other:?}"),
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if cluster.owner_of_slot(slot).port() == replica {
                cluster.wait_settled();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("the replica on {replica} did not take over after 3 CLUSTER FAILOVERs");
}

/// The port of a running replica of the primary on `primary`.
fn replica_of(cluster: &ClusterTopology, primary: u16) -> u16 {
    let wanted = format!("master_port:{primary}\r\n");
    cluster
        .nodes()
        .iter()
        .filter(|n| n.is_running() && n.port() != primary)
        .find(|n| {
            let info = match n.cmd(&["INFO", "replication"]) {
                redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                redis::Value::VerbatimString { text, .. } => text,
                other => panic!("INFO replication: {other:?}"),
            };
            info.contains("role:slave") && info.contains(&wanted)
        })
        .map(|n| n.port())
        .unwrap_or_else(|| panic!("no replica of {primary}"))
}

/// A subscription token for `channels` (general channels, signed like `QrPush::subscriptionToken`).
fn channel_token_for(client: &Client, channels: &[&str]) -> String {
    channel_token::issue_for(
        client.config(),
        channels,
        Duration::from_secs(600),
        None,
        common::now_ms(),
    )
    .expect("token")
    .expose()
    .to_string()
}

/// Reads until each of `channels` said `ready` (a `resync` before it is expected: plain
/// publishes have no stream to replay), within `bound`.
async fn until_ready(ws: &mut Ws, channels: &[&str], bound: Duration) {
    let mut waiting: HashSet<&str> = channels.iter().copied().collect();
    while !waiting.is_empty() {
        let m = next_within(ws, bound).await;
        match m["type"].as_str() {
            Some("ready") => {
                waiting.remove(m["channel"].as_str().unwrap());
            }
            Some("resync") => {}
            _ => panic!("expected ready/resync for {waiting:?}, got {m}"),
        }
    }
}

/// Publishes `message` on `channel` (SPUBLISH to the slot's owner), retrying while the
/// Cluster has no owner for it; returns the failed attempts.
async fn publish(client: &Arc<Client>, channel: &str, message: &str) -> u32 {
    let (c, channel, message) = (client.clone(), channel.to_string(), message.to_string());
    blocking(move || {
        until_served("publish", || {
            c.publish(channel.as_bytes(), message.as_bytes())
        })
        .1
    })
    .await
}

async fn expect_message(ws: &mut Ws, channel: &str, data: &str) {
    let m = next_json(ws).await;
    assert_eq!(
        (
            m["type"].as_str(),
            m["channel"].as_str(),
            m["data"].as_str()
        ),
        (Some("message"), Some(channel), Some(data)),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cluster_each_channel_is_followed_on_its_shard_through_a_slot_move_and_a_killed_primary()
{
    let mut cluster = blocking(ClusterTopology::start).await;
    let url = cluster.url();
    let gw = gateway(&url, &[]).await;
    let client = Arc::new(Client::new(config(&url, &[])));
    let ports: Vec<u16> = cluster.primaries().iter().map(|n| n.port()).collect();
    assert_eq!(ports.len(), 3);
    let names: Vec<String> = ports.iter().map(|p| cluster.name_on(*p, "news-")).collect();
    let channels: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut ws = connect(&gw, &channel_token_for(&client, &channels)).await;
    until_ready(&mut ws, &channels, BOUND).await;

    // Each channel is SSUBSCRIBEd on its own shard's primary, and only there.
    for (channel, port) in channels.iter().zip(&ports) {
        for node in cluster.primaries() {
            let want = i64::from(node.port() == *port);
            assert_eq!(
                subscribers(node, channel, true),
                want,
                "{channel} on {}",
                node.port()
            );
        }
    }
    for channel in &channels {
        publish(&client, channel, &format!("hello {channel}")).await;
        expect_message(&mut ws, channel, &format!("hello {channel}")).await;
    }

    // A slot move (what `redis-cli --cluster reshard` does, one slot): the old owner drops the
    // subscription (its `sunsubscribe` push); the gateway subscribes on the new owner.
    let moved = channels[0];
    let slot = cluster.slot_of(moved);
    let to = ports[1];
    tokio::task::block_in_place(|| cluster.move_slot(slot, to));
    until_ready(&mut ws, &[moved], BOUND).await;
    assert_eq!(subscribers(cluster.node(to), moved, true), 1);
    assert_eq!(subscribers(cluster.node(ports[0]), moved, true), 0);
    publish(&client, moved, "after the move").await;
    expect_message(&mut ws, moved, "after the move").await;

    // A manual CLUSTER FAILOVER of the second shard (now holding channels 0 and 1): its old
    // primary turns replica without closing a connection and drops its shard subscriptions
    // (`sunsubscribe` pushes, as Redis 8 does); the gateway subscribes both on the promoted node.
    let promoted = replica_of(&cluster, to);
    tokio::task::block_in_place(|| manual_failover(&cluster, promoted, slot));
    until_ready(&mut ws, &channels[..2], BOUND).await;
    for channel in &channels[..2] {
        // `ready` may come first from a resubscription on the demoted node, if the slot map read
        // right after its `sunsubscribe` still named it (a replica delivers shard messages too);
        // its ROLE then sends the gateway to the promoted node.
        wait_for("the subscription on the promoted node", || {
            subscribers(cluster.node(promoted), channel, true) == 1
        })
        .await;
        publish(&client, channel, "after the manual failover").await;
        expect_message(&mut ws, channel, "after the manual failover").await;
    }

    // kill -9 of the primary of channels[2]: after its replica is promoted, the gateway
    // subscribes there and messages flow again; the other shards never stopped.
    let victim_port = ports[2];
    let killed = channels[2];
    let victim = cluster
        .nodes()
        .iter()
        .position(|n| n.port() == victim_port)
        .unwrap();
    let killed_at = Instant::now();
    cluster.nodes_mut()[victim].stop();
    publish(&client, channels[1], "during the failover").await;
    expect_message(&mut ws, channels[1], "during the failover").await;
    until_ready(&mut ws, &[killed], FAILOVER_BOUND).await;
    let window = killed_at.elapsed();
    let failed = publish(&client, killed, "after the promotion").await;
    expect_message(&mut ws, killed, "after the promotion").await;
    let promoted = cluster.owner_of(killed).port();
    assert_ne!(promoted, victim_port);
    assert_eq!(subscribers(cluster.node(promoted), killed, true), 1);
    eprintln!(
        "gateway on Cluster: subscribed again {window:?} after kill -9 of a primary; \
         the next publish needed {failed} retries"
    );
    gw.stop().await;
}

/// With `cluster_publish = global` on both sides, classic PUBLISH reaches every node: the
/// gateway SUBSCRIBEs on one node (its home), not per shard, and gets messages of every slot;
/// when that node is demoted (a manual failover), ROLE tells, and it subscribes on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cluster_in_global_mode_one_subscribe_gets_every_channel() {
    let cluster = blocking(ClusterTopology::start).await;
    let url = cluster.url();
    let gw = gateway(&url, &["--cluster-publish", "global"]).await;
    let client = Arc::new(Client::new(config(&url, &[("cluster_publish", "global")])));
    let ports: Vec<u16> = cluster.primaries().iter().map(|n| n.port()).collect();
    let names: Vec<String> = ports.iter().map(|p| cluster.name_on(*p, "feed-")).collect();
    let channels: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut ws = connect(&gw, &channel_token_for(&client, &channels)).await;
    until_ready(&mut ws, &channels, BOUND).await;
    for channel in &channels {
        let on: Vec<i64> = cluster
            .primaries()
            .iter()
            .map(|n| subscribers(n, channel, false) + subscribers(n, channel, true))
            .collect();
        assert_eq!(on.iter().sum::<i64>(), 1, "{channel}: {on:?}");
        publish(&client, channel, "global").await;
        expect_message(&mut ws, channel, "global").await;
    }

    // A manual CLUSTER FAILOVER of the home node's shard: the old primary keeps its connections
    // and its classic subscriptions (it still gets every message as a replica), but its ROLE now
    // says "slave": the gateway leaves it and subscribes on a primary again.
    let home = cluster.owner_of_slot(0).port();
    assert_eq!(subscribers(cluster.node(home), channels[0], false), 1);
    let promoted = replica_of(&cluster, home);
    tokio::task::block_in_place(|| manual_failover(&cluster, promoted, 0));
    until_ready(&mut ws, &channels, BOUND).await;
    wait_for("the old primary to lose the subscriptions", || {
        channels
            .iter()
            .all(|c| subscribers(cluster.node(home), c, false) == 0)
    })
    .await;
    for channel in &channels {
        assert_eq!(subscribers(cluster.node(promoted), channel, false), 1);
        publish(&client, channel, "after the failover").await;
        expect_message(&mut ws, channel, "after the failover").await;
    }
    gw.stop().await;
}

/// Per-login channels of logins whose slots are on all 3 shards: each socket gets its login's
/// status and events through the SSUBSCRIBE on its own shard; a moved slot (the login's key moves
/// with its channel) and a killed primary each end with the status re-sent, then the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cluster_logins_on_every_shard_reach_their_sockets_through_a_slot_move_and_a_killed_primary(
) {
    let mut cluster = blocking(ClusterTopology::start).await;
    let url = cluster.url();
    let gw = gateway(&url, &["--channel-mode", "per_login"]).await;
    let client = Arc::new(Client::new(config(
        &url,
        &[("login_channel_mode", "per_login")],
    )));
    let ports: Vec<u16> = cluster.primaries().iter().map(|n| n.port()).collect();
    // One login per shard: start logins until each primary owns one's channel.
    let mut logins: Vec<Option<(Started, String)>> = vec![None, None, None];
    for _ in 0..200 {
        if logins.iter().all(Option::is_some) {
            break;
        }
        let c = client.clone();
        let started: Started =
            blocking(move || Login::new(&c).start("127.0.0.1", "test").expect("start")).await;
        let channel = Login::new(&client).channel(&started.status.id);
        let owner = cluster.owner_of(&channel).port();
        let shard = ports.iter().position(|p| *p == owner).unwrap();
        if logins[shard].is_none() {
            logins[shard] = Some((started, channel));
        }
    }
    let logins: Vec<(Started, String)> = logins
        .into_iter()
        .map(|l| l.expect("a login per shard"))
        .collect();
    let mut sockets = Vec::new();
    for (started, channel) in &logins {
        let token = started.gateway_token.as_ref().unwrap().expose().to_string();
        let mut ws = connect(&gw, &token).await;
        assert_eq!(state_of(&next_json(&mut ws).await), "pending");
        let owner = cluster.owner_of(channel);
        assert_eq!(
            subscribers(owner, channel, true),
            1,
            "{channel} on {}",
            owner.port()
        );
        sockets.push(ws);
    }
    for ((started, _), ws) in logins.iter().zip(&mut sockets) {
        let (c, qr) = (client.clone(), started.qr.expose().to_string());
        blocking(move || Login::new(&c).scan(&qr, "alice", "phone").expect("scan")).await;
        assert_eq!(kind_and_seq(&next_json(ws).await), ("scanned".into(), 2));
    }

    // The first login's slot moves to the second shard's primary (its key moves with it).
    let slot = cluster.slot_of(&logins[0].1);
    tokio::task::block_in_place(|| cluster.move_slot(slot, ports[1]));
    let m = next_json(&mut sockets[0]).await;
    assert_eq!(
        (kind_and_seq(&m), state_of(&m)),
        (("status".into(), 2), "scanned".into()),
        "{m}"
    );
    assert_eq!(subscribers(cluster.node(ports[1]), &logins[0].1, true), 1);

    // kill -9 of the third shard's primary: its replica is promoted, the status is re-sent.
    let victim = cluster
        .nodes()
        .iter()
        .position(|n| n.port() == ports[2])
        .unwrap();
    let killed_at = Instant::now();
    cluster.nodes_mut()[victim].stop();
    let m = next_within(&mut sockets[2], FAILOVER_BOUND).await;
    let window = killed_at.elapsed();
    assert_eq!(
        (kind_and_seq(&m), state_of(&m)),
        (("status".into(), 2), "scanned".into()),
        "{m}"
    );

    // Every login completes, each on its socket.
    for ((started, _), ws) in logins.iter().zip(&mut sockets) {
        let (c, id) = (client.clone(), started.status.id.clone());
        blocking(move || until_served("approve", || Login::new(&c).approve(&id, "alice", "Alice")))
            .await;
        assert_eq!(kind_and_seq(&next_json(ws).await), ("approved".into(), 3));
    }
    eprintln!("gateway on Cluster, logins: status re-sent {window:?} after kill -9 of a primary");
    gw.stop().await;
}
