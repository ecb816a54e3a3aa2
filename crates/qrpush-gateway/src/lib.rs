//! QrPush's reference WebSocket gateway.
//!
//! ```text
//!  PHP-FPM (QrPush\Login) ──PUBLISH──▶ Redis ──Pub/Sub──▶ gateway ──WebSocket──▶ browser
//!                                        ▲                   │  (token from Login::start())
//!                                        └── status read ────┘  on every (re)subscribe
//! ```
//!
//! - [`config`]: flags/env → [`Settings`] (the Redis side through `qrpush_core::Config`).
//! - `listener`: the accept loop: hyper's HTTP/1 per connection, with a header-read timeout.
//! - `server`: the routes: the handshake (Origin, admission, token → 4001), `/healthz`, `/metrics`.
//! - [`admission`]: the client's address (trusted proxies) and the caps on open sockets: total
//!   and per address, taken as a slot before the upgrade.
//! - [`hub`]: sockets by login, the channels wanted, routing of events.
//! - `subscriber`: the Pub/Sub side: subscribe on demand on the right nodes, follow failovers
//!   and slot moves, reconnect with backoff; `topology` says where a channel goes (one server,
//!   the Sentinel primary, the Cluster slot owner), `link` is one node's connection, `resp` its
//!   frames.
//! - `status`: a login's status through the core (the same read as `QrPush\Login::status()`).
//! - [`channel_socket`]: a socket opened with a subscription token: general channels, with the
//!   replay of what it missed (durable publishes) before live messages, or a resync.
//! - `socket`: one login socket's task: writes, heartbeats, token expiry, the close after the login's
//!   last event, slow-client and shutdown handling.
//! - [`metrics`]: Prometheus counters and the publish→send lag histogram.
//!
//! [`start`] runs a gateway inside the caller's tokio runtime (the binary, and the tests, which
//! run several at once); [`Gateway::shutdown`] is what SIGTERM does.

pub mod admission;
pub mod channel_socket;
pub mod config;
pub mod direct;
pub mod hub;
mod link;
mod listener;
pub mod metrics;
mod quiet;
mod resp;
mod server;
mod socket;
mod status;
mod subscriber;
mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

use qrpush_core::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Args, Settings};
pub use metrics::Metrics;
pub use server::origin_allowed;
pub use subscriber::connection_info;

/// Shared by every task of one gateway.
pub struct App {
    pub settings: Settings,
    pub hub: Arc<hub::Hub>,
    pub metrics: Arc<Metrics>,
    /// The caps on open sockets (total, per client address): a slot per socket, for its life.
    admission: Arc<admission::Admission>,
    /// The core's (blocking) client: status and replay reads.
    core: Arc<Client>,
    status: Arc<status::StatusReader>,
    /// Cancelled on shutdown: sockets close with 1001, the subscriber stops.
    shutdown: CancellationToken,
    /// The HTTP connections and the socket tasks, awaited (bounded) on shutdown.
    tasks: TaskTracker,
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    app: Arc<App>,
    server: JoinHandle<()>,
    subscriber: JoinHandle<()>,
}

/// Binds `settings.listen` and starts serving and subscribing.
pub async fn start(settings: Settings) -> anyhow::Result<Gateway> {
    subscriber::check_endpoint(&settings.core.endpoint)?;
    let core = Arc::new(Client::new(settings.core.clone()));
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(hub::Hub::new(
        core.clone(),
        settings.max_sockets_per_login,
        metrics.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    let admission = Arc::new(admission::Admission::new(
        settings.max_connections,
        settings.max_sockets_per_address,
        settings.trusted_proxies.clone(),
        settings.real_ip_header.clone(),
    ));
    let app = Arc::new(App {
        settings,
        hub,
        metrics,
        admission,
        core: core.clone(),
        status: Arc::new(status::StatusReader::new(core)),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let subscriber = tokio::spawn(subscriber::run(
        Arc::new(app.settings.clone()),
        app.hub.clone(),
        app.status.clone(),
        app.metrics.clone(),
        app.shutdown.clone(),
    ));
    let server = tokio::spawn(listener::run(
        listener,
        server::router(app.clone()),
        app.settings.header_read_timeout,
        app.shutdown.clone(),
        app.tasks.clone(),
    ));
    Ok(Gateway {
        addr,
        app,
        server,
        subscriber,
    })
}

impl Gateway {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.app.metrics
    }

    /// Starts a graceful shutdown: no new sockets, every open one closed with 1001.
    pub fn shutdown(&self) {
        self.app.shutdown.cancel();
    }

    /// Waits for the shutdown to finish: sockets closed (at most `--shutdown-timeout`).
    pub async fn wait(self) {
        self.app.shutdown.cancelled().await;
        let _ = self.server.await;
        let _ = self.subscriber.await;
        self.app.tasks.close();
        if tokio::time::timeout(self.app.settings.shutdown_timeout, self.app.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.app.tasks.len(),
                "shutdown timeout: dropping the sockets still open"
            );
        }
    }

    /// `shutdown` and `wait`.
    pub async fn stop(self) {
        self.shutdown();
        self.wait().await;
    }
}
