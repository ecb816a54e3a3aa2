// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Memory and sockets a long-lived worker does not keep for ever: connections unused for
//! `IDLE_CLOSE_AFTER` are closed, and the pool of an endpoint that no client holds any more is
//! forgotten. (A test binary of its own: the sweep acts on every pool of the process.)

use qrpush_test_support as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use qrpush_core::pool::{evict_idle, shared_pool, IDLE_CLOSE_AFTER};
use support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn connections_and_pools_unused_for_long_are_closed() {
    let tenant_a = RedisServer::start();
    let tenant_b = RedisServer::start();
    let gone = tenant_a.client(&[]);
    let kept = tenant_b.client(&[]);
    gone.ping().unwrap();
    kept.ping().unwrap();
    let pool_of_gone = Arc::downgrade(&shared_pool(&gone.config().endpoint, 8));
    drop(gone);

    // Not yet: used moments ago.
    evict_idle(Instant::now());
    assert_eq!(tenant_a.qrpush_clients().len(), 1);
    assert!(pool_of_gone.upgrade().is_some());

    let later = Instant::now() + IDLE_CLOSE_AFTER + Duration::from_secs(1);
    evict_idle(later);
    tenant_a.wait_until("the unused pool's connection to close", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });
    tenant_b.wait_until("the idle connection to close", WAIT, |s| {
        s.qrpush_clients().is_empty()
    });
    assert!(
        pool_of_gone.upgrade().is_none(),
        "the pool no client holds is forgotten"
    );
    // The pool a client still holds stays, with its counters; it connects again when needed.
    let stats = kept.stats();
    assert_eq!((stats.pool_idle, stats.connections_created), (0, 1));
    kept.ping().unwrap();
    assert_eq!(kept.stats().connections_created, 2);
}
