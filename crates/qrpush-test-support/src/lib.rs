//! QrPush's test harness, shared by the core's and the gateway's integration tests (the way
//! redis-rs keeps its `redis-test` crate): every test starts its own `redis-server` on its own
//! loopback port, talks to it through connections that share no code with the code under test, and
//! stops it when the value is dropped.
//!
//! Layout:
//! - [`ports`]: free loopback ports, never one of `QRPUSH_RESERVED_PORTS` (as in scripts/lib.sh
//!   and the PHP harness);
//! - [`server`]: [`RedisServer`], a private `redis-server` child (password, Unix socket, extra
//!   arguments; stop, restart, freeze);
//! - [`tls`]: [`TlsServer`], the same with a TLS port and a per-test CA ([`Pki`]);
//! - [`admin`]: [`Admin`], a raw RESP connection for assertions, and CLIENT LIST rows;
//! - [`subscriber`]: [`Subscriber`], a raw Pub/Sub connection that counts what arrives;
//! - [`proxy`]: [`Proxy`], a TCP proxy that can lose replies or inject bytes;
//! - [`topology`]: [`SentinelTopology`] (1 primary + 1 replica + 3 Sentinels) and
//!   [`ClusterTopology`] (3 primaries + 3 replicas), formed and settled before use.
//!
//! `redis-server` is found through `REDIS_SERVER` or `PATH`; when it is missing a test fails (it
//! does not skip), because a silently skipped suite proves nothing.

pub mod admin;
pub mod ports;
pub mod proxy;
pub mod server;
pub mod subscriber;
pub mod tls;
pub mod topology;

use std::time::Duration;

pub use admin::{client_list, text, Admin, ClientInfo};
pub use ports::{free_port, reserved_ports};
pub use proxy::Proxy;
pub use server::{qrpush_name, redis_cli_binary, redis_server_binary, Login, RedisServer};
pub use subscriber::{Next, Subscriber};
pub use tls::{Pki, TlsServer};
pub use topology::{
    cluster_routing, ClusterTopology, SentinelSecrets, SentinelTopology, SlotRange, SERVICE,
};

/// Asserts `elapsed` lies within `[min, max]`.
#[track_caller]
pub fn assert_within(elapsed: Duration, min: Duration, max: Duration, what: &str) {
    assert!(
        elapsed >= min && elapsed <= max,
        "{what} took {elapsed:?}, expected between {min:?} and {max:?}"
    );
}
