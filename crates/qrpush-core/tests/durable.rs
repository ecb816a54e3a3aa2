// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Durable publishes against a real redis-server: each one is stored in the channel's capped stream
//! and published with its offset and epoch, atomically; a reader gets exactly what it missed after
//! its offset, or a resync verdict when history may be missing (another epoch, a trimmed or unknown
//! offset, too far behind); a script Redis forgot is never run twice; bad input sends nothing.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::durable::socketio::{self, Broadcast, StreamOptions};
use qrpush_core::durable::{wire, Durable, Entry, Offset, Position, Replay, ResyncReason};
use qrpush_core::{ErrorKind, Subject};
use redis::Value;
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

fn xlen(server: &RedisServer, key: &str) -> i64 {
    match server.cmd(&["XLEN", key]) {
        Value::Int(n) => n,
        other => panic!("XLEN: {other:?}"),
    }
}

fn int(value: Value) -> i64 {
    match value {
        Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The messages of `entries`, as text.
fn messages(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.message.clone()).unwrap())
        .collect()
}

#[test]
fn a_durable_publish_is_stored_and_published_with_its_offset_and_epoch() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["app:news"]);
    let client = server.client(&[("channel_prefix", "app:")]);
    let durable = Durable::new(&client);

    let first = durable.publish(b"news", b"{\"n\":1}").unwrap();
    let second = durable.publish(b"news", b"\x00binary\r\n").unwrap();
    assert_eq!(first.receivers, 1);
    assert!(second.offset > first.offset, "{second:?} after {first:?}");
    assert_eq!(first.epoch, second.epoch, "one stream, one epoch");
    assert_eq!(first.epoch.len(), 16, "Redis's clock in microseconds");

    // Subscribers get the header, then the message unchanged.
    let got = sub.recv(2, WAIT);
    assert_eq!(
        got[0],
        wire::frame(&first.epoch, first.offset, b"{\"n\":1}")
    );
    let parsed = wire::parse(&got[1]).unwrap();
    assert_eq!(
        (parsed.epoch, parsed.offset, parsed.message),
        (second.epoch.as_str(), second.offset, &b"\x00binary\r\n"[..])
    );
    sub.nothing_more(QUIET);

    // The stream holds the messages under the prefixed channel's key, the epoch beside it.
    assert_eq!(durable.stream_key(b"news"), b"qrpush:stream:{app:news}");
    assert_eq!(xlen(&server, "qrpush:stream:{app:news}"), 2);
    assert_eq!(
        server.cmd(&["GET", "qrpush:stream:{app:news}:epoch"]),
        Value::BulkString(first.epoch.clone().into_bytes())
    );
    // Both keys expire stream_ttl (one day by default) after the last publish.
    for key in ["qrpush:stream:{app:news}", "qrpush:stream:{app:news}:epoch"] {
        let ttl = int(server.cmd(&["PTTL", key]));
        assert!((86_000_000..=86_400_000).contains(&ttl), "{key}: {ttl}");
    }
}

#[test]
fn a_reader_gets_exactly_what_it_missed_after_its_offset() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    let durable = Durable::new(&client);

    // No stream yet: a fresh reader gets no head; one with a position must resync.
    let none = durable.read_since(b"feed", None, 100).unwrap();
    assert_eq!((none.head, none.replay), (None, Replay::Fresh));
    let lost = durable
        .read_since(b"feed", Some(("1", Offset::new(1, 0))), 100)
        .unwrap();
    assert_eq!(lost.replay, Replay::Resync(ResyncReason::EpochChanged));

    let published: Vec<_> = (0..10)
        .map(|i| {
            durable
                .publish(b"feed", format!("m{i}").as_bytes())
                .unwrap()
        })
        .collect();
    let epoch = published[0].epoch.clone();
    let head = Some(Position {
        epoch: epoch.clone(),
        offset: published[9].offset,
    });

    let fresh = durable.read_since(b"feed", None, 100).unwrap();
    assert_eq!(
        (fresh.head.clone(), fresh.replay),
        (head.clone(), Replay::Fresh)
    );

    // From the 4th message: the 6 after it, in order, with their offsets.
    let read = durable
        .read_since(b"feed", Some((&epoch, published[3].offset)), 100)
        .unwrap();
    assert_eq!(read.head, head);
    let Replay::Recovered(entries) = read.replay else {
        panic!("{:?}", read.replay)
    };
    assert_eq!(messages(&entries), ["m4", "m5", "m6", "m7", "m8", "m9"]);
    let offsets: Vec<Offset> = entries.iter().map(|e| e.offset).collect();
    let expected: Vec<Offset> = published[4..].iter().map(|p| p.offset).collect();
    assert_eq!(offsets, expected);

    // Up to date: nothing. Exactly at the limit: everything; one more: too far behind.
    let current = durable
        .read_since(b"feed", Some((&epoch, published[9].offset)), 100)
        .unwrap();
    assert_eq!(current.replay, Replay::Recovered(vec![]));
    let six = durable
        .read_since(b"feed", Some((&epoch, published[3].offset)), 6)
        .unwrap();
    assert!(matches!(six.replay, Replay::Recovered(ref e) if e.len() == 6));
    let five = durable
        .read_since(b"feed", Some((&epoch, published[3].offset)), 5)
        .unwrap();
    assert_eq!(five.replay, Replay::Resync(ResyncReason::TooFarBehind));

    // Another epoch, or an offset that never was an entry: resync, never a silent gap.
    let other = durable
        .read_since(b"feed", Some(("123", published[3].offset)), 100)
        .unwrap();
    assert_eq!(other.replay, Replay::Resync(ResyncReason::EpochChanged));
    let unknown = Offset::new(published[3].offset.ms, published[3].offset.seq + 1000);
    let bogus = durable
        .read_since(b"feed", Some((&epoch, unknown)), 100)
        .unwrap();
    assert_eq!(bogus.replay, Replay::Resync(ResyncReason::OffsetGone));
}

#[test]
fn trimming_past_a_readers_offset_makes_it_resync() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    let durable = Durable::new(&client);
    let published: Vec<_> = (0..20)
        .map(|i| durable.publish(b"t", format!("m{i}").as_bytes()).unwrap())
        .collect();
    let epoch = &published[0].epoch;
    // Trim (exactly) to the last 10 entries: m10..m19 stay.
    assert_eq!(
        server.cmd(&["XTRIM", "qrpush:stream:{t}", "MAXLEN", "10"]),
        Value::Int(10)
    );
    // A reader at m9: its entry is gone; whether m10 follows it cannot be proven: resync.
    let at_9 = durable
        .read_since(b"t", Some((epoch, published[9].offset)), 100)
        .unwrap();
    assert_eq!(at_9.replay, Replay::Resync(ResyncReason::OffsetGone));
    assert_eq!(at_9.head.unwrap().offset, published[19].offset);
    let at_3 = durable
        .read_since(b"t", Some((epoch, published[3].offset)), 100)
        .unwrap();
    assert_eq!(at_3.replay, Replay::Resync(ResyncReason::OffsetGone));
    // A reader at m10 (still there) gets m11..m19.
    let at_10 = durable
        .read_since(b"t", Some((epoch, published[10].offset)), 100)
        .unwrap();
    let Replay::Recovered(entries) = at_10.replay else {
        panic!()
    };
    assert_eq!(entries.len(), 9);
    assert_eq!(entries[0].message, b"m11");
}

#[test]
fn stream_maxlen_and_max_age_trim_the_stream() {
    // One entry per stream node: approximate trimming (~) is then exact, so the test can count.
    let server = RedisServer::start_with(&["--stream-node-max-entries", "1"]);
    let capped = server.client(&[("stream_maxlen", "5")]);
    let durable = Durable::new(&capped);
    for i in 0..12 {
        durable
            .publish(b"capped", format!("m{i}").as_bytes())
            .unwrap();
    }
    assert_eq!(xlen(&server, "qrpush:stream:{capped}"), 5);

    let aged = server.client(&[("stream_max_age", "0.2")]);
    let durable = Durable::new(&aged);
    let old = durable.publish(b"aged", b"old").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let new = durable.publish(b"aged", b"new").unwrap();
    assert_eq!(
        xlen(&server, "qrpush:stream:{aged}"),
        1,
        "the entry older than 0.2 s is gone"
    );
    let read = durable
        .read_since(b"aged", Some((&old.epoch, old.offset)), 10)
        .unwrap();
    assert_eq!(read.replay, Replay::Resync(ResyncReason::OffsetGone));
    assert_eq!(read.head.unwrap().offset, new.offset);

    // stream_ttl 0: no expiry.
    let forever = server.client(&[("stream_ttl", "0")]);
    Durable::new(&forever).publish(b"kept", b"x").unwrap();
    assert_eq!(int(server.cmd(&["PTTL", "qrpush:stream:{kept}"])), -1);
    assert_eq!(int(server.cmd(&["PTTL", "qrpush:stream:{kept}:epoch"])), -1);
}

#[test]
fn a_stream_made_again_has_another_epoch() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    let durable = Durable::new(&client);
    let before = durable.publish(b"c", b"1").unwrap();
    // Deleted (or evicted, or expired): the next publish starts another life.
    server.cmd(&["DEL", "qrpush:stream:{c}"]);
    let gone = durable
        .read_since(b"c", Some((&before.epoch, before.offset)), 10)
        .unwrap();
    assert_eq!(
        gone.head, None,
        "an epoch key without its stream is no stream"
    );
    assert_eq!(gone.replay, Replay::Resync(ResyncReason::EpochChanged));
    let after = durable.publish(b"c", b"2").unwrap();
    assert_ne!(after.epoch, before.epoch);
    let read = durable
        .read_since(b"c", Some((&before.epoch, before.offset)), 10)
        .unwrap();
    assert_eq!(read.replay, Replay::Resync(ResyncReason::EpochChanged));
    // Losing only the epoch key is a new life too.
    server.cmd(&["DEL", "qrpush:stream:{c}:epoch"]);
    let third = durable.publish(b"c", b"3").unwrap();
    assert_ne!(third.epoch, after.epoch);
}

#[test]
fn a_batch_is_pipelined_in_order_and_a_forgotten_script_never_runs_twice() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["a", "b"]);
    let client = server.client(&[]);
    let durable = Durable::new(&client);
    for round in 0..3 {
        // Rounds 1 and 2: Redis forgot the script, so every EVALSHA is refused (NOSCRIPT, not
        // run) and the items are sent again with the source.
        if round > 0 {
            assert_eq!(server.cmd(&["SCRIPT", "FLUSH"]), Value::Okay);
        }
        let mut batch = durable.batch(4);
        for (channel, message) in [("a", "1"), ("b", "2"), ("a", "3"), ("b", "4")] {
            batch
                .push_encoded(channel.as_bytes(), || Ok(format!("{round}:{message}")))
                .unwrap();
        }
        let published = batch.publish().unwrap();
        assert_eq!(published.len(), 4);
        assert!(published[2].offset > published[0].offset);
        let got: Vec<String> = sub
            .recv(4, WAIT)
            .iter()
            .map(|p| String::from_utf8(wire::parse(p).unwrap().message.to_vec()).unwrap())
            .collect();
        assert_eq!(got, [1, 2, 3, 4].map(|n| format!("{round}:{n}")));
    }
    sub.nothing_more(QUIET);
    assert_eq!(xlen(&server, "qrpush:stream:{a}"), 6, "no duplicate");
    assert_eq!(xlen(&server, "qrpush:stream:{b}"), 6);
    // A single publish after a flush too.
    server.cmd(&["SCRIPT", "FLUSH"]);
    durable.publish(b"a", b"x").unwrap();
    assert_eq!(xlen(&server, "qrpush:stream:{a}"), 7);
    assert!(durable.batch::<Vec<u8>>(0).publish().unwrap().is_empty());
}

#[test]
fn invalid_input_sends_nothing() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["ok"]);
    let client = server.client(&[("max_payload", "8")]);
    let durable = Durable::new(&client);
    let e = durable.publish(b"", b"x").unwrap_err();
    assert_eq!(
        (e.kind(), e.subject()),
        (ErrorKind::InvalidArgument, Some(Subject::Channel))
    );
    let e = durable.publish(b"ok", b"123456789").unwrap_err();
    assert_eq!(
        e.message(),
        "message is 9 bytes, more than qrpush.max_payload (8 bytes)"
    );
    let mut batch = durable.batch(2);
    batch.push_encoded(b"ok", || Ok(b"fine".to_vec())).unwrap();
    let e = batch
        .push_encoded(b"bad\n", || Ok(b"x".to_vec()))
        .unwrap_err();
    assert_eq!(
        e.message(),
        "message #1: channel must not contain control characters (byte 0x0a at offset 3)"
    );
    let e = durable.read_since(b"", None, 1).unwrap_err();
    assert_eq!(e.subject(), Some(Subject::Channel));
    sub.nothing_more(QUIET);
    assert_eq!(server.cmd(&["DBSIZE"]), Value::Int(0));
}

#[test]
fn a_key_of_another_type_is_a_server_error_and_publishes_nothing() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["x"]);
    server.cmd(&["SET", "qrpush:stream:{x}", "not a stream"]);
    let client = server.client(&[]);
    let e = Durable::new(&client).publish(b"x", b"m").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.message().starts_with("WRONGTYPE"), "{e}");
    sub.nothing_more(QUIET);
}

/// The least-privilege user of docs/SECURITY.md, plus the durable line of docs/DURABLE.md: both
/// verbatim (their one source).
fn documented_acl_lines() -> Vec<String> {
    let security = include_str!("../../../docs/SECURITY.md");
    let durable = include_str!("../../../docs/DURABLE.md");
    let base = security
        .lines()
        .find(|l| l.starts_with("ACL SETUSER qrpush-app "))
        .expect("docs/SECURITY.md has the ACL line");
    let extra = durable
        .lines()
        .find(|l| l.starts_with("ACL SETUSER qrpush-app "))
        .expect("docs/DURABLE.md has the ACL line");
    [base, extra]
        .iter()
        .map(|l| l.replace(">CHANGE-ME", ">pw-durable-1"))
        .collect()
}

#[test]
fn the_documented_acl_allows_durable_publishes_and_a_refused_one_changes_nothing() {
    let server = RedisServer::start();
    let lines = documented_acl_lines();
    for line in &lines {
        let args: Vec<&str> = line.split(' ').collect();
        assert_eq!(server.cmd(&args), Value::Okay, "{line}");
    }
    let url = server.url_with(Some("qrpush-app"), Some("pw-durable-1"));
    let client = qrpush_core::Client::new(server.config(&[("url", &url)]));
    let durable = Durable::new(&client);
    let mut sub = server.subscribe(&["app:orders"]);
    let published = durable.publish(b"app:orders", b"m").unwrap();
    assert_eq!(published.receivers, 1);
    let read = durable
        .read_since(
            b"app:orders",
            Some((&published.epoch, published.offset)),
            10,
        )
        .unwrap();
    assert_eq!(read.replay, Replay::Recovered(vec![]));
    sub.recv(1, WAIT);

    // Without XADD: refused before any write; nothing stored, nothing published.
    server.cmd(&["ACL", "SETUSER", "qrpush-app", "-xadd"]);
    let e = durable.publish(b"app:orders", b"refused").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(e.message().starts_with("NOPERM"), "{e}");
    // A channel the user may not publish to: refused too, before XADD.
    server.cmd(&["ACL", "SETUSER", "qrpush-app", "+xadd"]);
    let e = durable.publish(b"other", b"refused").unwrap_err();
    assert!(e.message().starts_with("NOPERM"), "{e}");
    sub.nothing_more(QUIET);
    assert_eq!(xlen(&server, "qrpush:stream:{app:orders}"), 1);
    assert_eq!(
        server.cmd(&["EXISTS", "qrpush:stream:{other}"]),
        Value::Int(0)
    );
}

#[test]
fn socketio_emits_are_the_streams_adapters_entries() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    let broadcast = Broadcast {
        namespace: socketio::namespace("chat"),
        rooms: vec!["room1".into()],
        except: vec![],
        flags: vec![],
        event: "message".into(),
        args: br#"["hello",{"from":"php"}]"#.to_vec(),
    };
    let options = StreamOptions {
        max_len: 3,
        ..StreamOptions::default()
    };
    let offset = socketio::emit(&client, &options, &broadcast).unwrap();
    let entries = server.cmd(&["XRANGE", "socket.io", "-", "+"]);
    let Value::Array(entries) = entries else {
        panic!("{entries:?}")
    };
    assert_eq!(entries.len(), 1);
    let Value::Array(entry) = &entries[0] else {
        panic!()
    };
    assert_eq!(entry[0], Value::BulkString(offset.to_string().into_bytes()));
    let fields: Vec<String> = match &entry[1] {
        Value::Array(f) => f
            .iter()
            .map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fields,
        [
            "uid",
            "emitter",
            "nsp",
            "/chat",
            "type",
            "3",
            "data",
            r#"{"packet":{"type":2,"data":["message","hello",{"from":"php"}]},"opts":{"rooms":["room1"],"except":[],"flags":{}}}"#
        ]
    );
    let reserved = Broadcast {
        event: "connect".into(),
        ..broadcast
    };
    let e = socketio::emit(&client, &options, &reserved).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(xlen(&server, "socket.io"), 1);
}
