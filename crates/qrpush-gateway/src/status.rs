//! A login's current status, read exactly as `QrPush\Login::status()` reads it: through the core's
//! client and login script (one definition of the status; a login past its deadline becomes
//! `expired` and the event is published, as on any status call). The core's client is blocking,
//! so reads run on tokio's blocking pool, a few at a time.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use qrpush_core::config::LoginChannelMode;
use qrpush_core::login::{wire, Login, LoginError};
use qrpush_core::{Client, ErrorKind};
use tokio::sync::Semaphore;

use crate::hub::{Hub, Outgoing};
use crate::metrics::Metrics;

/// Status reads in flight at once (the core client's pool has as many connections).
const CONCURRENT_READS: usize = 8;
/// Attempts per status delivery while Redis answers with errors (the next resubscribe retries too).
const ATTEMPTS: u32 = 6;

pub struct StatusReader {
    client: Arc<Client>,
    permits: Semaphore,
    with_session_id: bool,
}

impl StatusReader {
    pub fn new(client: Arc<Client>) -> StatusReader {
        let with_session_id = client.config().login_channel_mode == LoginChannelMode::Single;
        StatusReader {
            client,
            permits: Semaphore::new(CONCURRENT_READS),
            with_session_id,
        }
    }

    /// The status message of `login_id`, its `seq` and whether the login is finished (no more
    /// events will follow), or the core's error.
    pub async fn read(&self, login_id: &str) -> Result<(String, i64, bool), qrpush_core::Error> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let client = self.client.clone();
        let id = login_id.to_string();
        let with_session_id = self.with_session_id;
        tokio::task::spawn_blocking(move || {
            Login::new(&client).status(&id, None).map(|status| {
                (
                    wire::status_message(&status, with_session_id),
                    status.version,
                    !status.state.is_live(),
                )
            })
        })
        .await
        .unwrap_or_else(|e| {
            Err(qrpush_core::Error::new(
                ErrorKind::Protocol,
                format!("status read panicked: {e}"),
            ))
        })
    }
}

/// Reads `login_id`'s status and queues it to those of its sockets here that are in `peer_ids`.
/// A login that does not exist (any more) closes those sockets with 4004.
pub async fn deliver(
    hub: Arc<Hub>,
    reader: Arc<StatusReader>,
    metrics: Arc<Metrics>,
    login_id: String,
    peer_ids: Vec<u64>,
) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        if !hub.is_connected(&login_id, &peer_ids) {
            return;
        }
        match reader.read(&login_id).await {
            Ok((message, seq, ends_login)) => {
                let text = Utf8Bytes::from(message);
                hub.send_to(&login_id, &peer_ids, || Outgoing::Status {
                    text: text.clone(),
                    seq,
                    ends_login,
                });
                return;
            }
            Err(e) if e.kind() == ErrorKind::Login(LoginError::NotFound) => {
                let closed = hub.send_to(&login_id, &peer_ids, || {
                    Outgoing::Close(4004, "login not found")
                });
                metrics.not_found.fetch_add(closed as u64, Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e.message(), "reading a login's status failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
