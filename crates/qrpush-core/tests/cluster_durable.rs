// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Durable publishes on a real Redis Cluster (3 primaries + 3 replicas on loopback): each runs on
//! the primary owning its channel's slot (its stream and epoch keys share the channel's `{tag}`),
//! its SPUBLISH reaches the sharded subscriber there exactly once, a batch across all shards
//! keeps input order and each stream's order, the replay read finds exactly what was missed, the
//! `global` mode reaches a classic subscriber elsewhere, a channel whose stream key would be in
//! another slot is refused before anything is sent, and a moved slot is followed once.

use qrpush_test_support as support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use qrpush_core::durable::socketio::{self, Broadcast, StreamOptions};
use qrpush_core::durable::{wire, Durable, Published, Replay};
use qrpush_core::{ErrorKind, Subject};
use redis::Value;
use support::{cluster_routing, ClusterTopology};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn batch(durable: &Durable<'_>, items: &[(String, String)]) -> qrpush_core::Result<Vec<Published>> {
    let mut batch = durable.batch(items.len());
    for (channel, message) in items {
        batch.push_encoded(channel.as_bytes(), || Ok(message.as_bytes()))?;
    }
    batch.publish()
}

#[test]
fn durable_publishes_run_on_the_owner_of_their_channel_and_replay_there() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let channels = cluster.name_per_primary("durable-");
    let mut subs: Vec<_> = channels
        .iter()
        .map(|c| cluster.subscribe_sharded(c))
        .collect();
    let client = cluster.client(&[]);
    let durable = Durable::new(&client);

    // One publish per shard: stored on the owner, SPUBLISHed there with its header.
    let mut first = Vec::new();
    for ((channel, sub), port) in channels.iter().zip(&mut subs).zip(&primaries) {
        let at = durable.publish(channel.as_bytes(), b"one").unwrap();
        assert_eq!(at.receivers, 1);
        assert_eq!(
            sub.recv(1, WAIT),
            vec![wire::frame(&at.epoch, at.offset, b"one")]
        );
        let key = format!("qrpush:stream:{{{channel}}}");
        assert_eq!(cluster.node(*port).cmd(&["XLEN", &key]), Value::Int(1));
        assert_eq!(cluster.slot_of(&key), cluster.slot_of(channel));
        first.push(at);
    }

    // A batch interleaved over the three shards: results in input order, every subscriber gets
    // its channel's messages once, in order, with offsets growing in each stream.
    let items: Vec<(String, String)> = (0..30)
        .map(|i| (channels[i % 3].clone(), format!("many-{i}")))
        .collect();
    let published = batch(&durable, &items).unwrap();
    assert_eq!(published.len(), 30);
    for (k, sub) in subs.iter_mut().enumerate() {
        let mine: Vec<(usize, &Published)> = published
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == k)
            .collect();
        let want: Vec<Vec<u8>> = mine
            .iter()
            .map(|(i, p)| wire::frame(&p.epoch, p.offset, format!("many-{i}").as_bytes()))
            .collect();
        assert_eq!(sub.recv(10, WAIT), want);
        sub.nothing_more(QUIET);
        assert!(mine.windows(2).all(|w| w[0].1.offset < w[1].1.offset));
        assert!(mine
            .iter()
            .all(|(_, p)| p.epoch == first[k].epoch && p.receivers == 1));

        // What a reader at its first publish missed: exactly the batch's items of its channel.
        let read = durable
            .read_since(
                channels[k].as_bytes(),
                Some((&first[k].epoch, first[k].offset)),
                100,
            )
            .unwrap();
        let Replay::Recovered(entries) = read.replay else {
            panic!("{:?}", read.replay)
        };
        let got: Vec<(qrpush_core::durable::Offset, String)> = entries
            .into_iter()
            .map(|e| (e.offset, String::from_utf8(e.message).unwrap()))
            .collect();
        let want: Vec<_> = mine
            .iter()
            .map(|(i, p)| (p.offset, format!("many-{i}")))
            .collect();
        assert_eq!(got, want);
        assert_eq!(read.head.unwrap().offset, mine.last().unwrap().1.offset);
    }
    let stats = client.stats();
    assert_eq!(
        (stats.published, stats.failed),
        (3 + 30, 0),
        "{:?}",
        stats.last_error
    );

    // A channel whose stream key would hash elsewhere is refused before anything is sent.
    let e = durable.publish(b"orders{7}", b"x").unwrap_err();
    assert_eq!(
        (e.kind(), e.subject()),
        (ErrorKind::InvalidArgument, Some(Subject::Channel))
    );
    let e = batch(
        &durable,
        &[
            (channels[0].clone(), "a".into()),
            ("a}b".into(), "b".into()),
        ],
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    subs[0].nothing_more(QUIET);

    // Global mode: a classic PUBLISH from the script, heard by a SUBSCRIBE on another node; the
    // braces no longer matter (PUBLISH has no slot).
    let global = cluster.client(&[("cluster_publish", "global")]);
    let durable = Durable::new(&global);
    let mut classic = cluster.node(primaries[1]).subscribe(&[&channels[0]]);
    let at = durable.publish(channels[0].as_bytes(), b"global").unwrap();
    assert_eq!(
        classic.recv(1, WAIT),
        vec![wire::frame(&at.epoch, at.offset, b"global")]
    );
    subs[0].nothing_more(Duration::from_millis(50));
    let runs_on = cluster.owner_of("qrpush:stream:{orders{7}}").port();
    let listens_on = *primaries.iter().find(|p| **p != runs_on).unwrap();
    let mut braces = cluster.node(listens_on).subscribe(&["orders{7}"]);
    // The count is the receiving node's own subscribers (the Cluster bus carries the message to
    // the others): 0 here, the subscriber being on another node than the stream's owner.
    let at = durable.publish(b"orders{7}", b"x").unwrap();
    assert_eq!(at.receivers, 0);
    assert_eq!(
        braces.recv(1, WAIT),
        vec![wire::frame(&at.epoch, at.offset, b"x")]
    );
    braces.nothing_more(QUIET);
}

/// A stream's slot moved to another node: the durable publish is answered MOVED by the old
/// owner (it did not run), sent once to the new one, which holds the migrated stream: the offset
/// continues it, under the same epoch, and the subscriber gets it once.
#[test]
fn a_durable_publish_follows_a_moved_slot_once() {
    let cluster = ClusterTopology::start();
    let primaries = cluster.primary_ports();
    let channel = cluster.name_on(primaries[0], "moving-");
    let client = cluster.client(&[]);
    let routing = cluster_routing(&client);
    let durable = Durable::new(&client);
    let before = durable.publish(channel.as_bytes(), b"before").unwrap();

    cluster.move_slot(cluster.slot_of(&channel), primaries[1]);
    let mut sub = cluster.subscribe_sharded(&channel);
    let after = durable.publish(channel.as_bytes(), b"after").unwrap();
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1);
    assert_eq!(
        (after.epoch.as_str(), after.receivers),
        (before.epoch.as_str(), 1)
    );
    assert!(after.offset > before.offset);
    assert_eq!(
        sub.recv(1, WAIT),
        vec![wire::frame(&after.epoch, after.offset, b"after")]
    );
    sub.nothing_more(QUIET);
    let key = format!("qrpush:stream:{{{channel}}}");
    assert_eq!(
        cluster.node(primaries[1]).cmd(&["XLEN", &key]),
        Value::Int(2)
    );

    // A batch to the moved channel and one on another shard goes straight to the new owners.
    let other = cluster.name_on(primaries[2], "steady-");
    let published = batch(
        &durable,
        &[
            (channel.clone(), "x".into()),
            (other.clone(), "y".into()),
            (channel.clone(), "z".into()),
        ],
    )
    .unwrap();
    assert_eq!(published.len(), 3);
    assert_eq!(sub.recv(2, WAIT).len(), 2);
    assert_eq!(routing.redirects.load(Ordering::Relaxed), 1);
}

/// A Socket.IO streams-adapter emit (one XADD on the adapter's stream key) runs on the owner of
/// that key's slot, for streams on every shard.
#[test]
fn socketio_stream_emits_run_on_the_owner_of_the_stream() {
    let cluster = ClusterTopology::start();
    let client = cluster.client(&[]);
    let broadcast = Broadcast {
        namespace: socketio::namespace("chat"),
        event: "message".into(),
        args: br#"["hello"]"#.to_vec(),
        ..Broadcast::default()
    };
    let mut owners = std::collections::BTreeSet::new();
    for i in 0..40 {
        let options = StreamOptions {
            stream: format!("socket.io-{i}"),
            ..StreamOptions::default()
        };
        let offset = socketio::emit(&client, &options, &broadcast).unwrap();
        let owner = cluster.owner_of(&options.stream);
        let entries = owner.cmd(&["XRANGE", &options.stream, "-", "+"]);
        let Value::Array(entries) = entries else {
            panic!("{entries:?}")
        };
        assert_eq!(entries.len(), 1);
        let Value::Array(entry) = &entries[0] else {
            panic!("{entries:?}")
        };
        assert_eq!(entry[0], Value::BulkString(offset.to_string().into_bytes()));
        owners.insert(owner.port());
    }
    assert_eq!(owners.len(), 3, "streams on every shard");
    assert_eq!(client.stats().failed, 0);
}
