// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Batches: Redis runs each PUBLISH of a pipeline on its own, so one refused message does not
//! roll back the others; the caller learns which were published (with their receivers) and which
//! were not, the stats count each message where it went, and nothing is sent twice. A batch's
//! total size is bounded (`max_batch_payload`) before anything is sent.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::{ErrorKind, ItemPart, Subject};
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

#[test]
fn a_refused_message_does_not_roll_back_the_others() {
    let server = RedisServer::start();
    // The README's least-privilege shape: the app may publish to ok:* only.
    server.admin().ok(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        ">pw",
        "resetchannels",
        "&ok:*",
        "-@all",
        "+publish",
        "+ping",
        "+role",
        "+wait",
    ]);
    let mut sub = server.subscribe(&["ok:1", "ok:2", "secret"]);
    let client = server.client(&[("url", &server.url_with(Some("app"), Some("pw")))]);
    let err = client
        .publish_many(&[("ok:1", "a"), ("secret", "b"), ("ok:2", "c")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(!err.maybe_sent(), "the refused one did not run: {err}");
    assert!(
        err.message().starts_with(
            "2 of 3 messages were published, 1 were not or may not have been; the first: NOPERM"
        ),
        "{err}"
    );
    let outcome = err.batch_outcome().expect("a per-message outcome");
    assert_eq!(outcome.published, vec![(0, 1), (2, 1)]);
    assert_eq!(outcome.failed.len(), 1);
    let (index, why) = &outcome.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(why.kind(), ErrorKind::Server);
    assert!(!why.maybe_sent());
    assert!(
        why.message().starts_with("NOPERM") && why.message().ends_with("(PUBLISH message #1)"),
        "{why}"
    );
    // Exactly the published ones arrived, once: nothing was re-sent.
    let got = sub.recv_messages(2, WAIT);
    assert_eq!(
        got,
        vec![
            (b"ok:1".to_vec(), b"a".to_vec()),
            (b"ok:2".to_vec(), b"c".to_vec())
        ]
    );
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (2, 1));
    assert_eq!(stats.last_error.as_deref(), Some(err.message()));
    // The connection stays in use: an error reply is not a broken connection.
    assert_eq!(client.publish_many(&[("ok:1", "d")]).unwrap(), vec![1]);
    assert_eq!(stats.connections_created, 1);
    assert_eq!(client.stats().connections_created, 1);
}

#[test]
fn a_batch_over_max_batch_payload_is_refused_before_anything_is_sent() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let client = server.client(&[("max_batch_payload", "1000")]);
    let item = "x".repeat(400);
    let err = client
        .publish_many(&[("c", &item), ("c", &item), ("c", &item)])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(
        err.subject(),
        Some(Subject::Item {
            index: 2,
            part: Some(ItemPart::Message)
        })
    );
    assert_eq!(
        err.message(),
        "message #2: message makes the batch's messages add up to more than qrpush.max_batch_payload (1000 bytes)"
    );
    sub.nothing_more(QUIET);
    assert_eq!(client.stats().connections_created, 0, "nothing was sent");

    // What fits goes, and the limit an encoder may stop at shrinks as the batch grows.
    let mut batch = client.batch::<&[u8], &[u8]>(2);
    assert_eq!(batch.payload_limit(), 1000);
    batch.push_encoded(b"c", || Ok(item.as_bytes())).unwrap();
    assert_eq!(batch.payload_limit(), 600);
    batch.push_encoded(b"c", || Ok(item.as_bytes())).unwrap();
    assert_eq!(batch.payload_limit(), 200);
    assert_eq!(batch.publish().unwrap(), vec![1, 1]);
    assert_eq!(sub.recv(2, WAIT).len(), 2);
}

/// A batch far larger than one write chunk arrives whole and in order, in one round trip's worth
/// of replies, and leaves the connection usable.
#[test]
fn a_batch_larger_than_the_socket_buffers_arrives_in_order() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["big"]);
    let client = server.client(&[("max_payload", "1048576")]);
    let payloads: Vec<Vec<u8>> = (0..40u8)
        .map(|i| vec![b'a' + i % 26; 100_000 + usize::from(i)])
        .collect();
    let batch: Vec<(&str, &[u8])> = payloads.iter().map(|p| ("big", p.as_slice())).collect();
    assert_eq!(client.publish_many(&batch).unwrap(), vec![1; 40]);
    assert_eq!(sub.recv(40, Duration::from_secs(20)), payloads);
    assert_eq!(client.publish(b"big", b"small").unwrap(), 1);
    assert_eq!(client.stats().connections_created, 1);
}
