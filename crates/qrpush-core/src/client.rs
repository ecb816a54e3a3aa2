//! `Client`: publish, publish_many and ping over the shared pool, with the rules that make a
//! call safe to make from a web request: validate everything before sending anything, stay
//! within the time bound, replace stale connections silently, never re-send what may have
//! reached Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use crate::cluster::slot::prefixed_slot;
use crate::cluster::{shared_cluster, Cluster, Node, Redirect};
use crate::config::{validate_channel_part, ClusterPublish, Config};
use crate::connection::{server_error, BatchReplies, Connection, Packer, Published, Sent};
use crate::error::{BatchOutcome, Error, ErrorKind, ItemPart, Result, Subject};
use crate::pool::{shared_pool, Lease, LeaseTerms, Pool};
use crate::sentinel::{shared_sentinel, Sentinel};
use crate::stats::{Stats, StatsSnapshot};

/// Longest channel name accepted (after the prefix), far above any sane name.
pub const MAX_CHANNEL_LEN: usize = 1024;

pub struct Client {
    config: Config,
    target: Target,
}

/// Where the commands go: one server's pool, the node of a Redis Cluster owning each slot, or
/// the primary the Sentinels name.
enum Target {
    Single(Arc<Pool>),
    Cluster(Arc<Cluster>),
    Sentinel(Arc<Sentinel>),
}

impl Client {
    /// A client over the process-wide pool of `config.endpoint` (for a Redis Cluster, the
    /// process-wide slot map and node pools). Does not connect.
    pub fn new(config: Config) -> Self {
        let target = if config.endpoint.is_cluster() {
            Target::Cluster(shared_cluster(&config.endpoint, config.pool_size))
        } else if config.endpoint.is_sentinel() {
            Target::Sentinel(shared_sentinel(&config.endpoint, config.pool_size))
        } else {
            Target::Single(shared_pool(&config.endpoint, config.pool_size))
        };
        Client { config, target }
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
    /// [`Subject::Message`] (`encode`'s too); nothing is sent after one. On Redis Cluster,
    /// `cluster_publish` says whether it goes as SPUBLISH or PUBLISH.
    pub fn publish_encoded<P: AsRef<[u8]>>(
        &self,
        channel: &[u8],
        encode: impl FnOnce() -> Result<P>,
    ) -> Result<i64> {
        let payload = self.checked_message(channel, encode)?;
        let payload = payload.as_ref();
        if let Target::Cluster(cluster) = &self.target {
            return self.publish_routed_one(cluster, self.config.cluster_publish, channel, payload);
        }
        self.publish_one(channel, payload)
    }

    /// PUBLISH (`Global`) or SPUBLISH (`Sharded`) of `payload` to `channel`, whatever
    /// `cluster_publish` says: for subscribers that listen one way only (a Socket.IO adapter's
    /// PSUBSCRIBE, or its SSUBSCRIBE). On Redis Cluster both go to the primary owning the
    /// channel's slot, following redirects as every publish does (a PUBLISH there reaches the
    /// subscribers of every node); elsewhere to the one server. Validated as
    /// [`publish_encoded`](Self::publish_encoded) validates; returns Redis's receiver count.
    pub fn publish_as(&self, mode: ClusterPublish, channel: &[u8], payload: &[u8]) -> Result<i64> {
        let payload = self.checked_message(channel, || Ok(payload))?;
        match (&self.target, mode) {
            (Target::Cluster(cluster), mode) => {
                self.publish_routed_one(cluster, mode, channel, payload)
            }
            (_, ClusterPublish::Global) => self.publish_one(channel, payload),
            (_, ClusterPublish::Sharded) => self.spublish_one(channel, payload),
        }
    }

    /// The message `encode` makes for `channel`, once both are checked (see `publish_encoded`).
    fn checked_message<P: AsRef<[u8]>>(
        &self,
        channel: &[u8],
        encode: impl FnOnce() -> Result<P>,
    ) -> Result<P> {
        self.check_channel(channel)
            .map_err(|e| e.about(Subject::Channel))?;
        self.checked_payload(encode, self.config.max_payload)
            .map_err(|e| e.about(Subject::Message))
    }

    /// One checked publish on a Redis Cluster, as `mode` says.
    fn publish_routed_one(
        &self,
        cluster: &Cluster,
        mode: ClusterPublish,
        channel: &[u8],
        payload: &[u8],
    ) -> Result<i64> {
        self.publish_routed(cluster, &[(channel, payload)], mode)
            .map(|counts| counts[0])
    }

    /// One checked PUBLISH on the one server (or the Sentinels' primary).
    fn publish_one(&self, channel: &[u8], payload: &[u8]) -> Result<i64> {
        // The reply is interpreted inside the request so that an error reply (NOPERM, ...)
        // counts as a failure in the stats.
        self.run_published(
            1,
            |conn, deadline| {
                let published =
                    conn.publish_one(deadline, |p| self.pack_publish(p, channel, payload))?;
                let receivers = self.receivers(published.replies, None)?;
                if !published.on_primary && receivers == 0 {
                    // A demoted primary ran it for nobody: nothing was delivered, another
                    // connection may carry it (run() retries once on a new one, which checks the
                    // role).
                    return Err(no_longer_primary(conn));
                }
                Ok(receivers)
            },
            |&n| n == 0,
            |_, e| e,
        )
    }

    /// SPUBLISH on the one server (or the Sentinels' primary), for a consumer that listens by
    /// SSUBSCRIBE outside a Cluster.
    fn spublish_one(&self, channel: &[u8], payload: &[u8]) -> Result<i64> {
        let prefix = self.config.channel_prefix.as_bytes();
        self.run_published(
            1,
            |conn, timeout| {
                let reply = conn.request_one(timeout, |p| p.spublish(prefix, channel, payload))?;
                match reply {
                    Value::Int(n) => Ok(n),
                    Value::ServerError(e) => Err(server_error(&e, "SPUBLISH")),
                    // A reply came, so the SPUBLISH reached Redis: never retried (a possible
                    // duplicate).
                    other => Err(Error::new(
                        ErrorKind::Protocol,
                        format!("unexpected reply to SPUBLISH: {other:?}"),
                    )
                    .mark_maybe_sent()),
                }
            },
            |&n| n == 0,
            |_, e| e,
        )
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

    /// One PING round trip, timed. On Redis Cluster: to the primary serving slot 0 (reading the
    /// slot map first if needed, so it also proves the Cluster answers).
    pub fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let op = |conn: &mut Connection, deadline| {
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
        };
        match &self.target {
            Target::Single(_) | Target::Sentinel(_) => self.run(0, op),
            Target::Cluster(cluster) => {
                let result = cluster
                    .owner(0, &self.config, start)
                    .and_then(|node| self.on_pool(&cluster.node_pool(&node), start, op));
                record(&cluster.stats, 0, &result, start);
                result
            }
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        match &self.target {
            Target::Single(pool) => pool.snapshot(),
            Target::Cluster(cluster) => cluster.snapshot(),
            Target::Sentinel(sentinel) => sentinel.snapshot(),
        }
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
    ///
    /// With Sentinel it runs on the primary (see `on_primary`). On Redis Cluster there is no one
    /// server to run it on: it is refused. Everything QrPush sends there is routed instead:
    /// publishes by their channel, scripts and other one-slot commands by their slot
    /// ([`Client::run_in_slot`], [`Client::run_per_slot`]).
    pub fn run<T>(
        &self,
        messages: u64,
        op: impl FnMut(&mut Connection, Instant) -> Result<T>,
    ) -> Result<T> {
        self.run_published(messages, op, |_| false, |_, e| e)
    }

    /// [`Client::run`] for a request that publishes: with Sentinel and `sentinel_zero_check`,
    /// when `unreceived` says a message reached 0 subscribers, one question to a Sentinel says
    /// whether the node is still the primary. After a failover the old primary says it is one
    /// for seconds and runs the PUBLISH for nobody (the subscribers moved); then the call fails
    /// with a `Replica` error (made by `on_switch` from the result and the error, which may
    /// carry a batch's outcome), marked `maybe_sent`: it ran there and is never sent again.
    pub fn run_published<T>(
        &self,
        messages: u64,
        op: impl FnMut(&mut Connection, Instant) -> Result<T>,
        unreceived: impl FnOnce(&T) -> bool,
        on_switch: impl FnOnce(T, Error) -> Error,
    ) -> Result<T> {
        let pool = match &self.target {
            Target::Single(pool) => pool,
            Target::Sentinel(sentinel) => {
                let start = Instant::now();
                let result = self.on_primary(sentinel, start, op).and_then(|(v, node)| {
                    if !self.config.sentinel_zero_check || !unreceived(&v) {
                        return Ok(v);
                    }
                    match sentinel.switched_from(&node, &self.config, start) {
                        None => Ok(v),
                        Some(new) => Err(on_switch(v, switched(sentinel, &node, &new))),
                    }
                });
                record(&sentinel.stats, messages, &result, start);
                return result;
            }
            // No one server to run it on: a caller routes by slot instead (see above).
            Target::Cluster(cluster) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "this operation names no hash slot, so it cannot be routed on Redis Cluster ({})",
                        cluster.endpoint().label()
                    ),
                ))
            }
        };
        let start = Instant::now();
        let result = self.on_pool(pool, start, op);
        record(&pool.stats, messages, &result, start);
        result
    }

    /// True for a Redis Cluster: keys and channels a script touches must share one slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Runs one request that touches one hash slot (a script whose keys and sharded channel
    /// share `slot`): on Redis Cluster on the primary owning `slot`, anywhere else as
    /// [`Client::run`]. `op` gets the deadline and `asking`: true when the node is importing the
    /// slot and the command must follow ASKING (see [`Connection::request_one_asking`]).
    ///
    /// A MOVED or ASK reply means the command did not run: it is sent once more, to the node
    /// named (after a MOVED with a fresh slot map next time). A node that cannot be reached
    /// before anything was sent to it, or answers that it cannot run the command (a replica's
    /// READONLY, CLUSTERDOWN, TRYAGAIN), is replaced once by the owner in a fresh slot map: it
    /// may have failed over. Nothing that may have run is sent again.
    pub fn run_in_slot<T>(
        &self,
        slot: u16,
        messages: u64,
        op: impl FnMut(&mut Connection, Instant, bool) -> Result<T>,
    ) -> Result<T> {
        self.run_in_slot_published(slot, messages, op, |_| false, |_, e| e)
    }

    /// [`Client::run_in_slot`] for a request that publishes: outside a Cluster as
    /// [`Client::run_published`] (with Sentinel, a result `unreceived` says reached nobody asks
    /// whether the node is still the primary).
    pub fn run_in_slot_published<T>(
        &self,
        slot: u16,
        messages: u64,
        mut op: impl FnMut(&mut Connection, Instant, bool) -> Result<T>,
        unreceived: impl FnOnce(&T) -> bool,
        on_switch: impl FnOnce(T, Error) -> Error,
    ) -> Result<T> {
        let Target::Cluster(cluster) = &self.target else {
            return self.run_published(
                messages,
                |conn, deadline| op(conn, deadline, false),
                unreceived,
                on_switch,
            );
        };
        let start = Instant::now();
        let result = self.in_slot(cluster, slot, start, &mut op);
        record(&cluster.stats, messages, &result, start);
        result
    }

    fn in_slot<T>(
        &self,
        cluster: &Cluster,
        slot: u16,
        start: Instant,
        op: &mut impl FnMut(&mut Connection, Instant, bool) -> Result<T>,
    ) -> Result<T> {
        let mut node = cluster.owner(slot, &self.config, start)?;
        let mut asking = false;
        let mut rerouted = false;
        loop {
            let result = self.on_pool(&cluster.node_pool(&node), start, |conn, deadline| {
                op(conn, deadline, asking)
            });
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let redirect = Redirect::of_error(&e);
            if e.breaks_connection() && redirect.is_none() {
                cluster.forget_map();
            }
            if rerouted || e.maybe_sent() || !e.breaks_connection() {
                return Err(e);
            }
            rerouted = true;
            match redirect {
                Some(redirect) => {
                    cluster.following(&redirect);
                    node = redirect.node;
                    asking = redirect.ask;
                }
                None => node = cluster.owner(slot, &self.config, start)?,
            }
        }
    }

    /// Runs one command per item (each on keys of one slot, `slots[i]`) and returns each item's
    /// reply, in input order. On Redis Cluster the items are grouped by the primary owning their
    /// slot, one pipeline per node (`send` packs and reads the items it is given, each after
    /// ASKING when its flag says so, and returns their replies in that order), all within one
    /// call's deadline; anywhere else all go in one pipeline, as [`Client::run`].
    ///
    /// Redirects and failures as [`Client::run_in_slot`], per item: an item answered MOVED or ASK
    /// (it did not run) is sent once more to the node named; a node unreachable before anything
    /// was sent to it has its items re-routed once through a fresh slot map. A second redirect
    /// is returned as the reply it is. When any node failed, the call fails with the first
    /// failure, marked `maybe_sent` when any item may have run.
    pub fn run_per_slot(
        &self,
        slots: &[u16],
        messages: u64,
        send: impl FnMut(&mut Connection, Instant, &[(usize, bool)]) -> Result<Vec<Value>>,
    ) -> Result<Vec<Value>> {
        self.run_per_slot_published(slots, messages, send, |_| false)
    }

    /// [`Client::run_per_slot`] for requests that publish: outside a Cluster, with Sentinel, when
    /// `unreceived` says a reply reached nobody, one question says whether the node is still the
    /// primary; if not, the call fails with the `Replica` error (see [`Client::run_published`]).
    pub fn run_per_slot_published(
        &self,
        slots: &[u16],
        messages: u64,
        mut send: impl FnMut(&mut Connection, Instant, &[(usize, bool)]) -> Result<Vec<Value>>,
        unreceived: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>> {
        let Target::Cluster(cluster) = &self.target else {
            let all: Vec<(usize, bool)> = (0..slots.len()).map(|i| (i, false)).collect();
            return self.run_published(
                messages,
                |conn, deadline| send(conn, deadline, &all),
                |replies| replies.iter().any(&unreceived),
                |_, e| e,
            );
        };
        let start = Instant::now();
        let result = self.per_slot(cluster, slots, start, &mut send);
        record(&cluster.stats, messages, &result, start);
        result
    }

    fn per_slot(
        &self,
        cluster: &Cluster,
        slots: &[u16],
        start: Instant,
        send: &mut impl FnMut(&mut Connection, Instant, &[(usize, bool)]) -> Result<Vec<Value>>,
    ) -> Result<Vec<Value>> {
        let mut replies: Vec<Option<Value>> = vec![None; slots.len()];
        let mut failed: Vec<(usize, Error)> = Vec::new();
        let mut groups: Vec<(Node, Vec<usize>, bool)> = Vec::new();
        for (i, &slot) in slots.iter().enumerate() {
            add_to_group(
                &mut groups,
                &cluster.owner(slot, &self.config, start)?,
                i,
                false,
            );
        }
        let mut again: Vec<(Node, Vec<usize>, bool)> = Vec::new();
        for (node, indexes, _) in &groups {
            match self.send_items(cluster, node, indexes, false, start, send) {
                Ok(values) => {
                    for (&i, value) in indexes.iter().zip(values) {
                        match Redirect::of(&value) {
                            Some(redirect) => {
                                cluster.following(&redirect);
                                add_to_group(&mut again, &redirect.node, i, redirect.ask);
                            }
                            None => replies[i] = Some(value),
                        }
                    }
                }
                // Nothing was sent to it (it may have failed over): its items go, once, to
                // their owners in a fresh slot map.
                Err(e) if !e.maybe_sent() && e.breaks_connection() => {
                    for &i in indexes {
                        match cluster.owner(slots[i], &self.config, start) {
                            Ok(owner) => add_to_group(&mut again, &owner, i, false),
                            Err(e) => failed.push((i, e)),
                        }
                    }
                }
                Err(e) => failed.extend(indexes.iter().map(|&i| (i, e.clone()))),
            }
        }
        for (node, indexes, ask) in &again {
            match self.send_items(cluster, node, indexes, *ask, start, send) {
                Ok(values) => {
                    for (&i, value) in indexes.iter().zip(values) {
                        replies[i] = Some(value);
                    }
                }
                Err(e) => failed.extend(indexes.iter().map(|&i| (i, e.clone()))),
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        if let Some((_, first)) = failed.first() {
            let ran =
                replies.iter().any(Option::is_some) || failed.iter().any(|(_, e)| e.maybe_sent());
            return Err(if ran {
                first.clone().mark_maybe_sent()
            } else {
                first.clone()
            });
        }
        Ok(replies
            .into_iter()
            .map(|r| r.unwrap_or(Value::Nil))
            .collect())
    }

    /// The items at `indexes` to `node` in one `send` (each after ASKING when `ask`); a reply
    /// that redirects retires the connection, a broken one drops the slot map.
    fn send_items(
        &self,
        cluster: &Cluster,
        node: &Node,
        indexes: &[usize],
        ask: bool,
        start: Instant,
        send: &mut impl FnMut(&mut Connection, Instant, &[(usize, bool)]) -> Result<Vec<Value>>,
    ) -> Result<Vec<Value>> {
        let items: Vec<(usize, bool)> = indexes.iter().map(|&i| (i, ask)).collect();
        let result = self.on_pool(&cluster.node_pool(node), start, |conn, deadline| {
            let values = send(conn, deadline, &items)?;
            if values.iter().any(|r| Redirect::of(r).is_some()) {
                conn.retire();
            }
            Ok(values)
        });
        cluster.forget_map_if_broken(&result);
        result
    }

    /// `op` on the primary the Sentinels name. The connection's own checks say whether it is the
    /// primary (ROLE on a new connection, the primary check behind a publish: a `Replica` error)
    /// and a reply in `RETIRING_CODES` (READONLY, MASTERDOWN, LOADING...) says the command did not
    /// run there. After one of those, or a connection failure, the primary is forgotten; when
    /// nothing can have run, the Sentinels are asked again and `op` retried once, on the same
    /// deadline. A failure after bytes may have reached Redis is never retried.
    /// Returns the node it ran on too.
    fn on_primary<T>(
        &self,
        sentinel: &Sentinel,
        start: Instant,
        mut op: impl FnMut(&mut Connection, Instant) -> Result<T>,
    ) -> Result<(T, Node)> {
        let mut asked_again = false;
        loop {
            let node = sentinel.primary(&self.config, start)?;
            match self.on_pool(&sentinel.node_pool(&node), start, &mut op) {
                Ok(v) => return Ok((v, node)),
                Err(e) => {
                    if e.breaks_connection() {
                        sentinel.forget_primary();
                    }
                    let nothing_ran = !e.maybe_sent() && e.batch_outcome().is_none();
                    if !asked_again && nothing_ran && e.breaks_connection() {
                        asked_again = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// A connection of `pool` on `terms` (those of the call that started at `terms.now`), and
    /// when the request on it must be answered: `timeout` after the call's start when the pool
    /// lent it at once (no clock read), else `timeout` after it was ready, but never later than
    /// a connection got at the last allowed moment would have had. Shared by every request
    /// path so that single publishes and Cluster groups are bounded alike.
    fn lease_for_request<'p>(
        &self,
        pool: &'p Pool,
        terms: &LeaseTerms,
    ) -> Result<(Lease<'p>, Instant)> {
        let lease = pool.lease_within(terms)?;
        let timeout = self.config.timeout;
        let request_by = match lease.ready_at {
            // Lent at once: the request's time starts with the call.
            None => terms.now + timeout,
            Some(ready) => (ready + timeout).min(terms.connect_by() + timeout),
        };
        Ok((lease, request_by))
    }

    /// `op` on a connection of `pool`, within the deadline of the call that started at `start`,
    /// with the silent retry `run` describes; no stats.
    fn on_pool<T>(
        &self,
        pool: &Pool,
        start: Instant,
        mut op: impl FnMut(&mut Connection, Instant) -> Result<T>,
    ) -> Result<T> {
        let terms = LeaseTerms::for_call(&self.config, start);
        let mut retried = false;
        loop {
            let (mut lease, request_by) = self.lease_for_request(pool, &terms)?;
            match op(lease.connection(), request_by) {
                Ok(v) => {
                    // Retired by its request (a Cluster redirect, a primary check in doubt):
                    // closed now rather than kept idle until the next lease finds it unusable.
                    if lease.connection().is_retired() {
                        lease.discard();
                    }
                    return Ok(v);
                }
                Err(e) => {
                    let fresh = lease.fresh;
                    if e.breaks_connection() {
                        lease.discard();
                    }
                    let nothing_ran = !e.maybe_sent() && e.batch_outcome().is_none();
                    // A Cluster redirect names another node: the caller follows it.
                    let here = Redirect::of_error(&e).is_none();
                    if !fresh && !retried && nothing_ran && here && e.breaks_connection() {
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Publishes `items` on a Redis Cluster: grouped by the primary owning each channel's slot,
    /// one pipeline per node, counts in input order, all within one call's deadline. A MOVED or
    /// ASK reply means that command did not run (the connection is retired, as after any reply
    /// in `RETIRING_CODES`), so it alone is sent once more to the node named (after ASKING for
    /// an ASK); a MOVED also drops the cached slot map. A node that cannot be reached before
    /// anything was sent to it (or turns out a replica) gets its items re-routed once through a
    /// fresh slot map (a failover). Nothing that may have run is sent again. When some nodes
    /// published and others did not, the error carries the [`BatchOutcome`].
    fn publish_routed(
        &self,
        cluster: &Cluster,
        items: &[(&[u8], &[u8])],
        mode: ClusterPublish,
    ) -> Result<Vec<i64>> {
        let start = Instant::now();
        let result = self.publish_routed_unrecorded(cluster, items, mode, start);
        record(&cluster.stats, items.len() as u64, &result, start);
        result
    }

    fn publish_routed_unrecorded(
        &self,
        cluster: &Cluster,
        items: &[(&[u8], &[u8])],
        mode: ClusterPublish,
        start: Instant,
    ) -> Result<Vec<i64>> {
        let prefix = self.config.channel_prefix.as_bytes();
        let mut groups: Vec<(Node, Vec<usize>, bool)> = Vec::new();
        let map = cluster.map(&self.config, start)?;
        for (i, (channel, _)) in items.iter().enumerate() {
            let slot = prefixed_slot(prefix, channel);
            match map.owner(slot) {
                Some(node) => add_to_group(&mut groups, node, i, false),
                // Unserved in this map (a failover under way): `owner` reads a new one.
                None => {
                    let node = cluster.owner(slot, &self.config, start)?;
                    add_to_group(&mut groups, &node, i, false);
                }
            }
        }
        // Connections are taken in node order: two calls each waiting for the other's node
        // (a full pool) cannot happen.
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let sent = match groups.as_slice() {
            [group] => vec![self.send_group(cluster, group, items, mode, start)],
            _ => self.send_groups(cluster, &groups, items, mode, start),
        };
        let mut outcome = BatchOutcome::default();
        let mut redirected: Vec<(Node, Vec<usize>, bool)> = Vec::new();
        for ((_, indexes, _), replies) in groups.iter().zip(sent) {
            let replies = match replies {
                Ok(replies) => replies,
                // The node could not be reached or is no primary, and nothing was sent (it may
                // have failed over): these items go, once, to their owners in a fresh slot map.
                Err(e) if !e.maybe_sent() && e.breaks_connection() => {
                    for &i in indexes {
                        match cluster.owner(prefixed_slot(prefix, items[i].0), &self.config, start)
                        {
                            Ok(owner) => add_to_group(&mut redirected, &owner, i, false),
                            Err(e) => outcome.failed.push((i, e)),
                        }
                    }
                    continue;
                }
                Err(e) => {
                    outcome
                        .failed
                        .extend(indexes.iter().map(|&i| (i, e.clone())));
                    continue;
                }
            };
            for (i, reply) in replies {
                match Redirect::of(&reply) {
                    Some(redirect) => {
                        cluster.following(&redirect);
                        add_to_group(&mut redirected, &redirect.node, i, redirect.ask);
                    }
                    None => self.settle_item(&mut outcome, reply, items, i),
                }
            }
        }
        for group in &redirected {
            let (_, indexes, _) = group;
            match self.send_group(cluster, group, items, mode, start) {
                // A second redirect is reported as the server error it is: the slot moves again.
                Ok(replies) => {
                    for (i, reply) in replies {
                        self.settle_item(&mut outcome, reply, items, i);
                    }
                }
                Err(e) => outcome
                    .failed
                    .extend(indexes.iter().map(|&i| (i, e.clone()))),
            }
        }
        outcome.published.sort_unstable_by_key(|(i, _)| *i);
        outcome.failed.sort_by_key(|(i, _)| *i);
        settle(outcome, items.len(), None)
    }

    /// Item `i`'s reply, as published or failed.
    fn settle_item(
        &self,
        outcome: &mut BatchOutcome,
        reply: Value,
        items: &[(&[u8], &[u8])],
        i: usize,
    ) {
        let index = (items.len() > 1).then_some(i);
        match self.receivers(reply, index) {
            Ok(n) => outcome.published.push((i, n)),
            Err(e) => outcome.failed.push((i, e)),
        }
    }

    /// `send_group` for several groups (distinct nodes, no ASKING) at once: each node's pipeline
    /// is written before any reply is read, so the nodes work on theirs at the same time and the
    /// batch costs one round trip, not one per node. Results in the order of `groups`.
    fn send_groups(
        &self,
        cluster: &Cluster,
        groups: &[(Node, Vec<usize>, bool)],
        items: &[(&[u8], &[u8])],
        mode: ClusterPublish,
        start: Instant,
    ) -> Vec<Result<Vec<(usize, Value)>>> {
        let pools: Vec<Arc<Pool>> = groups
            .iter()
            .map(|(node, _, _)| cluster.node_pool(node))
            .collect();
        let written: Vec<_> = pools
            .iter()
            .zip(groups)
            .map(|(pool, (_, indexes, _))| self.write_group(pool, indexes, items, mode, start))
            .collect();
        written
            .into_iter()
            .zip(groups)
            .map(|(written, (_, indexes, _))| {
                let result = written.and_then(|(mut lease, sent)| {
                    match lease
                        .connection()
                        .read_replies(sent.read_later(), indexes.len())
                    {
                        Ok(replies) => {
                            if replies.iter().any(|r| Redirect::of(r).is_some()) {
                                // MOVED/ASK retire the connection (see `RETIRING_CODES`).
                                lease.discard();
                            }
                            Ok(indexes.iter().copied().zip(replies).collect())
                        }
                        Err(e) => {
                            if e.breaks_connection() {
                                lease.discard();
                            }
                            Err(e)
                        }
                    }
                });
                cluster.forget_map_if_broken(&result);
                result
            })
            .collect()
    }

    /// Leases a connection of `pool` and writes the items at `indexes`, as SPUBLISH or PUBLISH
    /// as `mode` says, with `on_pool`'s one silent retry on a new connection when nothing was
    /// sent.
    fn write_group<'p>(
        &self,
        pool: &'p Pool,
        indexes: &[usize],
        items: &[(&[u8], &[u8])],
        mode: ClusterPublish,
        start: Instant,
    ) -> Result<(Lease<'p>, Sent)> {
        let terms = LeaseTerms::for_call(&self.config, start);
        let sharded = mode == ClusterPublish::Sharded;
        let prefix = self.config.channel_prefix.as_bytes();
        let mut retried = false;
        loop {
            let (mut lease, request_by) = self.lease_for_request(pool, &terms)?;
            let written = lease.connection().write_request(request_by, |p| {
                for &i in indexes {
                    let (channel, payload) = items[i];
                    if sharded {
                        p.spublish(prefix, channel, payload);
                    } else {
                        p.publish(prefix, channel, payload);
                    }
                }
            });
            match written {
                Ok(sent) => return Ok((lease, sent)),
                Err(e) => {
                    let fresh = lease.fresh;
                    if e.breaks_connection() {
                        lease.discard();
                    }
                    let here = Redirect::of_error(&e).is_none();
                    if !fresh && !retried && !e.maybe_sent() && here && e.breaks_connection() {
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Sends the items at `indexes` to `node` in one pipeline (each after ASKING when `ask`), as
    /// SPUBLISH or PUBLISH as `mode` says; returns (index, reply) pairs. A broken connection drops the cached slot map: the node
    /// may have failed over.
    ///
    /// No `WAIT 0 0` rides behind these publishes: a demoted node answers SPUBLISH with MOVED,
    /// and a PUBLISH on any node of a Cluster reaches the whole Cluster's subscribers.
    fn send_group(
        &self,
        cluster: &Cluster,
        (node, indexes, ask): &(Node, Vec<usize>, bool),
        items: &[(&[u8], &[u8])],
        mode: ClusterPublish,
        start: Instant,
    ) -> Result<Vec<(usize, Value)>> {
        let ask = *ask;
        let pool = cluster.node_pool(node);
        let sharded = mode == ClusterPublish::Sharded;
        let prefix = self.config.channel_prefix.as_bytes();
        let per_item = if ask { 2 } else { 1 };
        let result = self.on_pool(&pool, start, |conn, deadline| {
            let replies = conn.request(deadline, indexes.len() * per_item, |p| {
                for &i in indexes {
                    let (channel, payload) = items[i];
                    if ask {
                        p.command(|cmd| {
                            cmd.arg("ASKING");
                        });
                    }
                    if sharded {
                        p.spublish(prefix, channel, payload);
                    } else {
                        p.publish(prefix, channel, payload);
                    }
                }
            })?;
            if replies.iter().any(|r| Redirect::of(r).is_some()) {
                conn.retire();
            }
            Ok(replies)
        });
        let replies = match result {
            Ok(replies) => replies,
            Err(e) => {
                if e.breaks_connection() {
                    cluster.forget_map();
                }
                return Err(e);
            }
        };
        // After ASKING, only every second reply is the publish's (ASKING answers OK).
        Ok(indexes
            .iter()
            .copied()
            .zip(replies.into_iter().skip(per_item - 1).step_by(per_item))
            .collect())
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
        let mut outcome = BatchOutcome::default();
        for (i, reply) in values.into_iter().enumerate() {
            match self.receivers(reply, Some(i)) {
                // On a demoted primary, 0 receivers means it reached nobody: not published.
                Ok(0) if demoted => outcome.failed.push((i, no_longer_primary(conn))),
                Ok(n) => outcome.published.push((i, n)),
                Err(e) => outcome.failed.push((i, e)),
            }
        }
        if let Some(e) = &failure {
            let read = outcome.published.len() + outcome.failed.len();
            outcome.failed.extend((read..count).map(|i| (i, e.clone())));
        }
        let lead = match failure {
            Some(e) => Some(e),
            None if demoted => Some(no_longer_primary(conn)),
            None => None,
        };
        settle(outcome, count, lead)
    }
}

/// The receiver counts of a batch whose every message was published, or the error that says
/// what happened to each (`outcome` in input order). When nothing was published: `lead` (the
/// failure that says most) or else the first failure, as for one publish.
fn settle(mut outcome: BatchOutcome, count: usize, lead: Option<Error>) -> Result<Vec<i64>> {
    if outcome.failed.is_empty() {
        return Ok(outcome.published.into_iter().map(|(_, n)| n).collect());
    }
    if outcome.published.is_empty() {
        return Err(match lead {
            Some(e) => e,
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

/// A publish that the former primary `old` of a Sentinel service ran for nobody: the Sentinels
/// name `new` now. Marked `maybe_sent`: it ran there, so it is never sent again.
fn switched(sentinel: &Sentinel, old: &Node, new: &Node) -> Error {
    let label = |n: &Node| sentinel.endpoint().member(&n.host, n.port).label();
    Error::new(
        ErrorKind::Replica,
        format!(
            "Redis at {} is no longer the primary of the Sentinel service '{}' (the Sentinels name {}): the PUBLISH reached no subscriber there and is not sent again",
            label(old),
            sentinel.service(),
            label(new)
        ),
    )
    .mark_maybe_sent()
}

/// A batch whose messages with 0 receivers ran on a former primary (`e`): those failed, the
/// others reached subscribers there and count as published.
fn switched_batch(counts: Vec<i64>, e: Error) -> Error {
    let mut outcome = BatchOutcome::default();
    let count = counts.len();
    for (i, n) in counts.into_iter().enumerate() {
        if n == 0 {
            outcome.failed.push((i, e.clone()));
        } else {
            outcome.published.push((i, n));
        }
    }
    // Never Ok: the messages with 0 receivers failed.
    settle(outcome, count, Some(e.clone())).err().unwrap_or(e)
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
        if let Target::Cluster(cluster) = &client.target {
            let items: Vec<(&[u8], &[u8])> = items
                .iter()
                .map(|(c, p)| (c.as_ref(), p.as_ref()))
                .collect();
            return client.publish_routed(cluster, &items, client.config.cluster_publish);
        }
        client.run_published(
            items.len() as u64,
            |conn, deadline| {
                let published = conn.publish_batch(deadline, items.len(), |p, i| {
                    let (channel, payload) = &items[i];
                    client.pack_publish(p, channel.as_ref(), payload.as_ref());
                })?;
                client.batch_result(conn, published, items.len())
            },
            |counts| counts.contains(&0),
            switched_batch,
        )
    }
}

fn record<T>(stats: &Stats, messages: u64, result: &Result<T>, start: Instant) {
    match result {
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
}

/// Adds item `i` to `node`'s group (groups keep the order nodes were first seen in).
fn add_to_group(groups: &mut Vec<(Node, Vec<usize>, bool)>, node: &Node, i: usize, ask: bool) {
    match groups.iter_mut().find(|(n, _, a)| n == node && *a == ask) {
        Some((_, indexes, _)) => indexes.push(i),
        None => groups.push((node.clone(), vec![i], ask)),
    }
}
