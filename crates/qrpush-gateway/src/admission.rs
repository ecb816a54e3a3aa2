//! Who may open a socket: at most `--max-connections` at once, and at most
//! `--max-sockets-per-address` from one client address.
//!
//! Both are taken as one [`Slot`] before the WebSocket upgrade and held for the socket's whole
//! life (released when the slot drops), under one lock: a burst of handshakes can never overshoot
//! either cap, which a count compared first and incremented after the upgrade could.
//!
//! The client address is the TCP peer's, unless the peer is one of `--trusted-proxies`; then it
//! comes from the proxy's header (`--real-ip-header`, `X-Forwarded-For` by default): the rightmost
//! address in it that is not itself a trusted proxy. That is the address the outermost trusted
//! proxy saw; entries further left were written by the client and prove nothing. A header from a
//! peer that is not trusted is ignored (anyone can send one). IPv6 clients count per /64 prefix:
//! one host is usually given a whole /64, so counting single addresses would cap nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, HeaderName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An address block, as `--trusted-proxies` lists them: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(net).into(), self.prefix, 32)
                    == mask(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), self.prefix, 128) == mask(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The first `prefix` of `bits` bits of `value` (right-aligned in a u128).
fn mask(value: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        value >> (bits - prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| {
            format!("'{text}' is not an address or an address block (like 10.0.0.0/8 or ::1)")
        })?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {bits}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

/// The client of a request: `peer`, or what a trusted proxy says in `header` (see the module doc).
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Cidr],
    header: &HeaderName,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Every line of the header, in order, as one list (a proxy may append a line of its own).
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(header) {
        let Ok(value) = value.to_str() else {
            return peer; // not text: nothing trustworthy to read
        };
        hops.extend(value.split(',').map(str::trim).filter(|h| !h.is_empty()));
    }
    // From the nearest hop outwards; `client` is the last address vouched for so far.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbled by someone before the proxy that wrote its neighbour: that one is the client.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One header entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// The key an address is counted under: itself (IPv4), or its /64 (IPv6).
fn counting_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` sockets are open.
    Capacity,
    /// `--max-sockets-per-address` sockets are open from this client address.
    PerAddress,
}

/// The caps, and the sockets counted against them.
pub struct Admission {
    /// One permit per socket that may be open (`--max-connections`).
    total: Arc<Semaphore>,
    max_per_address: usize,
    /// Open sockets per counting key; an address with none has no entry (the map stays as small
    /// as the set of clients connected now).
    per_address: Mutex<HashMap<IpAddr, usize>>,
    trusted: Vec<Cidr>,
    header: HeaderName,
    /// The hint about an ignored header is logged once, not once per request.
    warned_untrusted_header: AtomicBool,
}

/// The right to one open socket; dropping it frees both caps' share.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    admission: Arc<Admission>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Admission {
    pub fn new(
        max_total: usize,
        max_per_address: usize,
        trusted: Vec<Cidr>,
        header: HeaderName,
    ) -> Admission {
        Admission {
            total: Arc::new(Semaphore::new(max_total.min(Semaphore::MAX_PERMITS))),
            max_per_address,
            per_address: Mutex::new(HashMap::new()),
            trusted,
            header,
            warned_untrusted_header: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Plain counters: a panic elsewhere cannot leave them half-updated.
        self.per_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client address of a request that came from `peer`.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let client = client_address(peer, headers, &self.trusted, &self.header);
        if client == peer.to_canonical()
            && headers.contains_key(&self.header)
            && !self.trusted.iter().any(|c| c.contains(client))
            && !self.warned_untrusted_header.swap(true, Relaxed)
        {
            tracing::warn!(
                peer = %client,
                header = %self.header,
                "a request carries the real-IP header, but its peer is not in --trusted-proxies: \
                 sockets are counted per peer address (behind a proxy, list it in --trusted-proxies)"
            );
        }
        client
    }

    /// Takes a slot for one more socket from `client`, or says which cap is full.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        let key = counting_key(client);
        let mut counts = self.lock();
        let count = counts.get(&key).copied().unwrap_or(0);
        if count >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Capacity)?;
        counts.insert(key, count + 1);
        Ok(Slot {
            _total: total,
            admission: self.clone(),
            key,
        })
    }

    /// Client addresses (counting keys) with at least one open socket.
    pub fn addresses(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_str(name).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn address_blocks() {
        let blocks = cidrs(&["10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8"]);
        let inside = |a: &str| blocks.iter().any(|c| c.contains(ip(a)));
        assert!(inside("10.200.3.4"));
        assert!(!inside("11.0.0.1"));
        assert!(inside("192.168.1.7"));
        assert!(!inside("192.168.1.8"));
        assert!(inside("::1"));
        assert!(inside("fd12::5"));
        assert!(!inside("fe80::1"));
        assert!(
            inside("::ffff:10.1.2.3"),
            "an IPv4-mapped peer is its IPv4 address"
        );
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_client_address_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let client = |peer: &str, values: &[&str]| {
            client_address(
                ip(peer),
                &headers("x-forwarded-for", values),
                &trusted,
                &xff,
            )
        };
        // An untrusted peer: its header is ignored.
        assert_eq!(client("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        // A trusted peer without the header: the peer.
        assert_eq!(client("127.0.0.1", &[]), ip("127.0.0.1"));
        // nginx appends what it saw: the rightmost entry.
        assert_eq!(client("127.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"));
        // A client that forges entries on the left gains nothing.
        assert_eq!(
            client("127.0.0.1", &["1.1.1.1, 2.2.2.2, 198.51.100.1"]),
            ip("198.51.100.1")
        );
        // A chain of trusted proxies is skipped, also across header lines.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1, 10.1.1.1", "10.2.2.2"]),
            ip("198.51.100.1")
        );
        // Only proxies: the outermost one.
        assert_eq!(client("127.0.0.1", &["10.1.1.1"]), ip("10.1.1.1"));
        // Garbage where an address should be: the proxy that passed it on is the client.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1, junk, 10.1.1.1"]),
            ip("10.1.1.1")
        );
        assert_eq!(client("127.0.0.1", &["junk"]), ip("127.0.0.1"));
        // Ports and brackets as some proxies write them; IPv4-mapped IPv6 peers.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1:4711"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("127.0.0.1", &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            client("::ffff:127.0.0.1", &["198.51.100.1"]),
            ip("198.51.100.1")
        );
        // The header named by the flag, and only that one.
        let real_ip = HeaderName::from_static("x-real-ip");
        let h = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted, &real_ip),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn slots_cap_the_total_and_each_address_and_are_given_back_on_drop() {
        let admission = Arc::new(Admission::new(
            3,
            2,
            Vec::new(),
            HeaderName::from_static("x-forwarded-for"),
        ));
        let a1 = admission.admit(ip("198.51.100.1")).unwrap();
        let _a2 = admission.admit(ip("198.51.100.1")).unwrap();
        assert_eq!(
            admission.admit(ip("198.51.100.1")).err(),
            Some(Refusal::PerAddress)
        );
        let _b1 = admission.admit(ip("198.51.100.2")).unwrap();
        assert_eq!(
            admission.admit(ip("198.51.100.3")).err(),
            Some(Refusal::Capacity)
        );
        assert_eq!(admission.addresses(), 2);
        drop(a1);
        let _a3 = admission.admit(ip("198.51.100.1")).unwrap();
        // IPv6: one /64 is one client.
        let admission = Arc::new(Admission::new(
            10,
            1,
            Vec::new(),
            HeaderName::from_static("x-forwarded-for"),
        ));
        let v6 = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerAddress)
        );
        let _other = admission.admit(ip("2001:db8:1:3::1")).unwrap();
        drop(v6);
        assert_eq!(
            admission.addresses(),
            1,
            "a released address leaves the map"
        );
    }
}
