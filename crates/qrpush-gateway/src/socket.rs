//! One browser's socket, after its token was accepted: one task that writes what the hub queues,
//! sends pings, reads pongs, and ends on close, heartbeat loss, slowness or shutdown.
//!
//! A socket lives no longer than what it was opened for: it is closed with 4001 when its token
//! expires (the token was only checked at the handshake), and with 1000 right after it was sent a
//! final state of its login (rejected, redeemed, cancelled, expired: nothing can follow).
//!
//! Order on the wire: the status comes first (events that arrive before it are held, and sent
//! after it only if newer), and nothing older than what was already sent goes out: every event
//! has a greater `seq` than the message before it; a status (sent after every resubscribe) may
//! repeat the last `seq`.

use std::future::Future;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::hub::{Outgoing, Peer, RegisterError};
use crate::metrics::{CloseReason, DropReason, Metrics};
use crate::quiet::{WakeFlag, Wakes};
use crate::status;
use crate::App;

/// How long a closing handshake may take before the TCP connection is simply dropped.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// How a socket's task ends (login and channel sockets alike).
pub(crate) enum End {
    /// Send this close frame (best effort), then drop.
    Close(u16, &'static str),
    /// Drop without a word: the peer is gone, dead or too slow to take a close frame.
    Drop,
}

/// Writes one frame within `limit`; the socket's end if it could not: gone, or too slow (counted).
pub(crate) async fn write_frame<S>(
    sink: &mut S,
    message: Message,
    limit: Duration,
    metrics: &Metrics,
) -> Result<(), End>
where
    S: futures_util::Sink<Message> + Unpin,
{
    match send_within(sink, message, limit).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Drop),
        Err(_) => {
            metrics.dropped(DropReason::Slow);
            Err(End::Drop)
        }
    }
}

/// A socket's heartbeat: a ping every `--ping-interval` (none while a pong is awaited), and the
/// socket is lost when no frame comes back within `--ping-timeout` of one.
pub(crate) struct Heartbeat {
    ping: tokio::time::Interval,
    timeout: Duration,
    pong_deadline: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Heartbeat {
            ping,
            timeout,
            pong_deadline: None,
        }
    }

    /// Ready when a ping is due.
    pub(crate) fn poll_tick(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Instant> {
        self.ping.poll_tick(cx)
    }

    /// A frame came: the peer is alive (the browser sends nothing but pongs).
    pub(crate) fn alive(&mut self) {
        self.pong_deadline = None;
    }

    pub(crate) fn awaiting_pong(&self) -> bool {
        self.pong_deadline.is_some()
    }

    /// Sends the ping that is due (unless one is unanswered yet) and arms `lost` for its answer.
    pub(crate) async fn ping<S>(
        &mut self,
        sink: &mut S,
        limit: Duration,
        metrics: &Metrics,
        lost: std::pin::Pin<&mut tokio::time::Sleep>,
        lost_woke: &WakeFlag,
    ) -> Result<(), End>
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        if self.pong_deadline.is_none() {
            write_frame(sink, Message::Ping(Default::default()), limit, metrics).await?;
            let deadline = Instant::now() + self.timeout;
            self.pong_deadline = Some(deadline);
            lost.reset(deadline);
            lost_woke.set();
        }
        Ok(())
    }
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Closes a socket at once (a refused handshake: bad token, too many sockets).
pub async fn refuse(socket: WebSocket, code: u16, reason: &'static str) {
    let (mut sink, mut stream) = socket.split();
    close_cleanly(&mut sink, &mut stream, code, reason).await;
}

/// Sends a close frame, then waits briefly for the client's close reply, so the close is clean on
/// both sides; each step bounded by `CLOSE_BOUND` (a gone or stalled client is simply dropped).
pub(crate) async fn close_cleanly<W, R>(
    sink: &mut W,
    stream: &mut R,
    code: u16,
    reason: &'static str,
) where
    W: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(CLOSE_BOUND, sink.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(CLOSE_BOUND, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Writes `message`, for at most `limit` (else `Err(Elapsed)`: the socket is too slow). A write
/// the socket's buffer takes at once, nearly every one, is done without arming a timer: the
/// timer's registration would cost more than the write; one that has to wait gets the bound.
pub(crate) async fn send_within<S>(
    sink: &mut S,
    message: Message,
    limit: Duration,
) -> Result<Result<(), S::Error>, tokio::time::error::Elapsed>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut send = std::pin::pin!(sink.send(message));
    let at_once = std::future::poll_fn(|cx| {
        Poll::Ready(match send.as_mut().poll(cx) {
            Poll::Ready(done) => Some(done),
            Poll::Pending => None,
        })
    })
    .await;
    match at_once {
        Some(done) => Ok(done),
        None => tokio::time::timeout(limit, send).await,
    }
}

/// The monotonic instant of the wall-clock time `unix_ms` (now, if that is past).
pub(crate) fn instant_at(unix_ms: i64) -> Instant {
    let ahead = (unix_ms as f64 - now_ms()).max(0.0);
    Instant::now() + Duration::from_secs_f64((ahead / 1000.0).min(86_400.0 * 365.0))
}

/// Serves the socket of `login_id` until it ends; its token is valid until `token_expires_at_ms`
/// (on this gateway's clock, the skew allowance included).
pub async fn serve(
    app: Arc<App>,
    socket: WebSocket,
    login_id: String,
    token_expires_at_ms: i64,
    shutdown: CancellationToken,
) {
    let settings = &app.settings;
    let (tx, mut rx) = mpsc::channel(settings.send_queue);
    let peer = Peer {
        id: app.hub.next_peer_id(),
        tx,
        slow: Arc::default(),
        direct: None,
    };
    let slow = peer.slow.clone();
    let peer_id = peer.id;
    match app.hub.register(&login_id, peer) {
        Err(RegisterError::TooManyForLogin) => {
            app.metrics.rejected_per_login.fetch_add(1, Relaxed);
            refuse(socket, 4029, "too many sockets for this login").await;
            return;
        }
        Ok(subscribed) => {
            if subscribed {
                tokio::spawn(status::deliver(
                    app.hub.clone(),
                    app.status.clone(),
                    app.metrics.clone(),
                    login_id.clone(),
                    vec![peer_id],
                ));
            }
        }
    }
    app.metrics.connections_total.fetch_add(1, Relaxed);
    app.metrics.connections.fetch_add(1, Relaxed);
    tracing::debug!(login = %login_id, peer = peer_id, "socket open");

    let (mut sink, mut stream) = socket.split();
    let mut heartbeat = Heartbeat::new(settings.ping_interval, settings.ping_timeout);
    let send_timeout = settings.send_timeout;
    // The highest seq written; None until the first status.
    let mut last_seq: Option<i64> = None;
    // Events that came before the first status: (text, seq, ts, ends_login).
    let mut held: Vec<(Utf8Bytes, i64, i64, bool)> = Vec::new();
    let token_expired = sleep_until(instant_at(token_expires_at_ms));
    tokio::pin!(token_expired);

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
        tokio::select! {
            biased;
            _ = wakes.shutdown.guard(shutting_down.as_mut()) => break End::Close(1001, "server shutting down"),
            _ = wakes.token.guard(token_expired.as_mut()) => {
                app.metrics.closed(CloseReason::TokenExpired);
                break End::Close(4001, "token expired");
            }
            outgoing = rx.recv() => {
                // What to write now: (text, Some(ts) for an event | None for a status, ends_login).
                let mut batch: Vec<(Utf8Bytes, Option<i64>, bool)> = Vec::new();
                match outgoing {
                    Some(Outgoing::Event { text, seq, ts, ends_login }) => match last_seq {
                        None if held.len() < settings.send_queue => {
                            held.push((text, seq, ts, ends_login))
                        }
                        None => {
                            app.metrics.dropped(DropReason::Slow);
                            break End::Drop;
                        }
                        Some(last) if seq > last => {
                            last_seq = Some(seq);
                            batch.push((text, Some(ts), ends_login));
                        }
                        Some(_) => {} // already told (by a status or this event)
                    },
                    Some(Outgoing::Status { text, seq, ends_login }) => {
                        if last_seq.is_none_or(|last| seq >= last) {
                            last_seq = Some(seq);
                            batch.push((text, None, ends_login));
                        }
                        for (text, event_seq, ts, ends_login) in held.drain(..) {
                            if last_seq.is_none_or(|last| event_seq > last) {
                                last_seq = Some(event_seq);
                                batch.push((text, Some(ts), ends_login));
                            }
                        }
                    }
                    Some(Outgoing::Close(code, reason)) => break End::Close(code, reason),
                    Some(Outgoing::Channel(_)) => {} // general channels are channel_socket's
                    None => break End::Drop,
                }
                let mut end = None;
                for (text, lag_from, ends_login) in batch {
                    if let Err(failed) = write_frame(&mut sink, Message::Text(text), send_timeout, &app.metrics).await {
                        end = Some(failed);
                        break;
                    }
                    match lag_from {
                        Some(ts) => app.metrics.forwarded(now_ms() - ts as f64),
                        None => {
                            app.metrics.status_sent.fetch_add(1, Relaxed);
                        }
                    }
                    if ends_login {
                        // The browser has the outcome; the socket has nothing left to carry.
                        app.metrics.closed(CloseReason::LoginFinished);
                        end = Some(End::Close(1000, "login finished"));
                        break;
                    }
                }
                if let Some(end) = end {
                    break end;
                }
            }
            frame = wakes.read.guard(stream.next()) => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::Drop,
                // Any frame proves the peer alive; the browser sends nothing else (tungstenite
                // answers pings itself).
                Some(Ok(_)) => heartbeat.alive(),
            },
            _ = wakes.ping.guard(std::future::poll_fn(|cx| heartbeat.poll_tick(cx))) => {
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

    app.hub.unregister(&login_id, peer_id);
    app.metrics.connections.fetch_sub(1, Relaxed);
    tracing::debug!(login = %login_id, peer = peer_id, "socket closed");
    if let End::Close(code, reason) = end {
        close_cleanly(&mut sink, &mut stream, code, reason).await;
    }
}
