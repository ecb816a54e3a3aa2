//! `Client`: publish, publish_many and ping over the shared pool, with the rules that make a
//! call safe to make from a web request: validate everything before sending anything, stay
//! within the time bound, replace stale connections silently, never re-send what may have
//! reached Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::config::{validate_channel_part, Config};
use crate::connection::{server_error, BatchReplies, Connection, Packer, Published};
use crate::error::{BatchOutcome, Error, ErrorKind, ItemPart, Result, Subject};
use crate::pool::{shared_pool, LeaseTerms, Pool};
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

    /// The largest message accepted (`max_payload`): an encoder may stop as soon as it is past it.
    pub fn max_payload(&self) -> usize {
        self.config.max_payload
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
            .checked_payload(encode, self.config.max_payload)
            .map_err(|e| e.about(Subject::Message))?;
        let payload = payload.as_ref();
        // The reply is interpreted inside the request so that an error reply (NOPERM, ...)
        // counts as a failure in the stats.
        self.run(1, |conn, deadline| {
            let published =
                conn.publish_one(deadline, |p| self.pack_publish(p, channel, payload))?;
            let receivers = self.receivers(published.replies, None)?;
            if !published.on_primary && receivers == 0 {
                // A demoted primary ran it for nobody: nothing was delivered, another connection
                // may carry it (run() retries once on a new one, which checks the role).
                return Err(no_longer_primary(conn));
            }
            Ok(receivers)
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
            total: 0,
        }
    }

    /// One PING round trip, timed.
    pub fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        self.run(0, |conn, deadline| {
            let reply = conn.request_one(deadline, |p| {
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
    /// failed before a single byte was accepted for sending, or Redis answered that it did not
    /// run the command because it is not the primary (any more).
    ///
    /// One deadline bounds the whole call: getting a connection (waiting for a free one, checking
    /// an idle one, resolving, connecting, logging in) ends by `connect_timeout` after the start,
    /// and `op` gets the deadline of its request: `timeout` after the connection was ready, never
    /// later than `connect_timeout + timeout` after the start. A retry shares both.
    pub fn run<T>(
        &self,
        messages: u64,
        mut op: impl FnMut(&mut Connection, Instant) -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let terms = LeaseTerms {
            now: start,
            connect_timeout: self.config.connect_timeout,
            breaker_cooldown: self.config.breaker_cooldown,
            idle_check_after: self.config.idle_check_after,
        };
        let mut retried = false;
        let result = loop {
            let mut lease = match self.pool.lease_within(&terms) {
                Ok(lease) => lease,
                Err(e) => break Err(e),
            };
            let request_by = match lease.ready_at {
                // Lent at once: the request's time starts with the call.
                None => start + self.config.timeout,
                Some(ready) => {
                    (ready + self.config.timeout).min(terms.connect_by() + self.config.timeout)
                }
            };
            match op(lease.connection(), request_by) {
                Ok(v) => break Ok(v),
                Err(e) => {
                    let fresh = lease.fresh;
                    if e.breaks_connection() {
                        lease.discard();
                    }
                    let nothing_ran = !e.maybe_sent() && e.batch_outcome().is_none();
                    if !fresh && !retried && nothing_ran && e.breaks_connection() {
                        retried = true;
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        let stats = &self.pool.stats;
        match &result {
            Ok(_) => stats.record_success(messages, start.elapsed()),
            Err(e) => match e.batch_outcome() {
                Some(outcome) => stats.record_partial(
                    outcome.published.len() as u64,
                    outcome.failed.len() as u64,
                    e.message(),
                ),
                None => stats.record_failure(messages.max(1), e.message()),
            },
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

    /// The message `encode` makes, within `max_payload` and `limit` (what is left of a batch's
    /// bound). The error names no subject.
    fn checked_payload<P: AsRef<[u8]>>(
        &self,
        encode: impl FnOnce() -> Result<P>,
        limit: usize,
    ) -> Result<P> {
        let payload = encode()?;
        let len = payload.as_ref().len();
        if len > self.config.max_payload {
            return Err(Error::invalid(format!(
                "is {len} bytes, more than qrpush.max_payload ({} bytes)",
                self.config.max_payload
            )));
        }
        if len > limit {
            return Err(Error::invalid(format!(
                "makes the batch's messages add up to more than qrpush.max_batch_payload ({} bytes)",
                self.config.max_batch_payload
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

    /// The receiver counts of a batch, or the error that says what happened to each message.
    ///
    /// Redis runs each PUBLISH of a pipeline on its own. When every message was published, the
    /// counts; when none was, the first failure (as for one publish); otherwise an error carrying
    /// the [`BatchOutcome`]: which were published (with their counts), which were refused, and
    /// which have an unknown outcome because the connection failed before their replies.
    fn batch_result(
        &self,
        conn: &Connection,
        published: Published<BatchReplies>,
        count: usize,
    ) -> Result<Vec<i64>> {
        let Published {
            replies: BatchReplies { values, failure },
            on_primary,
        } = published;
        let demoted = failure.is_none() && !on_primary;
        let mut counts = Vec::with_capacity(count);
        let mut outcome = BatchOutcome::default();
        for (i, reply) in values.into_iter().enumerate() {
            match self.receivers(reply, Some(i)) {
                // On a demoted primary, 0 receivers means it reached nobody: not published.
                Ok(0) if demoted => outcome.failed.push((i, no_longer_primary(conn))),
                Ok(n) => {
                    counts.push(n);
                    outcome.published.push((i, n));
                }
                Err(e) => outcome.failed.push((i, e)),
            }
        }
        if let Some(e) = &failure {
            let read = counts.len() + outcome.failed.len();
            outcome.failed.extend((read..count).map(|i| (i, e.clone())));
        }
        if outcome.failed.is_empty() {
            return Ok(counts);
        }
        if outcome.published.is_empty() {
            // Nothing was published: the connection's failure (whose outcome is unknown) says
            // most, else the first refusal.
            return Err(match failure {
                Some(e) => e,
                None if demoted => no_longer_primary(conn),
                None => outcome.failed.swap_remove(0).1,
            });
        }
        let first = &outcome.failed[0].1;
        let message = format!(
            "{} of {count} messages were published, {} were not or may not have been; the first: {}",
            outcome.published.len(),
            outcome.failed.len(),
            first.message()
        );
        let err = Error::new(first.kind(), message);
        let err = if outcome.failed.iter().any(|(_, e)| e.maybe_sent()) {
            err.mark_maybe_sent()
        } else {
            err
        };
        Err(err.with_batch_outcome(outcome))
    }
}

/// A PUBLISH that a connection's server ran as a replica, for nobody.
fn no_longer_primary(conn: &Connection) -> Error {
    Error::new(
        ErrorKind::Replica,
        format!(
            "Redis at {} is no longer the primary: the PUBLISH reached no subscriber there",
            conn.label()
        ),
    )
}

/// Publishes sent in one round trip, checked as they are added: nothing is sent unless every one
/// is valid. Errors name the item ([`Subject::Item`]).
pub struct Batch<'c, C, P> {
    client: &'c Client,
    items: Vec<(C, P)>,
    /// The messages' bytes so far.
    total: usize,
}

impl<C: AsRef<[u8]>, P: AsRef<[u8]>> Batch<'_, C, P> {
    /// The largest message the next item may have: `max_payload`, or less once the batch nears
    /// `max_batch_payload`. An encoder may stop as soon as it is past it.
    pub fn payload_limit(&self) -> usize {
        let config = &self.client.config;
        config
            .max_payload
            .min(config.max_batch_payload.saturating_sub(self.total))
    }

    /// Adds the next item: its channel is checked, then `encode` makes its message (only for a
    /// valid channel), which is checked too, against `max_payload` and what is left of
    /// `max_batch_payload`.
    pub fn push_encoded(&mut self, channel: C, encode: impl FnOnce() -> Result<P>) -> Result<()> {
        let index = self.items.len();
        let about = |part| Subject::Item {
            index,
            part: Some(part),
        };
        self.client
            .check_channel(channel.as_ref())
            .map_err(|e| e.about(about(ItemPart::Channel)))?;
        let limit = self
            .client
            .config
            .max_batch_payload
            .saturating_sub(self.total);
        let payload = self
            .client
            .checked_payload(encode, limit)
            .map_err(|e| e.about(about(ItemPart::Message)))?;
        self.total += payload.as_ref().len();
        self.items.push((channel, payload));
        Ok(())
    }

    /// Sends every item; returns the receiver counts in order. An empty batch sends nothing.
    /// When Redis published some messages and not others, the error carries the per-message
    /// outcome ([`Error::batch_outcome`]).
    pub fn publish(self) -> Result<Vec<i64>> {
        let (client, items) = (self.client, self.items);
        if items.is_empty() {
            return Ok(Vec::new());
        }
        client.run(items.len() as u64, |conn, deadline| {
            let published = conn.publish_batch(deadline, items.len(), |p, i| {
                let (channel, payload) = &items[i];
                client.pack_publish(p, channel.as_ref(), payload.as_ref());
            })?;
            client.batch_result(conn, published, items.len())
        })
    }
}
