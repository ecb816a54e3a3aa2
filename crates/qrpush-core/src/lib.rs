//! QrPush's core: everything the PHP extension does, without PHP.
//!
//! # Layout
//! - [`config`]: the settings table and the validated [`Config`] built from php.ini or options.
//! - [`endpoint`]: Redis URL parsing into an [`Endpoint`] (address, credentials, db).
//! - [`secret`]: [`Secret`], a string that never prints.
//! - `stream`: TCP / Unix socket bytes and the no-round-trip liveness check.
//! - [`tls`]: `rediss://`: rustls (ring) client config, trust store and bounded handshake.
//! - [`connection`]: one Redis connection: handshake, pipelined requests under a deadline.
//! - `reply`: the connection's input buffer, cut into whole RESP replies without re-zeroing.
//! - [`breaker`]: the circuit breaker that fails calls fast after a slow connection failure.
//! - [`pool`]: the per-process, fork-aware, bounded pool shared by clients of an endpoint.
//! - [`client`]: [`Client`]: publish, publish_many, ping with validation, retry rules and stats.
//! - [`json`]: JSON byte-identical to PHP's `json_encode` with QrPush's flags.
//! - [`stats`]: counters and the latency histogram behind `stats()` and phpinfo.
//! - [`login`]: [`Login`], the QR-login state machine in Redis (Lua scripts that publish events).
//! - [`error`]: [`Error`] and its [`ErrorKind`], mapped to PHP exceptions by the binding.
//!
//! The core never opens a connection on its own: only a call that needs Redis does.

pub mod breaker;
pub mod client;
pub mod config;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod json;
pub mod login;
pub mod pool;
mod process;
mod reply;
pub mod secret;
pub mod stats;
mod stream;
pub mod tls;

pub use client::Client;
pub use config::{Config, Setting, SETTINGS};
pub use endpoint::{Address, Endpoint};
pub use error::{Error, ErrorKind, Result};
pub use login::{Login, LoginError};
pub use secret::Secret;
pub use stats::{LatencySummary, StatsSnapshot};
pub use tls::{TlsOptions, TlsVerify};

/// The crate version, shown by `php --ri qrpush` and `QrPush::VERSION`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
