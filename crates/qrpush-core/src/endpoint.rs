//! Where Redis is and how to log in: parsed once from `qrpush.url` (or a Client's URL) into a
//! validated value before any connection exists.
//!
//! The address is an enum so that TLS (`rediss://`), and later Sentinel or Cluster seed lists, are
//! new variants rather than a reshaped config. Messages never echo the URL: it may hold a password.

use std::fmt;

use crate::error::{Error, Result};
use crate::secret::Secret;

pub const DEFAULT_PORT: u16 = 6379;

/// How to reach one Redis server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `redis://host:port`; `host` is a name, an IPv4 address or a bracket-less IPv6 address.
    Tcp { host: String, port: u16 },
    /// `unix:///path/redis.sock` (Unix only: Windows builds reject it when parsing).
    Unix { path: String },
}

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

impl Endpoint {
    /// Parses `redis://[user[:password]@]host[:port][/db]` or `unix:///path[?db=N&user=U&password=P]`.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::invalid("the Redis URL is empty"));
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::invalid(format!(
                "the Redis URL is not valid ({e}); expected redis://[user[:password]@]host[:port][/db] or unix:///path/redis.sock"
            ))
        })?;
        match parsed.scheme() {
            "redis" => Self::parse_tcp(&parsed),
            "unix" | "redis+unix" => Self::parse_unix(&parsed),
            "rediss" => Err(Error::invalid(
                "rediss:// (TLS) is not supported by this build of qrpush yet; use redis:// on a trusted network",
            )),
            other => Err(Error::invalid(format!(
                "unsupported URL scheme '{other}://'; expected redis:// or unix://"
            ))),
        }
    }

    fn parse_tcp(url: &url::Url) -> Result<Self> {
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
        for (key, value) in url.query_pairs() {
            match &*key {
                "db" => endpoint.db = parse_db(&value)?,
                "user" | "username" => endpoint.username = Some(value.into_owned()),
                "password" | "pass" => endpoint.password = Some(Secret::new(value.into_owned())),
                other => {
                    return Err(Error::invalid(format!(
                        "the Redis URL has an unknown query parameter '{other}'"
                    )))
                }
            }
        }
        Ok(endpoint)
    }

    /// A short label for messages: `127.0.0.1:6379` or `unix:/run/redis.sock`. No credentials.
    pub fn label(&self) -> String {
        match &self.address {
            Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Address::Tcp { host, port } => format!("{host}:{port}"),
            Address::Unix { path } => format!("unix:{path}"),
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
            Address::Unix { path } => format!("unix://{auth}{path}?db={}", self.db),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

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

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn valid_urls() {
        let cases: &[(&str, Address, Option<&str>, Option<&str>, u32)] = &[
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
                "unsupported URL scheme 'http://'; expected redis:// or unix://",
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
                "unix://relative",
                "the unix:// URL must not have a host part; write the absolute path after three slashes, e.g. unix:///run/redis/redis.sock",
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
    }
}
