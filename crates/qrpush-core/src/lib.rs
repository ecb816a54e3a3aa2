//! QrPush's core: everything the PHP extension does, without PHP.
//!
//! # Layout
//! Bottom-up: each module uses only modules listed before it (a test checks this order).
//! - [`error`]: [`Error`], its [`ErrorKind`], the [`Subject`] it is about and the [`LoginError`]
//!   refusals; mapped to PHP exceptions by the binding. A leaf.
//! - [`secret`]: [`Secret`], a string that never prints. A leaf.
//! - [`json`]: JSON byte-identical to PHP's `json_encode` with QrPush's flags. A leaf.
//! - [`tls`]: `rediss://`: rustls (ring) client config, trust store and bounded handshake.
//! - [`endpoint`]: Redis URL parsing into an [`Endpoint`] (address, credentials, db).
//! - [`config`]: the settings table and the validated [`Config`] built from php.ini or options.
//! - `process`: the current pid, cached, for fork detection.
//! - `resolve`: host names to addresses within a deadline (the system resolver on a helper thread).
//! - `stream`: TCP / Unix socket bytes under one connect deadline, keepalive, and the
//!   no-round-trip liveness check.
//! - `reply`: the connection's input buffer, cut into whole RESP replies without re-zeroing.
//! - [`connection`]: one Redis connection: handshake, pipelined requests under a deadline.
//! - [`breaker`]: the circuit breaker that fails calls fast after a slow connection failure.
//! - [`stats`]: counters and the latency histogram behind `stats()` and phpinfo.
//! - [`pool`]: the per-process, fork-aware, bounded pool shared by clients of an endpoint.
//! - `lookup`: a topology question (the slot map, the primary) asked of several servers in turn
//!   within one call's deadline, and the error when none answers.
//! - [`cluster`]: Redis Cluster routing: hash slots, the slot map, a pool per node, redirects.
//! - [`sentinel`]: Redis Sentinel: the service's primary, asked of the Sentinels, verified with ROLE.
//! - [`client`]: [`Client`]: publish, publish_many, ping with validation, retry rules and stats.
//! - [`login`]: [`Login`], the QR-login state machine in Redis (Lua scripts that publish events).
//! - [`durable`]: [`Durable`], publishes also stored in a capped stream per channel (offset, epoch)
//!   and the replay of what a reader missed; the Socket.IO Redis Streams adapter's entries.
//! - [`formats`]: other servers' message formats: Laravel's broadcasts, Socket.IO's Redis
//!   adapters (the streams adapter's entries written by `durable`).
//! - [`channel_token`]: the gateway's subscription tokens (channels, user, expiry), signed with the
//!   login tokens' keys.
//!
//! The core never opens a connection on its own: only a call that needs Redis does.

// Grouped by layer, bottom-up as in the Layout above.
pub mod error;
pub mod json;
pub mod secret;

pub mod config;
pub mod endpoint;
pub mod tls;

pub mod breaker;
pub mod connection;
pub mod pool;
mod process;
mod reply;
mod resolve;
pub mod stats;
mod stream;

pub mod cluster;
mod lookup;
pub mod sentinel;

pub mod client;

pub mod login;

pub mod channel_token;
pub mod durable;

pub mod formats;

pub use client::{Batch, Client};
pub use config::{ClusterPublish, Config, Setting, SETTINGS};
pub use durable::Durable;
pub use endpoint::{Address, Endpoint, SentinelAuth};
pub use error::{BatchOutcome, Error, ErrorKind, ItemPart, LoginError, Result, Subject};
pub use login::Login;
pub use secret::Secret;
pub use stats::{LatencySummary, StatsSnapshot, TopologySnapshot};
pub use tls::{TlsOptions, TlsVerify};

/// The crate version, shown by `php --ri qrpush` and `QrPush::VERSION`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
