//! Redis Cluster: which node a command goes to. A [`Cluster`] (one per seed list and process,
//! shared like the pools) caches the slot map, asks for it again after a `MOVED` or a broken
//! connection, and lends each node's own pool ([`shared_pool`] of [`Endpoint::member`]),
//! so every node gets the fork-aware, bounded, breaker-guarded pool a single server has.
//!
//! The slot map is read lazily, by the first call that needs a node, never at startup; reading
//! it is bounded by the call's time bound (connect + timeout) across all the nodes tried.

mod map;
pub mod slot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use once_cell::sync::Lazy;
use parking_lot::{Mutex, RwLock};
use redis::Value;

use crate::config::Config;
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::lookup::{ask_in_turn, lease_for_question};
use crate::pool::{shared_pool, Pool};
use crate::stats::{Stats, StatsSnapshot, TopologySnapshot};

pub use map::{Node, SlotMap};

pub struct Cluster {
    endpoint: Endpoint,
    pool_size: usize,
    /// `None` until first needed, and again after a MOVED or a lost connection: the next call
    /// reads a fresh one.
    map: RwLock<Option<Arc<SlotMap>>>,
    /// The calls made through this Cluster (the node pools' own stats stay unused by them).
    pub stats: Stats,
    /// MOVED/ASK replies followed.
    pub redirects: AtomicU64,
    /// Slot maps read.
    pub refreshes: AtomicU64,
}

/// Every Cluster of this process, keyed by its endpoint (seeds, credentials, TLS).
static CLUSTERS: Lazy<Mutex<HashMap<Endpoint, Arc<Cluster>>>> = Lazy::new(Default::default);

/// The process-wide [`Cluster`] for a `redis-cluster://` endpoint; `pool_size` is per node.
pub fn shared_cluster(endpoint: &Endpoint, pool_size: usize) -> Arc<Cluster> {
    let mut clusters = CLUSTERS.lock();
    Arc::clone(clusters.entry(endpoint.clone()).or_insert_with(|| {
        Arc::new(Cluster {
            endpoint: endpoint.clone(),
            pool_size,
            map: RwLock::new(None),
            stats: Stats::default(),
            redirects: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        })
    }))
}

/// A `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` reply: the command did not run, and
/// the node named should be asked instead (after `ASKING`, for an ASK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub node: Node,
    pub ask: bool,
}

impl Redirect {
    /// The redirect an error reply asks for, if it is one.
    pub fn of(reply: &Value) -> Option<Redirect> {
        match reply {
            Value::ServerError(e) => Self::parse(e.code(), e.details()?),
            _ => None,
        }
    }

    /// The redirect of an error made from an error reply ([`Error::server_reply`]), if any.
    pub fn of_error(e: &Error) -> Option<Redirect> {
        let (code, details) = e.server_reply()?.split_once(' ')?;
        Self::parse(code, details)
    }

    fn parse(code: &str, details: &str) -> Option<Redirect> {
        let ask = match code {
            "MOVED" => false,
            "ASK" => true,
            _ => return None,
        };
        let (_slot, address) = details.split_once(' ')?;
        Some(Redirect {
            node: Node::parse(address)?,
            ask,
        })
    }
}

impl Cluster {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The pool of one node.
    pub fn node_pool(&self, node: &Node) -> Arc<Pool> {
        shared_pool(&self.endpoint.member(&node.host, node.port), self.pool_size)
    }

    /// The primary serving `slot`, reading the slot map first if there is none or it has no
    /// primary for `slot` (within the deadline of the call that started at `start`).
    pub fn owner(&self, slot: u16, config: &Config, start: Instant) -> Result<Node> {
        // Copied out first: a guard held across `refresh` would deadlock with its write.
        let cached = self.map.read().clone();
        if let Some(node) = cached.as_ref().and_then(|map| map.owner(slot)) {
            return Ok(node.clone());
        }
        // No map yet, or one with this slot unserved (its primary failed and no replica was
        // promoted yet when it was read): read it again.
        let map = self.refresh(config, start)?;
        match map.owner(slot) {
            Some(node) => Ok(node.clone()),
            None => {
                self.forget_map();
                Err(Error::new(
                    ErrorKind::Server,
                    format!(
                        "no node of the Redis Cluster at {} serves slot {slot} (CLUSTERDOWN)",
                        self.endpoint.label()
                    ),
                ))
            }
        }
    }

    /// The cached slot map, read first if there is none (within the deadline of the call that
    /// started at `start`). A batch routes all its messages through this one copy.
    pub fn map(&self, config: &Config, start: Instant) -> Result<Arc<SlotMap>> {
        let cached = self.map.read().clone();
        match cached {
            Some(map) => Ok(map),
            None => self.refresh(config, start),
        }
    }

    /// Drops the cached slot map (after a MOVED, or a connection lost to a node that may have
    /// failed over): the next call reads a new one.
    pub fn forget_map(&self) {
        *self.map.write() = None;
    }

    /// A redirect is being followed: counted; a MOVED also means the cached map is stale (an
    /// ASK is one command's detour during a migration, the map stays).
    pub fn following(&self, redirect: &Redirect) {
        self.redirects.fetch_add(1, Relaxed);
        if !redirect.ask {
            self.forget_map();
        }
    }

    /// After a call on a node: a connection that broke may mean the node is gone, so the map is
    /// read again next time.
    pub fn forget_map_if_broken<T>(&self, result: &Result<T>) {
        if result.as_ref().is_err_and(Error::breaks_connection) {
            self.forget_map();
        }
    }

    /// Reads the slot map from the first node that answers: the known primaries, then the
    /// seeds; `CLUSTER SHARDS`, or `CLUSTER SLOTS` where that is unknown. Bounded by the
    /// deadline of the call that started at `start` as a whole.
    pub fn refresh(&self, config: &Config, start: Instant) -> Result<Arc<SlotMap>> {
        let deadline = start + config.call_bound();
        let tls = self.endpoint.tls().is_some();
        let mut candidates: Vec<Node> = self
            .map
            .read()
            .as_ref()
            .map(|m| m.primaries())
            .unwrap_or_default();
        if let Address::Cluster { seeds, .. } = &self.endpoint.address {
            for (host, port) in seeds {
                let seed = Node {
                    host: host.clone(),
                    port: *port,
                };
                if !candidates.contains(&seed) {
                    candidates.push(seed);
                }
            }
        }
        let map = ask_in_turn(
            candidates.into_iter(),
            deadline,
            config,
            || {
                format!(
                    "could not read the slot map of the Redis Cluster at {}",
                    self.endpoint.label()
                )
            },
            |node, _, _| self.read_map(&node, config, deadline, tls),
        )?;
        let map = Arc::new(map);
        *self.map.write() = Some(Arc::clone(&map));
        self.refreshes.fetch_add(1, Relaxed);
        Ok(map)
    }

    fn read_map(
        &self,
        node: &Node,
        config: &Config,
        deadline: Instant,
        tls: bool,
    ) -> Result<SlotMap> {
        let pool = self.node_pool(node);
        let (mut lease, request_by) = lease_for_question(&pool, config, deadline)?;
        let ask = |lease: &mut crate::pool::Lease<'_>, sub: &str| {
            lease.connection().request_one(request_by, |p| {
                p.command(|cmd| {
                    cmd.arg("CLUSTER").arg(sub);
                })
            })
        };
        let result = match ask(&mut lease, "SHARDS") {
            Ok(Value::ServerError(_)) => match ask(&mut lease, "SLOTS") {
                Ok(Value::ServerError(e)) => {
                    Err(crate::connection::server_error(&e, "CLUSTER SLOTS"))
                }
                Ok(reply) => SlotMap::from_slots(reply),
                Err(e) => Err(e),
            },
            Ok(reply) => SlotMap::from_shards(reply, tls),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if e.breaks_connection() {
                lease.discard();
            }
        }
        result
    }

    /// The stats of the calls made through this Cluster, with the connection counts of every
    /// node pool it used.
    pub fn snapshot(&self) -> StatsSnapshot {
        let nodes: Vec<Node> = self
            .map
            .read()
            .as_ref()
            .map(|m| m.primaries())
            .unwrap_or_default();
        let mut snapshot = self.stats.snapshot_for(&self.endpoint);
        snapshot.topology = TopologySnapshot {
            kind: "cluster",
            redirects: self.redirects.load(Relaxed),
            ..TopologySnapshot::default()
        };
        for node in nodes {
            let pool = self.node_pool(&node).snapshot();
            snapshot.reconnects += pool.reconnects;
            snapshot.connections_created += pool.connections_created;
            snapshot.pool_size += pool.pool_size;
            snapshot.pool_idle += pool.pool_idle;
            snapshot.pool_in_use += pool.pool_in_use;
            snapshot.breaker.fast_failures += pool.breaker.fast_failures;
            snapshot.breaker.trips += pool.breaker.trips;
        }
        snapshot
    }
}
