//! The slot map: which primary serves each slot, read from `CLUSTER SHARDS` (Redis 7+) or, on
//! older servers, `CLUSTER SLOTS`. Replies are accepted in RESP2 (flat key/value arrays) and
//! RESP3 (maps) form.

use redis::Value;

use crate::error::{Error, ErrorKind, Result};

/// A Cluster node's address as the Cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl Node {
    /// Parses `host:port` (the address of a MOVED/ASK redirect; IPv6 hosts keep their colons).
    pub fn parse(text: &str) -> Option<Node> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok()?;
        (!host.is_empty() && port != 0).then(|| Node {
            host: host.to_string(),
            port,
        })
    }
}

/// Slot ranges and their primaries, sorted by first slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    ranges: Vec<(u16, u16, Node)>,
}

impl SlotMap {
    /// The primary serving `slot`, if the map covers it.
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        let i = self.ranges.partition_point(|(_, last, _)| *last < slot);
        self.ranges
            .get(i)
            .filter(|(first, _, _)| *first <= slot)
            .map(|(_, _, node)| node)
    }

    /// Every primary, each once.
    pub fn primaries(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self.ranges.iter().map(|(_, _, n)| n.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// From a `CLUSTER SHARDS` reply: per shard, its slot ranges and the online primary among
    /// its nodes (`endpoint`, else `ip`; `tls-port` when `tls`, else `port`).
    pub fn from_shards(reply: Value, tls: bool) -> Result<SlotMap> {
        let mut ranges = Vec::new();
        for shard in list(reply)? {
            let shard = fields(shard)?;
            let slots = list(field(&shard, "slots")?.clone())?;
            let nodes = list(field(&shard, "nodes")?.clone())?;
            let mut primary = None;
            for node in nodes {
                let node = fields(node)?;
                let role = text(field(&node, "role")?)?;
                let health = field(&node, "health").ok().map(text).transpose()?;
                if role != "master" || health.as_deref().is_some_and(|h| h != "online") {
                    continue;
                }
                let host = field(&node, "endpoint")
                    .ok()
                    .map(text)
                    .transpose()?
                    .filter(|h| !h.is_empty() && h != "?")
                    .map_or_else(|| text(field(&node, "ip")?), Ok)?;
                let port = int(field(&node, if tls { "tls-port" } else { "port" })?)?;
                primary = Some(Node {
                    host,
                    port: u16::try_from(port).map_err(|_| malformed("a node port"))?,
                });
            }
            let Some(primary) = primary else {
                // A shard whose primary is failing: its slots stay unmapped until a refresh.
                continue;
            };
            for pair in slots.chunks(2) {
                let [first, last] = pair else {
                    return Err(malformed("a slot range"));
                };
                ranges.push((slot(first)?, slot(last)?, primary.clone()));
            }
        }
        Self::sorted(ranges)
    }

    /// From a `CLUSTER SLOTS` reply: `[first, last, [host, port, id, …], replicas…]` per range.
    pub fn from_slots(reply: Value) -> Result<SlotMap> {
        let mut ranges = Vec::new();
        for range in list(reply)? {
            let range = list(range)?;
            let (Some(first), Some(last), Some(primary)) =
                (range.first(), range.get(1), range.get(2))
            else {
                return Err(malformed("a slot range"));
            };
            let primary = list(primary.clone())?;
            let (Some(host), Some(port)) = (primary.first(), primary.get(1)) else {
                return Err(malformed("a slot range's primary"));
            };
            let node = Node {
                host: text(host)?,
                port: u16::try_from(int(port)?).map_err(|_| malformed("a node port"))?,
            };
            ranges.push((slot(first)?, slot(last)?, node));
        }
        Self::sorted(ranges)
    }

    fn sorted(mut ranges: Vec<(u16, u16, Node)>) -> Result<SlotMap> {
        if ranges.is_empty() {
            return Err(Error::new(
                ErrorKind::Server,
                "the Redis Cluster serves no slot (CLUSTERDOWN or not yet formed)",
            ));
        }
        ranges.sort_by_key(|(first, _, _)| *first);
        Ok(SlotMap { ranges })
    }
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("malformed Redis Cluster slot map: {what}"),
    )
}

fn list(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        _ => Err(malformed("expected a list")),
    }
}

/// A node or shard description as (name, value) pairs, from a flat array or a map.
fn fields(value: Value) -> Result<Vec<(String, Value)>> {
    match value {
        Value::Map(pairs) => pairs.into_iter().map(|(k, v)| Ok((text(&k)?, v))).collect(),
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((text(&k)?, v));
            }
            Ok(pairs)
        }
        _ => Err(malformed("expected a map")),
    }
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Result<&'a Value> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| malformed(&format!("no '{name}'")))
}

fn text(value: &Value) -> Result<String> {
    match value {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        _ => Err(malformed("expected a string")),
    }
}

fn int(value: &Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| malformed("expected an integer")),
    }
}

fn slot(value: &Value) -> Result<u16> {
    u16::try_from(int(value)?)
        .ok()
        .filter(|s| *s < super::slot::SLOTS)
        .ok_or_else(|| malformed("a slot number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(port: i64, role: &str, health: &str) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("health"),
            bulk(health),
        ])
    }

    #[test]
    fn shards_pick_the_online_primary() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![
                    Value::Int(0),
                    Value::Int(99),
                    Value::Int(200),
                    Value::Int(299),
                ]),
                bulk("nodes"),
                Value::Array(vec![
                    node(7001, "replica", "online"),
                    node(7000, "master", "online"),
                ]),
            ]),
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(100), Value::Int(199)]),
                bulk("nodes"),
                Value::Array(vec![node(7002, "master", "online")]),
            ]),
        ]);
        let map = SlotMap::from_shards(reply, false).unwrap();
        let port = |slot| map.owner(slot).map(|n| n.port);
        assert_eq!(port(0), Some(7000));
        assert_eq!(port(99), Some(7000));
        assert_eq!(port(100), Some(7002));
        assert_eq!(port(250), Some(7000));
        assert_eq!(port(300), None);
        assert_eq!(map.primaries().len(), 2);
    }

    #[test]
    fn slots_reply() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16383),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("id")]),
        ])]);
        let map = SlotMap::from_slots(reply).unwrap();
        assert_eq!(map.owner(16383).unwrap().port, 7000);
        assert!(SlotMap::from_slots(Value::Array(vec![])).is_err());
    }

    #[test]
    fn redirect_addresses() {
        assert_eq!(
            Node::parse("127.0.0.1:7000"),
            Some(Node {
                host: "127.0.0.1".into(),
                port: 7000
            })
        );
        assert_eq!(Node::parse("::1:7000").unwrap().host, "::1");
        assert_eq!(Node::parse("nohost"), None);
        assert_eq!(Node::parse(":7000"), None);
    }
}
