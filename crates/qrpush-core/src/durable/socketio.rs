//! Emitting to Socket.IO servers that share their broadcasts through `@socket.io/redis-streams-adapter`:
//! one stream entry per emit, the one a server of the adapter appends for its own
//! `io.to(room).emit(event, ...args)`, so every server delivers it and servers with
//! connection-state recovery replay it to a client that was away (the entry's id is the offset the
//! adapter hands the client as the event's last argument).
//!
//! What a server appends (the adapter's `doPublish`/`encode`, socket.io-adapter's
//! `ClusterAdapter.broadcast` and `encodeOptions`), and reads back (`onRawMessage`, `decode`, and
//! `restoreSession` for a recovering client):
//!
//! ```text
//! XADD <stream> MAXLEN ~ <maxLen> * uid <uid> nsp <namespace> type 3 data <JSON>
//! data: {"packet":{"type":2,"data":[<event>,<arg>...]},
//!        "opts":{"rooms":[...],"except":[...],"flags":{...}}}
//! ```
//!
//! `type 3` is the cluster message BROADCAST, packet type 2 an EVENT. A server's packet has no
//! `nsp` (the receiving adapter sets its own); its uid is random, this module's is `emitter`, the
//! uid the Socket.IO emitters use (no server ignores it as its own). The adapter writes `data` as
//! JSON unless an argument is binary (then MessagePack, base64) and reads JSON when it starts with
//! `{`: QrPush's arguments are never binary. With `streamCount` > 1, a namespace's stream is
//! `<stream>-<i>`, `i` the adapter's `hashCode(namespace) % streamCount` (JavaScript's 32-bit
//! string hash and remainder, negative for a negative hash, as the adapter computes it).
//!
//! The stream name is a key, not a channel: `channel_prefix` does not apply.

use std::fmt::Write as _;

use redis::Value;

use super::offset::Offset;
use crate::client::{Client, MAX_CHANNEL_LEN};
use crate::config::validate_channel_part;
use crate::connection::server_error;
use crate::error::{Error, ErrorKind, Result, Subject};
use crate::json;

/// The adapter's defaults (`streamName`, `maxLen`).
pub const DEFAULT_STREAM: &str = "socket.io";
pub const DEFAULT_MAX_LEN: u64 = 10_000;

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
    /// The adapter's `streamName`, `streamCount` and `maxLen`, checked: a stream name that is a
    /// valid key name, at least one stream, at least one entry kept.
    pub fn new(stream: &str, stream_count: u32, max_len: u64) -> Result<Self> {
        let refuse = |what: String| Err(Error::invalid(what).about(Subject::Settings));
        if stream.is_empty() {
            return refuse("option 'stream' must not be empty".into());
        }
        if let Err(e) = validate_channel_part(stream.as_bytes(), MAX_CHANNEL_LEN) {
            return refuse(format!("option 'stream' {}", e.detail()));
        }
        if stream_count == 0 {
            return refuse("option 'stream_count' must be at least 1".into());
        }
        if max_len == 0 {
            return refuse("option 'max_len' must be at least 1".into());
        }
        Ok(StreamOptions {
            stream: stream.to_string(),
            stream_count,
            max_len,
        })
    }

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
/// leaves out, its flags in the order they were set, the event and its arguments: the JSON text
/// of their list (`[]`: none), as the PHP binding writes it.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub namespace: String,
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub flags: Vec<(&'static str, bool)>,
    pub event: String,
    pub args: Vec<u8>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Broadcast {
            namespace: "/".into(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Vec::new(),
            event: String::new(),
            args: b"[]".to_vec(),
        }
    }
}

impl Broadcast {
    /// The `data` field: `{"packet":…,"opts":…}` as a server's `JSON.stringify` writes it (key
    /// order included). Fails when `args` is not the text of a JSON list.
    pub fn data(&self) -> Result<Vec<u8>> {
        let args = self.args.trim_ascii();
        let inner = args
            .strip_prefix(b"[")
            .and_then(|rest| rest.strip_suffix(b"]"))
            .ok_or_else(|| Error::invalid("are not a JSON list").about(Subject::Message))?
            .trim_ascii();
        let mut out = Vec::with_capacity(96 + self.event.len() + inner.len());
        out.extend_from_slice(br#"{"packet":{"type":2,"data":["#);
        json::write_str(&self.event, &mut out);
        if !inner.is_empty() {
            out.push(b',');
            out.extend_from_slice(inner);
        }
        out.extend_from_slice(br#"]},"opts":{"rooms":"#);
        write_list(&self.rooms, &mut out);
        out.extend_from_slice(br#","except":"#);
        write_list(&self.except, &mut out);
        out.extend_from_slice(br#","flags":{"#);
        for (i, (name, value)) in self.flags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_key(name, &mut out);
            json::write_bool(*value, &mut out);
        }
        out.extend_from_slice(b"}}}");
        Ok(out)
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

/// Event names Socket.IO keeps for itself; the emitter refuses them, so does [`check_event`].
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// An event name the servers will deliver: not one of Socket.IO's own.
pub fn check_event(event: &str) -> Result<()> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(Error::invalid(format!(
            "must not be \"{event}\", a name Socket.IO reserves for itself"
        ))
        .about(Subject::Event));
    }
    Ok(())
}

/// Appends `broadcast` to its namespace's stream (one XADD); returns the entry's id: the offset
/// the adapter hands its clients for it. An entry longer than `max_payload` is refused unsent.
pub fn emit(client: &Client, options: &StreamOptions, broadcast: &Broadcast) -> Result<Offset> {
    check_event(&broadcast.event)?;
    let stream = options.stream_for(&broadcast.namespace);
    let data = broadcast.data()?;
    let max = client.config().max_payload;
    if data.len() > max {
        return Err(Error::invalid(format!(
            "is {} bytes, more than qrpush.max_payload ({max} bytes)",
            data.len()
        ))
        .about(Subject::Message));
    }
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
    fn data_is_a_servers_json() {
        let broadcast = Broadcast {
            event: "notification".into(),
            args: br#"[{"unread":3},"x"]"#.to_vec(),
            ..Broadcast::default()
        };
        // What a server's adapter writes for io.emit("notification", {unread: 3}, "x"):
        // JSON.stringify({packet: {type: 2, data: ["notification", {unread: 3}, "x"]},
        //                 opts: {rooms: [], except: [], flags: {}}})
        assert_eq!(
            String::from_utf8(broadcast.data().unwrap()).unwrap(),
            r#"{"packet":{"type":2,"data":["notification",{"unread":3},"x"]},"opts":{"rooms":[],"except":[],"flags":{}}}"#
        );
        let targeted = Broadcast {
            namespace: "/chat".into(),
            rooms: vec!["room \"1\"".into(), "r2".into()],
            except: vec!["banned".into()],
            flags: vec![("volatile", true), ("compress", false)],
            event: "m".into(),
            args: b" [ ] ".to_vec(),
        };
        assert_eq!(
            String::from_utf8(targeted.data().unwrap()).unwrap(),
            r#"{"packet":{"type":2,"data":["m"]},"opts":{"rooms":["room \"1\"","r2"],"except":["banned"],"flags":{"volatile":true,"compress":false}}}"#
        );
        let not_a_list = Broadcast {
            args: br#"{"a":1}"#.to_vec(),
            ..Broadcast::default()
        };
        assert_eq!(
            not_a_list.data().unwrap_err().subject(),
            Some(Subject::Message)
        );
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(
            StreamOptions::new("socket.io", 1, 10_000).unwrap(),
            StreamOptions::default()
        );
        for (stream, count, max_len, message) in [
            ("", 1, 1, "option 'stream' must not be empty"),
            ("s", 0, 1, "option 'stream_count' must be at least 1"),
            ("s", 1, 0, "option 'max_len' must be at least 1"),
        ] {
            let e = StreamOptions::new(stream, count, max_len).unwrap_err();
            assert_eq!(e.subject(), Some(Subject::Settings));
            assert_eq!(e.detail(), message);
        }
        let e = StreamOptions::new("a\nb", 1, 1).unwrap_err();
        assert!(e.detail().starts_with("option 'stream' "), "{e}");
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
