//! Where Redis is and how to log in: parsed once from `qrpush.url` (or a Client's URL) into a
//! validated value before any connection exists.
//!
//! The address is an enum so that TLS (`rediss://`), and later Sentinel or Cluster seed lists, are
//! new variants rather than a reshaped config. Messages never echo the URL: it may hold a password.
//!
//! TLS options are not URL parameters: they are settings (`tls_ca_file`, `tls_verify`,
//! `tls_server_name`) that `Config` puts into the `Address::Tls` of a `rediss://` URL, so they are
//! part of the endpoint's equality (the pool key) whatever order the settings were given in.

use std::fmt;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::error::{Error, Result, Subject};
use crate::secret::Secret;
use crate::tls::TlsOptions;

pub const DEFAULT_PORT: u16 = 6379;

/// How to reach one Redis server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `redis://host:port`; `host` is a name, an IPv4 address or a bracket-less IPv6 address.
    Tcp { host: String, port: u16 },
    /// `rediss://host:port`: TLS over TCP, with the options that decide whom it trusts.
    Tls {
        host: String,
        port: u16,
        tls: TlsOptions,
    },
    /// `unix:///path/redis.sock` (Unix only: Windows builds reject it when parsing).
    Unix { path: String },
    /// `redis-cluster://seed1:port,seed2:port` (`rediss-cluster://` with `tls`): where to ask for
    /// a Redis Cluster's slot map. Not one server: the client routes each command to the node
    /// owning its slot, through that node's own endpoint ([`Endpoint::member`]).
    Cluster {
        seeds: Vec<(String, u16)>,
        tls: Option<TlsOptions>,
    },
    /// `redis-sentinel://host1[:26379][,host2[:port]…][/db]#service` (`rediss-sentinel://` with
    /// `tls`): the Sentinels to ask for `service`'s primary. The credentials and database are the
    /// data nodes'; the client talks to the primary through its own endpoint
    /// ([`Endpoint::member`]).
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        tls: Option<TlsOptions>,
        /// The Sentinels' own credentials (the `sentinel_user`/`sentinel_password` settings,
        /// copied in by `Config` like the TLS options, so they are part of the endpoint's
        /// equality); none by default.
        auth: SentinelAuth,
    },
}

/// How QrPush logs in to the Sentinels themselves: their `requirepass` or ACL user, which need
/// not be the data nodes' (those are the URL's). `Debug` never shows the password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SentinelAuth {
    /// ACL user name; `None`: the default user.
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// The port of a Sentinel named without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A parsed endpoint: address, credentials and database. Two equal values share a pool.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub address: Address,
    /// ACL user name (`AUTH user password`); `None` means the default user.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Database for the login state keys (Pub/Sub itself ignores database numbers).
    pub db: u32,
}

/// URLs parsed lately, most recent last. A `new QrPush\Client($url)` per request parses the same
/// URLs (php.ini's default, php.ini's, `$url`) on every request; parsing is ~13,000 instructions
/// each, a lookup here a few hundred. Only successful parses are kept; the passwords in them are
/// already held, for the process's lifetime, by the pools they key.
static RECENTLY_PARSED: Lazy<Mutex<Vec<(String, Endpoint)>>> = Lazy::new(Default::default);
const REMEMBERED_URLS: usize = 16;

fn recently_parsed(url: &str) -> Option<Endpoint> {
    let parsed = RECENTLY_PARSED.lock();
    parsed
        .iter()
        .rev()
        .find(|(u, _)| u == url)
        .map(|(_, e)| e.clone())
}

fn remember_parsed(url: &str, endpoint: &Endpoint) {
    let mut parsed = RECENTLY_PARSED.lock();
    if parsed.len() == REMEMBERED_URLS {
        parsed.remove(0);
    }
    parsed.push((url.to_owned(), endpoint.clone()));
}

impl Endpoint {
    /// Parses `redis[s]://[user[:password]@]host[:port][/db]` or
    /// `unix:///path[?db=N&user=U&password=P]`. A `rediss://` URL gets the default TLS options
    /// (full verification against the built-in roots); see `with_tls`. Errors are about
    /// [`Subject::Url`].
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if let Some(endpoint) = recently_parsed(url) {
            return Ok(endpoint);
        }
        let endpoint = Self::parse_uncached(url).map_err(|e| e.about(Subject::Url))?;
        remember_parsed(url, &endpoint);
        Ok(endpoint)
    }

    fn parse_uncached(url: &str) -> Result<Self> {
        if url.is_empty() {
            return Err(Error::invalid("the Redis URL is empty"));
        }
        if let Some(rest) = url.strip_prefix("redis-cluster://") {
            return Self::parse_cluster(rest, false);
        }
        if let Some(rest) = url.strip_prefix("rediss-cluster://") {
            return Self::parse_cluster(rest, true);
        }
        if let Some(rest) = url.strip_prefix("redis-sentinel://") {
            return Self::parse_sentinel(rest, false);
        }
        if let Some(rest) = url.strip_prefix("rediss-sentinel://") {
            return Self::parse_sentinel(rest, true);
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::invalid(format!(
                "the Redis URL is not valid ({e}); expected redis://[user[:password]@]host[:port][/db] or unix:///path/redis.sock"
            ))
        })?;
        match parsed.scheme() {
            "redis" => Self::parse_tcp(&parsed),
            "rediss" => {
                let mut endpoint = Self::parse_tcp(&parsed)?;
                if let Address::Tcp { host, port } = endpoint.address {
                    endpoint.address = Address::Tls {
                        host,
                        port,
                        tls: TlsOptions::default(),
                    };
                }
                Ok(endpoint)
            }
            "unix" | "redis+unix" => Self::parse_unix(&parsed),
            other => Err(Error::invalid(format!(
                "unsupported URL scheme '{other}://'; expected redis://, rediss://, unix://, redis-cluster:// or redis-sentinel://"
            ))),
        }
    }

    fn parse_tcp(url: &url::Url) -> Result<Self> {
        // A '/', '?' or '#' written raw in a password ends the authority early, and the rest of
        // the credentials lands in the path, query or fragment, where the messages below would
        // echo it. Refuse such URLs without quoting any part of them.
        if url.fragment().is_some()
            || url.path().contains('@')
            || url.query().is_some_and(|q| q.contains('@'))
        {
            return Err(Error::invalid(MISPLACED_CREDENTIALS));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(Error::invalid("the Redis URL has no host")),
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(Error::invalid("the Redis URL has port 0"));
        }
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            path => parse_db(path)?,
        };
        if let Some(q) = url.query().filter(|q| !q.is_empty()) {
            let key = q.split('=').next().unwrap_or(q);
            return Err(Error::invalid(format!(
                "the Redis URL has an unknown query parameter '{key}'"
            )));
        }
        let username = Some(decode(url.username(), "user name")?).filter(|u| !u.is_empty());
        let password = match url.password() {
            Some(p) => Some(Secret::new(decode(p, "password")?)),
            None => None,
        };
        Ok(Endpoint {
            address: Address::Tcp { host, port },
            username,
            password,
            db,
        })
    }

    /// `[[user]:password@]seed1[:port][,seed2[:port]…]` after `redis-cluster://`.
    fn parse_cluster(rest: &str, tls: bool) -> Result<Self> {
        let (mut endpoint, seeds) = Self::parse_seed_list(rest, DEFAULT_PORT, "redis-cluster")?;
        if endpoint.db != 0 {
            return Err(Error::invalid(
                "the Redis Cluster URL names a database; a Redis Cluster has only database 0",
            ));
        }
        endpoint.address = Address::Cluster {
            seeds,
            tls: tls.then(TlsOptions::default),
        };
        Ok(endpoint)
    }

    /// `[[user]:password@]host1[:26379][,host2[:port]…][/db]#service` after `redis-sentinel://`.
    fn parse_sentinel(rest: &str, tls: bool) -> Result<Self> {
        let Some((rest, service)) = rest.rsplit_once('#') else {
            return Err(Error::invalid(
                "the Redis Sentinel URL names no service; expected redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db]#service",
            ));
        };
        if service.is_empty()
            || service.len() > 256
            || !service
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'@')
        {
            return Err(Error::invalid(
                "the Redis Sentinel URL's service name (after '#') must be 1 to 256 visible ASCII characters",
            ));
        }
        let (mut endpoint, sentinels) =
            Self::parse_seed_list(rest, DEFAULT_SENTINEL_PORT, "redis-sentinel")?;
        endpoint.address = Address::Sentinel {
            sentinels,
            service: service.to_string(),
            tls: tls.then(TlsOptions::default),
            auth: SentinelAuth::default(),
        };
        Ok(endpoint)
    }

    /// A comma-separated host list with credentials before it and a path after it. Each host is
    /// checked as a `redis://` URL's host and port would be (`default_port` when it names none);
    /// the credentials and the path are parsed with the first host, so they follow the same rules
    /// (and messages) as `redis://`. Returns the first host's endpoint (credentials, db) and the
    /// hosts, each once.
    fn parse_seed_list(
        rest: &str,
        default_port: u16,
        scheme: &str,
    ) -> Result<(Self, Vec<(String, u16)>)> {
        let expected =
            format!("expected {scheme}://[[user]:password@]host1[:port][,host2[:port]...]");
        let (userinfo, hosts_and_tail) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hosts_end = hosts_and_tail
            .find(['/', '?', '#'])
            .unwrap_or(hosts_and_tail.len());
        let (hosts, tail) = hosts_and_tail.split_at(hosts_end);
        let mut seeds = Vec::new();
        let mut first = None;
        for (i, seed) in hosts.split(',').enumerate() {
            if seed.is_empty() {
                return Err(Error::invalid(format!(
                    "the URL has an empty host; {expected}"
                )));
            }
            let has_port = match seed.strip_prefix('[') {
                Some(bracketed) => bracketed.contains("]:"),
                None => seed.contains(':'),
            };
            let seed = if has_port {
                seed.to_string()
            } else {
                format!("{seed}:{default_port}")
            };
            let as_url = match (i, userinfo) {
                (0, Some(userinfo)) => format!("redis://{userinfo}@{seed}{tail}"),
                (0, None) => format!("redis://{seed}{tail}"),
                _ => format!("redis://{seed}"),
            };
            let parsed = url::Url::parse(&as_url).map_err(|e| {
                Error::invalid(format!(
                    "the {scheme}:// URL is not valid ({e}); {expected}"
                ))
            })?;
            let endpoint = Self::parse_tcp(&parsed)?;
            let Address::Tcp { host, port } = endpoint.address.clone() else {
                unreachable!("parse_tcp makes a TCP address");
            };
            if !seeds.contains(&(host.clone(), port)) {
                seeds.push((host, port));
            }
            if i == 0 {
                first = Some(endpoint);
            }
        }
        Ok((first.expect("split yields at least one host"), seeds))
    }

    fn parse_unix(url: &url::Url) -> Result<Self> {
        if cfg!(not(unix)) {
            return Err(Error::invalid(
                "unix:// sockets are not available on this platform; use redis://host:port",
            ));
        }
        // unix://var/run/redis.sock would parse "var" as a host and silently use /run/redis.sock.
        if url.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(Error::invalid(
                "the unix:// URL must not have a host part; write the absolute path after three slashes, e.g. unix:///run/redis/redis.sock",
            ));
        }
        let path = decode(url.path(), "socket path")?;
        if !path.starts_with('/') || path.len() < 2 {
            return Err(Error::invalid(
                "the unix:// URL needs an absolute socket path, e.g. unix:///run/redis/redis.sock",
            ));
        }
        let mut endpoint = Endpoint {
            address: Address::Unix { path },
            username: None,
            password: None,
            db: 0,
        };
        // With a password in the query, a raw '&', '?' or '#' in or before it would make part of
        // it look like another parameter's value (or a fragment): then no message quotes the query.
        let has_password = url.query().is_some_and(|q| q.contains("pass"))
            || url
                .query_pairs()
                .any(|(key, _)| key == "password" || key == "pass");
        if url.fragment().is_some() {
            return Err(Error::invalid(MISPLACED_CREDENTIALS));
        }
        for (key, value) in url.query_pairs() {
            let result = match &*key {
                "db" => parse_db(&value).map(|db| endpoint.db = db),
                "user" | "username" => {
                    endpoint.username = Some(value.into_owned());
                    Ok(())
                }
                "password" | "pass" => {
                    endpoint.password = Some(Secret::new(value.into_owned()));
                    Ok(())
                }
                other => Err(Error::invalid(format!(
                    "the Redis URL has an unknown query parameter '{other}'"
                ))),
            };
            if let Err(e) = result {
                return Err(if has_password {
                    Error::invalid(MISPLACED_CREDENTIALS)
                } else {
                    e
                });
            }
        }
        Ok(endpoint)
    }

    /// The same endpoint with `tls` as its TLS options when it is a `rediss://` one (other
    /// addresses ignore TLS settings).
    pub fn with_tls(mut self, tls: &TlsOptions) -> Self {
        match &mut self.address {
            Address::Tls { tls: options, .. }
            | Address::Cluster {
                tls: Some(options), ..
            }
            | Address::Sentinel {
                tls: Some(options), ..
            } => options.clone_from(tls),
            _ => {}
        }
        self
    }

    /// The same endpoint with the Sentinels' own credentials, for a `redis-sentinel://` one (any
    /// other is returned unchanged).
    pub fn with_sentinel_auth(mut self, auth: &SentinelAuth) -> Self {
        if let Address::Sentinel { auth: current, .. } = &mut self.address {
            current.clone_from(auth);
        }
        self
    }

    /// The TLS options, for a `rediss://` endpoint.
    pub fn tls(&self) -> Option<&TlsOptions> {
        match &self.address {
            Address::Tls { tls, .. } => Some(tls),
            Address::Cluster { tls, .. } | Address::Sentinel { tls, .. } => tls.as_ref(),
            _ => None,
        }
    }

    /// A short label for messages: `127.0.0.1:6379` or `unix:/run/redis.sock`. No credentials.
    pub fn label(&self) -> String {
        match &self.address {
            Address::Tcp { host, port } | Address::Tls { host, port, .. } if host.contains(':') => {
                format!("[{host}]:{port}")
            }
            Address::Tcp { host, port } | Address::Tls { host, port, .. } => {
                format!("{host}:{port}")
            }
            Address::Unix { path } => format!("unix:{path}"),
            Address::Cluster { seeds, .. }
            | Address::Sentinel {
                sentinels: seeds, ..
            } => seeds
                .iter()
                .map(|(host, port)| host_port(host, *port))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Whether this is a Redis Cluster seed list (`redis-cluster://`).
    pub fn is_cluster(&self) -> bool {
        matches!(self.address, Address::Cluster { .. })
    }

    /// Whether this is a Sentinel list (`redis-sentinel://`).
    pub fn is_sentinel(&self) -> bool {
        matches!(self.address, Address::Sentinel { .. })
    }

    /// The endpoint of one data node of this Cluster or Sentinel-monitored service: its address
    /// (TLS like the URL), the URL's credentials and database.
    pub fn member(&self, host: &str, port: u16) -> Endpoint {
        let address = match &self.address {
            Address::Cluster { tls: Some(tls), .. } | Address::Sentinel { tls: Some(tls), .. } => {
                Address::Tls {
                    host: host.to_string(),
                    port,
                    tls: tls.clone(),
                }
            }
            _ => Address::Tcp {
                host: host.to_string(),
                port,
            },
        };
        Endpoint {
            address,
            username: self.username.clone(),
            password: self.password.clone(),
            db: self.db,
        }
    }

    /// The endpoint of one Sentinel of a `redis-sentinel://` URL: the Sentinels' own credentials
    /// (never the URL's, which are the data nodes'), TLS like the URL.
    pub fn sentinel(&self, host: &str, port: u16) -> Endpoint {
        let auth = match &self.address {
            Address::Sentinel { auth, .. } => auth.clone(),
            _ => SentinelAuth::default(),
        };
        Endpoint {
            username: auth.user,
            password: auth.password,
            db: 0,
            ..self.member(host, port)
        }
    }

    /// The URL with the password replaced, for phpinfo and stats.
    pub fn redacted_url(&self) -> String {
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:<redacted>@"),
            (None, Some(_)) => ":<redacted>@".to_string(),
            (Some(u), None) => format!("{u}@"),
            (None, None) => String::new(),
        };
        match &self.address {
            Address::Tcp { .. } => format!("redis://{auth}{}/{}", self.label(), self.db),
            Address::Tls { .. } => format!("rediss://{auth}{}/{}", self.label(), self.db),
            Address::Unix { path } => format!("unix://{auth}{path}?db={}", self.db),
            Address::Cluster { tls: None, .. } => format!("redis-cluster://{auth}{}", self.label()),
            Address::Cluster { tls: Some(_), .. } => {
                format!("rediss-cluster://{auth}{}", self.label())
            }
            Address::Sentinel { service, tls, .. } => format!(
                "{}://{auth}{}/{}#{service}",
                if tls.is_some() {
                    "rediss-sentinel"
                } else {
                    "redis-sentinel"
                },
                self.label(),
                self.db
            ),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The error for a URL whose credentials were not percent-encoded and so spill out of place.
const MISPLACED_CREDENTIALS: &str = "the Redis URL has a '#' or an '@' after the host, or an invalid query after a password: percent-encode '/', '?', '#', '@', '&' and '=' in the user name and password (%2F, %3F, %23, %40, %26, %3D)";

fn parse_db(text: &str) -> Result<u32> {
    text.parse::<u32>().map_err(|_| {
        Error::invalid(format!(
            "the Redis URL's database must be a number like /0, got '{}'",
            text.chars().take(20).collect::<String>()
        ))
    })
}

fn decode(part: &str, what: &str) -> Result<String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::invalid(format!("the Redis URL's {what} is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_parse_is_the_same_endpoint_and_the_memory_is_bounded() {
        let urls: Vec<String> = (0..REMEMBERED_URLS + 4)
            .map(|i| {
                format!(
                    "redis://u{i}:p{i}@127.0.0.{}:{}/{}",
                    i + 1,
                    7000 + i,
                    i % 16
                )
            })
            .collect();
        let first: Vec<Endpoint> = urls.iter().map(|u| Endpoint::parse(u).unwrap()).collect();
        for (url, endpoint) in urls.iter().zip(&first) {
            assert_eq!(&Endpoint::parse(url).unwrap(), endpoint);
            assert_eq!(endpoint, &Endpoint::parse_uncached(url).unwrap());
        }
        assert!(RECENTLY_PARSED.lock().len() <= REMEMBERED_URLS);
        // Failures are not remembered: the same bad URL fails the same way every time.
        for _ in 0..2 {
            assert!(Endpoint::parse("redis://host:notaport").is_err());
        }
    }

    #[test]
    fn cluster_urls() {
        let seeds = |e: &Endpoint| match &e.address {
            Address::Cluster { seeds, .. } => seeds.clone(),
            other => panic!("not a Cluster address: {other:?}"),
        };
        let e =
            Endpoint::parse("redis-cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002").unwrap();
        assert_eq!(
            seeds(&e),
            vec![
                ("10.0.0.1".to_string(), 7000),
                ("10.0.0.2".to_string(), DEFAULT_PORT),
                ("::1".to_string(), 7002)
            ]
        );
        assert_eq!(e.username.as_deref(), Some("u"));
        assert_eq!(e.password.as_ref().map(|p| p.expose()), Some("p@ss"));
        assert!(e.is_cluster() && e.tls().is_none());
        assert_eq!(
            e.redacted_url(),
            "redis-cluster://u:<redacted>@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002"
        );
        let node = e.member("10.0.0.3", 7003);
        assert_eq!(node.address, tcp("10.0.0.3", 7003));
        assert_eq!(node.password.as_ref().map(|p| p.expose()), Some("p@ss"));

        let e = Endpoint::parse("rediss-cluster://:secret@h1:7000").unwrap();
        assert!(e.tls().is_some());
        assert!(matches!(e.member("h2", 7001).address, Address::Tls { .. }));
        assert!(e
            .redacted_url()
            .starts_with("rediss-cluster://:<redacted>@h1:7000"));

        for (bad, says) in [
            ("redis-cluster://", "empty host"),
            ("redis-cluster://h1:7000,,h2:7001", "empty host"),
            ("redis-cluster://h1:7000/3", "only database 0"),
            ("redis-cluster://h1:notaport", "not valid"),
            ("redis-cluster://h1:7000?x=1", "unknown query parameter"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(e.message().contains(says), "{bad}: {}", e.message());
        }
        let e = Endpoint::parse("redis-cluster://:hunter2@h1:0").unwrap_err();
        assert!(!e.message().contains("hunter2"));
    }

    #[test]
    fn sentinel_urls() {
        let e = Endpoint::parse("redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380/3#mymaster").unwrap();
        match &e.address {
            Address::Sentinel {
                sentinels,
                service,
                tls: None,
                auth,
            } => {
                assert_eq!(auth, &SentinelAuth::default());
                assert_eq!(
                    sentinels,
                    &vec![
                        ("10.0.0.1".to_string(), DEFAULT_SENTINEL_PORT),
                        ("10.0.0.2".to_string(), 26380)
                    ]
                );
                assert_eq!(service, "mymaster");
            }
            other => panic!("not a Sentinel address: {other:?}"),
        }
        assert_eq!(e.db, 3);
        assert_eq!(
            e.redacted_url(),
            "redis-sentinel://:<redacted>@10.0.0.1:26379,10.0.0.2:26380/3#mymaster"
        );
        let primary = e.member("10.0.0.9", 6379);
        assert_eq!((primary.db, primary.password.is_some()), (3, true));
        let sentinel = e.sentinel("10.0.0.1", 26379);
        assert_eq!((sentinel.db, sentinel.password.is_none()), (0, true));
        // The Sentinels' own credentials go to the Sentinels only, never to the data nodes.
        let auth = SentinelAuth {
            user: Some("watcher".into()),
            password: Some(Secret::new("s-pw")),
        };
        let e = e.with_sentinel_auth(&auth);
        let sentinel = e.sentinel("10.0.0.1", 26379);
        assert_eq!(sentinel.username.as_deref(), Some("watcher"));
        assert_eq!(sentinel.password.as_ref().map(Secret::expose), Some("s-pw"));
        let primary = e.member("10.0.0.9", 6379);
        assert_eq!(primary.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(primary.username, None);
        assert!(!format!("{e:?} {}", e.redacted_url()).contains("s-pw"));
        assert_ne!(
            e,
            Endpoint::parse("redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380/3#mymaster").unwrap()
        );
        let e = Endpoint::parse("rediss-sentinel://[::1]#s").unwrap();
        assert!(e.tls().is_some() && e.is_sentinel());
        assert_eq!(e.label(), "[::1]:26379");
        for (bad, says) in [
            ("redis-sentinel://h1:26379", "names no service"),
            ("redis-sentinel://h1:26379#", "service name"),
            ("redis-sentinel://h1,,h2#s", "empty host"),
            ("redis-sentinel://h1/x#s", "database"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(e.message().contains(says), "{bad}: {}", e.message());
        }
    }

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn valid_urls() {
        // (url, address, user, password, db)
        type Case<'a> = (&'a str, Address, Option<&'a str>, Option<&'a str>, u32);
        let cases: &[Case] = &[
            (
                "redis://127.0.0.1:6379",
                tcp("127.0.0.1", 6379),
                None,
                None,
                0,
            ),
            ("redis://localhost", tcp("localhost", 6379), None, None, 0),
            (
                "redis://127.0.0.1:6380/3",
                tcp("127.0.0.1", 6380),
                None,
                None,
                3,
            ),
            (
                "redis://:s3cret@127.0.0.1",
                tcp("127.0.0.1", 6379),
                None,
                Some("s3cret"),
                0,
            ),
            (
                "redis://app:p%40ss@h:1/2",
                tcp("h", 1),
                Some("app"),
                Some("p@ss"),
                2,
            ),
            ("redis://app@h", tcp("h", 6379), Some("app"), None, 0),
            ("redis://[::1]:7000", tcp("::1", 7000), None, None, 0),
            (
                "rediss://u:pw@h:6380/1",
                Address::Tls {
                    host: "h".into(),
                    port: 6380,
                    tls: TlsOptions::default(),
                },
                Some("u"),
                Some("pw"),
                1,
            ),
            ("  redis://h:1/  ", tcp("h", 1), None, None, 0),
        ];
        for (url, address, user, pass, db) in cases {
            let e = Endpoint::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(&e.address, address, "{url}");
            assert_eq!(e.username.as_deref(), *user, "{url}");
            assert_eq!(e.password.as_ref().map(|p| p.expose()), *pass, "{url}");
            assert_eq!(e.db, *db, "{url}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn unix_urls() {
        let e = Endpoint::parse("unix:///run/redis.sock?db=2&password=x").unwrap();
        assert_eq!(
            e.address,
            Address::Unix {
                path: "/run/redis.sock".into()
            }
        );
        assert_eq!(e.db, 2);
        assert_eq!(e.redacted_url(), "unix://:<redacted>@/run/redis.sock?db=2");
    }

    #[test]
    fn invalid_urls_have_exact_messages_without_secrets() {
        let cases: &[(&str, &str)] = &[
            ("", "the Redis URL is empty"),
            (
                "http://h",
                "unsupported URL scheme 'http://'; expected redis://, rediss://, unix://, redis-cluster:// or redis-sentinel://",
            ),
            (
                "redis://h/x",
                "the Redis URL's database must be a number like /0, got 'x'",
            ),
            ("redis://h:0", "the Redis URL has port 0"),
            (
                "redis://h?timeout=1",
                "the Redis URL has an unknown query parameter 'timeout'",
            ),
            (
                "rediss://h?ca_file=/ca.pem",
                "the Redis URL has an unknown query parameter 'ca_file'",
            ),
            (
                "unix://relative",
                if cfg!(unix) {
                    "the unix:// URL must not have a host part; write the absolute path after three slashes, e.g. unix:///run/redis/redis.sock"
                } else {
                    "unix:// sockets are not available on this platform; use redis://host:port"
                },
            ),
        ];
        for (url, message) in cases {
            let err = Endpoint::parse(url).expect_err(url);
            assert_eq!(err.message(), *message, "{url}");
        }
        let err = Endpoint::parse("redis://u:topsecret@h:99999").unwrap_err();
        assert!(
            err.message().starts_with("the Redis URL is not valid"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("topsecret"));
    }

    #[test]
    fn redaction() {
        let e = Endpoint::parse("redis://app:hunter2@10.0.0.1:6380/1").unwrap();
        assert_eq!(e.redacted_url(), "redis://app:<redacted>@10.0.0.1:6380/1");
        assert_eq!(format!("{e:?}"), "redis://app:<redacted>@10.0.0.1:6380/1");
        assert_eq!(e.label(), "10.0.0.1:6380");
        let e = Endpoint::parse("rediss://:hunter2@[::1]:6380").unwrap();
        assert_eq!(e.redacted_url(), "rediss://:<redacted>@[::1]:6380/0");
    }

    #[test]
    fn tls_options_are_part_of_the_endpoint_identity() {
        let plain = Endpoint::parse("rediss://h:6380").unwrap();
        let custom = plain.clone().with_tls(&TlsOptions {
            ca_file: Some("/ca.pem".into()),
            ..TlsOptions::default()
        });
        assert_ne!(plain, custom, "another CA is another pool");
        assert_eq!(custom.tls().unwrap().ca_file.as_deref(), Some("/ca.pem"));
        let tcp = Endpoint::parse("redis://h:6380").unwrap();
        assert_eq!(tcp.clone().with_tls(&custom.tls().unwrap().clone()), tcp);
    }
}
