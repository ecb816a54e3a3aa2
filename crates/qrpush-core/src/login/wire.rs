//! The login events as a subscriber (the WebSocket gateway) reads them, and the one message it
//! adds: a login's current status, sent before any event whenever a socket (re)subscribes.
//!
//! Events are built by `login.lua` (the single definition of their bytes):
//! `{"v":1,"type":..,"loginId":..,["sessionId":..,]"seq":..,"ts":..,"data":{..}}`.
//! [`EventMeta::parse`] reads the routing fields back without touching the rest: the gateway
//! forwards the published bytes unchanged.
//!
//! The status message has the same envelope, with `type` `"status"` and no `ts` (it is not a
//! transition: no Redis time belongs to it), built here from [`Status`] — the same value
//! `QrPush\Login::status()` returns — so a browser handles both with one code path, and `seq`
//! orders them: anything with a `seq` at most the last one applied is old news.
//!
//! ```json
//! {"v":1,"type":"status","loginId":"…","sessionId":"…","seq":2,"data":{"state":"scanned","createdAt":1795318043678,"expiresAt":1795318163678}}
//! ```

use serde_json::{json, Map, Value};

use super::{State, Status};

/// The schema version of events and status messages.
pub const SCHEMA_VERSION: i64 = 1;
/// The `type` of the status message.
pub const STATUS_TYPE: &str = "status";

/// The envelope fields of a published login event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub kind: String,
    pub login_id: String,
    /// Present in `single` channel mode (the single-channel format: subscribers route on it).
    pub session_id: Option<String>,
    pub seq: i64,
    /// Redis's clock when the transition happened, Unix ms.
    pub ts: i64,
}

impl EventMeta {
    /// The envelope of `payload`, or `None` when it is not a version-1 login event.
    pub fn parse(payload: &[u8]) -> Option<EventMeta> {
        let value: Value = serde_json::from_slice(payload).ok()?;
        let object = value.as_object()?;
        if object.get("v")?.as_i64()? != SCHEMA_VERSION {
            return None;
        }
        let text = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_string);
        Some(EventMeta {
            kind: text("type")?,
            login_id: text("loginId")?,
            session_id: text("sessionId"),
            seq: object.get("seq")?.as_i64()?,
            ts: object.get("ts")?.as_i64()?,
        })
    }

    /// The id a subscriber routes on: `sessionId` when present (the single-channel format), else
    /// `loginId`.
    pub fn route(&self) -> &str {
        self.session_id.as_deref().unwrap_or(&self.login_id)
    }

    /// The state the login is in after this event (events are named after their target state).
    pub fn state(&self) -> Option<State> {
        State::parse(&self.kind)
    }
}

/// The status message for `status`; `with_session_id` as in the events (`single` channel mode).
pub fn status_message(status: &Status, with_session_id: bool) -> String {
    let mut envelope = Map::new();
    envelope.insert("v".into(), json!(SCHEMA_VERSION));
    envelope.insert("type".into(), json!(STATUS_TYPE));
    envelope.insert("loginId".into(), json!(status.id));
    if with_session_id {
        envelope.insert("sessionId".into(), json!(status.id));
    }
    envelope.insert("seq".into(), json!(status.version));
    envelope.insert(
        "data".into(),
        json!({
            "state": status.state.as_str(),
            "createdAt": status.created_at_ms,
            "expiresAt": status.expires_at_ms,
        }),
    );
    Value::Object(envelope).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_envelope() {
        let payload = br#"{"v":1,"type":"approved","loginId":"5AFq2p3i6UkavSNtuH17kA","sessionId":"5AFq2p3i6UkavSNtuH17kA","seq":3,"ts":1795318043678,"data":{"ticket":"t","expiresAt":1795318073678}}"#;
        let meta = EventMeta::parse(payload).unwrap();
        assert_eq!(meta.kind, "approved");
        assert_eq!(meta.state(), Some(State::Approved));
        assert_eq!(meta.route(), "5AFq2p3i6UkavSNtuH17kA");
        assert_eq!((meta.seq, meta.ts), (3, 1795318043678));
        let per_login = br#"{"v":1,"type":"scanned","loginId":"X","seq":2,"ts":5,"data":{}}"#;
        let meta = EventMeta::parse(per_login).unwrap();
        assert_eq!(meta.session_id, None);
        assert_eq!(meta.route(), "X");
        for bad in [
            &b"not json"[..],
            br#"[1]"#,
            br#"{"v":2,"type":"scanned","loginId":"X","seq":2,"ts":5}"#,
            br#"{"v":1,"type":"scanned","seq":2,"ts":5}"#,
            br#"{"v":1,"type":"scanned","loginId":"X","seq":"2","ts":5}"#,
        ] {
            assert_eq!(EventMeta::parse(bad), None);
        }
    }

    #[test]
    fn status_message_shape() {
        let status = Status {
            id: "ID".to_string(),
            state: State::Scanned,
            version: 2,
            created_at_ms: 10,
            expires_at_ms: Some(20),
            channel: "c".to_string(),
            ticket: None,
        };
        assert_eq!(
            status_message(&status, true),
            r#"{"v":1,"type":"status","loginId":"ID","sessionId":"ID","seq":2,"data":{"state":"scanned","createdAt":10,"expiresAt":20}}"#
        );
        let done = Status {
            state: State::Redeemed,
            version: 4,
            expires_at_ms: None,
            ..status
        };
        assert_eq!(
            status_message(&done, false),
            r#"{"v":1,"type":"status","loginId":"ID","seq":4,"data":{"state":"redeemed","createdAt":10,"expiresAt":null}}"#
        );
    }
}
