//! `Client`: publish, publish_many and ping over the shared pool, with the rules that make a
//! call safe to make from a web request: validate everything before sending anything, stay
//! within the time bound, replace stale connections silently, never re-send what may have
//! reached Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::config::{validate_channel_part, Config};
use crate::connection::{server_error, Connection, Packer};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{shared_pool, Pool};
use crate::stats::StatsSnapshot;

/// Longest channel name accepted (after the prefix), far above any sane name.
pub const MAX_CHANNEL_LEN: usize = 1024;

pub struct Client {
    config: Config,
    pool: Arc<Pool>,
}

impl Client {
    /// A client over the process-wide pool of `config.endpoint`. Does not connect.
    pub fn new(config: Config) -> Self {
        let pool = shared_pool(&config.endpoint, config.pool_size);
        Client { config, pool }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks a channel name: non-empty, bounded, no control characters.
    pub fn validate_channel(&self, channel: &[u8]) -> Result<()> {
        if channel.is_empty() {
            return Err(Error::invalid("must not be empty"));
        }
        validate_channel_part(channel, MAX_CHANNEL_LEN)
    }

    /// Checks an encoded message against `max_payload`.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<()> {
        if payload.len() > self.config.max_payload {
            return Err(Error::invalid(format!(
                "is {} bytes, more than qrpush.max_payload ({} bytes)",
                payload.len(),
                self.config.max_payload
            )));
        }
        Ok(())
    }

    /// PUBLISH; returns the number of subscribers that received the message.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> Result<i64> {
        self.validate_channel(channel)
            .map_err(|e| prefixed("channel", e))?;
        self.validate_payload(payload)
            .map_err(|e| prefixed("message", e))?;
        // The reply is interpreted inside the request so that an error reply (NOPERM, ...)
        // counts as a failure in the stats.
        self.run(1, |conn, timeout| {
            let reply = conn.request_one(timeout, |p| self.pack_publish(p, channel, payload))?;
            self.receivers(reply, None)
        })
    }

    /// Many PUBLISHes in one round trip; all validated first. Returns receiver counts in order.
    pub fn publish_many<C: AsRef<[u8]>, P: AsRef<[u8]>>(
        &self,
        messages: &[(C, P)],
    ) -> Result<Vec<i64>> {
        for (i, (channel, payload)) in messages.iter().enumerate() {
            self.validate_channel(channel.as_ref())
                .map_err(|e| prefixed(&format!("message #{i}: channel"), e))?;
            self.validate_payload(payload.as_ref())
                .map_err(|e| prefixed(&format!("message #{i}: message"), e))?;
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.run(messages.len() as u64, |conn, timeout| {
            let replies = conn.request(timeout, messages.len(), |p| {
                for (channel, payload) in messages {
                    self.pack_publish(p, channel.as_ref(), payload.as_ref());
                }
            })?;
            replies
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.receivers(v, Some(i)))
                .collect()
        })
    }

    /// One PING round trip, timed.
    pub fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        self.run(0, |conn, timeout| {
            let reply = conn.request_one(timeout, |p| {
                p.command(|cmd| {
                    cmd.arg("PING");
                })
            })?;
            match reply {
                Value::SimpleString(s) if s == "PONG" => Ok(start.elapsed()),
                Value::ServerError(e) => Err(server_error(&e, "PING")),
                other => Err(Error::new(
                    ErrorKind::Protocol,
                    format!("unexpected reply to PING: {other:?}"),
                )),
            }
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.pool.snapshot()
    }

    /// Runs one request on a pooled connection, with the pool's stats, and one silent retry on a
    /// new connection when (and only when) nothing can have reached Redis: the reused connection
    /// failed before a single byte was accepted for sending.
    pub fn run<T>(
        &self,
        messages: u64,
        mut op: impl FnMut(&mut Connection, Duration) -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut retried = false;
        let result = loop {
            let mut lease = match self.pool.lease_guarded(
                self.config.connect_timeout,
                self.config.timeout,
                self.config.breaker_cooldown,
            ) {
                Ok(lease) => lease,
                Err(e) => break Err(e),
            };
            match op(lease.connection(), self.config.timeout) {
                Ok(v) => break Ok(v),
                Err(e) => {
                    let fresh = lease.fresh;
                    if e.breaks_connection() {
                        lease.discard();
                    }
                    if !fresh && !retried && !e.maybe_sent() && e.breaks_connection() {
                        retried = true;
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        match &result {
            Ok(_) => self.pool.stats.record_success(messages, start.elapsed()),
            Err(e) => self.pool.stats.record_failure(messages.max(1), e.message()),
        }
        result
    }

    /// PUBLISH with the configured prefix in front of the channel.
    fn pack_publish(&self, p: &mut Packer<'_>, channel: &[u8], payload: &[u8]) {
        p.publish(self.config.channel_prefix.as_bytes(), channel, payload);
    }

    fn receivers(&self, reply: Value, index: Option<usize>) -> Result<i64> {
        // The success path formats nothing: it runs once per message of a batch.
        if let Value::Int(n) = reply {
            return Ok(n);
        }
        let at = index.map(|i| format!(" message #{i}")).unwrap_or_default();
        match reply {
            Value::ServerError(e) => Err(server_error(&e, &format!("PUBLISH{at}"))),
            // A reply came, so the PUBLISH reached Redis: never retried (a possible duplicate).
            other => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply to PUBLISH{at}: {other:?}"),
            )
            .mark_maybe_sent()),
        }
    }
}

fn prefixed(what: &str, e: Error) -> Error {
    Error::new(e.kind(), format!("{what} {}", e.message()))
}
