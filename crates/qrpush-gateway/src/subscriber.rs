//! The one Pub/Sub connection to Redis: keeps the subscribed channels equal to what the hub wants,
//! dispatches every message, and on any loss reconnects with exponential backoff (with jitter),
//! resubscribes, and re-sends every login's status (what was published meanwhile is lost to
//! Pub/Sub, but not its outcome: the status carries it).

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use qrpush_core::endpoint::{Address, Endpoint};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::socket::now_ms;
use crate::status::{self, StatusReader};
use crate::Settings;

/// The redis crate's connection info for the core's parsed endpoint (one URL parser for both).
pub fn connection_info(endpoint: &Endpoint) -> anyhow::Result<redis::ConnectionInfo> {
    let addr = match &endpoint.address {
        Address::Tcp { host, port } => ConnectionAddr::Tcp(host.clone(), *port),
        Address::Unix { path } => ConnectionAddr::Unix(path.into()),
        #[allow(unreachable_patterns)]
        _ => anyhow::bail!(
            "the gateway supports redis:// and unix:// URLs (Redis on a trusted network), not {}",
            endpoint.redacted_url()
        ),
    };
    let mut redis = RedisConnectionInfo::default().set_db(endpoint.db.into());
    if let Some(user) = &endpoint.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &endpoint.password {
        redis = redis.set_password(password.expose());
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// Runs until `cancel`: connect, subscribe, dispatch; on loss back off and start over.
pub async fn run(
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    reader: Arc<StatusReader>,
    metrics: Arc<Metrics>,
    client: redis::Client,
    cancel: CancellationToken,
) {
    let mut backoff = settings.redis_backoff_min;
    let mut connected_before = false;
    let label = settings.core.endpoint.label();
    while !cancel.is_cancelled() {
        let attempt = tokio::time::timeout(settings.redis_timeout, client.get_async_pubsub());
        let pubsub = tokio::select! {
            _ = cancel.cancelled() => return,
            r = attempt => r,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                metrics.redis_connected.store(1, Relaxed);
                if connected_before {
                    metrics.redis_reconnects.fetch_add(1, Relaxed);
                }
                connected_before = true;
                tracing::info!(redis = %label, "connected to Redis");
                tokio::spawn(measure_clock(
                    client.clone(),
                    settings.redis_timeout,
                    settings.clock_skew,
                    metrics.clone(),
                ));
                let why = session(&settings, &hub, &reader, &metrics, pubsub, &cancel, || {
                    backoff = settings.redis_backoff_min
                })
                .await;
                hub.connection_lost();
                metrics.redis_connected.store(0, Relaxed);
                metrics.subscriptions.store(0, Relaxed);
                if cancel.is_cancelled() {
                    return;
                }
                tracing::warn!(redis = %label, reason = %why, "lost the Redis Pub/Sub connection");
            }
            Ok(Err(e)) => {
                metrics.redis_connect_failures.fetch_add(1, Relaxed);
                tracing::warn!(redis = %label, error = %e, retry_in = ?backoff, "cannot connect to Redis");
            }
            Err(_) => {
                metrics.redis_connect_failures.fetch_add(1, Relaxed);
                tracing::warn!(redis = %label, retry_in = ?backoff, "connecting to Redis timed out");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(jitter(backoff)) => {}
        }
        backoff = (backoff * 2).min(settings.redis_backoff_max);
    }
}

/// Measures Redis's clock against ours (TIME, on a connection of its own) into the metrics, and
/// warns when they differ by more than `skew`: token expiry is set on Redis's clock and checked on
/// ours, with `skew` allowed. A failed measurement changes nothing (it is only a diagnostic).
async fn measure_clock(
    client: redis::Client,
    bound: Duration,
    skew: Duration,
    metrics: Arc<Metrics>,
) {
    let measure = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        let before = now_ms();
        let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let after = now_ms();
        // Redis read its clock somewhere in between: assume the middle.
        let redis_ms = seconds as f64 * 1000.0 + micros as f64 / 1000.0;
        Ok::<f64, redis::RedisError>(redis_ms - (before + after) / 2.0)
    };
    match tokio::time::timeout(bound, measure).await {
        Ok(Ok(offset_ms)) => {
            metrics
                .redis_clock_offset_ms
                .store(offset_ms.round() as i64, Relaxed);
            if offset_ms.abs() > skew.as_secs_f64() * 1000.0 {
                tracing::warn!(
                    offset_ms = offset_ms.round() as i64,
                    clock_skew = ?skew,
                    "this host's clock and Redis's differ by more than --clock-skew: gateway tokens \
                     may be refused before they expire or accepted after; synchronise the clocks (NTP)"
                );
            } else {
                tracing::debug!(
                    offset_ms = offset_ms.round() as i64,
                    "clock offset from Redis"
                );
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot read Redis's clock (TIME)"),
        Err(_) => tracing::debug!("reading Redis's clock (TIME) timed out"),
    }
}

/// 75–125 % of `d`, so that many gateways do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
}

/// One connection's life; returns why it ended.
async fn session(
    settings: &Settings,
    hub: &Arc<Hub>,
    reader: &Arc<StatusReader>,
    metrics: &Arc<Metrics>,
    pubsub: redis::aio::PubSub,
    cancel: &CancellationToken,
    mut on_subscribed: impl FnMut(),
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut current: HashSet<String> = HashSet::new();
    let mut ping = tokio::time::interval(settings.redis_ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let bound = settings.redis_timeout;
    loop {
        // Bring the subscriptions in line with what the sockets need.
        let wanted = hub.wanted_channels();
        let gone: Vec<String> = current.difference(&wanted).cloned().collect();
        if !gone.is_empty() {
            hub.unconfirm(&gone);
            match tokio::time::timeout(bound, sink.unsubscribe(&gone)).await {
                Ok(Ok(())) => {
                    for c in &gone {
                        current.remove(c);
                    }
                }
                Ok(Err(e)) => return format!("UNSUBSCRIBE failed: {e}"),
                Err(_) => return "UNSUBSCRIBE timed out".to_string(),
            }
        }
        let new: Vec<String> = wanted.difference(&current).cloned().collect();
        if !new.is_empty() {
            match tokio::time::timeout(bound, sink.subscribe(&new)).await {
                Ok(Ok(())) => {
                    current.extend(new.iter().cloned());
                    on_subscribed();
                    for (login_id, peer_ids) in hub.confirm(&new) {
                        tokio::spawn(status::deliver(
                            hub.clone(),
                            reader.clone(),
                            metrics.clone(),
                            login_id,
                            peer_ids,
                        ));
                    }
                }
                Ok(Err(e)) => return format!("SUBSCRIBE failed: {e}"),
                Err(_) => return "SUBSCRIBE timed out".to_string(),
            }
        }
        metrics.subscriptions.store(current.len() as i64, Relaxed);

        tokio::select! {
            biased;
            _ = cancel.cancelled() => return "shutting down".to_string(),
            message = stream.next() => match message {
                Some(message) => {
                    hub.dispatch(message.get_channel_name(), message.get_payload_bytes());
                    // Drain what is already buffered before looking at subscriptions again.
                    while let Some(Some(message)) = stream.next().now_or_never() {
                        hub.dispatch(message.get_channel_name(), message.get_payload_bytes());
                    }
                }
                None => return "the connection closed".to_string(),
            },
            _ = hub.changed.notified() => {}
            _ = ping.tick() => {
                match tokio::time::timeout(bound, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING failed: {e}"),
                    Err(_) => return "PING timed out".to_string(),
                }
            }
        }
    }
}
