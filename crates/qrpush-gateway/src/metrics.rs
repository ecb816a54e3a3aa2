//! Counters, the publish→send lag histogram and the fan-out duration histogram, rendered as
//! Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the lag histogram's buckets.
const LAG_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Why the gateway dropped a socket without a close frame (the `reason` label of `dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its send queue was full, or one write took longer than --send-timeout.
    Slow,
    /// It did not answer a ping in time.
    Heartbeat,
}

/// Why the gateway closed a socket whose work was done (the `reason` label of `closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The login reached a final state and the socket was told (1000).
    LoginFinished,
    /// The socket's token expired (4001).
    TokenExpired,
}

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub rejected_token: AtomicU64,
    /// Sockets accepted with a token signed by the previous secret (a rotation under way).
    pub previous_key: AtomicU64,
    /// Redis's clock minus the gateway's, in ms, as measured at the last (re)connect.
    pub redis_clock_offset_ms: AtomicI64,
    pub rejected_origin: AtomicU64,
    pub rejected_capacity: AtomicU64,
    pub rejected_per_login: AtomicU64,
    pub rejected_per_address: AtomicU64,
    pub not_found: AtomicU64,
    pub events_received: AtomicU64,
    pub events_unrouted: AtomicU64,
    pub events_forwarded: AtomicU64,
    pub status_sent: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub dropped_heartbeat: AtomicU64,
    pub closed_login_finished: AtomicU64,
    pub closed_token_expired: AtomicU64,
    pub redis_connected: AtomicI64,
    pub redis_reconnects: AtomicU64,
    pub redis_connect_failures: AtomicU64,
    pub subscriptions: AtomicI64,
    pub logins: AtomicI64,
    /// Copies of general channels' live messages, by how they reached their socket: written by
    /// the fan-out whole, written in part (the socket's task wrote the rest), or queued to the
    /// socket's task (not lent to the fan-out, or its buffer was full).
    pub fanout_direct: AtomicU64,
    pub fanout_partly: AtomicU64,
    pub fanout_queued: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS.len()],
    lag_count: AtomicU64,
    lag_sum_us: AtomicU64,
    /// Messages of general channels fanned out, by how long the whole fan-out took.
    fanout_buckets: [AtomicU64; LAG_BUCKETS.len()],
    fanout_count: AtomicU64,
    fanout_sum_us: AtomicU64,
}

impl Metrics {
    pub fn dropped(&self, why: DropReason) {
        match why {
            DropReason::Slow => self.dropped_slow.fetch_add(1, Relaxed),
            DropReason::Heartbeat => self.dropped_heartbeat.fetch_add(1, Relaxed),
        };
    }

    pub fn closed(&self, why: CloseReason) {
        match why {
            CloseReason::LoginFinished => self.closed_login_finished.fetch_add(1, Relaxed),
            CloseReason::TokenExpired => self.closed_token_expired.fetch_add(1, Relaxed),
        };
    }

    /// One event written to a socket, `lag_ms` after Redis's `ts` of it.
    pub fn forwarded(&self, lag_ms: f64) {
        self.forwarded_many(lag_ms, 1);
    }

    /// `count` events forwarded, each `lag_ms` after it was published.
    pub fn forwarded_many(&self, lag_ms: f64, count: u64) {
        self.events_forwarded.fetch_add(count, Relaxed);
        let lag = (lag_ms / 1000.0).max(0.0);
        for (bound, bucket) in LAG_BUCKETS.iter().zip(&self.lag_buckets) {
            if lag <= *bound {
                bucket.fetch_add(count, Relaxed);
            }
        }
        self.lag_count.fetch_add(count, Relaxed);
        self.lag_sum_us
            .fetch_add((lag * 1e6) as u64 * count, Relaxed);
    }

    /// One message of a general channel fanned out: `took` from its arrival from Redis until the
    /// last socket it was queued to wrote it (or was let go).
    pub fn fanned_out(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, bucket) in LAG_BUCKETS.iter().zip(&self.fanout_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.fanout_count.fetch_add(1, Relaxed);
        self.fanout_sum_us
            .fetch_add(took.as_micros().try_into().unwrap_or(u64::MAX), Relaxed);
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let g = |a: &AtomicI64| a.load(Relaxed).to_string();
        let c = |a: &AtomicU64| a.load(Relaxed).to_string();
        one(
            "qrpush_gateway_connections",
            "gauge",
            "Open, authenticated WebSocket connections.",
            g(&self.connections),
        );
        one(
            "qrpush_gateway_connections_total",
            "counter",
            "WebSocket connections accepted (with a valid token).",
            c(&self.connections_total),
        );
        one(
            "qrpush_gateway_previous_key_total",
            "counter",
            "Sockets accepted with a token signed by the previous secret (while a rotation is under way).",
            c(&self.previous_key),
        );
        one(
            "qrpush_gateway_logins",
            "gauge",
            "Logins with at least one open socket here.",
            g(&self.logins),
        );
        one(
            "qrpush_gateway_events_received_total",
            "counter",
            "Messages received from Redis Pub/Sub.",
            c(&self.events_received),
        );
        one(
            "qrpush_gateway_events_unrouted_total",
            "counter",
            "Messages with no socket of their login on this gateway (or not a login event).",
            c(&self.events_unrouted),
        );
        one(
            "qrpush_gateway_events_forwarded_total",
            "counter",
            "Events written to a socket.",
            c(&self.events_forwarded),
        );
        one(
            "qrpush_gateway_status_sent_total",
            "counter",
            "Status messages written to a socket (on every (re)subscribe).",
            c(&self.status_sent),
        );
        one(
            "qrpush_gateway_login_not_found_total",
            "counter",
            "Sockets closed with 4004 because their login no longer exists.",
            c(&self.not_found),
        );
        let _ = writeln!(
            out,
            "# HELP qrpush_gateway_rejected_total Connections refused.\n# TYPE qrpush_gateway_rejected_total counter"
        );
        for (reason, value) in [
            ("token", &self.rejected_token),
            ("origin", &self.rejected_origin),
            ("capacity", &self.rejected_capacity),
            ("per_login", &self.rejected_per_login),
            ("per_address", &self.rejected_per_address),
        ] {
            let _ = writeln!(
                out,
                "qrpush_gateway_rejected_total{{reason=\"{reason}\"}} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP qrpush_gateway_dropped_total Sockets closed by the gateway.\n# TYPE qrpush_gateway_dropped_total counter"
        );
        for (reason, value) in [
            ("slow", &self.dropped_slow),
            ("heartbeat", &self.dropped_heartbeat),
        ] {
            let _ = writeln!(
                out,
                "qrpush_gateway_dropped_total{{reason=\"{reason}\"}} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP qrpush_gateway_closed_total Sockets closed by the gateway once their work was done.\n# TYPE qrpush_gateway_closed_total counter"
        );
        for (reason, value) in [
            ("login_finished", &self.closed_login_finished),
            ("token_expired", &self.closed_token_expired),
        ] {
            let _ = writeln!(
                out,
                "qrpush_gateway_closed_total{{reason=\"{reason}\"}} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP qrpush_gateway_fanout_writes_total Copies of general channels' live messages, by how they reached their socket (direct: written by the fan-out; partly: the socket's task wrote the rest; queued: written by the socket's task).\n# TYPE qrpush_gateway_fanout_writes_total counter"
        );
        for (how, value) in [
            ("direct", &self.fanout_direct),
            ("partly", &self.fanout_partly),
            ("queued", &self.fanout_queued),
        ] {
            let _ = writeln!(
                out,
                "qrpush_gateway_fanout_writes_total{{how=\"{how}\"}} {}",
                value.load(Relaxed)
            );
        }
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "qrpush_gateway_redis_connected",
            "gauge",
            "1 while the Pub/Sub connection to Redis is up.",
            g(&self.redis_connected),
        );
        one(
            "qrpush_gateway_redis_reconnects_total",
            "counter",
            "Pub/Sub connections re-established after one was lost.",
            c(&self.redis_reconnects),
        );
        one(
            "qrpush_gateway_redis_connect_failures_total",
            "counter",
            "Failed attempts to connect and subscribe to Redis.",
            c(&self.redis_connect_failures),
        );
        one(
            "qrpush_gateway_redis_clock_offset_seconds",
            "gauge",
            "Redis's clock minus the gateway's, measured at the last connection to Redis (token expiry is on Redis's clock).",
            format!("{}", self.redis_clock_offset_ms.load(Relaxed) as f64 / 1000.0),
        );
        one(
            "qrpush_gateway_subscriptions",
            "gauge",
            "Channels subscribed on the current Redis connection.",
            g(&self.subscriptions),
        );
        histogram(
            &mut out,
            "qrpush_gateway_publish_to_send_lag_seconds",
            "From the event's ts (Redis time at publish) to the write to the socket.",
            &self.lag_buckets,
            &self.lag_count,
            &self.lag_sum_us,
        );
        histogram(
            &mut out,
            "qrpush_gateway_fanout_seconds",
            "From a general channel's message arriving from Redis to the last of its sockets having written it (or been let go).",
            &self.fanout_buckets,
            &self.fanout_count,
            &self.fanout_sum_us,
        );
        out
    }
}

/// One histogram in the text exposition, from its cumulative buckets (bounds: `LAG_BUCKETS`).
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[AtomicU64],
    count: &AtomicU64,
    sum_us: &AtomicU64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, bucket) in LAG_BUCKETS.iter().zip(buckets) {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{bound}\"}} {}",
            bucket.load(Relaxed)
        );
    }
    let count = count.load(Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {}", sum_us.load(Relaxed) as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.forwarded(0.5);
        m.forwarded(30.0);
        m.forwarded(-3.0);
        let text = m.render();
        assert!(text.contains("qrpush_gateway_publish_to_send_lag_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("qrpush_gateway_publish_to_send_lag_seconds_bucket{le=\"0.05\"} 3"));
        assert!(text.contains("qrpush_gateway_publish_to_send_lag_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("qrpush_gateway_publish_to_send_lag_seconds_count 3"));
        assert!(text.contains("qrpush_gateway_events_forwarded_total 3"));
        assert!(text.contains("qrpush_gateway_rejected_total{reason=\"token\"} 0"));
    }

    #[test]
    fn fanout_histogram() {
        let m = Metrics::default();
        m.fanned_out(Duration::from_millis(3));
        m.fanned_out(Duration::from_millis(40));
        let text = m.render();
        assert!(text.contains("qrpush_gateway_fanout_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("qrpush_gateway_fanout_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("qrpush_gateway_fanout_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("qrpush_gateway_fanout_seconds_sum 0.043"));
        assert!(text.contains("qrpush_gateway_fanout_seconds_count 2"));
    }
}
