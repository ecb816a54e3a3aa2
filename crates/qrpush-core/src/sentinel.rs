//! Redis Sentinel: which server is the primary of a service now. A [`Sentinel`] (one per
//! Sentinel list + service and process, shared like the pools) asks the Sentinels with
//! `SENTINEL GET-MASTER-ADDR-BY-NAME`, caches the answer, and forgets it when a call finds a
//! replica or loses its connection, so the next call asks again.
//!
//! The answer is not trusted blindly (a Sentinel may not have seen a failover yet): every
//! connection to a data node makes the primary check of `connection.rs` (ROLE on a new
//! connection, the check behind each publish), and the client asks the Sentinels again after a
//! `Replica` error or a reply that retires the connection (READONLY...).
//!
//! **Learning of a switch.** After `SENTINEL FAILOVER` the old primary keeps saying ROLE master
//! and answering `WAIT` for seconds (Sentinel reconfigures it as a replica later), so the
//! connection's checks cannot see the switch there; only the Sentinels know. Two things ask them:
//! - the cached answer is trusted for `sentinel_check_interval`; the first call after that asks
//!   again, so calls stop going to a demoted primary within the interval (0: every call asks);
//! - with `sentinel_zero_check` on, a publish that reached 0 subscribers asks (one round trip)
//!   whether its node is still the primary; if not, the call throws a `Replica` error naming the
//!   old and the new primary. The PUBLISH ran there, so it is never sent again.
//!
//! A Sentinel is asked over a pooled connection (one small pool per Sentinel of the URL, owned by
//! this struct, opened by the first question, never at module startup) with the Sentinels' own
//! credentials, `sentinel_user`/`sentinel_password`, never the URL's, which are the data nodes';
//! without the primary check: a Sentinel is no data node. A connection that fails is dropped.
//! The Sentinel that answered last is asked first. Asking is bounded by the deadline of the call
//! that needs the primary, each Sentinel tried getting its share of what is left; a re-check
//! takes at most half of `connect_timeout` and, when it finds no Sentinel, keeps the cached
//! primary (still checked by the data-node connection) for another interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use once_cell::sync::Lazy;
use parking_lot::{Mutex, RwLock};
use redis::Value;

use crate::cluster::Node;
use crate::config::Config;
use crate::connection::server_error;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::lookup::{ask_in_turn, lease_for_question};
use crate::pool::{shared_pool, Pool};
use crate::stats::{Stats, StatsSnapshot, TopologySnapshot};

pub struct Sentinel {
    endpoint: Endpoint,
    pool_size: usize,
    /// The primary the Sentinels named and when they were asked; `None` until first needed and
    /// after it failed a call.
    primary: RwLock<Option<(Node, Instant)>>,
    /// The primary before the last one, to count changes once.
    last_primary: Mutex<Option<Node>>,
    /// The calls made through this service.
    pub stats: Stats,
    /// Times a different primary than the previous one was found (failovers followed).
    pub failovers: AtomicU64,
    /// One pool per Sentinel of the URL, in its order (no connection until the first question).
    sentinel_pools: Vec<Pool>,
    /// The index of the Sentinel that answered last: asked first next time.
    preferred: AtomicUsize,
}

static SENTINELS: Lazy<Mutex<HashMap<Endpoint, Arc<Sentinel>>>> = Lazy::new(Default::default);

/// The process-wide [`Sentinel`] for a `redis-sentinel://` endpoint.
pub fn shared_sentinel(endpoint: &Endpoint, pool_size: usize) -> Arc<Sentinel> {
    let mut all = SENTINELS.lock();
    Arc::clone(all.entry(endpoint.clone()).or_insert_with(|| {
        let sentinel_pools = match &endpoint.address {
            Address::Sentinel { sentinels, .. } => sentinels
                .iter()
                .map(|(host, port)| Pool::to_sentinel(endpoint.sentinel(host, *port), pool_size))
                .collect(),
            _ => Vec::new(),
        };
        Arc::new(Sentinel {
            sentinel_pools,
            preferred: AtomicUsize::new(0),
            endpoint: endpoint.clone(),
            pool_size,
            primary: RwLock::new(None),
            last_primary: Mutex::new(None),
            stats: Stats::default(),
            failovers: AtomicU64::new(0),
        })
    }))
}

impl Sentinel {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn service(&self) -> &str {
        match &self.endpoint.address {
            Address::Sentinel { service, .. } => service,
            _ => "",
        }
    }

    /// The pool of a data node.
    pub fn node_pool(&self, node: &Node) -> Arc<Pool> {
        shared_pool(&self.endpoint.member(&node.host, node.port), self.pool_size)
    }

    /// The cached primary, if any (no network).
    pub fn current_primary(&self) -> Option<Node> {
        self.primary.read().as_ref().map(|(node, _)| node.clone())
    }

    /// The primary: cached while younger than `sentinel_check_interval`, else asked of the
    /// Sentinels (within the deadline of the call that started at `start`). When a re-check
    /// reaches no Sentinel, the cached primary is kept for another interval: the data node's own
    /// checks still guard it, and the Sentinels being down must not stop publishing.
    pub fn primary(&self, config: &Config, start: Instant) -> Result<Node> {
        let cached = self.primary.read().clone();
        let Some((node, asked_at)) = cached else {
            return self.discover(config, start);
        };
        let interval = config.sentinel_check_interval;
        if !interval.is_zero() && start.saturating_duration_since(asked_at) < interval {
            return Ok(node);
        }
        // The re-check may take half of the connect part: the call's own connection and request
        // keep the rest of its bound even when a Sentinel does not answer.
        match self.ask_sentinels(config, start + config.connect_timeout / 2) {
            Ok(answer) => Ok(answer),
            Err(_) => {
                let mut primary = self.primary.write();
                if let Some((same, asked_at)) = primary.as_mut() {
                    if *same == node {
                        *asked_at = Instant::now();
                    }
                }
                Ok(node)
            }
        }
    }

    /// After a publish on `node` reached nobody: asks the Sentinels (one round trip, within the
    /// deadline of the call that started at `start`) whether `node` is still the primary. The
    /// new primary when it is not (it is cached); `None` when it is, or no Sentinel answered.
    pub fn switched_from(&self, node: &Node, config: &Config, start: Instant) -> Option<Node> {
        match self.ask_sentinels(config, start + config.call_bound()) {
            Ok(answer) if answer != *node => Some(answer),
            _ => None,
        }
    }

    /// Forgets the primary (it turned out a replica, or its connection broke).
    pub fn forget_primary(&self) {
        *self.primary.write() = None;
    }

    /// Asks each Sentinel in turn for the primary and caches the first answer; bounded by the
    /// deadline of the call that started at `start` overall.
    pub fn discover(&self, config: &Config, start: Instant) -> Result<Node> {
        self.ask_sentinels(config, start + config.call_bound())
    }

    /// Asks the Sentinels in turn, the one that answered last first, until one names the
    /// primary by `deadline`; caches the answer and counts a change of primary.
    fn ask_sentinels(&self, config: &Config, deadline: Instant) -> Result<Node> {
        let count = self.sentinel_pools.len();
        let first = self.preferred.load(Relaxed);
        let (i, node) = ask_in_turn(
            (0..count).map(|k| (first + k) % count),
            deadline,
            config,
            || {
                format!(
                    "no primary of the Sentinel service '{}' found through {}",
                    self.service(),
                    self.endpoint.label()
                )
            },
            |i, now, left| {
                // A Sentinel that does not answer (a stopped process, a lost route) takes only
                // its share of what is left, so that the others are still asked in time.
                let share = deadline.saturating_duration_since(now) / left as u32;
                let node = self.ask(&self.sentinel_pools[i], config, now + share)?;
                Ok((i, node))
            },
        )?;
        self.preferred.store(i, Relaxed);
        let mut last_primary = self.last_primary.lock();
        if last_primary.as_ref().is_some_and(|old| *old != node) {
            self.failovers.fetch_add(1, Relaxed);
        }
        *last_primary = Some(node.clone());
        *self.primary.write() = Some((node.clone(), Instant::now()));
        Ok(node)
    }

    /// One question to the Sentinel of `pool`, on a pooled connection (dropped if it fails).
    fn ask(&self, pool: &Pool, config: &Config, deadline: Instant) -> Result<Node> {
        let (mut lease, request_by) = lease_for_question(pool, config, deadline)?;
        let service = self.service();
        let reply = match lease.connection().request_one(request_by, |p| {
            p.command(|cmd| {
                cmd.arg("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(service);
            })
        }) {
            Ok(reply) => reply,
            Err(e) => {
                lease.discard();
                return Err(e);
            }
        };
        let at = pool.endpoint().label();
        let text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        match reply {
            Value::Array(addr) if addr.len() == 2 => {
                let primary_host = text(&addr[0]);
                let primary_port = text(&addr[1]).and_then(|p| p.parse::<u16>().ok());
                match (primary_host, primary_port) {
                    (Some(host), Some(port)) => Ok(Node { host, port }),
                    _ => Err(Error::new(
                        ErrorKind::Protocol,
                        format!("malformed address from the Sentinel at {at}"),
                    )),
                }
            }
            Value::Nil => Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the Sentinel at {at} does not know the service '{}'",
                    self.service()
                ),
            )),
            Value::ServerError(e) => Err(server_error(&e, "SENTINEL GET-MASTER-ADDR-BY-NAME")),
            other => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply to SENTINEL GET-MASTER-ADDR-BY-NAME: {other:?}"),
            )),
        }
    }

    /// The calls through this service, with the current primary's pool numbers.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snapshot = self.stats.snapshot_for(&self.endpoint);
        let primary = self.current_primary();
        snapshot.topology = TopologySnapshot {
            kind: "sentinel",
            service: Some(self.service().to_string()),
            primary: primary
                .as_ref()
                .map(|n| self.endpoint.member(&n.host, n.port).label()),
            failovers: self.failovers.load(Relaxed),
            redirects: 0,
        };
        if let Some(node) = primary {
            let pool = self.node_pool(&node).snapshot();
            snapshot.reconnects = pool.reconnects;
            snapshot.connections_created = pool.connections_created;
            snapshot.pool_size = pool.pool_size;
            snapshot.pool_idle = pool.pool_idle;
            snapshot.pool_in_use = pool.pool_in_use;
            snapshot.breaker = pool.breaker;
        }
        snapshot
    }
}
