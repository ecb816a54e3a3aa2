//! Real multi-server Redis topologies for the Sentinel and Cluster tests, built from
//! [`RedisServer`] children on free loopback ports (each in its own temp directory, each killed by
//! pid when dropped):
//! - [`SentinelTopology`]: 1 primary + 1 replica watched by 3 Sentinels (quorum 2);
//! - [`ClusterTopology`]: a Cluster of 3 primaries + 3 replicas made by `redis-cli --cluster create`.
//!
//! `start()` returns only once the topology is usable, because a half-formed one fails tests for
//! the wrong reason: the Sentinels agree on the primary, know each other and the replica, and the
//! replica is in sync; every Cluster node says `cluster_state:ok`, knows every other node and
//! shows the same slot map.
//!
//! What the code under test is checked against comes from the servers themselves (`SENTINEL
//! GET-MASTER-ADDR-BY-NAME`, `CLUSTER KEYSLOT`, `CLUSTER SLOTS`), never from QrPush's own routing.

use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::cluster::{shared_cluster, Cluster};
use qrpush_core::Client;
use redis::Value;

use crate::admin::text;
use crate::ports;
use crate::server::{config_for, redis_cli_binary, Login, RedisServer};
use crate::subscriber::Subscriber;

/// The Sentinel service name of [`SentinelTopology`].
pub const SERVICE: &str = "qrpush";

/// How long a topology may take to form, or to settle after a failover or a slot move.
const SETTLE_BOUND: Duration = Duration::from_secs(30);

/// Polls `probe` until it returns `Some`, within `bound`; panics naming `what` (and the last
/// state seen) otherwise.
fn poll<T>(what: &str, bound: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + bound;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {bound:?} waiting for {what}; last seen: {state}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Waits until `node` says `role:master` (after a failover, or once it is configured).
fn wait_for_master(node: &RedisServer, what: &str) {
    poll(what, SETTLE_BOUND, || {
        match info_field(node, "replication", "role").as_deref() {
            Some("master") => Ok(()),
            other => Err(format!("role {other:?}")),
        }
    });
}

/// One `field:value` line of an INFO reply.
fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let reply = server.try_admin().ok()?.try_cmd(&["INFO", section]).ok()?;
    let info = match &reply {
        Value::ServerError(_) => return None,
        other => text(other),
    };
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_string())
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::BulkString(b) => String::from_utf8_lossy(b).parse().expect("an integer"),
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------------------------

/// 1 primary + 1 replica, monitored as [`SERVICE`] by 3 Sentinels with quorum 2.
///
/// Which data node is the primary changes with a failover: ask [`primary`](Self::primary).
pub struct SentinelTopology {
    // Declared first so they are dropped first: a Sentinel must not see the data nodes die and
    // start a failover while the topology is being torn down.
    sentinels: Vec<RedisServer>,
    nodes: Vec<RedisServer>,
}

/// The passwords of a [`SentinelTopology::start_secured`] topology.
#[derive(Clone, Debug)]
pub struct SentinelSecrets {
    /// The data nodes' `requirepass` (the replica and the Sentinels use it too).
    pub data_password: String,
    /// The Sentinels' own `requirepass` (their default user; the Sentinels use it among
    /// themselves).
    pub sentinel_password: String,
    /// An ACL user on every Sentinel that may only ask for the primary, and its password.
    pub sentinel_user: String,
    pub sentinel_user_password: String,
}

impl SentinelTopology {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Data nodes and Sentinels that all need passwords, different ones (`secrets`).
    pub fn start_secured(secrets: &SentinelSecrets) -> Self {
        Self::start_with(Some(secrets))
    }

    fn start_with(secrets: Option<&SentinelSecrets>) -> Self {
        let data_login = Login {
            user: None,
            password: secrets.map(|s| s.data_password.clone()),
        };
        let data_auth: Vec<&str> = match secrets {
            Some(s) => vec![
                "--requirepass",
                &s.data_password,
                "--masterauth",
                &s.data_password,
            ],
            None => Vec::new(),
        };
        let primary = RedisServer::start_with_login(&data_auth, data_login.clone());
        let primary_port = primary.port().to_string();
        let mut replica_args = data_auth.clone();
        replica_args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::start_with_login(&replica_args, data_login);
        // Short Sentinel timers keep failover tests to a few seconds.
        let mut config = format!(
            "sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 3000\n\
             sentinel parallel-syncs {SERVICE} 1\n"
        );
        let mut sentinel_login = Login::default();
        if let Some(s) = secrets {
            config.push_str(&format!(
                "sentinel auth-pass {SERVICE} {data}\n\
                 requirepass {own}\n\
                 sentinel sentinel-pass {own}\n\
                 user {user} on >{user_pw} -@all +sentinel|get-master-addr-by-name +client|setname\n",
                data = s.data_password,
                own = s.sentinel_password,
                user = s.sentinel_user,
                user_pw = s.sentinel_user_password,
            ));
            sentinel_login.password = Some(s.sentinel_password.clone());
        }
        let sentinels = (0..3)
            .map(|_| RedisServer::start_sentinel_with_login(&config, sentinel_login.clone()))
            .collect();
        let topology = SentinelTopology {
            sentinels,
            nodes: vec![primary, replica],
        };
        topology.wait_settled(topology.nodes[0].port());
        topology
    }

    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    pub fn sentinels_mut(&mut self) -> &mut [RedisServer] {
        &mut self.sentinels
    }

    /// Both data nodes, in start order (the first started as the primary).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// `redis-sentinel://:<password>@127.0.0.1:S1,…#qrpush`: [`url`](Self::url) with the data
    /// nodes' password (the Sentinels' own credentials are settings, not part of the URL).
    pub fn url_with_password(&self, password: &str) -> String {
        self.url().replacen(
            "redis-sentinel://",
            &format!("redis-sentinel://:{password}@"),
            1,
        )
    }

    /// `redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3#qrpush`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis-sentinel://{}#{SERVICE}", hosts.join(","))
    }

    /// The primary's port as the first answering Sentinel reports it.
    pub fn primary_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| Self::reported_primary(s).ok())
            .expect("no Sentinel reports a primary")
    }

    /// The data node the Sentinels report as primary.
    pub fn primary(&self) -> &RedisServer {
        let port = self.primary_port();
        self.node(port)
    }

    /// The data node that is not the primary.
    pub fn replica(&self) -> &RedisServer {
        let port = self.primary_port();
        self.nodes
            .iter()
            .find(|n| n.port() != port)
            .expect("a replica")
    }

    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// `SENTINEL FAILOVER` on the first Sentinel, then waits until the topology has settled on
    /// the other data node (all Sentinels agree, the old primary replicates from it). Returns the
    /// new primary's port.
    pub fn failover(&self) -> u16 {
        let old = self.primary_port();
        match self.sentinels[0].cmd(&["SENTINEL", "FAILOVER", SERVICE]) {
            Value::Okay => {}
            other => panic!("SENTINEL FAILOVER: {other:?}"),
        }
        let new = self
            .nodes
            .iter()
            .map(RedisServer::port)
            .find(|p| *p != old)
            .expect("two data nodes");
        self.wait_settled(new);
        new
    }

    /// `SENTINEL FAILOVER` on the first Sentinel, waiting only until the other data node says it
    /// is master and every Sentinel names it: the old primary still says master and accepts
    /// PUBLISH until Sentinel reconfigures it, seconds later (the window a client must not
    /// publish into silently). Returns the new primary's port.
    ///
    /// Right after a failover the Sentinels refuse another (NOGOODSLAVE until the old primary
    /// replicates from the new one, INPROG while one runs): it is asked again until accepted.
    pub fn begin_failover(&self) -> u16 {
        let old = self.primary_port();
        poll(
            "a Sentinel to accept SENTINEL FAILOVER",
            SETTLE_BOUND,
            || {
                let reply = self.sentinels[0]
                    .try_admin()
                    .and_then(|mut admin| admin.try_cmd(&["SENTINEL", "FAILOVER", SERVICE]))
                    .map_err(|e| e.to_string())?;
                match reply {
                    Value::Okay => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        );
        let new = self
            .nodes
            .iter()
            .map(RedisServer::port)
            .find(|p| *p != old)
            .expect("two data nodes");
        let new_node = self.node(new);
        wait_for_master(new_node, "the new primary to say role:master");
        for sentinel in &self.sentinels {
            poll(
                &format!("Sentinel {} to name primary {new}", sentinel.port()),
                SETTLE_BOUND,
                || match Self::reported_primary(sentinel)? {
                    reported if reported == new => Ok(()),
                    reported => Err(format!("primary {reported}")),
                },
            );
        }
        new
    }

    /// A field of `INFO <section>` on a server of this topology (a Sentinel or a data node).
    pub fn info(server: &RedisServer, section: &str, field: &str) -> Option<String> {
        info_field(server, section, field)
    }

    /// Waits until every Sentinel reports `primary` and knows the 2 other Sentinels and the
    /// replica, `primary` says it is a master, and the replica's link to it is up.
    pub fn wait_settled(&self, primary: u16) {
        for sentinel in &self.sentinels {
            poll(
                &format!(
                    "Sentinel {} to settle on primary {primary}",
                    sentinel.port()
                ),
                SETTLE_BOUND,
                || {
                    let reported = Self::reported_primary(sentinel)?;
                    if reported != primary {
                        return Err(format!("primary {reported}"));
                    }
                    let peers = Self::count(sentinel, "SENTINELS")?;
                    let replicas = Self::count(sentinel, "REPLICAS")?;
                    if peers != 2 || replicas != 1 {
                        return Err(format!("{peers} other Sentinels, {replicas} replicas"));
                    }
                    Ok(())
                },
            );
        }
        let primary_node = self.node(primary);
        wait_for_master(primary_node, "the primary to say role:master");
        for replica in self.nodes.iter().filter(|n| n.port() != primary) {
            poll("the replica's link to the primary", SETTLE_BOUND, || {
                let port = info_field(replica, "replication", "master_port");
                let link = info_field(replica, "replication", "master_link_status");
                if port.as_deref() == Some(&primary.to_string()) && link.as_deref() == Some("up") {
                    Ok(())
                } else {
                    Err(format!("master_port {port:?}, link {link:?}"))
                }
            });
        }
    }

    fn reported_primary(sentinel: &RedisServer) -> Result<u16, String> {
        let reply = sentinel
            .try_admin()
            .and_then(|mut admin| admin.try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE]))
            .map_err(|e| e.to_string())?;
        match reply {
            Value::Array(addr) if addr.len() == 2 => {
                text(&addr[1]).parse().map_err(|e| format!("port: {e}"))
            }
            other => Err(format!("{other:?}")),
        }
    }

    /// How many entries `SENTINEL <what> qrpush` lists that are not flagged down.
    fn count(sentinel: &RedisServer, what: &str) -> Result<usize, String> {
        let reply = sentinel
            .try_admin()
            .and_then(|mut admin| admin.try_cmd(&["SENTINEL", what, SERVICE]))
            .map_err(|e| e.to_string())?;
        let Value::Array(entries) = reply else {
            return Err(format!("SENTINEL {what}: {reply:?}"));
        };
        Ok(entries
            .iter()
            .filter(|entry| {
                let Value::Array(fields) = entry else {
                    return false;
                };
                fields
                    .chunks(2)
                    .find(|kv| kv.len() == 2 && text(&kv[0]) == "flags")
                    .map(|kv| !text(&kv[1]).contains("down"))
                    .unwrap_or(false)
            })
            .count())
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// A Redis Cluster on loopback: `primaries` primaries with `replicas` replicas each (3 + 3 by
/// default). Node roles change with failovers: ask [`owner_of_slot`](Self::owner_of_slot).
pub struct ClusterTopology {
    nodes: Vec<RedisServer>,
    /// The cluster bus ports (`--cluster-port`), chosen free like the client ports rather than
    /// port+10000, which may be taken or beyond 65535.
    bus_ports: Vec<u16>,
}

/// One slot range of `CLUSTER SLOTS`: (first, last, primary port).
pub type SlotRange = (u16, u16, u16);

impl ClusterTopology {
    pub fn start() -> Self {
        Self::start_with(3, 1)
    }

    pub fn start_with(primaries: usize, replicas: usize) -> Self {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs 3 primaries"
        );
        let count = primaries * (1 + replicas);
        let mut bus_ports = Vec::with_capacity(count);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                let bus = ports::free_port();
                bus_ports.push(bus);
                let bus = bus.to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    // Short enough that a killed primary's replica is promoted within seconds.
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let mut create = Command::new(redis_cli_binary());
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let out = create
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", redis_cli_binary().display()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = ClusterTopology { nodes, bus_ports };
        cluster.wait_settled();
        cluster
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no Cluster node on port {port}"))
    }

    /// `redis-cluster://127.0.0.1:P1,…` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// The port of a primary other than the one on `port` (where a test moves a slot to, or
    /// subscribes to hear what the Cluster bus carries).
    pub fn primary_other_than(&self, port: u16) -> u16 {
        self.primaries()
            .into_iter()
            .find(|n| n.port() != port)
            .unwrap_or_else(|| panic!("no primary other than the one on port {port}"))
            .port()
    }

    /// A client of this Cluster (every node a seed, see [`url`](Self::url)) with `settings`
    /// applied over the defaults.
    pub fn client(&self, settings: &[(&str, &str)]) -> Client {
        Client::new(config_for(&self.url(), settings))
    }

    /// The slot of `key` as the server computes it (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        int(&self.live_node().cmd(&["CLUSTER", "KEYSLOT", key])) as u16
    }

    /// The slot map (primary per range), as a live node reports it.
    pub fn slot_map(&self) -> Vec<SlotRange> {
        Self::slot_map_of(self.live_node()).expect("CLUSTER SLOTS")
    }

    /// The primary that owns `slot`.
    pub fn owner_of_slot(&self, slot: u16) -> &RedisServer {
        let port = self
            .slot_map()
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, port)| port)
            .unwrap_or_else(|| panic!("slot {slot} is not served"));
        self.node(port)
    }

    /// The primary that owns `key`'s slot.
    pub fn owner_of(&self, key: &str) -> &RedisServer {
        self.owner_of_slot(self.slot_of(key))
    }

    /// The current primaries, in port order.
    pub fn primaries(&self) -> Vec<&RedisServer> {
        let mut ports: Vec<u16> = self.slot_map().iter().map(|r| r.2).collect();
        ports.sort_unstable();
        ports.dedup();
        ports.into_iter().map(|p| self.node(p)).collect()
    }

    /// The ports of the primaries, in the order of [`primaries`](Self::primaries).
    pub fn primary_ports(&self) -> Vec<u16> {
        self.primaries().iter().map(|n| n.port()).collect()
    }

    /// One name per primary, in the order of [`primary_ports`](Self::primary_ports), each
    /// starting with `prefix` and in a slot of its primary (see [`name_on`](Self::name_on)):
    /// channels that spread a test's traffic over every shard.
    pub fn name_per_primary(&self, prefix: &str) -> Vec<String> {
        self.primary_ports()
            .into_iter()
            .map(|port| self.name_on(port, prefix))
            .collect()
    }

    /// A sharded subscriber (SSUBSCRIBE) to `channel` on the primary owning its slot.
    pub fn subscribe_sharded(&self, channel: &str) -> Subscriber {
        let owner = self.owner_of(channel);
        Subscriber::connect_sharded(owner.port(), &Default::default(), &[channel])
            .unwrap_or_else(|e| panic!("SSUBSCRIBE {channel} on port {}: {e}", owner.port()))
    }

    /// A key (and channel name) starting with `prefix` whose slot belongs to the primary on
    /// `port`, found by asking the server for each candidate's slot.
    pub fn name_on(&self, port: u16, prefix: &str) -> String {
        let ranges: Vec<SlotRange> = self
            .slot_map()
            .into_iter()
            .filter(|r| r.2 == port)
            .collect();
        assert!(!ranges.is_empty(), "port {port} owns no slot");
        (0..10_000)
            .map(|i| format!("{prefix}{i}"))
            .find(|name| {
                let slot = self.slot_of(name);
                ranges.iter().any(|(a, b, _)| (*a..=*b).contains(&slot))
            })
            .expect("a name on that node")
    }

    /// Moves `slot` (and its keys) to the primary on `to`, the way `redis-cli --cluster reshard`
    /// does it for one slot: IMPORTING/MIGRATING, MIGRATE the keys, then SETSLOT NODE on every
    /// primary; waits until every node shows the new owner.
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.owner_of_slot(slot).port();
        if from == to {
            return;
        }
        self.begin_move(slot, to);
        let slot_text = slot.to_string();
        let source = self.node(from);
        let target = self.node(to);
        let target_id = text(&target.cmd(&["CLUSTER", "MYID"]));
        loop {
            let keys = items(source.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]));
            if keys.is_empty() {
                break;
            }
            let keys: Vec<String> = keys.iter().map(text).collect();
            self.migrate_keys(from, to, &keys);
        }
        for node in [target, source] {
            node.admin()
                .ok(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id]);
        }
        for node in self.primaries() {
            if node.port() != from && node.port() != to {
                node.admin()
                    .ok(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id]);
            }
        }
        self.wait_settled();
        assert_eq!(
            self.owner_of_slot(slot).port(),
            to,
            "slot {slot} did not move"
        );
    }

    /// MIGRATEs `keys` from the node on `from` to the node on `to` (a slot move's middle step; in
    /// the middle of one begun with [`ClusterTopology::begin_move`], the moved keys answer ASK).
    pub fn migrate_keys(&self, from: u16, to: u16, keys: &[String]) {
        let to_text = to.to_string();
        let mut args: Vec<String> = ["MIGRATE", "127.0.0.1", &to_text, "", "0", "5000", "KEYS"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(keys.iter().cloned());
        self.node(from).admin().ok(&args);
    }

    /// The first half of a slot move: `slot` MIGRATING on its owner, IMPORTING on the primary on
    /// `to`. Until the move ends, the owner answers ASK for names it does not hold.
    pub fn begin_move(&self, slot: u16, to: u16) {
        let slot_text = slot.to_string();
        let source = self.owner_of_slot(slot);
        let target = self.node(to);
        let source_id = text(&source.cmd(&["CLUSTER", "MYID"]));
        let target_id = text(&target.cmd(&["CLUSTER", "MYID"]));
        target
            .admin()
            .ok(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &source_id]);
        source
            .admin()
            .ok(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &target_id]);
    }

    /// Waits until every live node says `cluster_state:ok`, knows every node, and reports the
    /// same slot map, and every live replica is in sync with its primary.
    pub fn wait_settled(&self) {
        let live: Vec<&RedisServer> = self.live_nodes().collect();
        let expected_nodes = self.nodes.len().to_string();
        poll("the Cluster to settle", SETTLE_BOUND, || {
            let mut first: Option<Vec<SlotRange>> = None;
            for node in &live {
                let state = info_field_cluster(node, "cluster_state");
                let known = info_field_cluster(node, "cluster_known_nodes");
                if state.as_deref() != Some("ok") || known.as_deref() != Some(&expected_nodes) {
                    return Err(format!(
                        "port {}: cluster_state {state:?}, known nodes {known:?}",
                        node.port()
                    ));
                }
                // A replica still in its first sync could not be promoted if its primary died.
                if info_field(node, "replication", "role").as_deref() == Some("slave") {
                    let link = info_field(node, "replication", "master_link_status");
                    if link.as_deref() != Some("up") {
                        return Err(format!("replica {}: link {link:?}", node.port()));
                    }
                }
                let map = Self::slot_map_of(node)?;
                match &first {
                    None => first = Some(map),
                    Some(seen) if *seen != map => {
                        return Err(format!("port {} has another slot map", node.port()))
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        });
    }

    fn live_nodes(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    fn live_node(&self) -> &RedisServer {
        self.live_nodes().next().expect("no live Cluster node")
    }

    fn slot_map_of(node: &RedisServer) -> Result<Vec<SlotRange>, String> {
        let reply = node
            .try_admin()
            .and_then(|mut admin| admin.try_cmd(&["CLUSTER", "SLOTS"]))
            .map_err(|e| e.to_string())?;
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS: {reply:?}"));
        };
        let mut map: Vec<SlotRange> = ranges
            .into_iter()
            .map(|range| {
                let range = items(range);
                let primary = match &range[2] {
                    Value::Array(addr) => int(&addr[1]) as u16,
                    other => panic!("CLUSTER SLOTS primary: {other:?}"),
                };
                (int(&range[0]) as u16, int(&range[1]) as u16, primary)
            })
            .collect();
        map.sort_unstable();
        Ok(map)
    }
}

fn info_field_cluster(node: &RedisServer, field: &str) -> Option<String> {
    let reply = node.try_admin().ok()?.try_cmd(&["CLUSTER", "INFO"]).ok()?;
    let info = match &reply {
        Value::ServerError(_) => return None,
        other => text(other),
    };
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_string())
}

/// The process-wide Cluster routing `client` publishes through (the core's own, whose redirect
/// and slot-map counters the tests read), as the client itself finds it.
pub fn cluster_routing(client: &Client) -> Arc<Cluster> {
    let config = client.config();
    shared_cluster(&config.endpoint, config.pool_size)
}

impl Drop for ClusterTopology {
    fn drop(&mut self) {
        // The nodes stop themselves (by pid) when `nodes` is dropped after this.
        for port in self.bus_ports.drain(..) {
            ports::release(port);
        }
    }
}
