//! Who is connected here, for which login, and which channels Redis must deliver.
//!
//! One mutex guards the whole routing state; it is held only for map operations (never across an
//! await), so a dispatch to the sockets of one login costs a hash lookup and a `try_send` each.
//!
//! Status on (re)subscribe, without a gap: a socket's first message is its login's status, read
//! *after* its channel is confirmed subscribed on the current Redis connection. Either the socket
//! registers while the channel is confirmed (it reads its own status at once), or the subscriber
//! confirms the channel later and reads the status for every socket of the login then; both
//! checks happen under the same lock, so no socket falls between them. Events published between
//! the subscription and the status read reach the socket too: the browser keeps the highest `seq`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use qrpush_core::config::LoginChannelMode;
use qrpush_core::durable::{wire, Offset, ReadOutcome};
use qrpush_core::login::wire::EventMeta;
use qrpush_core::login::Login;
use qrpush_core::Client;
use tokio::sync::{mpsc, Notify};

use crate::direct::{Delivery, Direct, Frame};
use crate::metrics::Metrics;
use crate::socket::now_ms;

/// What a socket's task is asked to write. `ends_login`: the message tells of a final state
/// (rejected, redeemed, cancelled, expired); nothing follows it, and the socket closes after it.
#[derive(Debug)]
pub enum Outgoing {
    /// A published event, unchanged; `ts` is its Redis time (ms), for the lag metric.
    Event {
        text: Utf8Bytes,
        seq: i64,
        ts: i64,
        ends_login: bool,
    },
    /// The login's status (first message after every (re)subscribe); `seq` is its version.
    Status {
        text: Utf8Bytes,
        seq: i64,
        ends_login: bool,
    },
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
    /// For a subscription-token socket (see `channel_socket`): login sockets get none.
    Channel(ChannelOut),
}

/// What a subscription-token socket is told about one of its channels.
#[derive(Debug)]
pub enum ChannelOut {
    /// Redis confirmed the channel (first time, or after a reconnect): the socket reads what it
    /// missed now; live messages from here on are held until that read is sent.
    Subscribed { index: usize },
    /// A live message; `at` is its stream position when it was a durable publish. `text` is the
    /// browser's frame, encoded once per event and shared by every socket of the channel.
    Live {
        index: usize,
        at: Option<(Arc<str>, Offset)>,
        text: Utf8Bytes,
        /// Held until this socket wrote the frame (or let it go): the fan-out's duration.
        fanout: Arc<FanoutTimer>,
    },
    /// The fan-out wrote part of a frame to the lent socket: its task writes the rest.
    Rest,
    /// The socket's own replay read number `read`, done.
    Replayed {
        index: usize,
        read: u64,
        outcome: Result<ReadOutcome, String>,
    },
}

/// Times the fan-out of one message of a general channel: every queued copy holds a reference
/// until its socket wrote it (or dropped it); the last reference gone records the time since the
/// message arrived from Redis (`qrpush_gateway_fanout_seconds`). One shared atomic count per
/// socket: the cost of knowing what the gateway's own part of a delivery takes.
pub struct FanoutTimer {
    arrived: std::time::Instant,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for FanoutTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanoutTimer")
            .field("arrived", &self.arrived)
            .finish()
    }
}

impl Drop for FanoutTimer {
    fn drop(&mut self) {
        self.metrics.fanned_out(self.arrived.elapsed());
    }
}

/// The hub's handle on one socket.
#[derive(Clone, Debug)]
pub struct Peer {
    pub id: u64,
    pub tx: mpsc::Sender<Outgoing>,
    /// Set when the socket's queue overflowed: its task drops it as too slow. A flag, not a
    /// wake-up: a full queue has woken the task already, and it checks the flag before every
    /// message it takes (a token to wait on would cost each socket a lock per event).
    pub slow: Arc<AtomicBool>,
    /// The fan-out's direct way to a general-channel socket (see `direct`); None for login sockets.
    pub direct: Option<Arc<Direct>>,
}

impl Peer {
    /// Queues `message`; a full queue marks the socket slow (it is dropped, memory stays flat).
    fn offer(&self, message: Outgoing) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.store(true, Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Sockets written directly per reading of the clock for the lag metric.
const LAG_BATCH: u64 = 256;

/// The sockets of one general channel, each with the index of the channel in its token.
struct ChannelEntry {
    /// The channel as the app names it (without `channel_prefix`), for the browser's frames.
    name: Arc<str>,
    peers: Vec<(Peer, usize)>,
}

struct LoginEntry {
    channel: String,
    peers: Vec<Peer>,
}

#[derive(Default)]
struct Inner {
    logins: HashMap<String, LoginEntry>,
    /// General channels (subscription tokens), by their Redis name (with `channel_prefix`).
    channels: HashMap<String, ChannelEntry>,
    /// Channels Redis confirmed on the current connection.
    confirmed: HashSet<String>,
}

/// Refusal of a registration.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    TooManyForLogin,
}

pub struct Hub {
    mode: LoginChannelMode,
    /// For the channel names: `QrPush\Login`'s own (`Login::channel`).
    client: Arc<Client>,
    max_per_login: usize,
    inner: Mutex<Inner>,
    /// Signalled when the set of wanted channels changed (per-login mode).
    pub changed: Notify,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new(client: Arc<Client>, max_per_login: usize, metrics: Arc<Metrics>) -> Hub {
        Hub {
            mode: client.config().login_channel_mode,
            client,
            max_per_login,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            metrics,
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (no multi-step invariants).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn next_peer_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// The channel of `login_id`'s events (the same names `QrPush\Login::channel()` uses).
    pub fn channel_of(&self, login_id: &str) -> String {
        Login::new(&self.client).channel(login_id)
    }

    /// Adds a socket. `Ok(true)`: its channel is subscribed already, the caller reads the status
    /// for this socket now; `Ok(false)`: the subscriber will, once it confirms the channel.
    pub fn register(&self, login_id: &str, peer: Peer) -> Result<bool, RegisterError> {
        let channel = self.channel_of(login_id);
        let mut inner = self.lock();
        let confirmed = inner.confirmed.contains(&channel);
        let new_login = !inner.logins.contains_key(login_id);
        let entry = inner
            .logins
            .entry(login_id.to_string())
            .or_insert_with(|| LoginEntry {
                channel,
                peers: Vec::new(),
            });
        if entry.peers.len() >= self.max_per_login {
            return Err(RegisterError::TooManyForLogin);
        }
        entry.peers.push(peer);
        if new_login {
            self.metrics.logins.fetch_add(1, Relaxed);
            if self.mode == LoginChannelMode::PerLogin {
                self.changed.notify_one();
            }
        }
        Ok(confirmed)
    }

    /// Removes a socket; the last one of a login ends its subscription (per-login mode).
    pub fn unregister(&self, login_id: &str, peer_id: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.logins.get_mut(login_id) else {
            return;
        };
        entry.peers.retain(|p| p.id != peer_id);
        if entry.peers.is_empty() {
            inner.logins.remove(login_id);
            self.metrics.logins.fetch_sub(1, Relaxed);
            if self.mode == LoginChannelMode::PerLogin {
                self.changed.notify_one();
            }
        }
    }

    /// The channels Redis should deliver now.
    pub fn wanted_channels(&self) -> HashSet<String> {
        let inner = self.lock();
        let mut wanted: HashSet<String> = inner.channels.keys().cloned().collect();
        match self.mode {
            LoginChannelMode::Single => {
                wanted.insert(self.channel_of(""));
            }
            LoginChannelMode::PerLogin => {
                wanted.extend(inner.logins.values().map(|e| e.channel.clone()))
            }
        }
        wanted
    }

    /// The Redis name of a general channel (with `channel_prefix`).
    pub fn redis_channel(&self, channel: &str) -> String {
        format!("{}{channel}", self.client.config().channel_prefix)
    }

    /// Adds a subscription-token socket to each of `channels` (without `channel_prefix`; index
    /// `i` is `channels[i]`). Each channel Redis has confirmed already gets its
    /// [`ChannelOut::Subscribed`] at once; the others when the subscriber confirms them.
    pub fn register_channels(&self, channels: &[String], peer: &Peer) {
        let mut inner = self.lock();
        let mut new = false;
        for (index, name) in channels.iter().enumerate() {
            let key = self.redis_channel(name);
            if inner.confirmed.contains(&key) {
                peer.offer(Outgoing::Channel(ChannelOut::Subscribed { index }));
            }
            let entry = inner.channels.entry(key).or_insert_with(|| {
                new = true;
                ChannelEntry {
                    name: Arc::from(name.as_str()),
                    peers: Vec::new(),
                }
            });
            entry.peers.push((peer.clone(), index));
        }
        if new {
            self.changed.notify_one();
        }
    }

    /// Removes a subscription-token socket; a channel's last socket ends its subscription.
    pub fn unregister_channels(&self, channels: &[String], peer_id: u64) {
        let mut inner = self.lock();
        let mut gone = false;
        for name in channels {
            let key = self.redis_channel(name);
            let Some(entry) = inner.channels.get_mut(&key) else {
                continue;
            };
            entry.peers.retain(|(p, _)| p.id != peer_id);
            if entry.peers.is_empty() {
                inner.channels.remove(&key);
                gone = true;
            }
        }
        if gone {
            self.changed.notify_one();
        }
    }

    /// Redis confirmed `channels`: returns the logins whose status must be sent, each with the
    /// sockets waiting for it (sockets registering from now on read their own).
    pub fn confirm(&self, channels: &[String]) -> Vec<(String, Vec<u64>)> {
        let mut inner = self.lock();
        inner.confirmed.extend(channels.iter().cloned());
        for channel in channels {
            if let Some(entry) = inner.channels.get(channel) {
                for (peer, index) in &entry.peers {
                    peer.offer(Outgoing::Channel(ChannelOut::Subscribed { index: *index }));
                }
            }
        }
        let channels: HashSet<&String> = channels.iter().collect();
        inner
            .logins
            .iter()
            .filter(|(_, e)| channels.contains(&e.channel))
            .map(|(id, e)| (id.clone(), e.peers.iter().map(|p| p.id).collect()))
            .collect()
    }

    /// About to unsubscribe `channels`: sockets registering from now on wait for a new confirm.
    pub fn unconfirm(&self, channels: &[String]) {
        let mut inner = self.lock();
        for c in channels {
            inner.confirmed.remove(c);
        }
    }

    /// The Redis connection is gone: nothing is confirmed any more.
    pub fn connection_lost(&self) {
        self.lock().confirmed.clear();
    }

    /// Routes one Pub/Sub message to the sockets of its login on this gateway.
    pub fn dispatch(&self, channel: &str, payload: &[u8]) {
        self.metrics.events_received.fetch_add(1, Relaxed);
        if self.dispatch_general(channel, payload) {
            return;
        }
        let Some(meta) = EventMeta::parse(payload) else {
            self.metrics.events_unrouted.fetch_add(1, Relaxed);
            tracing::debug!(channel, "ignoring a message that is not a login event");
            return;
        };
        // Routing key: sessionId (single mode, the seed's contract), else loginId.
        let Ok(text) = std::str::from_utf8(payload) else {
            return; // parsed as JSON, so it is UTF-8: unreachable
        };
        let text = Utf8Bytes::from(text.to_string());
        let ends_login = meta.state().is_some_and(|state| !state.is_live());
        let inner = self.lock();
        match inner.logins.get(meta.route()) {
            // The event must come from the login's own channel: a message for login A on
            // login B's channel is not delivered.
            Some(entry) if entry.channel == channel => {
                for peer in &entry.peers {
                    peer.offer(Outgoing::Event {
                        text: text.clone(),
                        seq: meta.seq,
                        ts: meta.ts,
                        ends_login,
                    });
                }
            }
            _ => {
                self.metrics.events_unrouted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Routes a message of a general channel, if `channel` is one here: its frame is made once
    /// and shared by every socket of the channel.
    fn dispatch_general(&self, channel: &str, payload: &[u8]) -> bool {
        let arrived = std::time::Instant::now();
        // The frame is made outside the lock (it checks whether the message is JSON).
        let Some(name) = self.lock().channels.get(channel).map(|e| e.name.clone()) else {
            return false;
        };
        let (at, message) = match wire::parse(payload) {
            Some(d) => (Some((Arc::<str>::from(d.epoch), d.offset)), d.message),
            None => (None, payload),
        };
        let Some(text) = frame(&name, at.as_ref(), message, false) else {
            self.metrics.events_unrouted.fetch_add(1, Relaxed);
            tracing::debug!(channel, "dropping a message that is not UTF-8 text");
            return true;
        };
        let fanout = Arc::new(FanoutTimer {
            arrived,
            metrics: self.metrics.clone(),
        });
        // Sockets lent to the fan-out get these bytes written at once; the others get a copy queued.
        let wire = Frame::text(text.as_str());
        // The lag of a durable message (its publish time on Redis → written), counted per batch of
        // sockets: reading the clock and the histogram's counters once per socket would cost as
        // much as a good share of the write itself.
        let published_ms = at.as_ref().map(|(_, offset)| offset.ms as f64);
        let (mut lag_pending, mut direct_n, mut partly_n, mut queued_n) = (0u64, 0u64, 0u64, 0u64);
        let inner = self.lock();
        for (peer, index) in inner.channels.get(channel).iter().flat_map(|e| &e.peers) {
            let queue = || {
                peer.offer(Outgoing::Channel(ChannelOut::Live {
                    index: *index,
                    at: at.clone(),
                    text: text.clone(),
                    fanout: fanout.clone(),
                }));
            };
            let Some(direct) = &peer.direct else {
                queue();
                queued_n += 1;
                continue;
            };
            match direct.deliver(*index, at.as_ref(), &wire, queue) {
                Delivery::Written => direct_n += 1,
                Delivery::Partly => {
                    partly_n += 1;
                    peer.offer(Outgoing::Channel(ChannelOut::Rest));
                }
                // Its task counts it when written.
                Delivery::Queue => {
                    queued_n += 1;
                    continue;
                }
                Delivery::Known => continue,
            }
            lag_pending += 1;
            if lag_pending == LAG_BATCH {
                if let Some(ms) = published_ms {
                    self.metrics.forwarded_many(now_ms() - ms, lag_pending);
                }
                lag_pending = 0;
            }
        }
        drop(inner);
        if let (Some(ms), 1..) = (published_ms, lag_pending) {
            self.metrics.forwarded_many(now_ms() - ms, lag_pending);
        }
        self.metrics.fanout_direct.fetch_add(direct_n, Relaxed);
        self.metrics.fanout_partly.fetch_add(partly_n, Relaxed);
        self.metrics.fanout_queued.fetch_add(queued_n, Relaxed);
        true
    }

    /// Queues `message` (built per peer) to those of `peer_ids` that are sockets of `login_id`.
    pub fn send_to(
        &self,
        login_id: &str,
        peer_ids: &[u64],
        mut message: impl FnMut() -> Outgoing,
    ) -> usize {
        let inner = self.lock();
        let Some(entry) = inner.logins.get(login_id) else {
            return 0;
        };
        entry
            .peers
            .iter()
            .filter(|p| peer_ids.contains(&p.id))
            .filter(|p| p.offer(message()))
            .count()
    }

    /// True while one of `peer_ids` is still a socket of `login_id` here.
    pub fn is_connected(&self, login_id: &str, peer_ids: &[u64]) -> bool {
        self.lock()
            .logins
            .get(login_id)
            .is_some_and(|e| e.peers.iter().any(|p| peer_ids.contains(&p.id)))
    }
}

/// The browser's frame for one message of a general channel:
/// `{"type":"message","channel":…,"epoch":…,"offset":…,"data":…}` (no epoch/offset for a plain
/// publish; `"replayed":true` for one read from the stream). A message that is JSON is `data`
/// as it is; other text is a JSON string; bytes that are not UTF-8 make no frame (a WebSocket
/// text frame must be UTF-8).
pub fn frame(
    channel: &str,
    at: Option<&(Arc<str>, Offset)>,
    message: &[u8],
    replayed: bool,
) -> Option<Utf8Bytes> {
    let text = std::str::from_utf8(message).ok()?;
    let data = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        text.trim().to_string()
    } else {
        serde_json::Value::from(text).to_string()
    };
    let mut out = String::with_capacity(data.len() + channel.len() + 96);
    out.push_str("{\"type\":\"message\",\"channel\":");
    out.push_str(&serde_json::Value::from(channel).to_string());
    if let Some((epoch, offset)) = at {
        out.push_str(&format!(",\"epoch\":\"{epoch}\",\"offset\":\"{offset}\""));
    }
    if replayed {
        out.push_str(",\"replayed\":true");
    }
    out.push_str(",\"data\":");
    out.push_str(&data);
    out.push('}');
    Some(Utf8Bytes::from(out))
}
