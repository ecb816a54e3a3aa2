//! One browser's socket opened with a subscription token (`QrPush::subscriptionToken()`): the
//! general channels the token names, each with the replay of what the browser missed.
//!
//! ```text
//! /ws?token=c1…&since=<epoch>:<offset>:<channel>   (one `since` per channel to resume, optional)
//! → {"type":"message","channel":"news","epoch":"…","offset":"…","replayed":true,"data":…}  (missed)
//! → {"type":"resync","channel":"news","reason":"offset_gone","epoch":"…","offset":"…"}    (or this)
//! → {"type":"ready","channel":"news","epoch":"…","offset":"…"}                          (then live)
//! → {"type":"message","channel":"news","epoch":"…","offset":"…","data":…}
//! ```
//!
//! **No gap, no duplicate.** Each time Redis confirms a channel (first, and after every
//! reconnect), the socket reads the channel's stream after its last position
//! (`Durable::read_since`): the subscription comes first, live messages are held during the
//! read, the read is sent, then the held ones whose offset is after the last one sent. A read that
//! cannot give everything (the stream was made again, trimmed past the position, or too much was
//! missed) is a `resync` message with the stream's head: the browser reloads its state from the
//! app and continues from there. `ready` tells where the socket stands once the replay is done
//! (the position the browser keeps to resume with).
//!
//! Plain publishes on the channel reach the socket too (no offset: nothing to resume from).
//! Heartbeats, the send queue, the write timeout and the token's expiry are the login socket's.

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use qrpush_core::channel_token::Claims;
use qrpush_core::durable::{Durable, Offset, ReadOutcome, Replay};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::direct::{CloseOnDrop, Direct};
use crate::hub::{frame, ChannelOut, FanoutTimer, Outgoing, Peer};
use crate::metrics::{CloseReason, DropReason};
use crate::quiet::Wakes;
use crate::socket::{close_cleanly, instant_at, now_ms, write_frame, End, Heartbeat};
use crate::App;

/// The most entries one replay sends; a browser further behind is told to resync.
pub const MAX_REPLAY: usize = 10_000;

/// The most live messages held per channel while its replay read is in flight (a read takes
/// milliseconds; the frames are shared, so this bounds a few pointers each). More, and the socket
/// is dropped as too slow: the browser reconnects from its position and is replayed again.
pub const MAX_HELD: usize = 1024;

/// Where a browser resumes one channel: `since=<epoch>:<offset>:<channel>`.
pub fn parse_since(value: &str) -> Option<(String, String, Offset)> {
    let (epoch, rest) = value.split_once(':')?;
    let (offset, channel) = rest.split_once(':')?;
    if epoch.is_empty() || epoch.len() > 32 || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((channel.to_string(), epoch.to_string(), offset.parse().ok()?))
}

pub use crate::direct::At;

/// A live message held during a replay read: its position, its frame, its fan-out.
type Held = (Option<At>, Utf8Bytes, Arc<FanoutTimer>);

/// What to write now: the frame, `Some(ms)` for a live durable message (its publish time, for the
/// lag), and the fan-out it is part of (held until the write is done).
type Batch = Vec<(Utf8Bytes, Option<u64>, Option<Arc<FanoutTimer>>)>;

struct ChannelState {
    name: String,
    /// The last position sent (or the one the browser resumes from).
    at: Option<At>,
    /// Live messages that came while a replay read is in flight; `None` once live.
    held: Option<Vec<Held>>,
    /// The replay read that counts (an older one, overtaken by a resubscribe, is ignored).
    read: u64,
}

/// Serves a subscription-token socket until it ends; `since` are the positions it resumes from
/// (channel, epoch, offset); its token is valid until `token_expires_at_ms` (skew included).
/// With `direct`, live messages are written by the fan-out itself while the socket is idle (see
/// `direct`); without, every message is queued to this task.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    app: Arc<App>,
    socket: WebSocket,
    direct: Option<Arc<Direct>>,
    claims: Claims,
    since: Vec<(String, String, Offset)>,
    token_expires_at_ms: i64,
    shutdown: CancellationToken,
) {
    let settings = &app.settings;
    // While the socket writes a replay it reads nothing from its queue, and live messages keep
    // coming: the queue holds at least as many as a replay read may hold (tokio's queue grows in
    // blocks as it fills; an idle socket's costs no more than a login socket's).
    let (tx, mut rx) = mpsc::channel(settings.send_queue.max(MAX_HELD));
    let peer = Peer {
        id: app.hub.next_peer_id(),
        tx: tx.clone(),
        slow: Arc::default(),
        direct: direct.clone(),
    };
    let slow = peer.slow.clone();
    let peer_id = peer.id;
    let mut channels: Vec<ChannelState> = claims
        .channels
        .iter()
        .map(|name| ChannelState {
            name: name.clone(),
            at: since
                .iter()
                .find(|(c, _, _)| c == name)
                .map(|(_, epoch, offset)| (Arc::from(epoch.as_str()), *offset)),
            held: Some(Vec::new()),
            read: 0,
        })
        .collect();
    app.hub.register_channels(&claims.channels, &peer);
    drop(peer);
    app.metrics.connections_total.fetch_add(1, Relaxed);
    app.metrics.connections.fetch_add(1, Relaxed);
    tracing::debug!(
        peer = peer_id,
        channels = claims.channels.len(),
        "channel socket open"
    );

    let (mut sink, mut stream) = socket.split();
    // Declared after the socket's halves, so dropped before them whatever ends this task: the
    // fan-out's borrowed descriptor is never written once the connection may be closed.
    let _inert_on_drop = CloseOnDrop(direct.clone());
    let mut heartbeat = Heartbeat::new(settings.ping_interval, settings.ping_timeout);
    let send_timeout = settings.send_timeout;
    let token_expired = sleep_until(instant_at(token_expires_at_ms));
    tokio::pin!(token_expired);
    let mut reads: u64 = 0;

    // Made once: a new wait each round would register with the token (a lock) and leave it again.
    let shutting_down = shutdown.cancelled();
    tokio::pin!(shutting_down);
    // Armed (reset) when a ping is sent; polled only while a pong is awaited.
    let heartbeat_lost = sleep_until(Instant::now());
    tokio::pin!(heartbeat_lost);
    // A fan-out wakes each socket once per message, for its queue alone: the read side, the
    // timers and the shutdown wait are polled only when they woke the task themselves.
    let wakes = Wakes::new();

    let end = loop {
        if slow.load(Acquire) {
            app.metrics.dropped(DropReason::Slow);
            break End::Drop;
        }
        // Lends the write side to the fan-out while nothing is queued and every channel is live.
        if let Some(direct) = &direct {
            if channels.iter().all(|c| c.held.is_none()) {
                direct.lend(
                    || rx.is_empty(),
                    || channels.iter().map(|c| c.at.clone()).collect(),
                );
            }
        }
        // The WebSocket layer may write while it reads (the answer to a client's ping): the write
        // side is taken back before the read side is polled, and the rest of a frame written in
        // part goes out first.
        let read = std::pin::pin!(async {
            if let Some(direct) = &direct {
                direct.pause();
                if direct.flush_rest(send_timeout).await.is_err() {
                    return None;
                }
            }
            Some(stream.next().await)
        });
        tokio::select! {
            biased;
            _ = wakes.shutdown.guard(shutting_down.as_mut()) => break End::Close(1001, "server shutting down"),
            _ = wakes.token.guard(token_expired.as_mut()) => {
                app.metrics.closed(CloseReason::TokenExpired);
                break End::Close(4001, "token expired");
            }
            outgoing = rx.recv() => {
                if let Some(direct) = &direct {
                    if !own_writes(direct, &mut channels, send_timeout).await {
                        app.metrics.dropped(DropReason::Slow);
                        break End::Drop;
                    }
                }
                let mut batch = Batch::new();
                match outgoing {
                    Some(Outgoing::Channel(ChannelOut::Rest)) => {} // written just above
                    Some(Outgoing::Channel(ChannelOut::Subscribed { index })) => {
                        let Some(state) = channels.get_mut(index) else { continue };
                        reads += 1;
                        state.read = reads;
                        state.held.get_or_insert_with(Vec::new);
                        tokio::spawn(replay_read(
                            app.clone(),
                            tx.clone(),
                            index,
                            reads,
                            state.name.clone(),
                            state.at.clone(),
                        ));
                    }
                    Some(Outgoing::Channel(ChannelOut::Replayed { index, read, outcome })) => {
                        let Some(state) = channels.get_mut(index) else { continue };
                        if read != state.read {
                            continue;
                        }
                        replayed(state, outcome, &mut batch);
                    }
                    Some(Outgoing::Channel(ChannelOut::Live { index, at, text, fanout })) => {
                        let Some(state) = channels.get_mut(index) else { continue };
                        match &mut state.held {
                            Some(held) if held.len() < MAX_HELD => held.push((at, text, fanout)),
                            Some(_) => {
                                app.metrics.dropped(DropReason::Slow);
                                break End::Drop;
                            }
                            None => live(state, at, text, fanout, &mut batch),
                        }
                    }
                    Some(Outgoing::Close(code, reason)) => break End::Close(code, reason),
                    Some(Outgoing::Event { .. } | Outgoing::Status { .. }) => {}
                    None => break End::Drop,
                }
                let mut end = None;
                for (text, published_ms, _fanout) in batch {
                    if let Err(failed) = write_frame(&mut sink, Message::Text(text), send_timeout, &app.metrics).await {
                        end = Some(failed);
                        break;
                    }
                    if let Some(ms) = published_ms {
                        app.metrics.forwarded(now_ms() - ms as f64);
                    }
                }
                if let Some(end) = end {
                    break end;
                }
            }
            frame = wakes.read.guard(read) => match frame {
                None => {
                    app.metrics.dropped(DropReason::Slow);
                    break End::Drop;
                }
                Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => break End::Drop,
                Some(Some(Ok(_))) => {
                    heartbeat.alive();
                    // Whatever the WebSocket layer may still hold (the answer to a ping) goes out
                    // before the write side is lent again.
                    if direct.is_some() {
                        let flushed = tokio::time::timeout(send_timeout, sink.flush()).await;
                        if !matches!(flushed, Ok(Ok(()))) {
                            break End::Drop;
                        }
                    }
                }
            },
            _ = wakes.ping.guard(std::future::poll_fn(|cx| heartbeat.poll_tick(cx))) => {
                if let Some(direct) = &direct {
                    if !own_writes(direct, &mut channels, send_timeout).await {
                        app.metrics.dropped(DropReason::Slow);
                        break End::Drop;
                    }
                }
                if let Err(end) = heartbeat
                    .ping(&mut sink, send_timeout, &app.metrics, heartbeat_lost.as_mut(), &wakes.heartbeat)
                    .await
                {
                    break end;
                }
            }
            _ = wakes.heartbeat.guard(heartbeat_lost.as_mut()), if heartbeat.awaiting_pong() => {
                app.metrics.dropped(DropReason::Heartbeat);
                break End::Drop;
            }
        }
    };

    app.hub.unregister_channels(&claims.channels, peer_id);
    app.metrics.connections.fetch_sub(1, Relaxed);
    tracing::debug!(peer = peer_id, "channel socket closed");
    let mut end = end;
    if let Some(direct) = &direct {
        // A close frame must not cut into a frame the fan-out wrote in part.
        direct.take_back();
        if direct.flush_rest(send_timeout).await.is_err() {
            end = End::Drop;
        }
        direct.close();
    }
    if let End::Close(code, reason) = end {
        close_cleanly(&mut sink, &mut stream, code, reason).await;
    }
}

/// The task takes its write side back from the fan-out before it writes: the positions the
/// fan-out sent become the socket's, and the rest of a frame written in part goes out first.
/// False: that rest did not go out within `limit` (the socket is too slow).
async fn own_writes(
    direct: &Direct,
    channels: &mut [ChannelState],
    limit: std::time::Duration,
) -> bool {
    if let Some(positions) = direct.take_back() {
        for (state, at) in channels.iter_mut().zip(positions) {
            state.at = at;
        }
    }
    direct.flush_rest(limit).await.is_ok()
}

/// Reads what the socket missed in `channel` after `at` (on the blocking pool: the core's client
/// is blocking) and queues the outcome to the socket.
async fn replay_read(
    app: Arc<App>,
    tx: mpsc::Sender<Outgoing>,
    index: usize,
    read: u64,
    channel: String,
    at: Option<At>,
) {
    let core = app.core.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let since = at.as_ref().map(|(epoch, offset)| (&**epoch, *offset));
        Durable::new(&core)
            .read_since(channel.as_bytes(), since, MAX_REPLAY)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("replay read panicked: {e}")));
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, "replay read failed: the socket is told to resync");
    }
    // Waits for room: the socket is draining its queue (or gone, and then this fails).
    let _ = tx
        .send(Outgoing::Channel(ChannelOut::Replayed {
            index,
            read,
            outcome,
        }))
        .await;
}

/// The replay's frames, then the held live messages after it, then `ready`.
fn replayed(state: &mut ChannelState, outcome: Result<ReadOutcome, String>, batch: &mut Batch) {
    let head = |outcome: &ReadOutcome| -> Option<At> {
        outcome
            .head
            .as_ref()
            .map(|p| (Arc::from(p.epoch.as_str()), p.offset))
    };
    match outcome {
        Ok(outcome) => match &outcome.replay {
            Replay::Fresh => {
                if state.at.is_none() {
                    state.at = head(&outcome);
                }
            }
            Replay::Recovered(entries) => {
                let epoch = head(&outcome).map(|(e, _)| e);
                for entry in entries {
                    let at = epoch.clone().map(|e| (e, entry.offset));
                    if let Some(text) = frame(&state.name, at.as_ref(), &entry.message, true) {
                        batch.push((text, None, None));
                    }
                    if at.is_some() {
                        state.at = at;
                    }
                }
            }
            Replay::Resync(reason) => {
                state.at = head(&outcome);
                batch.push((
                    resync(&state.name, reason.as_str(), state.at.as_ref()),
                    None,
                    None,
                ));
            }
        },
        Err(_) => {
            // The position is kept: the next resubscribe (or reconnect) reads from it again.
            batch.push((
                resync(&state.name, "unavailable", state.at.as_ref()),
                None,
                None,
            ));
        }
    }
    for (at, text, fanout) in state.held.take().unwrap_or_default() {
        live(state, at, text, fanout, batch);
    }
    batch.push((ready(&state.name, state.at.as_ref()), None, None));
}

/// A live message, unless the replay already sent it; a message of another epoch than the
/// socket's position (the stream was made again meanwhile) comes after a `resync`.
fn live(
    state: &mut ChannelState,
    at: Option<At>,
    text: Utf8Bytes,
    fanout: Arc<FanoutTimer>,
    batch: &mut Batch,
) {
    let Some((epoch, offset)) = at else {
        batch.push((text, None, Some(fanout)));
        return;
    };
    if let Some((known_epoch, known_offset)) = &state.at {
        if **known_epoch == *epoch {
            if offset <= *known_offset {
                return;
            }
        } else {
            batch.push((
                resync(&state.name, "epoch_changed", state.at.as_ref()),
                None,
                None,
            ));
        }
    }
    state.at = Some((epoch, offset));
    batch.push((text, Some(offset.ms), Some(fanout)));
}

fn position(at: Option<&At>) -> (Value, Value) {
    match at {
        Some((epoch, offset)) => (json!(&**epoch), json!(offset.to_string())),
        None => (Value::Null, Value::Null),
    }
}

fn resync(channel: &str, reason: &str, at: Option<&At>) -> Utf8Bytes {
    let (epoch, offset) = position(at);
    let message = json!({"type": "resync", "channel": channel, "reason": reason, "epoch": epoch, "offset": offset});
    Utf8Bytes::from(message.to_string())
}

fn ready(channel: &str, at: Option<&At>) -> Utf8Bytes {
    let (epoch, offset) = position(at);
    let message = json!({"type": "ready", "channel": channel, "epoch": epoch, "offset": offset});
    Utf8Bytes::from(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_values() {
        assert_eq!(
            parse_since("1712345678901234:1712345678901-3:news:eu"),
            Some((
                "news:eu".to_string(),
                "1712345678901234".to_string(),
                Offset::new(1712345678901, 3)
            ))
        );
        for bad in [
            "",
            "e:1-0",
            ":1-0:news",
            "e:x:news",
            "e-1:1-0:news",
            "e:01-0:n",
        ] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }
}
