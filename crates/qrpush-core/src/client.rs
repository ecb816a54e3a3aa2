//! `Client`: publish, publish_many and ping over the shared pool, with the rules that make a
//! call safe to make from a web request: validate everything before sending anything, stay
//! within the time bound, replace stale connections silently, never re-send what may have
//! reached Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::config::{validate_channel_part, Config};
use crate::connection::{server_error, Connection, Packer};
use crate::error::{Error, ErrorKind, ItemPart, Result, Subject};
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

    /// PUBLISH; returns the number of subscribers that received the message.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> Result<i64> {
        self.publish_encoded(channel, || Ok(payload))
    }

    /// PUBLISH of the message `encode` makes, called only once the channel is valid: an invalid
    /// channel is reported first and costs no encoding. Errors are about [`Subject::Channel`] or
    /// [`Subject::Message`] (`encode`'s too); nothing is sent after one.
    pub fn publish_encoded<P: AsRef<[u8]>>(
        &self,
        channel: &[u8],
        encode: impl FnOnce() -> Result<P>,
    ) -> Result<i64> {
        self.check_channel(channel)
            .map_err(|e| e.about(Subject::Channel))?;
        let payload = self
            .checked_payload(encode)
            .map_err(|e| e.about(Subject::Message))?;
        let payload = payload.as_ref();
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
        let mut batch = self.batch(messages.len());
        for (channel, payload) in messages {
            batch.push_encoded(channel.as_ref(), || Ok(payload.as_ref()))?;
        }
        batch.publish()
    }

    /// An empty batch of publishes for up to `capacity` messages (see [`Batch`]).
    pub fn batch<C: AsRef<[u8]>, P: AsRef<[u8]>>(&self, capacity: usize) -> Batch<'_, C, P> {
        Batch {
            client: self,
            items: Vec::with_capacity(capacity),
        }
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

    /// A channel name: non-empty, bounded, no control characters. The error names no subject.
    fn check_channel(&self, channel: &[u8]) -> Result<()> {
        if channel.is_empty() {
            return Err(Error::invalid("must not be empty"));
        }
        validate_channel_part(channel, MAX_CHANNEL_LEN)
    }

    /// The message `encode` makes, within `max_payload`. The error names no subject.
    fn checked_payload<P: AsRef<[u8]>>(&self, encode: impl FnOnce() -> Result<P>) -> Result<P> {
        let payload = encode()?;
        let len = payload.as_ref().len();
        if len > self.config.max_payload {
            return Err(Error::invalid(format!(
                "is {len} bytes, more than qrpush.max_payload ({} bytes)",
                self.config.max_payload
            )));
        }
        Ok(payload)
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

/// Publishes sent in one round trip, checked as they are added: nothing is sent unless every one
/// is valid. Errors name the item ([`Subject::Item`]).
pub struct Batch<'c, C, P> {
    client: &'c Client,
    items: Vec<(C, P)>,
}

impl<C: AsRef<[u8]>, P: AsRef<[u8]>> Batch<'_, C, P> {
    /// Adds the next item: its channel is checked, then `encode` makes its message (only for a
    /// valid channel), which is checked too.
    pub fn push_encoded(&mut self, channel: C, encode: impl FnOnce() -> Result<P>) -> Result<()> {
        let index = self.items.len();
        let about = |part| Subject::Item {
            index,
            part: Some(part),
        };
        self.client
            .check_channel(channel.as_ref())
            .map_err(|e| e.about(about(ItemPart::Channel)))?;
        let payload = self
            .client
            .checked_payload(encode)
            .map_err(|e| e.about(about(ItemPart::Message)))?;
        self.items.push((channel, payload));
        Ok(())
    }

    /// Sends every item; returns the receiver counts in order. An empty batch sends nothing.
    pub fn publish(self) -> Result<Vec<i64>> {
        let (client, items) = (self.client, self.items);
        if items.is_empty() {
            return Ok(Vec::new());
        }
        client.run(items.len() as u64, |conn, timeout| {
            let replies = conn.request(timeout, items.len(), |p| {
                for (channel, payload) in &items {
                    client.pack_publish(p, channel.as_ref(), payload.as_ref());
                }
            })?;
            replies
                .into_iter()
                .enumerate()
                .map(|(i, v)| client.receivers(v, Some(i)))
                .collect()
        })
    }
}
