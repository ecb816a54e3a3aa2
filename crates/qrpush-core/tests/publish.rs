// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Publishing against a real redis-server: what a subscriber receives is exactly what was
//! published, receiver counts are Redis's, and invalid input never reaches the server.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::{Client, Config, ErrorKind};
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

#[test]
fn subscriber_receives_exactly_the_published_bytes() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["events"]);
    let client = server.client(&[]);

    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let payloads: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        all_bytes.clone(),
        Vec::new(),
        b"\r\n$5\r\n*1\r\n".to_vec(), // RESP framing inside a payload
        "{\"emoji\":\"\u{1F680}\",\"nul\":\"\\u0000\"}"
            .as_bytes()
            .to_vec(),
        vec![0u8; 100_000],
    ];
    for p in &payloads {
        assert_eq!(client.publish(b"events", p).unwrap(), 1);
    }
    let got = sub.recv_messages(payloads.len(), WAIT);
    for (i, ((channel, payload), expected)) in got.iter().zip(&payloads).enumerate() {
        assert_eq!(channel, b"events", "message #{i}");
        assert_eq!(payload, expected, "message #{i}");
    }
    sub.nothing_more(QUIET);
}

#[test]
fn receiver_count_is_the_number_of_subscribers() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    assert_eq!(client.publish(b"room", b"nobody").unwrap(), 0);

    let mut first = server.subscribe(&["room"]);
    assert_eq!(client.publish(b"room", b"one").unwrap(), 1);

    let mut second = server.subscribe(&["room", "other"]);
    assert_eq!(client.publish(b"room", b"two").unwrap(), 2);
    assert_eq!(client.publish(b"other", b"three").unwrap(), 1);

    assert_eq!(first.recv(2, WAIT), vec![b"one".to_vec(), b"two".to_vec()]);
    first.nothing_more(QUIET);
    let got = second.recv_messages(2, WAIT);
    assert_eq!(
        got,
        vec![
            (b"room".to_vec(), b"two".to_vec()),
            (b"other".to_vec(), b"three".to_vec())
        ]
    );
    second.nothing_more(QUIET);
}

#[test]
fn channel_prefix_is_prepended() {
    let server = RedisServer::start();
    let mut prefixed = server.subscribe(&["app1:orders"]);
    let mut bare = server.subscribe(&["orders"]);
    let client = server.client(&[("channel_prefix", "app1:")]);

    assert_eq!(client.publish(b"orders", b"{\"id\":7}").unwrap(), 1);
    assert_eq!(
        client
            .publish_many(&[(b"orders", b"a"), (b"orders", b"b")])
            .unwrap(),
        vec![1, 1]
    );
    let got = prefixed.recv_messages(3, WAIT);
    assert!(got.iter().all(|(c, _)| c == b"app1:orders"), "{got:?}");
    let payloads: Vec<_> = got.into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        payloads,
        vec![b"{\"id\":7}".to_vec(), b"a".to_vec(), b"b".to_vec()]
    );
    bare.nothing_more(QUIET);
    prefixed.nothing_more(Duration::ZERO);
}

#[test]
fn publish_many_keeps_order_and_returns_counts_in_order() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["a", "b"]);
    let mut also_a = server.subscribe(&["a"]);
    let client = server.client(&[]);

    let messages: Vec<(String, String)> = (0..60)
        .map(|i| {
            let channel = ["a", "b", "nobody"][i % 3];
            (channel.to_string(), format!("m{i}"))
        })
        .collect();
    let counts = client.publish_many(&messages).unwrap();
    let expected: Vec<i64> = (0..60).map(|i| [2, 1, 0][i % 3]).collect();
    assert_eq!(counts, expected);

    let got = sub.recv_messages(40, WAIT);
    let expected: Vec<(Vec<u8>, Vec<u8>)> = messages
        .iter()
        .filter(|(c, _)| c != "nobody")
        .map(|(c, p)| (c.clone().into_bytes(), p.clone().into_bytes()))
        .collect();
    assert_eq!(got, expected, "a subscriber sees the batch in order");
    sub.nothing_more(QUIET);
    let only_a: Vec<Vec<u8>> = expected
        .iter()
        .filter(|(c, _)| c == b"a")
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(also_a.recv(20, WAIT), only_a);

    // One batch, one connection; the stats count every message.
    assert_eq!(server.qrpush_clients().len(), 1);
    let stats = client.stats();
    assert_eq!(stats.published, 60);
    assert_eq!(stats.connections_created, 1);
    assert_eq!(
        stats.latency.count, 1,
        "one round trip recorded for the batch"
    );

    // An empty batch sends nothing and succeeds.
    let empty: &[(&[u8], &[u8])] = &[];
    assert_eq!(client.publish_many(empty).unwrap(), Vec::<i64>::new());
    assert_eq!(client.stats().published, 60);
}

#[test]
fn ping_answers_quickly() {
    let server = RedisServer::start();
    let client = server.client(&[]);
    let first = client.ping().unwrap();
    assert!(first < Duration::from_secs(1), "{first:?}");
    let warm = client.ping().unwrap();
    assert!(
        warm > Duration::ZERO && warm < Duration::from_millis(250),
        "a PING on a warm loopback connection took {warm:?}"
    );
    assert_eq!(client.stats().connections_created, 1);
    assert_eq!(client.stats().published, 0, "PING publishes nothing");
}

#[test]
fn invalid_input_is_rejected_before_anything_is_sent() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["ok", "a\nb", "x\u{7f}"]);
    let client = server.client(&[("max_payload", "16")]);

    let cases: &[(&[u8], &[u8], &str)] = &[
        (b"", b"x", "channel must not be empty"),
        (
            b"a\nb",
            b"x",
            "channel must not contain control characters (byte 0x0a at offset 1)",
        ),
        (
            b"x\x7f",
            b"x",
            "channel must not contain control characters (byte 0x7f at offset 1)",
        ),
        (
            b"ok",
            b"0123456789abcdefg",
            "message is 17 bytes, more than qrpush.max_payload (16 bytes)",
        ),
    ];
    for (channel, payload, message) in cases {
        let err = client.publish(channel, payload).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{message}");
        assert_eq!(err.message(), *message);
        assert!(!err.maybe_sent());
    }
    let long = vec![b'c'; 1025];
    let err = client.publish(&long, b"x").unwrap_err();
    assert_eq!(
        err.message(),
        "channel must be at most 1024 bytes, got 1025"
    );

    // A batch is validated as a whole: one bad message and none is sent.
    let err = client
        .publish_many(&[
            (&b"ok"[..], &b"first"[..]),
            (&b"ok"[..], &b"0123456789abcdefg"[..]),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.message(),
        "message #1: message is 17 bytes, more than qrpush.max_payload (16 bytes)"
    );
    let err = client
        .publish_many(&[(&b"ok"[..], &b"first"[..]), (&b""[..], &b"x"[..])])
        .unwrap_err();
    assert_eq!(err.message(), "message #1: channel must not be empty");

    sub.nothing_more(QUIET);
    assert!(
        server.qrpush_clients().is_empty(),
        "validation errors must not even connect"
    );
    assert_eq!(client.stats().connections_created, 0);

    // At the limit is fine, and the 1024-byte channel too.
    assert_eq!(client.publish(b"ok", b"0123456789abcdef").unwrap(), 1);
    assert_eq!(client.publish(&long[..1024], b"x").unwrap(), 0);
    assert_eq!(sub.recv(1, WAIT), vec![b"0123456789abcdef".to_vec()]);
    sub.nothing_more(QUIET);
}

#[test]
fn database_in_the_url_does_not_change_pubsub() {
    // Pub/Sub ignores databases: a client on /3 reaches a subscriber connected on db 0.
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["news"]);
    let client = server.client(&[("url", &format!("{}/3", server.url()))]);
    assert_eq!(client.publish(b"news", b"from db 3").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"from db 3".to_vec()]);
    let clients = server.qrpush_clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].get("db"), Some("3"), "SELECT 3 ran at connect");
}

#[test]
fn publishes_over_a_unix_socket() {
    let server = RedisServer::start_with_unix_socket();
    let mut sub = server.subscribe(&["local"]);
    let mut config = Config::default();
    config
        .set(
            "url",
            &format!("unix://{}?db=2", server.socket_path().display()),
        )
        .unwrap();
    let client = Client::new(config);
    assert_eq!(client.publish(b"local", b"via socket").unwrap(), 1);
    assert_eq!(client.publish(b"local", b"again").unwrap(), 1);
    assert_eq!(
        sub.recv(2, WAIT),
        vec![b"via socket".to_vec(), b"again".to_vec()]
    );
    let clients = server.qrpush_clients();
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(clients[0].get("db"), Some("2"));
    assert_eq!(client.stats().connections_created, 1);
}

#[test]
fn a_large_batch_and_non_ascii_channels() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["événements"]);
    let client = server.client(&[]);
    let batch: Vec<(&str, String)> = (0..10_000)
        .map(|i| ("événements", format!("n{i}")))
        .collect();
    let counts = client.publish_many(&batch).unwrap();
    assert_eq!(counts.len(), 10_000);
    assert!(counts.iter().all(|n| *n == 1));
    let got = sub.recv_messages(10_000, Duration::from_secs(10));
    for (i, (channel, payload)) in got.iter().enumerate() {
        assert_eq!(channel, "événements".as_bytes());
        assert_eq!(payload, format!("n{i}").as_bytes());
    }
    sub.nothing_more(QUIET);
    assert_eq!(client.stats().published, 10_000);
}
