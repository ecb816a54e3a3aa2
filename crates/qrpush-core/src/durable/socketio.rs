//! Emitting to Socket.IO servers that share their broadcasts through `@socket.io/redis-streams-adapter`:
//! one stream entry per emit, in the adapter's own format, so servers with connection-state
//! recovery replay it to a client that was away (the entry's id is the offset the adapter gives
//! the client).
//!
//! What the adapter reads (its `onRawMessage` and `RedisStreamsAdapter.decode`), as its emitter
//! (`@socket.io/redis-streams-emitter`) writes it:
//!
//! ```text
//! XADD <stream> MAXLEN ~ <maxLen> * uid emitter nsp <namespace> type 3 data <JSON>
//! data: {"packet":{"type":2,"data":[<event>,<arg>...],"nsp":<namespace>},
//!        "opts":{"rooms":[...],"flags":{...},"except":[...]}}
//! ```
//!
//! `type 3` is the cluster message BROADCAST, packet type 2 an EVENT; uid `emitter` is the uid the
//! Socket.IO emitters use (no server ignores it as its own). The adapter reads `data` as JSON
//! because it starts with `{` (MessagePack, base64, is only for binary arguments, which QrPush
//! never sends). With `streamCount` > 1, a namespace's stream is `<stream>-<i>`, `i` the
//! adapter's `hashCode(namespace) % streamCount` (JavaScript's 32-bit string hash and remainder,
//! negative for a negative hash, as the adapter computes it).
//!
//! The stream name is a key, not a channel: `channel_prefix` does not apply.

use std::fmt::Write as _;

use redis::Value;

use super::offset::Offset;
use crate::client::Client;
use crate::connection::server_error;
use crate::error::{Error, ErrorKind, Result};
use crate::json;

/// The adapter's defaults (`streamName`, `maxLen`).
pub const DEFAULT_STREAM: &str = "socket.io";
pub const DEFAULT_MAX_LEN: u64 = 10_000;

/// Event names Socket.IO reserves: an emit of one throws in the JavaScript emitter.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Where the entries go: the adapter's `streamName`, `streamCount` and `maxLen` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    pub stream: String,
    pub stream_count: u32,
    pub max_len: u64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            stream: DEFAULT_STREAM.to_string(),
            stream_count: 1,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl StreamOptions {
    /// The stream the adapter reads `namespace`'s broadcasts from.
    pub fn stream_for(&self, namespace: &str) -> String {
        if self.stream_count <= 1 {
            return self.stream.clone();
        }
        // JavaScript: `hashCode(nsp) % streamCount`, a truncated remainder like Rust's on i64.
        let i = i64::from(js_hash_code(namespace)) % i64::from(self.stream_count);
        format!("{}-{i}", self.stream)
    }
}

/// The adapter's `hashCode`: `hash = hash * 31 + charCodeAt(i); hash |= 0` over UTF-16 code units.
pub fn js_hash_code(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// One broadcast: the namespace, the rooms it targets (none: the whole namespace), the rooms it
/// leaves out, its flags in the order they were set, the event and its arguments (each already
/// JSON).
#[derive(Debug, Clone, Default)]
pub struct Broadcast {
    pub namespace: String,
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub flags: Vec<(&'static str, bool)>,
    pub event: String,
    pub args: Vec<Vec<u8>>,
}

impl Broadcast {
    /// The `data` field: `{"packet":…,"opts":…}` as `JSON.stringify` writes the emitter's object
    /// (key order included).
    pub fn data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.args.iter().map(Vec::len).sum::<usize>());
        out.extend_from_slice(br#"{"packet":{"type":2,"data":["#);
        json::write_str(&self.event, &mut out);
        for arg in &self.args {
            out.push(b',');
            out.extend_from_slice(arg);
        }
        out.extend_from_slice(br#"],"nsp":"#);
        json::write_str(&self.namespace, &mut out);
        out.extend_from_slice(br#"},"opts":{"rooms":"#);
        write_list(&self.rooms, &mut out);
        out.extend_from_slice(br#","flags":{"#);
        for (i, (name, value)) in self.flags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_key(name, &mut out);
            json::write_bool(*value, &mut out);
        }
        out.extend_from_slice(br#"},"except":"#);
        write_list(&self.except, &mut out);
        out.extend_from_slice(b"}}");
        out
    }
}

fn write_list(items: &[String], out: &mut Vec<u8>) {
    json::begin_array(out);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            json::write_comma(out);
        }
        json::write_str(item, out);
    }
    json::end_array(out);
}

/// A namespace as the emitter's `of()` takes it: `/admin` or `admin` (a `/` is put in front).
pub fn namespace(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// Checks an event name: not one Socket.IO reserves.
pub fn check_event(event: &str) -> Result<()> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(Error::invalid(format!(
            "'{event}' is a reserved Socket.IO event name"
        )));
    }
    Ok(())
}

/// Appends `broadcast` to its namespace's stream (one XADD); returns the entry's id: the offset
/// the adapter hands its clients for it.
pub fn emit(client: &Client, options: &StreamOptions, broadcast: &Broadcast) -> Result<Offset> {
    check_event(&broadcast.event)?;
    let stream = options.stream_for(&broadcast.namespace);
    let data = broadcast.data();
    let mut max_len = String::new();
    let _ = write!(max_len, "{}", options.max_len);
    // One key: on Redis Cluster the XADD goes to the owner of the stream's slot.
    let in_slot = crate::cluster::slot::slot(stream.as_bytes());
    client.run_in_slot(in_slot, 1, |conn, timeout, asking| {
        let reply = conn.request_one_asking(timeout, asking, |p| {
            p.command(|cmd| {
                cmd.arg("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(&max_len)
                    .arg("*")
                    .arg("uid")
                    .arg("emitter")
                    .arg("nsp")
                    .arg(&broadcast.namespace)
                    .arg("type")
                    .arg("3")
                    .arg("data")
                    .arg(&data);
            })
        })?;
        match reply {
            Value::BulkString(id) => std::str::from_utf8(&id)
                .ok()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| bad_reply(&Value::BulkString(id.clone()))),
            Value::ServerError(e) => Err(server_error(&e, &format!("XADD to {stream}"))),
            other => Err(bad_reply(&other)),
        }
    })
}

fn bad_reply(value: &Value) -> Error {
    let mut shown = format!("{value:?}");
    shown.truncate(120);
    // A reply came: the XADD ran, never retried.
    Error::new(
        ErrorKind::Protocol,
        format!("unexpected reply to XADD: {shown}"),
    )
    .mark_maybe_sent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_the_emitters_json() {
        let broadcast = Broadcast {
            namespace: "/".into(),
            event: "notification".into(),
            args: vec![br#"{"unread":3}"#.to_vec(), b"\"x\"".to_vec()],
            ..Broadcast::default()
        };
        // JSON.stringify({packet: {type: 2, data: ["notification", {unread: 3}, "x"], nsp: "/"},
        //                 opts: {rooms: [], flags: {}, except: []}})
        assert_eq!(
            String::from_utf8(broadcast.data()).unwrap(),
            r#"{"packet":{"type":2,"data":["notification",{"unread":3},"x"],"nsp":"/"},"opts":{"rooms":[],"flags":{},"except":[]}}"#
        );
        let targeted = Broadcast {
            namespace: "/chat".into(),
            rooms: vec!["room \"1\"".into(), "r2".into()],
            except: vec!["banned".into()],
            flags: vec![("volatile", true), ("compress", false)],
            event: "m".into(),
            args: vec![],
        };
        assert_eq!(
            String::from_utf8(targeted.data()).unwrap(),
            r#"{"packet":{"type":2,"data":["m"],"nsp":"/chat"},"opts":{"rooms":["room \"1\"","r2"],"flags":{"volatile":true,"compress":false},"except":["banned"]}}"#
        );
    }

    #[test]
    fn stream_names_follow_the_adapters_hash() {
        // Values of the adapter's hashCode, computed with node:
        //   const h = s => { let x = 0; for (let i = 0; i < s.length; i++) { x = x * 31 + s.charCodeAt(i); x |= 0 } return x }
        //   ['/', '/chat', '/notifications', '/é😀'].map(h)  → [47, 46457863, -1014064871, 3396989]
        assert_eq!(js_hash_code("/"), 47);
        assert_eq!(js_hash_code("/chat"), 46457863);
        assert_eq!(js_hash_code("/notifications"), -1014064871);
        assert_eq!(js_hash_code("/é😀"), 3396989);
        let mut options = StreamOptions::default();
        assert_eq!(options.stream_for("/chat"), "socket.io");
        options.stream_count = 3;
        // 47 % 3 = 2; -1014064871 % 3 = -2 in JavaScript (and Rust).
        assert_eq!(options.stream_for("/"), "socket.io-2");
        assert_eq!(options.stream_for("/notifications"), "socket.io--2");
    }

    #[test]
    fn namespaces_and_events() {
        assert_eq!(namespace("admin"), "/admin");
        assert_eq!(namespace("/admin"), "/admin");
        assert!(check_event("disconnect").is_err());
        assert!(check_event("message").is_ok());
    }
}
