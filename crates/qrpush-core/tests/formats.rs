// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! The other servers' formats against a real redis-server: a Laravel broadcast reaches every
//! prefixed channel with the same bytes in one round trip; a Socket.IO emit goes by PUBLISH or
//! SPUBLISH to the adapter's channel; invalid input sends nothing and names what is wrong.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::formats::{laravel, socketio};
use qrpush_core::{ErrorKind, Subject};
use serde_json::json;
use socketio::{Adapter, Flag, SubscriptionMode, Target};
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

#[test]
fn a_broadcast_reaches_every_prefixed_channel_with_the_same_bytes() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["app_orders", "app_private-user.7"]);
    let mut other = server.subscribe(&["app_presence-room"]);
    let client = server.client(&[("channel_prefix", "app_")]);
    let message = laravel::message("Shipped", br#"{"id":3,"socket":null}"#, None).unwrap();

    let channels = ["orders", "private-user.7", "presence-room"];
    let receivers = laravel::broadcast(&client, &channels, &message).unwrap();
    assert_eq!(receivers, 3);
    let got = sub.recv_messages(2, WAIT);
    assert_eq!(
        got,
        vec![
            (b"app_orders".to_vec(), message.clone()),
            (b"app_private-user.7".to_vec(), message.clone())
        ]
    );
    assert_eq!(other.recv(1, WAIT), vec![message.clone()]);
    // One round trip: a single request of three PUBLISH commands.
    assert_eq!(client.stats().latency.count, 1);
    assert_eq!(client.stats().published, 3);
    sub.nothing_more(QUIET);
}

#[test]
fn a_broadcast_to_no_channel_sends_nothing_and_a_bad_channel_stops_all() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["orders"]);
    let client = server.client(&[]);
    let none: [&str; 0] = [];
    assert_eq!(laravel::broadcast(&client, &none, b"{}").unwrap(), 0);

    let e = laravel::broadcast(&client, &["orders", "bad\nname"], b"{}").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(e.subject(), Some(Subject::ChannelAt(1)));
    assert_eq!(
        e.message(),
        "channel #1 must not contain control characters (byte 0x0a at offset 3)"
    );
    let e = laravel::broadcast(&client, &[""], b"{}").unwrap_err();
    assert_eq!(e.subject(), Some(Subject::Channel));

    let small = server.client(&[("max_payload", "16")]);
    let e = laravel::broadcast(&small, &["orders"], &[b'x'; 17]).unwrap_err();
    assert_eq!(e.subject(), Some(Subject::Message));
    sub.nothing_more(QUIET);
    assert_eq!(client.stats().published, 0);
}

#[test]
fn a_classic_emit_is_published_to_the_room_channel() {
    let server = RedisServer::start();
    let mut room = server.subscribe(&["pfx:socket.io#/chat#r1#"]);
    let mut namespace = server.subscribe(&["pfx:socket.io#/chat#"]);
    let client = server.client(&[("channel_prefix", "pfx:")]);
    let target = Target::new(Adapter::Classic, "socket.io")
        .unwrap()
        .of("chat")
        .unwrap();

    let to_room = target
        .to(&["r1"], true)
        .unwrap()
        .encode("m", &[json!(1)])
        .unwrap();
    assert_eq!(socketio::emit(&client, &to_room).unwrap(), 1);
    assert_eq!(room.recv(1, WAIT), vec![to_room.message]);

    let all = target
        .flag(Flag::Volatile, true)
        .encode("m", &[json!("x")])
        .unwrap();
    assert_eq!(socketio::emit(&client, &all).unwrap(), 1);
    assert_eq!(namespace.recv(1, WAIT), vec![all.message]);
    room.nothing_more(QUIET);
}

#[test]
fn a_sharded_emit_goes_by_spublish() {
    let server = RedisServer::start();
    let mut room = server.subscribe_sharded(&["socket.io#/#news#"]);
    let mut plain = server.subscribe(&["socket.io#/#news#"]);
    let client = server.client(&[]);
    let target = Target::new(Adapter::Sharded(SubscriptionMode::Dynamic), "socket.io")
        .unwrap()
        .to(&["news"], true)
        .unwrap();
    let encoded = target
        .encode_json_args("headline", br#"[{"t":"x"},2.5]"#)
        .unwrap();
    assert!(encoded.sharded);
    assert_eq!(socketio::emit(&client, &encoded).unwrap(), 1);
    assert_eq!(
        room.recv_messages(1, WAIT),
        vec![(b"socket.io#/#news#".to_vec(), encoded.message)]
    );
    // Sharded and classic Pub/Sub are separate: a SUBSCRIBE of the same name hears nothing.
    plain.nothing_more(QUIET);
}

#[test]
fn json_arguments_read_back_to_the_same_floats() {
    // 0.1 + 0.2 as PHP spells it: the last digit matters, a lossy float parser would change it.
    let target = Target::default();
    let from_json = target
        .encode_json_args("e", b"[0.30000000000000004,1.0,-0.0]")
        .unwrap();
    let direct = target
        .encode("e", &[json!(0.1 + 0.2), json!(1), json!(0)])
        .unwrap();
    assert_eq!(from_json.message, direct.message);
    let e = target.encode_json_args("e", b"{\"a\":1}").unwrap_err();
    assert_eq!(e.subject(), Some(Subject::Message));
}
