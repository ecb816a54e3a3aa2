//! HTTP: the WebSocket handshake (Origin allow-list, admission, token), `/healthz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use qrpush_core::channel_token;
use qrpush_core::login::gateway_token;

use crate::admission::Refusal;
use crate::direct::Direct;
use crate::listener::ConnectionFd;
use crate::App;
use crate::{channel_socket, socket};

/// Largest message a browser may send (it sends none; this bounds what a client can make us buffer).
const MAX_INCOMING: usize = 1024;
/// Read chunk per socket: small, because idle sockets are what a gateway holds most.
const READ_BUFFER: usize = 4096;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route("/ws/", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn websocket(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    fd: Option<Extension<ConnectionFd>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&app.settings.allowed_origins, &headers) {
        app.metrics.rejected_origin.fetch_add(1, Relaxed);
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    // Counted before the upgrade, and held until the socket ends: refused or not, every upgraded
    // socket has its slot, so no burst of handshakes gets past either cap.
    let client = app.admission.client_of(peer.ip(), &headers);
    let slot = match app.admission.admit(client) {
        Ok(slot) => slot,
        Err(Refusal::Capacity) => {
            app.metrics.rejected_capacity.fetch_add(1, Relaxed);
            return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
        }
        Err(Refusal::PerAddress) => {
            app.metrics.rejected_per_address.fetch_add(1, Relaxed);
            tracing::debug!(client = %client, "refusing a socket: too many from this address");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address\n",
            )
                .into_response();
        }
    };
    // The token is checked here, but refused after the upgrade: a browser's script only ever sees
    // a WebSocket close code (4001), never an HTTP status. Its expiry is on Redis's clock: checked
    // against ours as if it came `clock_skew` later, and the socket lives until then too.
    let skew_ms = i64::try_from(app.settings.clock_skew.as_millis()).unwrap_or(i64::MAX);
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let now_ms = (socket::now_ms() as i64).saturating_sub(skew_ms);
    if channel_token::is_subscription_token(token) {
        let verdict = channel_verdict(&app, token, &query, now_ms);
        return upgrade_with(&app, upgrade).on_upgrade(move |ws| {
            let tracked = app.tasks.clone();
            let shutdown = app.shutdown.clone();
            tracked.track_future(async move {
                let _slot = slot;
                match verdict {
                    Ok((claims, since)) => {
                        let direct = fd.and_then(|Extension(fd)| direct_way(&app, fd));
                        if claims.key_id != app.settings.token_keys[0].id() {
                            app.metrics.previous_key.fetch_add(1, Relaxed);
                        }
                        let until = claims.expires_at_ms.saturating_add(skew_ms);
                        channel_socket::serve(app, ws, direct, claims, since, until, shutdown).await
                    }
                    Err((code, why)) => {
                        app.metrics.rejected_token.fetch_add(1, Relaxed);
                        tracing::debug!(reason = why, "refusing a channel socket");
                        socket::refuse(ws, code, why).await;
                    }
                }
            })
        });
    }
    let verdict = gateway_token::verify(&app.settings.token_keys, token, now_ms);
    let upgrade = upgrade_with(&app, upgrade);
    let tracked = app.tasks.clone();
    let shutdown = app.shutdown.clone();
    upgrade.on_upgrade(move |ws| {
        tracked.track_future(async move {
            let _slot = slot;
            match verdict {
                Ok(claims) => {
                    if claims.key_id != app.settings.token_keys[0].id() {
                        app.metrics.previous_key.fetch_add(1, Relaxed);
                    }
                    let until = claims.expires_at_ms.saturating_add(skew_ms);
                    socket::serve(app, ws, claims.login_id, until, shutdown).await
                }
                Err(why) => {
                    app.metrics.rejected_token.fetch_add(1, Relaxed);
                    tracing::debug!(reason = %why, "refusing a socket");
                    socket::refuse(ws, 4001, why.as_str()).await;
                }
            }
        })
    })
}

/// The fan-out's direct way to a general-channel socket (`--fanout direct`, Unix), made while
/// its connection is open (the upgraded socket holds it) and handed to `channel_socket::serve`
/// with that socket. None: every message is queued.
fn direct_way(app: &App, fd: ConnectionFd) -> Option<Arc<Direct>> {
    if !app.settings.direct_fanout {
        return None;
    }
    #[cfg(unix)]
    {
        // SAFETY: called while the connection is open (its upgraded socket is alive), and the
        // socket's task, which owns both, holds a CloseOnDrop of this way declared after the
        // socket's halves (so the way goes inert before the descriptor can close).
        Some(Arc::new(unsafe { Direct::of(fd.0) }))
    }
    #[cfg(not(unix))]
    {
        let _ = fd;
        None
    }
}

/// The socket's buffers and limits, for both kinds of socket.
fn upgrade_with(_app: &App, upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
}

/// A subscription token's claims and the positions to resume from (`since`), or the close code
/// and reason of the refusal: 4001 for the token (as a login token's), 4003 for a channel this
/// gateway does not serve to subscription tokens (the QR login's), 4400 for a malformed `since`.
#[allow(clippy::type_complexity)]
fn channel_verdict(
    app: &App,
    token: &str,
    query: &[(String, String)],
    now_ms: i64,
) -> Result<
    (
        channel_token::Claims,
        Vec<(String, String, qrpush_core::durable::Offset)>,
    ),
    (u16, &'static str),
> {
    let claims = channel_token::verify(&app.settings.token_keys, token, now_ms)
        .map_err(|why| (4001, why.as_str()))?;
    channel_token::check_not_login(&claims.channels, &app.settings.core.login_channel)
        .map_err(|_| (4003, "channel not allowed"))?;
    let since = query
        .iter()
        .filter(|(k, _)| k == "since")
        .map(|(_, v)| channel_socket::parse_since(v).ok_or((4400, "malformed since")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((claims, since))
}

/// The Origin check: a browser always sends Origin on a WebSocket handshake; a page of another
/// site must not open sockets here (cross-site WebSocket hijacking). No Origin: not a browser.
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.is_empty() {
        // Same origin: scheme-less compare of the Origin's authority with the Host header.
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        return !host.is_empty() && authority == Some(host.as_str());
    }
    allowed.iter().any(|a| a == "*" || *a == origin)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let up = app.metrics.redis_connected.load(Relaxed) == 1 && !app.shutdown.is_cancelled();
    let body = format!(
        "{{\"status\":\"{}\",\"redis\":\"{}\",\"connections\":{},\"subscriptions\":{}}}\n",
        if up { "ok" } else { "unavailable" },
        if app.metrics.redis_connected.load(Relaxed) == 1 {
            "up"
        } else {
            "down"
        },
        app.metrics.connections.load(Relaxed),
        app.metrics.subscriptions.load(Relaxed),
    );
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [
            (CONTENT_TYPE, "text/plain; version=0.0.4"),
            (CACHE_CONTROL, "no-store"),
        ],
        app.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn origins() {
        let same = Vec::new();
        assert!(origin_allowed(&same, &headers(None, "a:1")));
        assert!(origin_allowed(&same, &headers(Some("http://a:1"), "a:1")));
        assert!(origin_allowed(&same, &headers(Some("https://A:1/"), "a:1")));
        assert!(!origin_allowed(
            &same,
            &headers(Some("http://evil:1"), "a:1")
        ));
        assert!(!origin_allowed(&same, &headers(Some("null"), "a:1")));
        let list = vec!["https://example.com".to_string()];
        assert!(origin_allowed(
            &list,
            &headers(Some("https://example.com"), "gw")
        ));
        assert!(!origin_allowed(
            &list,
            &headers(Some("http://example.com"), "gw")
        ));
        assert!(!origin_allowed(
            &list,
            &headers(Some("https://example.com.evil"), "gw")
        ));
        let any = vec!["*".to_string()];
        assert!(origin_allowed(&any, &headers(Some("https://x"), "gw")));
    }
}
