//! The topology harness forms real topologies that behave as the Sentinel and Cluster tests
//! assume: the Sentinels follow a `SENTINEL FAILOVER`, a sharded message reaches only the owning
//! node's SSUBSCRIBE, and a moved slot answers MOVED on its old owner.

use std::time::Duration;

use qrpush_test_support::{ClusterTopology, SentinelTopology, SERVICE};
use redis::Value;

const WAIT: Duration = Duration::from_secs(5);

/// The Sentinels agree on the first node as primary, then on the other one after a failover;
/// the new primary accepts writes and the old one became its replica.
#[test]
fn sentinel_topology_forms_and_follows_a_failover() {
    let topology = SentinelTopology::start();
    let first = topology.nodes()[0].port();
    assert_eq!(topology.primary_port(), first);
    assert!(topology.url().starts_with("redis-sentinel://127.0.0.1:"));
    assert!(topology.url().ends_with(&format!("#{SERVICE}")));

    let second = topology.failover();
    assert_ne!(second, first);
    assert_eq!(topology.primary().port(), second);
    assert_eq!(topology.replica().port(), first);
    assert_eq!(topology.primary().cmd(&["SET", "k", "v"]), Value::Okay);
    match topology.replica().cmd(&["SET", "k", "v"]) {
        Value::ServerError(e) => assert_eq!(e.code(), "READONLY"),
        other => panic!("the old primary accepted a write: {other:?}"),
    }
}

/// 3 primaries + 3 replicas; SPUBLISH on the owner reaches the owner's SSUBSCRIBE exactly once;
/// after `move_slot` the old owner answers MOVED and the new one delivers.
#[test]
fn cluster_topology_routes_sharded_messages_and_moves_slots() {
    let cluster = ClusterTopology::start();
    assert_eq!(cluster.nodes().len(), 6);
    let primaries: Vec<u16> = cluster.primaries().iter().map(|n| n.port()).collect();
    assert_eq!(primaries.len(), 3);
    let covered: u32 = cluster
        .slot_map()
        .iter()
        .map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1)
        .sum();
    assert_eq!(covered, 16384);

    let channel = cluster.name_on(primaries[0], "topology-");
    let mut sub = cluster.subscribe_sharded(&channel);
    let owner = cluster.owner_of(&channel);
    assert_eq!(owner.port(), primaries[0]);
    assert_eq!(
        owner.cmd(&["SPUBLISH", &channel, "one"]),
        Value::Int(1),
        "one sharded subscriber on the owner"
    );
    assert_eq!(sub.recv(1, WAIT), vec![b"one".to_vec()]);
    sub.nothing_more(Duration::from_millis(200));

    let slot = cluster.slot_of(&channel);
    cluster.move_slot(slot, primaries[1]);
    assert_eq!(cluster.owner_of(&channel).port(), primaries[1]);
    match cluster
        .node(primaries[0])
        .cmd(&["SPUBLISH", &channel, "two"])
    {
        Value::ServerError(e) => {
            assert_eq!(e.code(), "MOVED");
            assert_eq!(
                e.details(),
                Some(format!("{slot} 127.0.0.1:{}", primaries[1]).as_str())
            );
        }
        other => panic!("expected MOVED from the old owner, got {other:?}"),
    }
    let mut moved = cluster.subscribe_sharded(&channel);
    assert_eq!(
        cluster
            .node(primaries[1])
            .cmd(&["SPUBLISH", &channel, "three"]),
        Value::Int(1)
    );
    assert_eq!(moved.recv(1, WAIT), vec![b"three".to_vec()]);
}
