// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Never through a replica: a replica runs PUBLISH for its own subscribers only, so a publish that
//! "succeeds" on one is lost for everybody listening on the primary. A new connection to a replica
//! is refused while logging in (ROLE); a pooled connection whose server is demoted under it
//! (REPLICAOF, as a failover does) is caught on its next publish (WAIT 0 0 behind it) and left for
//! a new connection; error replies that mean "not here, not now" (READONLY...) retire it too.
//! Every publish after a demotion reaches a subscriber of the new primary or throws.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::login::Login;
use qrpush_core::ErrorKind;
use support::{text, Proxy, RedisServer};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

/// Makes `replica` a replica of `primary` and waits until the link is up.
fn replicate(replica: &RedisServer, primary: &RedisServer) {
    // A diskless full sync waits 5 s by default for more replicas to join.
    primary
        .admin()
        .ok(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
    let port = primary.port().to_string();
    replica.admin().ok(&["REPLICAOF", "127.0.0.1", &port]);
    replica.wait_until("the replication link", WAIT, |s| {
        text(&s.cmd(&["INFO", "replication"])).contains("master_link_status:up")
    });
}

#[test]
fn a_replica_is_refused_before_anything_is_published() {
    let primary = RedisServer::start();
    let replica = RedisServer::start();
    replicate(&replica, &primary);
    let mut sub = replica.subscribe(&["c"]);
    let client = replica.client(&[]);
    let err = client.publish(b"c", b"lost on a replica").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replica, "{err}");
    assert!(!err.maybe_sent(), "refused while logging in: {err}");
    assert_eq!(
        err.message(),
        format!(
            "Redis at 127.0.0.1:{} is not the primary: it is a replica of 127.0.0.1:{}; QrPush publishes only through a primary (point qrpush.url at the primary, or at a name that follows failovers)",
            replica.port(),
            primary.port()
        )
    );
    let err = client.publish_many(&[("c", "a"), ("c", "b")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replica, "{err}");
    // Nothing reached the replica's own subscriber either.
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (0, 3));
    assert_eq!(stats.connections_created, 0);
    // A subscriber of the primary gets what is published there (the replica relays it).
    let on_primary = primary.client(&[]);
    assert_eq!(on_primary.publish(b"c", b"through the primary").unwrap(), 0);
    assert_eq!(sub.recv(1, WAIT), vec![b"through the primary".to_vec()]);
}

#[test]
fn a_primary_demoted_under_a_pooled_connection_is_left_not_published_to() {
    let old = RedisServer::start();
    let new = RedisServer::start();
    let mut sub = new.subscribe(&["c"]);
    let client = old.client(&[]);
    assert_eq!(client.publish(b"c", b"before").unwrap(), 0);
    assert_eq!(client.stats().connections_created, 1);

    // The failover demotes the old primary; its clients stay connected.
    replicate(&old, &new);
    assert_eq!(old.qrpush_clients().len(), 1, "REPLICAOF keeps the client");
    for _ in 0..2 {
        let err = client.publish(b"c", b"after").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Replica, "{err}");
        assert!(!err.maybe_sent(), "nothing was delivered: {err}");
    }
    let err = client.publish_many(&[("c", "a"), ("c", "b")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replica, "{err}");
    assert!(
        err.batch_outcome().is_none(),
        "nothing was published: {err}"
    );
    sub.nothing_more(QUIET);
    assert!(
        old.qrpush_clients().is_empty(),
        "the demoted server's connection was dropped"
    );
    let stats = client.stats();
    assert_eq!(stats.published, 1);
    assert_eq!(stats.failed, 4);
}

#[test]
fn after_a_failover_publishes_follow_the_address_to_the_new_primary() {
    let old = RedisServer::start();
    let new = RedisServer::start();
    // The address (a DNS name, a virtual IP) the app is configured with.
    let address = Proxy::start(old.port());
    let mut sub = new.subscribe(&["c"]);
    let client = old.client(&[("url", &address.url())]);
    assert_eq!(client.publish(b"c", b"before").unwrap(), 0);

    // Demote the old primary, then move the address (DNS name, VIP) to the new one. The pooled
    // connection still reaches the old server.
    replicate(&old, &new);
    address.point_at(new.port());
    assert_eq!(client.publish(b"c", b"after").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"after".to_vec()]);
    let counts = client.publish_many(&[("c", "a"), ("c", "b")]).unwrap();
    assert_eq!(counts, vec![1, 1]);
    assert_eq!(sub.recv(2, WAIT), vec![b"a".to_vec(), b"b".to_vec()]);
    sub.nothing_more(QUIET);
    let stats = client.stats();
    assert_eq!(
        (stats.published, stats.failed),
        (4, 0),
        "{:?}",
        stats.last_error
    );
    assert_eq!(stats.connections_created, 2);
    assert_eq!(address.accepted(), 2);
    assert!(old.qrpush_clients().is_empty());
}

/// The login scripts write: on a demoted primary they fail with READONLY. The connection is
/// retired (the next call gets a new one, which learns the server is a replica) and the failure
/// counts in the stats.
#[test]
fn login_calls_on_a_demoted_primary_retire_the_connection_and_count() {
    let old = RedisServer::start();
    let new = RedisServer::start();
    // The address (a DNS name, a virtual IP) the app is configured with.
    let address = Proxy::start(old.port());
    let client = old.client(&[("url", &address.url())]);
    let login = Login::new(&client);
    login.start("10.0.0.1", "UA").unwrap();
    let before = client.stats();
    replicate(&old, &new);

    let err = login.start("10.0.0.1", "UA").unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Replica,
        "retried on a new connection: {err}"
    );
    let stats = client.stats();
    assert_eq!(stats.failed - before.failed, 1, "{:?}", stats.last_error);
    assert_eq!(
        stats.connections_created, 1,
        "the replica was refused while logging in"
    );

    address.point_at(new.port());
    let started = login.start("10.0.0.1", "UA").unwrap();
    assert!(!started.status.id.is_empty());
    assert_eq!(client.stats().connections_created, 2);
}
