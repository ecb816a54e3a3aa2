//! The accept loop: one HTTP/1 connection per accepted TCP stream, served by hyper directly.
//!
//! `axum::serve` takes no configuration, and without a timer hyper enforces no header-read
//! timeout: a client that sends its request head one byte at a time (slowloris) would hold a
//! connection and its task for as long as it likes. Here every connection gets hyper's
//! `header_read_timeout`, which bounds the whole request head from the first read (and each
//! later head on a kept-alive connection), however the bytes trickle in. A connection that
//! upgrades to a WebSocket leaves hyper and is bounded by the socket's own timers.
//!
//! The peer address of each connection is handed to the handlers as `ConnectInfo<SocketAddr>`,
//! and its descriptor as [`ConnectionFd`] (for the fan-out's direct writes, `direct`).

use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

/// Accepts until `shutdown`; each connection runs in a task of `tasks` and, on shutdown, finishes
/// its current request and closes (upgraded sockets close themselves).
pub async fn run(
    mut listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        // axum's accept retries by itself: it skips per-connection errors and sleeps a second
        // when the process is out of file descriptors.
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = Listener::accept(&mut listener) => accepted,
        };
        let router = router.clone();
        let fd = ConnectionFd::of(&stream);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(fd);
            router.clone().call(request)
        });
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// The descriptor of a connection's socket (Unix), valid while the connection is: a handler
/// that keeps it longer must duplicate it (`Direct::of`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionFd(#[cfg(unix)] pub std::os::fd::RawFd);

impl ConnectionFd {
    fn of(stream: &tokio::net::TcpStream) -> ConnectionFd {
        #[cfg(unix)]
        {
            ConnectionFd(std::os::fd::AsRawFd::as_raw_fd(stream))
        }
        #[cfg(not(unix))]
        {
            let _ = stream;
            ConnectionFd()
        }
    }
}
