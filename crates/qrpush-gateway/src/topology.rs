//! Where the gateway subscribes: one server (`redis://`, `unix://`), the primary a Sentinel
//! service names (`redis-sentinel://…#service`), or, on a Redis Cluster (`redis-cluster://`),
//! the node owning each channel's slot.
//!
//! Discovery is the extension's own (`qrpush_core::sentinel`, `qrpush_core::cluster`: the same
//! Sentinel questions, the same slot map and CRC16), shared process-wide like the extension's.
//! Those are blocking calls, bounded by the Redis time bound; they run on tokio's blocking pool.
//!
//! A channel is subscribed the way the extension publishes it: on Cluster with
//! `cluster_publish = sharded` (the default), `SSUBSCRIBE` on the owner of its slot (a sharded
//! message never leaves its shard); with `global`, and everywhere else, `SUBSCRIBE` on the home
//! node (on Cluster any node will do: a classic PUBLISH reaches every node).

use std::sync::Arc;
use std::time::Instant;

use qrpush_core::cluster::slot::slot;
use qrpush_core::cluster::{shared_cluster, Cluster, Node};
use qrpush_core::sentinel::{shared_sentinel, Sentinel};
use qrpush_core::{ClusterPublish, Config, Endpoint};

/// How to subscribe a channel: where, and whether with SSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub node: Endpoint,
    pub sharded: bool,
}

#[derive(Clone)]
pub enum Topology {
    Single(Endpoint),
    Sentinel(Arc<Sentinel>),
    Cluster(Arc<Cluster>),
}

impl Topology {
    pub fn of(config: &Config) -> Topology {
        let endpoint = &config.endpoint;
        if endpoint.is_cluster() {
            Topology::Cluster(shared_cluster(endpoint, config.pool_size))
        } else if endpoint.is_sentinel() {
            Topology::Sentinel(shared_sentinel(endpoint, config.pool_size))
        } else {
            Topology::Single(endpoint.clone())
        }
    }

    /// Whether a node must say it is a primary (ROLE) before it is used and at every check:
    /// Sentinel's answer may lag a failover, and a Cluster node may have been demoted.
    pub fn primaries_only(&self) -> bool {
        !matches!(self, Topology::Single(_))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Topology::Single(_) => "server",
            Topology::Sentinel(_) => "sentinel",
            Topology::Cluster(_) => "cluster",
        }
    }

    /// Drops what was learnt (the primary, the slot map): the next route asks again. Called when
    /// a node is lost, turns out a replica, answers MOVED, or gives up a slot.
    pub fn forget(&self) {
        match self {
            Topology::Single(_) => {}
            Topology::Sentinel(sentinel) => sentinel.forget_primary(),
            Topology::Cluster(cluster) => cluster.forget_map(),
        }
    }

    /// Sentinel only: whether the Sentinels now name another primary than `node`, asked at most
    /// once per `sentinel_check_interval` (the extension's own re-check). On `SENTINEL FAILOVER`
    /// the old primary goes on saying `master` until Sentinel reconfigures it (seconds later), so
    /// ROLE alone would keep the gateway subscribed where nothing is published any more. `None`:
    /// still the primary, another topology, or no Sentinel answered (the links' own checks stay).
    pub async fn primary_moved_from(
        &self,
        node: &Endpoint,
        config: &Arc<Config>,
    ) -> Option<String> {
        let Topology::Sentinel(sentinel) = self else {
            return None;
        };
        let (sentinel, config) = (sentinel.clone(), config.clone());
        let now = blocking(move || {
            let primary = sentinel
                .primary(&config, std::time::Instant::now())
                .map_err(|e| e.message().to_string())?;
            Ok(sentinel.endpoint().member(&primary.host, primary.port))
        })
        .await
        .ok()?;
        (now != *node).then(|| now.label())
    }

    /// The node every classic subscription goes to, and the one whose connection says whether
    /// the gateway is connected: the server, the primary, or (Cluster) the owner of slot 0.
    pub async fn home(&self, config: &Arc<Config>) -> Result<Endpoint, String> {
        match self {
            Topology::Single(endpoint) => Ok(endpoint.clone()),
            Topology::Sentinel(sentinel) => {
                let (sentinel, config) = (sentinel.clone(), config.clone());
                blocking(move || {
                    let node = sentinel
                        .primary(&config, Instant::now())
                        .map_err(|e| e.message().to_string())?;
                    Ok(sentinel.endpoint().member(&node.host, node.port))
                })
                .await
            }
            Topology::Cluster(cluster) => {
                let (cluster, config) = (cluster.clone(), config.clone());
                blocking(move || owner(&cluster, 0, &config)).await
            }
        }
    }

    /// The route of each of `channels` (Redis names), in order, or why it has none now (a slot
    /// no primary serves); one blocking call for all. `Err`: no route for any (no home node).
    #[allow(clippy::type_complexity)]
    pub async fn routes(
        &self,
        channels: Vec<String>,
        config: &Arc<Config>,
    ) -> Result<Vec<(String, Result<Route, String>)>, String> {
        let sharded = matches!(self, Topology::Cluster(_))
            && config.cluster_publish == ClusterPublish::Sharded;
        if !sharded {
            let node = self.home(config).await?;
            return Ok(channels
                .into_iter()
                .map(|c| {
                    let route = Route {
                        node: node.clone(),
                        sharded: false,
                    };
                    (c, Ok(route))
                })
                .collect());
        }
        let Topology::Cluster(cluster) = self else {
            unreachable!("sharded routes exist on Cluster only");
        };
        let (cluster, config) = (cluster.clone(), config.clone());
        blocking(move || {
            Ok(channels
                .into_iter()
                .map(|c| {
                    let route = owner(&cluster, slot(c.as_bytes()), &config).map(|node| Route {
                        node,
                        sharded: true,
                    });
                    (c, route)
                })
                .collect())
        })
        .await
    }
}

/// The endpoint of the primary owning `slot` (the slot map read if needed).
fn owner(cluster: &Cluster, slot: u16, config: &Config) -> Result<Endpoint, String> {
    let Node { host, port } = cluster
        .owner(slot, config, Instant::now())
        .map_err(|e| e.message().to_string())?;
    Ok(cluster.endpoint().member(&host, port))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("topology lookup panicked: {e}")))
}
