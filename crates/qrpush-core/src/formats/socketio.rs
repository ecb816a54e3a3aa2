//! Emitting to Socket.IO servers that share their broadcasts through Redis with
//! `@socket.io/redis-adapter`: the message an `io.to(room).emit(event, ...args)` of another server
//! would publish, so that every server delivers it to its own clients.
//!
//! Two adapters, two formats (both MessagePack, see `msgpack.rs`; `uid` "emitter" marks a message
//! from no server, which the adapters accept and never answer):
//! - the classic adapter (`createAdapter`): PUBLISH of `[uid, packet, opts]` where `packet` is
//!   `{type: 2 (EVENT), data: [event, ...args], nsp}` and `opts` is `{rooms, flags, except}` —
//!   `@socket.io/redis-emitter`'s message, key for key. The channel is `<key>#<nsp>#`, or
//!   `<key>#<nsp>#<room>#` when exactly one room is targeted (each server PSUBSCRIBEs
//!   `<key>#<nsp>#*` and drops messages for rooms it does not have).
//! - the sharded adapter (`createShardedAdapter`, Redis 7+ sharded Pub/Sub): SPUBLISH of the
//!   cluster message `{type: 3 (BROADCAST), data: {packet, opts: {rooms, except, flags}}, uid,
//!   nsp}`, as the adapter's own `ClusterAdapter` writes it. `nsp` is needed: socket.io-adapter
//!   2.5.6 and later ignore a message without it. The channel is `<prefix>#<nsp>#`, or
//!   `<prefix>#<nsp>#<room>#` for a single room when the servers' `subscriptionMode` gives rooms
//!   channels of their own: "dynamic" (the default; not for a room that looks like a socket id,
//!   20 characters, which have none there) and "dynamic-private". The adapter itself sends JSON
//!   unless the message holds binary data and reads both (a first byte `{` means JSON); this
//!   module always sends MessagePack, the classic format's encoding, which is shorter.
//!
//! - the streams adapter (`@socket.io/redis-streams-adapter`): one entry appended to a Redis stream,
//!   which every server reads and servers with connection-state recovery replay to a client that
//!   was away (`durable/socketio.rs` writes it).
//!
//! `flags` is `{}` unless set: `volatile: true` (a client that cannot take it at once misses it)
//! and `compress: bool` (permessage-deflate for it), in the order they were first set, as the
//! JavaScript emitter's `Object.assign` leaves them.

use serde_json::Value;

use crate::client::{Client, MAX_CHANNEL_LEN};
use crate::config::{validate_channel_part, ClusterPublish};
use crate::error::{Error, Result, Subject};

use super::msgpack;
use crate::durable::socketio::{self as streams, Broadcast, StreamOptions};
// The event check lives with the streams entries (below this module in the layers); both
// adapters' targets refuse the same names.
pub use crate::durable::socketio::{check_event, RESERVED_EVENTS};

/// The `uid` of a message no Socket.IO server sent (the emitters' and `ClusterAdapter`'s name).
const EMITTER_UID: &str = "emitter";
/// socket.io-parser's packet type EVENT.
const PACKET_EVENT: u64 = 2;
/// socket.io-adapter's cluster message type BROADCAST.
const CLUSTER_BROADCAST: u64 = 3;

/// Which adapter the Socket.IO servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `createAdapter`: Redis Pub/Sub (PUBLISH / PSUBSCRIBE).
    Classic,
    /// `createShardedAdapter`: sharded Pub/Sub (SPUBLISH / SSUBSCRIBE), Redis 7 and later.
    Sharded(SubscriptionMode),
    /// `@socket.io/redis-streams-adapter`: XADD to a stream (the target's [`StreamOptions`]).
    Streams,
}

/// The sharded adapter's `subscriptionMode`: which rooms have a channel of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionMode {
    /// No room has one: everything goes to the namespace's channel.
    Static,
    /// Rooms that are not a socket id have one (the adapter's default).
    Dynamic,
    /// Every room has one.
    DynamicPrivate,
}

impl SubscriptionMode {
    /// The adapter's own names: `static`, `dynamic`, `dynamic-private`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "static" => Some(SubscriptionMode::Static),
            "dynamic" => Some(SubscriptionMode::Dynamic),
            "dynamic-private" => Some(SubscriptionMode::DynamicPrivate),
            _ => None,
        }
    }
}

/// A broadcast flag, in the emitter's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Volatile,
    Compress,
}

impl Flag {
    fn name(self) -> &'static str {
        match self {
            Flag::Volatile => "volatile",
            Flag::Compress => "compress",
        }
    }
}

/// Where an emit goes: the adapter, its channel prefix (the adapter's `key` / `channelPrefix`,
/// "socket.io" by default), the namespace, the rooms targeted (none: the whole namespace), the
/// rooms left out, and the flags. Built by the `with_*`/`to`/`except`/`flag` methods, which keep
/// it valid: rooms and namespaces are checked as they are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    adapter: Adapter,
    key: String,
    namespace: String,
    rooms: Vec<String>,
    except: Vec<String>,
    flags: Vec<(Flag, bool)>,
    /// The streams adapter's stream name, stream count and maximum length.
    streams: StreamOptions,
}

/// An encoded emit: the channel (before the client's `channel_prefix`), whether it goes by
/// SPUBLISH, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub channel: String,
    pub sharded: bool,
    pub message: Vec<u8>,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            adapter: Adapter::Classic,
            key: "socket.io".into(),
            namespace: "/".into(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Vec::new(),
            streams: StreamOptions::default(),
        }
    }
}

impl Target {
    /// The main namespace `/` of servers whose adapter is `adapter` with channels under `key`.
    pub fn new(adapter: Adapter, key: &str) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::invalid("option 'key' must not be empty").about(Subject::Settings));
        }
        validate_channel_part(key.as_bytes(), MAX_CHANNEL_LEN)
            .map_err(|e| Error::invalid(format!("option 'key' {}", e.detail())))
            .map_err(|e| e.about(Subject::Settings))?;
        Ok(Target {
            adapter,
            key: key.into(),
            ..Target::default()
        })
    }

    /// The main namespace `/` of servers whose adapter is the streams adapter with `options`.
    pub fn streams(options: StreamOptions) -> Self {
        Target {
            adapter: Adapter::Streams,
            streams: options,
            ..Target::default()
        }
    }

    pub fn adapter(&self) -> Adapter {
        self.adapter
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    pub fn except_rooms(&self) -> &[String] {
        &self.except
    }

    /// The same target in namespace `name`, with a `/` put in front when it has none (as the
    /// emitter's `of()` does). Rooms and flags are not carried over: a new namespace starts
    /// afresh, as `emitter.of()` returns a new emitter.
    pub fn of(&self, name: &str) -> Result<Self> {
        let namespace = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        validate_channel_part(namespace.as_bytes(), MAX_CHANNEL_LEN)
            .map_err(|e| e.about(Subject::Namespace))?;
        Ok(Target {
            namespace,
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Vec::new(),
            ..self.clone()
        })
    }

    /// Also targets `rooms` (a set: a room already targeted is not added twice).
    pub fn to<S: AsRef<str>>(&self, rooms: &[S], single: bool) -> Result<Self> {
        let mut next = self.clone();
        add_rooms(&mut next.rooms, rooms, single)?;
        Ok(next)
    }

    /// Also leaves out the clients in `rooms`.
    pub fn except<S: AsRef<str>>(&self, rooms: &[S], single: bool) -> Result<Self> {
        let mut next = self.clone();
        add_rooms(&mut next.except, rooms, single)?;
        Ok(next)
    }

    /// Sets `flag` to `value`; a flag set before keeps its place.
    pub fn flag(&self, flag: Flag, value: bool) -> Self {
        let mut next = self.clone();
        match next.flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(entry) => entry.1 = value,
            None => next.flags.push((flag, value)),
        }
        next
    }

    /// The channel this target's messages go to.
    pub fn channel(&self) -> String {
        let base = format!("{}#{}#", self.key, self.namespace);
        let [room] = self.rooms.as_slice() else {
            return base;
        };
        let own_channel = match self.adapter {
            Adapter::Classic => true,
            Adapter::Sharded(SubscriptionMode::Static) => false,
            // The adapter's test for a socket id: a string of 20 characters (UTF-16 units).
            Adapter::Sharded(SubscriptionMode::Dynamic) => room.encode_utf16().count() != 20,
            Adapter::Sharded(SubscriptionMode::DynamicPrivate) => true,
            // No channel: the broadcast is a stream entry.
            Adapter::Streams => false,
        };
        if own_channel {
            format!("{base}{room}#")
        } else {
            base
        }
    }

    /// The message for `event` with `args` (JSON-like values, as PHP's json_encode sees them)
    /// and its channel. Pub/Sub adapters only: the streams adapter takes [`Self::broadcast`].
    pub fn encode(&self, event: &str, args: &[Value]) -> Result<Encoded> {
        check_event(event)?;
        if self.adapter == Adapter::Streams {
            return Err(Error::invalid(
                "the streams adapter takes a stream entry, not a Pub/Sub message",
            ));
        }
        let mut message = Vec::with_capacity(64 + event.len() + self.namespace.len());
        match self.adapter {
            Adapter::Classic => {
                msgpack::write_array_len(3, &mut message);
                msgpack::write_str(EMITTER_UID, &mut message);
                self.write_packet(event, args, &mut message);
                msgpack::write_map_len(3, &mut message);
                self.write_rooms("rooms", &self.rooms, &mut message);
                self.write_flags(&mut message);
                self.write_rooms("except", &self.except, &mut message);
            }
            // (Streams returned above.)
            Adapter::Sharded(_) | Adapter::Streams => {
                msgpack::write_map_len(4, &mut message);
                msgpack::write_str("type", &mut message);
                msgpack::write_uint(CLUSTER_BROADCAST, &mut message);
                msgpack::write_str("data", &mut message);
                msgpack::write_map_len(2, &mut message);
                msgpack::write_str("packet", &mut message);
                self.write_packet(event, args, &mut message);
                msgpack::write_str("opts", &mut message);
                msgpack::write_map_len(3, &mut message);
                self.write_rooms("rooms", &self.rooms, &mut message);
                self.write_rooms("except", &self.except, &mut message);
                self.write_flags(&mut message);
                msgpack::write_str("uid", &mut message);
                msgpack::write_str(EMITTER_UID, &mut message);
                msgpack::write_str("nsp", &mut message);
                msgpack::write_str(&self.namespace, &mut message);
            }
        }
        Ok(Encoded {
            channel: self.channel(),
            sharded: matches!(self.adapter, Adapter::Sharded(_)),
            message,
        })
    }

    /// [`encode`](Self::encode) with the arguments given as the JSON text of their list, as the
    /// PHP binding writes it (the same walk over PHP values as a published message's JSON).
    pub fn encode_json_args(&self, event: &str, args: &[u8]) -> Result<Encoded> {
        check_event(event)?;
        let args: Vec<Value> = serde_json::from_slice(args).map_err(|e| {
            Error::invalid(format!("are not a JSON list: {e}")).about(Subject::Message)
        })?;
        self.encode(event, &args)
    }

    /// The stream entry for `event` with `args` (the JSON text of their list) to this target.
    pub fn broadcast(&self, event: &str, args: &[u8]) -> Result<Broadcast> {
        check_event(event)?;
        Ok(Broadcast {
            namespace: self.namespace.clone(),
            rooms: self.rooms.clone(),
            except: self.except.clone(),
            flags: self.flags.iter().map(|(f, v)| (f.name(), *v)).collect(),
            event: event.to_string(),
            args: args.to_vec(),
        })
    }

    /// Emits `event` with `args` (the JSON text of their list, as the PHP binding writes it) with
    /// `client`: PUBLISH or SPUBLISH of the adapter's message, which returns Redis's count of
    /// receivers (see [`emit`]), or one stream entry for the streams adapter, which returns 1 (the
    /// entry appended: Redis cannot tell how many servers will read it).
    pub fn emit_json_args(&self, client: &Client, event: &str, args: &[u8]) -> Result<i64> {
        if self.adapter == Adapter::Streams {
            let broadcast = self.broadcast(event, args)?;
            streams::emit(client, &self.streams, &broadcast)?;
            return Ok(1);
        }
        let encoded = self.encode_json_args(event, args)?;
        emit(client, &encoded)
    }

    /// `{type: 2, data: [event, ...args], nsp}`: socket.io-parser's EVENT packet.
    fn write_packet(&self, event: &str, args: &[Value], out: &mut Vec<u8>) {
        msgpack::write_map_len(3, out);
        msgpack::write_str("type", out);
        msgpack::write_uint(PACKET_EVENT, out);
        msgpack::write_str("data", out);
        msgpack::write_array_len(1 + args.len(), out);
        msgpack::write_str(event, out);
        for arg in args {
            msgpack::write_value(arg, out);
        }
        msgpack::write_str("nsp", out);
        msgpack::write_str(&self.namespace, out);
    }

    fn write_rooms(&self, name: &str, rooms: &[String], out: &mut Vec<u8>) {
        msgpack::write_str(name, out);
        msgpack::write_array_len(rooms.len(), out);
        for room in rooms {
            msgpack::write_str(room, out);
        }
    }

    fn write_flags(&self, out: &mut Vec<u8>) {
        msgpack::write_str("flags", out);
        msgpack::write_map_len(self.flags.len(), out);
        for (flag, value) in &self.flags {
            msgpack::write_str(flag.name(), out);
            msgpack::write_bool(*value, out);
        }
    }
}

/// Adds each room that is not there yet. A room must be non-empty (an empty room would make the
/// room channel `<key>#<nsp>##`, which the classic adapter reads as the whole namespace) and fit
/// in a channel name.
fn add_rooms<S: AsRef<str>>(set: &mut Vec<String>, rooms: &[S], single: bool) -> Result<()> {
    for (index, room) in rooms.iter().enumerate() {
        let room = room.as_ref();
        let subject = if single {
            Subject::Room
        } else {
            Subject::RoomAt(index)
        };
        if room.is_empty() {
            return Err(Error::invalid("must not be empty").about(subject));
        }
        validate_channel_part(room.as_bytes(), MAX_CHANNEL_LEN).map_err(|e| e.about(subject))?;
        if !set.iter().any(|r| r == room) {
            set.push(room.to_string());
        }
    }
    Ok(())
}

/// Sends an encoded emit with `client`: PUBLISH, or SPUBLISH for the sharded adapter, to the
/// channel after the client's `channel_prefix`, whatever the client's `cluster_publish` says (the
/// classic adapter's servers PSUBSCRIBE, the sharded one's SSUBSCRIBE). On Redis Cluster it goes
/// to the primary owning the channel's slot, where the sharded adapter's servers subscribe.
/// Returns Redis's count of receivers: for the classic adapter, the Socket.IO servers listening
/// to the namespace; for the sharded one, those subscribed to the channel (on a Redis Cluster,
/// those of the channel's shard).
pub fn emit(client: &Client, encoded: &Encoded) -> Result<i64> {
    let mode = if encoded.sharded {
        ClusterPublish::Sharded
    } else {
        ClusterPublish::Global
    };
    client.publish_as(mode, encoded.channel.as_bytes(), &encoded.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn classic() -> Target {
        Target::new(Adapter::Classic, "socket.io").unwrap()
    }

    fn sharded(mode: SubscriptionMode) -> Target {
        Target::new(Adapter::Sharded(mode), "socket.io").unwrap()
    }

    #[test]
    fn channels_follow_each_adapter() {
        let t = classic();
        assert_eq!(t.channel(), "socket.io#/#");
        assert_eq!(t.to(&["r1"], true).unwrap().channel(), "socket.io#/#r1#");
        let two = t.to(&["r1", "r2"], false).unwrap();
        assert_eq!(two.channel(), "socket.io#/#");
        assert_eq!(
            t.of("admin").unwrap().to(&["r"], true).unwrap().channel(),
            "socket.io#/admin#r#"
        );
        let socket_id = "abcdefghij0123456789"; // 20 characters, like a socket id
        for (mode, room, channel) in [
            (SubscriptionMode::Dynamic, "r1", "socket.io#/#r1#"),
            (SubscriptionMode::Dynamic, socket_id, "socket.io#/#"),
            (SubscriptionMode::Static, "r1", "socket.io#/#"),
            (
                SubscriptionMode::DynamicPrivate,
                socket_id,
                "socket.io#/#abcdefghij0123456789#",
            ),
        ] {
            let t = sharded(mode).to(&[room], true).unwrap();
            assert_eq!(t.channel(), channel, "{mode:?} {room}");
        }
    }

    #[test]
    fn rooms_are_sets_and_flags_keep_their_first_place() {
        let t = classic()
            .to(&["a", "b"], false)
            .unwrap()
            .to(&["a"], true)
            .unwrap()
            .flag(Flag::Compress, false)
            .flag(Flag::Volatile, true)
            .flag(Flag::Compress, true);
        assert_eq!(t.rooms(), ["a", "b"]);
        assert_eq!(
            t.flags,
            vec![(Flag::Compress, true), (Flag::Volatile, true)]
        );
    }

    #[test]
    fn classic_message_is_the_emitters_array() {
        let t = classic()
            .to(&["r1"], true)
            .unwrap()
            .except(&["x"], true)
            .unwrap()
            .flag(Flag::Volatile, true);
        let got = t.encode("hi", &[json!(1), json!({"a": "b"})]).unwrap();
        let mut want = vec![0x93, 0xa7];
        want.extend_from_slice(b"emitter");
        // packet: {type: 2, data: ["hi", 1, {a: "b"}], nsp: "/"}
        want.extend_from_slice(&[0x83, 0xa4]);
        want.extend_from_slice(b"type");
        want.extend_from_slice(&[0x02, 0xa4]);
        want.extend_from_slice(b"data");
        want.extend_from_slice(&[0x93, 0xa2, b'h', b'i', 0x01, 0x81, 0xa1, b'a', 0xa1, b'b']);
        want.extend_from_slice(&[0xa3]);
        want.extend_from_slice(b"nsp");
        want.extend_from_slice(&[0xa1, b'/']);
        // opts: {rooms: ["r1"], flags: {volatile: true}, except: ["x"]}
        want.extend_from_slice(&[0x83, 0xa5]);
        want.extend_from_slice(b"rooms");
        want.extend_from_slice(&[0x91, 0xa2, b'r', b'1', 0xa5]);
        want.extend_from_slice(b"flags");
        want.extend_from_slice(&[0x81, 0xa8]);
        want.extend_from_slice(b"volatile");
        want.extend_from_slice(&[0xc3, 0xa6]);
        want.extend_from_slice(b"except");
        want.extend_from_slice(&[0x91, 0xa1, b'x']);
        assert_eq!(got.message, want);
        assert_eq!(got.channel, "socket.io#/#r1#");
        assert!(!got.sharded);
    }

    #[test]
    fn sharded_message_is_a_cluster_broadcast_with_its_namespace() {
        let t = sharded(SubscriptionMode::Dynamic).of("/chat").unwrap();
        let got = t.encode("e", &[]).unwrap();
        let mut want = vec![0x84, 0xa4];
        want.extend_from_slice(b"type");
        want.extend_from_slice(&[0x03, 0xa4]);
        want.extend_from_slice(b"data");
        want.extend_from_slice(&[0x82, 0xa6]);
        want.extend_from_slice(b"packet");
        want.extend_from_slice(&[0x83, 0xa4]);
        want.extend_from_slice(b"type");
        want.extend_from_slice(&[0x02, 0xa4]);
        want.extend_from_slice(b"data");
        want.extend_from_slice(&[0x91, 0xa1, b'e', 0xa3]);
        want.extend_from_slice(b"nsp");
        want.extend_from_slice(&[0xa5]);
        want.extend_from_slice(b"/chat");
        want.extend_from_slice(&[0xa4]);
        want.extend_from_slice(b"opts");
        want.extend_from_slice(&[0x83, 0xa5]);
        want.extend_from_slice(b"rooms");
        want.extend_from_slice(&[0x90, 0xa6]);
        want.extend_from_slice(b"except");
        want.extend_from_slice(&[0x90, 0xa5]);
        want.extend_from_slice(b"flags");
        want.extend_from_slice(&[0x80, 0xa3]);
        want.extend_from_slice(b"uid");
        want.extend_from_slice(&[0xa7]);
        want.extend_from_slice(b"emitter");
        want.extend_from_slice(&[0xa3]);
        want.extend_from_slice(b"nsp");
        want.extend_from_slice(&[0xa5]);
        want.extend_from_slice(b"/chat");
        assert_eq!(got.message, want);
        assert_eq!(got.channel, "socket.io#/chat#");
        assert!(got.sharded);
    }

    #[test]
    fn invalid_input_is_refused_naming_it() {
        let e = classic().encode("disconnect", &[]).unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Event));
        let e = classic().to(&["ok", ""], false).unwrap_err();
        assert_eq!(e.subject(), Some(Subject::RoomAt(1)));
        let e = classic().except(&["a\nb"], true).unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Room));
        let e = classic().of("/a\0").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Namespace));
        let e = Target::new(Adapter::Classic, "").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Settings));
    }
}
