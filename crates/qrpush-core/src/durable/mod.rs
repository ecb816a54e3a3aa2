//! Durable delivery: a publish that is also stored, so a subscriber that was away can get what it
//! missed instead of losing it (Pub/Sub alone is at-most-once).
//!
//! ```text
//!  publish_durable(channel, m) ──one Lua script──▶ XADD qrpush:stream:{channel} MAXLEN ~ N * d m
//!                                                  PUBLISH channel "qrpush-durable/1 <epoch> <offset>\n" m
//!  reader (the gateway): SUBSCRIBE channel, hold live messages, read_since(epoch, offset),
//!                        send the entries read, then the held ones after the last entry read
//! ```
//!
//! **Atomic.** The append and the PUBLISH are one script run (EVALSHA, EVAL on NOSCRIPT), so no
//! reader ever sees one without the other, and the PUBLISH carries the entry's id (the *offset*),
//! which only exists once XADD ran: MULTI/EXEC could not put it into the message. Many publishes
//! pipeline one EVALSHA each; a script that may have run is never sent again.
//!
//! **Capped.** Each channel has one stream, trimmed at every publish to about `stream_maxlen`
//! entries (`XADD MAXLEN ~`) and, with `stream_max_age`, to entries younger than that
//! (`XTRIM MINID ~`); with `stream_ttl` it expires that long after its last publish.
//!
//! **Epoch.** A second key holds the stream's *epoch*, made when the stream is made. A reader's
//! position is (epoch, offset): when the stream was deleted, evicted or expired and made again, its
//! epoch differs and the reader must resync (reload its state from the app) instead of receiving a
//! silent gap. Trimming is caught by the offset: a reader whose own entry is no longer in the
//! stream may have missed entries after it, so it resyncs too ([`ResyncReason`]).
//!
//! **No gap, no duplicate** for a reader that subscribes to the channel *before* it reads: an entry
//! is either in what [`Durable::read_since`] returns or published after the read (and so delivered
//! live); live messages whose offset is at most the last one read are duplicates of the read.
//!
//! Keys: `qrpush:stream:{<channel>}` (the stream; entries have one field, `d`, the message) and
//! `qrpush:stream:{<channel>}:epoch`, where `<channel>` has `channel_prefix` in front; the braces
//! make both one Redis Cluster hash slot.

pub mod offset;
mod script;
pub mod socketio;
pub mod wire;

use redis::Value;

use crate::client::{Client, MAX_CHANNEL_LEN};
use crate::cluster::slot;
use crate::config::{validate_channel_part, ClusterPublish};
use crate::connection::server_error;
use crate::error::{Error, ErrorKind, ItemPart, Result, Subject};
pub use offset::Offset;
use script::{Script, PUBLISH, REPLAY};

/// The prefix of every stream key.
pub const KEY_PREFIX: &str = "qrpush:stream:";
/// The most entries one [`Durable::read_since`] returns.
pub const MAX_READ: usize = 100_000;

/// A position in a channel's stream: the stream's epoch and an entry's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: Offset,
}

/// One durable publish, as Redis stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub offset: Offset,
    pub epoch: String,
    /// Subscribers that received it (PUBLISH's reply).
    pub receivers: i64,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: Offset,
    pub message: Vec<u8>,
}

/// Why a reader cannot be given what it missed and must reload its state instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The stream is another one than the reader's (deleted, evicted or expired since), or gone.
    EpochChanged,
    /// The reader's entry was trimmed (entries after it may have been too), or never existed.
    OffsetGone,
    /// More entries were added since the reader's offset than one read returns.
    TooFarBehind,
}

impl ResyncReason {
    /// The name the script and the gateway's `resync` message use.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::EpochChanged => "epoch_changed",
            ResyncReason::OffsetGone => "offset_gone",
            ResyncReason::TooFarBehind => "too_far_behind",
        }
    }
}

/// What a reader missed, from [`Durable::read_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// No position was given: nothing to replay; the reader starts after the stream's head.
    Fresh,
    /// Every entry after the reader's offset, in order (maybe none).
    Recovered(Vec<Entry>),
    /// History may be missing: the reader must resync, then continue after the stream's head.
    Resync(ResyncReason),
}

/// The answer of [`Durable::read_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The stream's epoch and last entry at the time of the read; `None` when there is no stream
    /// (no durable publish yet, or it expired).
    pub head: Option<Position>,
    pub replay: Replay,
}

/// Durable publishes and reads over a client's pool, time bounds and `channel_prefix`.
pub struct Durable<'a> {
    client: &'a Client,
}

impl<'a> Durable<'a> {
    pub fn new(client: &'a Client) -> Self {
        Durable { client }
    }

    /// The stream key of `channel` (without `channel_prefix`; it is added here).
    pub fn stream_key(&self, channel: &[u8]) -> Vec<u8> {
        let prefix = self.client.config().channel_prefix.as_bytes();
        let mut key = Vec::with_capacity(KEY_PREFIX.len() + prefix.len() + channel.len() + 2);
        key.extend_from_slice(KEY_PREFIX.as_bytes());
        key.push(b'{');
        key.extend_from_slice(prefix);
        key.extend_from_slice(channel);
        key.push(b'}');
        key
    }

    /// The epoch key of `channel`'s stream.
    pub fn epoch_key(&self, channel: &[u8]) -> Vec<u8> {
        let mut key = self.stream_key(channel);
        key.extend_from_slice(b":epoch");
        key
    }

    /// Stores `message` in `channel`'s stream and publishes it, atomically. Errors are about
    /// [`Subject::Channel`] or [`Subject::Message`] (nothing sent after one), or Redis's.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> Result<Published> {
        self.publish_encoded(channel, || Ok(message))
    }

    /// [`Durable::publish`] of the message `encode` makes, called only for a valid channel.
    pub fn publish_encoded<P: AsRef<[u8]>>(
        &self,
        channel: &[u8],
        encode: impl FnOnce() -> Result<P>,
    ) -> Result<Published> {
        check_channel(channel)
            .and_then(|()| self.check_slot(channel))
            .map_err(|e| e.about(Subject::Channel))?;
        let message = self
            .checked_message(encode)
            .map_err(|e| e.about(Subject::Message))?;
        let item = self.item(channel, message.as_ref());
        let in_slot = slot::slot(&item.stream);
        self.client.run_in_slot_published(
            in_slot,
            1,
            |conn, timeout, asking| {
                let reply =
                    conn.request_one_asking(timeout, asking, |p| item.pack(p, &PUBLISH, true))?;
                let reply = match reply {
                    Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                        conn.request_one_asking(timeout, asking, |p| item.pack(p, &PUBLISH, false))?
                    }
                    other => other,
                };
                published(reply, None)
            },
            |p| p.receivers == 0,
            |_, e| e,
        )
    }

    /// On Redis Cluster in the `sharded` mode the script's SPUBLISH must be in its keys' slot:
    /// a channel whose stream key hashes elsewhere (a `{…}` tag or a `}` in the name) is refused
    /// before anything is sent. The error names no subject.
    fn check_slot(&self, channel: &[u8]) -> Result<()> {
        let config = self.client.config();
        if !self.client.is_cluster() || config.cluster_publish != ClusterPublish::Sharded {
            return Ok(());
        }
        let key = self.stream_key(channel);
        if slot::slot(&key) == slot::prefixed_slot(config.channel_prefix.as_bytes(), channel) {
            return Ok(());
        }
        Err(Error::invalid(
            "has braces that would put its stream key in another Redis Cluster hash slot than the channel (durable publishes need both in one slot with qrpush.cluster_publish = sharded)",
        ))
    }

    /// An empty batch of durable publishes for up to `capacity` messages (see [`DurableBatch`]).
    pub fn batch<P: AsRef<[u8]>>(&self, capacity: usize) -> DurableBatch<'_, 'a, P> {
        DurableBatch {
            durable: self,
            items: Vec::with_capacity(capacity),
        }
    }

    /// What a reader at `since` (epoch, offset) missed in `channel` (without `channel_prefix`),
    /// at most `limit` entries (more: [`ResyncReason::TooFarBehind`]); with no `since`, only the
    /// stream's head ([`Replay::Fresh`]). One atomic read.
    pub fn read_since(
        &self,
        channel: &[u8],
        since: Option<(&str, Offset)>,
        limit: usize,
    ) -> Result<ReadOutcome> {
        check_channel(channel).map_err(|e| e.about(Subject::Channel))?;
        let limit = limit.clamp(1, MAX_READ).to_string();
        let (epoch, offset) = match since {
            Some((epoch, offset)) => (epoch.to_string(), offset.to_string()),
            None => (String::new(), String::new()),
        };
        let keys = [self.stream_key(channel), self.epoch_key(channel)];
        let args: [&[u8]; 3] = [epoch.as_bytes(), offset.as_bytes(), limit.as_bytes()];
        let pack = |p: &mut crate::connection::Packer<'_>, by_sha: bool| {
            REPLAY.pack(p, by_sha, [&keys[0], &keys[1]], &args)
        };
        // Both keys share the channel's `{tag}`: one slot, on Redis Cluster its owner's.
        let reply = self
            .client
            .run_in_slot(slot::slot(&keys[0]), 0, |conn, timeout, asking| {
                let reply = match conn.request_one_asking(timeout, asking, |p| pack(p, true))? {
                    Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                        conn.request_one_asking(timeout, asking, |p| pack(p, false))?
                    }
                    other => other,
                };
                // An error reply fails inside the request: a Cluster redirect is then followed.
                match reply {
                    Value::ServerError(e) => Err(server_error(&e, "durable replay read")),
                    other => Ok(other),
                }
            })?;
        read_outcome(reply)
    }

    fn checked_message<P: AsRef<[u8]>>(&self, encode: impl FnOnce() -> Result<P>) -> Result<P> {
        let message = encode()?;
        let len = message.as_ref().len();
        let max = self.client.config().max_payload;
        if len > max {
            return Err(Error::invalid(format!(
                "is {len} bytes, more than qrpush.max_payload ({max} bytes)"
            )));
        }
        Ok(message)
    }

    /// The keys and arguments of one publish.
    fn item<'m>(&self, channel: &[u8], message: &'m [u8]) -> Item<'m> {
        let config = self.client.config();
        let mut full = Vec::with_capacity(config.channel_prefix.len() + channel.len());
        full.extend_from_slice(config.channel_prefix.as_bytes());
        full.extend_from_slice(channel);
        let ms = |d: std::time::Duration| d.as_millis().to_string();
        Item {
            stream: self.stream_key(channel),
            epoch: self.epoch_key(channel),
            channel: full,
            message,
            maxlen: config.stream_maxlen.to_string(),
            max_age: ms(config.stream_max_age),
            ttl: ms(config.stream_ttl),
            publish: if self.client.is_cluster()
                && config.cluster_publish == ClusterPublish::Sharded
            {
                b"SPUBLISH"
            } else {
                b"PUBLISH"
            },
        }
    }
}

/// Durable publishes sent in one round trip (one EVALSHA each, pipelined), checked as they are
/// added: nothing is sent unless every one is valid. Errors name the item ([`Subject::Item`]).
pub struct DurableBatch<'d, 'c, P> {
    durable: &'d Durable<'c>,
    items: Vec<(Vec<u8>, P)>,
}

impl<P: AsRef<[u8]>> DurableBatch<'_, '_, P> {
    /// Adds the next item: its channel is checked, then `encode` makes its message (only for a
    /// valid channel), which is checked too.
    pub fn push_encoded(
        &mut self,
        channel: &[u8],
        encode: impl FnOnce() -> Result<P>,
    ) -> Result<()> {
        let index = self.items.len();
        let about = |part| Subject::Item {
            index,
            part: Some(part),
        };
        check_channel(channel)
            .and_then(|()| self.durable.check_slot(channel))
            .map_err(|e| e.about(about(ItemPart::Channel)))?;
        let message = self
            .durable
            .checked_message(encode)
            .map_err(|e| e.about(about(ItemPart::Message)))?;
        self.items.push((channel.to_vec(), message));
        Ok(())
    }

    /// Stores and publishes every item, in order; returns what Redis stored, in order. An empty
    /// batch sends nothing. When Redis does not know the script, the items it refused with
    /// NOSCRIPT (which did not run) are sent again with the script's source, in their order.
    pub fn publish(self) -> Result<Vec<Published>> {
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<Item<'_>> = self
            .items
            .iter()
            .map(|(channel, message)| self.durable.item(channel, message.as_ref()))
            .collect();
        // One slot per item (its stream's): on Redis Cluster, one pipeline per owning node.
        let slots: Vec<u16> = items.iter().map(|item| slot::slot(&item.stream)).collect();
        let replies = self.durable.client.run_per_slot_published(
            &slots,
            items.len() as u64,
            |conn, timeout, which| send_publishes(conn, timeout, &items, which),
            reached_nobody,
        )?;
        replies
            .into_iter()
            .enumerate()
            .map(|(i, reply)| published(reply, Some(i)).map_err(Error::mark_maybe_sent))
            .collect()
    }
}

/// Sends the publishes `which` names (index into `items`, and whether ASKING goes first) in one
/// pipeline and returns their replies in that order. When Redis does not know the script, the
/// items it refused with NOSCRIPT (which did not run) are sent again with the script's source,
/// in their order; after that round trip nothing is ever retried (the first one may have run).
fn send_publishes(
    conn: &mut crate::connection::Connection,
    timeout: std::time::Instant,
    items: &[Item<'_>],
    which: &[(usize, bool)],
) -> Result<Vec<Value>> {
    let pack = |p: &mut crate::connection::Packer<'_>, (i, asking): (usize, bool), by_sha: bool| {
        if asking {
            p.command(|cmd| {
                cmd.arg("ASKING");
            });
        }
        items[i].pack(p, &PUBLISH, by_sha);
    };
    let count = |which: &mut dyn Iterator<Item = &(usize, bool)>| -> usize {
        which.map(|(_, asking)| 1 + usize::from(*asking)).sum()
    };
    let replies = conn.request(timeout, count(&mut which.iter()), |p| {
        for &w in which {
            pack(p, w, true);
        }
    })?;
    let mut replies = script_replies(replies, which);
    let unknown: Vec<usize> = (0..replies.len())
        .filter(|&n| matches!(&replies[n], Value::ServerError(e) if e.code() == "NOSCRIPT"))
        .collect();
    if !unknown.is_empty() {
        // The first one loads the script (EVAL), the rest name it again.
        let resent: Vec<(usize, bool)> = unknown.iter().map(|&n| which[n]).collect();
        let again = conn
            .request(timeout, count(&mut resent.iter()), |p| {
                for (k, &w) in resent.iter().enumerate() {
                    pack(p, w, k > 0);
                }
            })
            .map_err(Error::mark_maybe_sent)?;
        for (n, reply) in unknown.into_iter().zip(script_replies(again, &resent)) {
            replies[n] = reply;
        }
    }
    Ok(replies)
}

/// The scripts' replies of a pipeline, without ASKING's (each ASKING answers before its script).
fn script_replies(replies: Vec<Value>, which: &[(usize, bool)]) -> Vec<Value> {
    let mut replies = replies.into_iter();
    which
        .iter()
        .map(|(_, asking)| {
            if *asking {
                replies.next();
            }
            replies.next().unwrap_or(Value::Nil)
        })
        .collect()
}

/// The keys and arguments of one durable publish.
struct Item<'m> {
    stream: Vec<u8>,
    epoch: Vec<u8>,
    /// With `channel_prefix`.
    channel: Vec<u8>,
    message: &'m [u8],
    maxlen: String,
    max_age: String,
    ttl: String,
    /// PUBLISH, or SPUBLISH on Redis Cluster in the `sharded` mode.
    publish: &'static [u8],
}

impl Item<'_> {
    fn pack(&self, p: &mut crate::connection::Packer<'_>, script: &Script, by_sha: bool) {
        script.pack(
            p,
            by_sha,
            [&self.stream, &self.epoch],
            &[
                &self.channel,
                self.message,
                self.maxlen.as_bytes(),
                self.max_age.as_bytes(),
                self.ttl.as_bytes(),
                self.publish,
            ],
        );
    }
}

/// A channel name as publish accepts it: non-empty, bounded, no control characters.
fn check_channel(channel: &[u8]) -> Result<()> {
    if channel.is_empty() {
        return Err(Error::invalid("must not be empty"));
    }
    validate_channel_part(channel, MAX_CHANNEL_LEN)
}

/// The publish script's reply: `{offset, epoch, receivers}`.
/// Whether a durable publish script's reply says its PUBLISH reached no subscriber.
fn reached_nobody(reply: &Value) -> bool {
    matches!(reply, Value::Array(items) if matches!(items.get(2), Some(Value::Int(0))))
}

fn published(reply: Value, index: Option<usize>) -> Result<Published> {
    let at = index.map(|i| format!(" message #{i}")).unwrap_or_default();
    let items = match reply {
        Value::Array(items) => items,
        Value::ServerError(e) => {
            return Err(server_error(&e, &format!("durable publish{at}")));
        }
        other => return Err(unexpected(&format!("durable publish{at}"), &other)),
    };
    match items.as_slice() {
        [offset, epoch, Value::Int(receivers)] => Ok(Published {
            offset: text(offset).and_then(|t| t.parse().ok()).ok_or_else(|| {
                protocol("the durable publish script returned a malformed offset")
            })?,
            epoch: text(epoch)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| protocol("the durable publish script returned a malformed epoch"))?,
            receivers: *receivers,
        }),
        _ => Err(protocol(
            "the durable publish script returned a malformed reply",
        )),
    }
}

/// The replay script's reply: `{epoch, last, verdict, offset, message, ...}`.
fn read_outcome(reply: Value) -> Result<ReadOutcome> {
    let items = match reply {
        Value::Array(items) => items,
        Value::ServerError(e) => return Err(server_error(&e, "durable replay read")),
        other => return Err(unexpected("durable replay read", &other)),
    };
    let malformed = || protocol("the durable replay script returned a malformed reply");
    if items.len() < 3 || items.len() % 2 == 0 {
        return Err(malformed());
    }
    let epoch = text(&items[0]).ok_or_else(malformed)?;
    let last = text(&items[1]).ok_or_else(malformed)?;
    let head = match (epoch.is_empty(), last.is_empty()) {
        (true, _) | (_, true) => None,
        (false, false) => Some(Position {
            epoch,
            offset: last.parse().map_err(|_| malformed())?,
        }),
    };
    let replay = match text(&items[2]).ok_or_else(malformed)?.as_str() {
        "fresh" => Replay::Fresh,
        "epoch_changed" => Replay::Resync(ResyncReason::EpochChanged),
        "offset_gone" => Replay::Resync(ResyncReason::OffsetGone),
        "too_far_behind" => Replay::Resync(ResyncReason::TooFarBehind),
        "recovered" => {
            let mut entries = Vec::with_capacity((items.len() - 3) / 2);
            let mut rest = items.into_iter().skip(3);
            while let (Some(offset), Some(message)) = (rest.next(), rest.next()) {
                let offset = text(&offset)
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(malformed)?;
                let message = match message {
                    Value::BulkString(bytes) => bytes,
                    Value::SimpleString(s) => s.into_bytes(),
                    _ => return Err(malformed()),
                };
                entries.push(Entry { offset, message });
            }
            Replay::Recovered(entries)
        }
        _ => return Err(malformed()),
    };
    Ok(ReadOutcome { head, replay })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn protocol(message: &str) -> Error {
    // A reply came, so the script ran: never retried.
    Error::new(ErrorKind::Protocol, message).mark_maybe_sent()
}

fn unexpected(what: &str, value: &Value) -> Error {
    let mut shown = format!("{value:?}");
    shown.truncate(120);
    protocol(&format!("unexpected reply to the {what}: {shown}"))
}
