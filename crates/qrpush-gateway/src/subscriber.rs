//! The Pub/Sub side: keeps the channels subscribed on Redis equal to what the hub wants, on the
//! right nodes, dispatches every message, and after any loss subscribes again and re-sends every
//! affected login's status (what was published meanwhile is lost to Pub/Sub, but not its
//! outcome: the status carries it; general channels replay their streams).
//!
//! One task owns the state; each node connection (`link`) reads on a task of its own and hands
//! its frames over a queue. Where a channel goes is the topology's answer (`topology`): the one
//! server, the Sentinel service's primary, or on Cluster the owner of the channel's slot
//! (SSUBSCRIBE), with one connection per node that has channels, plus the "home" node's.
//!
//! A channel stops being subscribed, and is routed again, when:
//! - its node's connection ends (a kill, a restart, Sentinel's CLIENT KILL on a failover);
//! - its node answers ROLE with `slave` (demoted; asked at every `--redis-ping-interval`);
//! - its node pushes `sunsubscribe` for it (its slot moved to another node) or refuses the
//!   SSUBSCRIBE with MOVED.
//!
//! Then what the topology knew (primary, slot map) is forgotten, so the route is asked anew.
//! Failures to connect or route back off exponentially (with jitter) between attempts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use qrpush_core::endpoint::{Address, Endpoint};
use qrpush_core::Config;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::link::{self, Link, LinkEvent};
use crate::metrics::Metrics;
use crate::resp::Frame;
use crate::socket::now_ms;
use crate::status::{self, StatusReader};
use crate::topology::{Route, Topology};
use crate::Settings;

/// The redis crate's connection info for one server (the clock measurement's connection).
pub fn connection_info(endpoint: &Endpoint) -> anyhow::Result<redis::ConnectionInfo> {
    let addr = match &endpoint.address {
        Address::Tcp { host, port } => ConnectionAddr::Tcp(host.clone(), *port),
        Address::Unix { path } => ConnectionAddr::Unix(path.into()),
        #[allow(unreachable_patterns)]
        _ => anyhow::bail!(
            "the gateway supports redis://, unix://, redis-sentinel:// and redis-cluster:// URLs (Redis on a trusted network), not {}",
            endpoint.redacted_url()
        ),
    };
    let mut redis = RedisConnectionInfo::default().set_db(endpoint.db.into());
    if let Some(user) = &endpoint.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &endpoint.password {
        redis = redis.set_password(password.expose());
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// Refuses, before anything connects, the endpoints the gateway cannot use (TLS).
pub fn check_endpoint(endpoint: &Endpoint) -> anyhow::Result<()> {
    if endpoint.tls().is_some() {
        anyhow::bail!(
            "the gateway supports redis://, unix://, redis-sentinel:// and redis-cluster:// URLs (Redis on a trusted network), not {}",
            endpoint.redacted_url()
        );
    }
    Ok(())
}

/// A command sent on a link whose reply has not come yet (replies come in order).
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Subscribe(String),
    Unsubscribe(String),
    /// The liveness check: ROLE where the node must be a primary, else PING.
    Check,
}

struct LinkState {
    link: Link,
    pending: VecDeque<(Sent, Instant)>,
}

impl LinkState {
    fn send(&mut self, command: &mut redis::Cmd, sent: Sent) {
        self.link.send(command.get_packed_command());
        self.pending.push_back((sent, Instant::now()));
    }
}

struct Assigned {
    link: u64,
    sharded: bool,
    confirmed: bool,
}

struct Subscriber {
    settings: Arc<Settings>,
    config: Arc<Config>,
    hub: Arc<Hub>,
    reader: Arc<StatusReader>,
    metrics: Arc<Metrics>,
    topology: Topology,
    links: HashMap<u64, LinkState>,
    /// The link of each node, by its endpoint.
    by_node: HashMap<Endpoint, u64>,
    /// The home node's link (see `Topology::home`): whether the gateway counts as connected.
    home: Option<u64>,
    /// Each wanted channel that was sent to a node, with that node's link.
    assigned: HashMap<String, Assigned>,
    events_tx: mpsc::UnboundedSender<LinkEvent>,
    next_link: u64,
    /// While set, nothing is (re)subscribed before this time (after a failure).
    retry_at: Option<Instant>,
    backoff: Duration,
    connected_before: bool,
}

/// Runs until `cancel`: connect, subscribe, dispatch; on loss back off and start over.
pub async fn run(
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    reader: Arc<StatusReader>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut me = Subscriber {
        config: Arc::new(settings.core.clone()),
        topology: Topology::of(&settings.core),
        backoff: settings.redis_backoff_min,
        settings,
        hub,
        reader,
        metrics,
        links: HashMap::new(),
        by_node: HashMap::new(),
        home: None,
        assigned: HashMap::new(),
        events_tx,
        next_link: 1,
        retry_at: None,
        connected_before: false,
    };
    let mut check = tokio::time::interval(me.settings.redis_ping_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    // Sentinel: the Sentinels are asked again at this interval (see `primary_moved_from`).
    let sentinel_every = me
        .config
        .sentinel_check_interval
        .max(Duration::from_millis(100));
    let mut sentinel_check = tokio::time::interval(sentinel_every);
    sentinel_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sentinel_check.tick().await;
    let sentinel_asking = Arc::new(AtomicBool::new(false));
    let is_sentinel = matches!(me.topology, Topology::Sentinel(_));
    loop {
        if me.retry_at.is_none_or(|at| Instant::now() >= at) {
            me.retry_at = None;
            let reconcile = me.reconcile();
            tokio::select! {
                _ = cancel.cancelled() => break,
                result = reconcile => if let Err(why) = result {
                    me.failed(&why);
                },
            }
        }
        me.metrics.subscriptions.store(
            me.assigned.values().filter(|a| a.confirmed).count() as i64,
            Relaxed,
        );
        let retry_at = me.retry_at;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(event) = events.recv() => {
                let mut confirmed = Vec::new();
                me.on_event(event, &mut confirmed);
                // Drain what is already queued before looking at subscriptions again.
                while let Ok(event) = events.try_recv() {
                    me.on_event(event, &mut confirmed);
                }
                me.deliver_status(&confirmed);
            }
            _ = me.hub.changed.notified() => {}
            _ = check.tick() => me.check_links(),
            _ = sentinel_check.tick(), if is_sentinel => me.ask_sentinels(&sentinel_asking),
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {}
        }
    }
    me.links.clear();
    me.hub.connection_lost();
    me.metrics.redis_connected.store(0, Relaxed);
    me.metrics.subscriptions.store(0, Relaxed);
}

impl Subscriber {
    /// Brings the subscriptions in line with what the sockets want; an `Err` (a node that cannot
    /// be reached or routed to) is retried after the backoff.
    async fn reconcile(&mut self) -> Result<(), String> {
        let wanted = self.hub.wanted_channels();
        let gone: Vec<String> = self
            .assigned
            .keys()
            .filter(|c| !wanted.contains(*c))
            .cloned()
            .collect();
        if !gone.is_empty() {
            self.hub.unconfirm(&gone);
        }
        for channel in gone {
            let Some(assigned) = self.assigned.remove(&channel) else {
                continue;
            };
            if let Some(state) = self.links.get_mut(&assigned.link) {
                let name = if assigned.sharded {
                    "SUNSUBSCRIBE"
                } else {
                    "UNSUBSCRIBE"
                };
                state.send(redis::cmd(name).arg(&channel), Sent::Unsubscribe(channel));
            }
        }
        if self.home.is_none() {
            let node = self.topology.home(&self.config).await?;
            let id = self.link_to(&node).await?;
            self.home = Some(id);
            self.on_home_connected(&node);
        }
        let new: Vec<String> = wanted
            .into_iter()
            .filter(|c| !self.assigned.contains_key(c))
            .collect();
        // A channel whose shard cannot be served now (its primary failed, no replica promoted
        // yet) does not hold up the others: they are subscribed, the first failure is returned.
        let mut failure = None;
        // Nodes that failed in this pass are not tried again for each of their channels.
        let mut unreachable: HashSet<Endpoint> = HashSet::new();
        let routes = if new.is_empty() {
            Vec::new()
        } else {
            self.topology.routes(new, &self.config).await?
        };
        for (channel, route) in routes {
            let Route { node, sharded } = match route {
                Ok(route) => route,
                Err(why) => {
                    failure.get_or_insert(why);
                    continue;
                }
            };
            if unreachable.contains(&node) {
                continue;
            }
            let id = match self.link_to(&node).await {
                Ok(id) => id,
                Err(why) => {
                    failure.get_or_insert(why);
                    unreachable.insert(node);
                    continue;
                }
            };
            let name = if sharded { "SSUBSCRIBE" } else { "SUBSCRIBE" };
            let state = self.links.get_mut(&id).expect("just linked");
            state.send(
                redis::cmd(name).arg(&channel),
                Sent::Subscribe(channel.clone()),
            );
            self.assigned.insert(
                channel,
                Assigned {
                    link: id,
                    sharded,
                    confirmed: false,
                },
            );
        }
        // Nodes left without channels (Cluster: a slot moved away, logins ended) are let go.
        let used: HashSet<u64> = self
            .assigned
            .values()
            .map(|a| a.link)
            .chain(self.home)
            .collect();
        let idle: Vec<u64> = self
            .links
            .keys()
            .filter(|id| !used.contains(*id))
            .copied()
            .collect();
        for id in idle {
            // Its unsubscribe replies no longer matter: the connection closes.
            if let Some(state) = self.links.remove(&id) {
                self.by_node.remove(&state.link.node);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The link to `node`, connecting (bounded) if there is none.
    async fn link_to(&mut self, node: &Endpoint) -> Result<u64, String> {
        if let Some(id) = self.by_node.get(node) {
            return Ok(*id);
        }
        let id = self.next_link;
        self.next_link += 1;
        match link::open(
            id,
            node,
            self.topology.primaries_only(),
            self.settings.redis_timeout,
            self.events_tx.clone(),
        )
        .await
        {
            Ok(link) => {
                tracing::debug!(redis = %node.label(), "linked to a Redis node");
                self.links.insert(
                    id,
                    LinkState {
                        link,
                        pending: VecDeque::new(),
                    },
                );
                self.by_node.insert(node.clone(), id);
                Ok(id)
            }
            Err(why) => {
                self.metrics.redis_connect_failures.fetch_add(1, Relaxed);
                // The primary or the slot map may be stale: ask again next time.
                self.topology.forget();
                Err(why)
            }
        }
    }

    fn on_home_connected(&mut self, node: &Endpoint) {
        self.metrics.redis_connected.store(1, Relaxed);
        if self.connected_before {
            self.metrics.redis_reconnects.fetch_add(1, Relaxed);
        }
        self.connected_before = true;
        self.backoff = self.settings.redis_backoff_min;
        tracing::info!(
            redis = %self.settings.core.endpoint.label(),
            node = %node.label(),
            topology = self.topology.kind(),
            "connected to Redis"
        );
        if let Ok(info) = connection_info(node) {
            if let Ok(client) = redis::Client::open(info) {
                tokio::spawn(measure_clock(
                    client,
                    self.settings.redis_timeout,
                    self.settings.clock_skew,
                    self.metrics.clone(),
                ));
            }
        }
    }

    fn failed(&mut self, why: &str) {
        let delay = jitter(self.backoff);
        tracing::warn!(
            redis = %self.settings.core.endpoint.label(),
            reason = %why,
            retry_in = ?delay,
            "cannot subscribe on Redis"
        );
        self.retry_at = Some(Instant::now() + delay);
        self.backoff = (self.backoff * 2).min(self.settings.redis_backoff_max);
    }

    /// One frame or the end of a link; channels Redis confirmed are added to `confirmed`.
    fn on_event(&mut self, event: LinkEvent, confirmed: &mut Vec<String>) {
        let (id, frame) = match event {
            LinkEvent::Closed(id, why) => return self.lost(id, &why),
            LinkEvent::Frame(id, frame) => (id, frame),
        };
        if !self.links.contains_key(&id) {
            return; // a link let go a moment ago
        }
        match frame {
            Frame::Push(items) => self.on_push(id, items, confirmed),
            Frame::Error(e) => {
                let sent = self.reply(id);
                self.on_error(id, sent, &e);
            }
            reply => {
                if let Some(Sent::Check) = self.reply(id) {
                    if self.topology.primaries_only() {
                        match link::role_of(&reply) {
                            Some("master") => {}
                            role => {
                                let role = role.unwrap_or("node that did not say its role");
                                self.lost(id, &format!("the node is now a {role}"));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Takes the oldest command waiting for its reply on link `id`.
    fn reply(&mut self, id: u64) -> Option<Sent> {
        self.links
            .get_mut(&id)
            .and_then(|s| s.pending.pop_front())
            .map(|(sent, _)| sent)
    }

    fn on_push(&mut self, id: u64, items: Vec<Frame>, confirmed: &mut Vec<String>) {
        let mut items = items.into_iter();
        let (Some(kind), Some(channel)) = (items.next(), items.next()) else {
            return;
        };
        let (Some(kind), Some(channel)) = (kind.text().map(str::to_owned), channel.text()) else {
            return;
        };
        match kind.as_str() {
            "message" | "smessage" => {
                if let Some(Frame::Bulk(payload)) = items.next() {
                    self.hub.dispatch(channel, &payload);
                }
            }
            "subscribe" | "ssubscribe" => {
                self.take_if(id, &Sent::Subscribe(channel.to_string()));
                if let Some(a) = self.assigned.get_mut(channel) {
                    if a.link == id && !a.confirmed {
                        a.confirmed = true;
                        confirmed.push(channel.to_string());
                    }
                }
            }
            "unsubscribe" | "sunsubscribe" => {
                if self.take_if(id, &Sent::Unsubscribe(channel.to_string())) {
                    return;
                }
                // Not asked for: the node gave the channel up (its slot moved elsewhere).
                if self.assigned.get(channel).is_some_and(|a| a.link == id) {
                    tracing::info!(channel, "Redis dropped a sharded subscription (slot moved): subscribing again where the slot is now");
                    self.unassign(&[channel.to_string()]);
                    self.topology.forget();
                }
            }
            _ => {}
        }
    }

    /// Pops the oldest pending command of link `id` if it is `sent`.
    fn take_if(&mut self, id: u64, sent: &Sent) -> bool {
        let Some(state) = self.links.get_mut(&id) else {
            return false;
        };
        if state.pending.front().is_some_and(|(s, _)| s == sent) {
            state.pending.pop_front();
            return true;
        }
        false
    }

    fn on_error(&mut self, id: u64, sent: Option<Sent>, error: &str) {
        match sent {
            Some(Sent::Subscribe(channel)) => {
                // MOVED: the slot map is stale; anything else is retried the same way.
                if self.assigned.get(&channel).is_some_and(|a| a.link == id) {
                    self.assigned.remove(&channel);
                }
                self.topology.forget();
                self.failed(&format!("subscribing {channel} failed: {error}"));
            }
            Some(Sent::Check) if self.topology.primaries_only() => {
                self.lost(id, &format!("ROLE failed: {error}"));
            }
            _ => tracing::debug!(error, "Redis error reply on the Pub/Sub connection"),
        }
    }

    /// Marks `channels` as not subscribed (sockets registering now wait for a new confirm).
    fn unassign(&mut self, channels: &[String]) {
        for c in channels {
            self.assigned.remove(c);
        }
        self.hub.unconfirm(channels);
    }

    /// Link `id` is gone (or no longer trusted): its channels are routed again.
    fn lost(&mut self, id: u64, why: &str) {
        let Some(state) = self.links.remove(&id) else {
            return;
        };
        self.by_node.remove(&state.link.node);
        let channels: Vec<String> = self
            .assigned
            .iter()
            .filter(|(_, a)| a.link == id)
            .map(|(c, _)| c.clone())
            .collect();
        self.unassign(&channels);
        self.topology.forget();
        if self.home == Some(id) {
            self.home = None;
            self.metrics.redis_connected.store(0, Relaxed);
        }
        tracing::warn!(
            redis = %self.settings.core.endpoint.label(),
            node = %state.link.node.label(),
            reason = %why,
            channels = channels.len(),
            "lost a Redis Pub/Sub connection: subscribing again"
        );
    }

    /// Every check interval: a link whose oldest command got no reply within the bound is
    /// dead (no FIN came); the others are asked ROLE (or PING).
    fn check_links(&mut self) {
        let bound = self.settings.redis_timeout;
        let dead: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, s)| {
                s.pending
                    .front()
                    .is_some_and(|(_, at)| at.elapsed() > bound)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.lost(id, &format!("no reply within {bound:?}"));
        }
        let name = if self.topology.primaries_only() {
            "ROLE"
        } else {
            "PING"
        };
        for state in self.links.values_mut() {
            state.send(&mut redis::cmd(name), Sent::Check);
        }
    }

    /// Sentinel: asks (off the loop, one question at a time) whether the home link's node is
    /// still the primary; when the Sentinels name another, that link is let go as lost, so its
    /// channels are subscribed on the new primary and every waiting login gets its status.
    fn ask_sentinels(&mut self, asking: &Arc<AtomicBool>) {
        let Some(id) = self.home else {
            return;
        };
        let Some(state) = self.links.get(&id) else {
            return;
        };
        if asking.swap(true, Relaxed) {
            return;
        }
        let (topology, config, events) = (
            self.topology.clone(),
            self.config.clone(),
            self.events_tx.clone(),
        );
        let (node, asking) = (state.link.node.clone(), asking.clone());
        tokio::spawn(async move {
            if let Some(primary) = topology.primary_moved_from(&node, &config).await {
                let why = format!("the Sentinels name {primary} as the primary now");
                let _ = events.send(LinkEvent::Closed(id, why));
            }
            asking.store(false, Relaxed);
        });
    }

    /// Reads and sends the status of every login on the channels just confirmed.
    fn deliver_status(&mut self, confirmed: &[String]) {
        if confirmed.is_empty() {
            return;
        }
        self.backoff = self.settings.redis_backoff_min;
        for (login_id, peer_ids) in self.hub.confirm(confirmed) {
            tokio::spawn(status::deliver(
                self.hub.clone(),
                self.reader.clone(),
                self.metrics.clone(),
                login_id,
                peer_ids,
            ));
        }
    }
}

/// Measures Redis's clock against ours (TIME, on a connection of its own) into the metrics, and
/// warns when they differ by more than `skew`: token expiry is set on Redis's clock and checked on
/// ours, with `skew` allowed. A failed measurement changes nothing (it is only a diagnostic).
async fn measure_clock(
    client: redis::Client,
    bound: Duration,
    skew: Duration,
    metrics: Arc<Metrics>,
) {
    let measure = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        let before = now_ms();
        let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let after = now_ms();
        // Redis read its clock somewhere in between: assume the middle.
        let redis_ms = seconds as f64 * 1000.0 + micros as f64 / 1000.0;
        Ok::<f64, redis::RedisError>(redis_ms - (before + after) / 2.0)
    };
    match tokio::time::timeout(bound, measure).await {
        Ok(Ok(offset_ms)) => {
            metrics
                .redis_clock_offset_ms
                .store(offset_ms.round() as i64, Relaxed);
            if offset_ms.abs() > skew.as_secs_f64() * 1000.0 {
                tracing::warn!(
                    offset_ms = offset_ms.round() as i64,
                    clock_skew = ?skew,
                    "this host's clock and Redis's differ by more than --clock-skew: gateway tokens \
                     may be refused before they expire or accepted after; synchronise the clocks (NTP)"
                );
            } else {
                tracing::debug!(
                    offset_ms = offset_ms.round() as i64,
                    "clock offset from Redis"
                );
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot read Redis's clock (TIME)"),
        Err(_) => tracing::debug!("reading Redis's clock (TIME) timed out"),
    }
}

/// 75–125 % of `d`, so that many gateways do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
}
