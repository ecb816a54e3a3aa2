//! Flags and environment variables, and the validated [`Settings`] built from them.
//!
//! The Redis side (URL, channel prefix, login channel and mode, the token secret) is the
//! extension's own configuration: the values go through `qrpush_core::Config::set`, the same
//! parser and validation as the `qrpush.*` php.ini directives, so both sides agree on every channel
//! name and on the secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderName;
use clap::Parser;
use qrpush_core::config::{
    name, LoginChannelMode, DEFAULT_CHANNEL_PREFIX, DEFAULT_LOGIN_CHANNEL,
    DEFAULT_LOGIN_CHANNEL_MODE, DEFAULT_URL, MIN_GATEWAY_SECRET_LEN,
};
use qrpush_core::login::gateway_token::Key;
use qrpush_core::Config;

use crate::admission::Cidr;

const AFTER_HELP: &str = "\
THE SECRET
  Browsers connect to /ws/?token=<token>, where the token comes from QrPush\\Login::start()
  (array key gateway_token). It is signed with php.ini's qrpush.gateway_secret; give the gateway
  the same secret (at least 16 bytes) in a file (--secret-file, read once at startup, trimmed) or
  in the environment variable QRPUSH_GATEWAY_SECRET. There is no flag for the secret itself: flags
  show in `ps`. Wrong or expired tokens are closed with code 4001.

ROTATING THE SECRET
  Each token names the key that signed it (an id derived from the secret), and the gateway accepts
  two: the current secret and a previous one (--previous-secret-file or QRPUSH_GATEWAY_PREVIOUS_SECRET).
  1. Restart the gateways with the new secret as the current one and the old one as the previous.
  2. Switch php.ini's qrpush.gateway_secret to the new secret.
  3. When the last old token has expired (qrpush.login_pending_ttl + qrpush.login_approved_ttl +
     --clock-skew after step 2), restart the gateways without the previous secret.
  Browsers that reconnect meanwhile keep their socket; the log line at startup lists the key ids.

CLOCKS
  A token's expiry is on Redis's clock (Login::start() reads it there); the gateway checks it on its
  own clock and allows --clock-skew between the two: a token is accepted until its expiry plus the
  skew, and an open socket is closed then. The gateway measures its clock against Redis's TIME on
  every (re)connect (metric qrpush_gateway_redis_clock_offset_seconds) and warns when the
  difference exceeds --clock-skew.

ENDPOINTS
  GET /ws/ (WebSocket)  ?token=... ; the first message is the login's status, then its events
  GET /healthz          200 when Redis is subscribed, 503 otherwise (JSON body)
  GET /metrics          Prometheus text format

CLOSE CODES
  1000 the login is finished (its final state was just sent)   1001 shutting down (reconnect)
  4001 wrong or expired token (also when it expires on an open socket)   4004 no such login (any more)
  4029 too many sockets for this login. Too slow or silent sockets are dropped (the client sees 1006).
  Refused before the upgrade: HTTP 403 foreign Origin, 429 too many sockets from this address,
  503 too many sockets in all.

BEHIND A PROXY
  Sockets are counted per client address. Behind nginx, give --trusted-proxies (e.g. 127.0.0.1,::1):
  the proxy's X-Forwarded-For then names the client; otherwise every client counts as the proxy.

Every flag can also be set through the environment variable shown in [env: ...].
Durations: 250ms, 20s, 2m, or plain seconds (1.5).";

/// Command line of `qrpush-gateway`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "qrpush-gateway",
    version,
    about = "QrPush's WebSocket gateway: forwards QR-login events from Redis Pub/Sub to the browsers waiting for them",
    long_about = "QrPush's WebSocket gateway: forwards QR-login events from Redis Pub/Sub to the browsers \
        waiting for them.\n\nPHP (QrPush\\Login) publishes every transition of a login to Redis; each \
        browser holds one WebSocket to a gateway, authenticated by a short-lived token, and receives \
        first the login's current status, then its events as they are published. Run one or more \
        gateways behind a round-robin proxy (nginx: location /ws/): each forwards only to its own sockets.",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct Args {
    /// Address to listen on (WebSocket, /healthz, /metrics). Keep it private: put nginx in front.
    #[arg(long, env = "QRPUSH_GATEWAY_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// Redis, as php.ini's qrpush.url: redis://[user[:password]@]host[:port][/db], unix:///path,
    /// redis-sentinel://host1[:26379][,host2[:port]…][/db]#service (follows the primary) or
    /// redis-cluster://seed1:port[,seed2:port…] (subscribes on the node owning each channel).
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_REDIS_URL",
        default_value = DEFAULT_URL,
        hide_env_values = true
    )]
    pub redis_url: String,

    /// As php.ini's qrpush.channel_prefix.
    #[arg(long, env = "QRPUSH_GATEWAY_CHANNEL_PREFIX", default_value = DEFAULT_CHANNEL_PREFIX)]
    pub channel_prefix: String,

    /// As php.ini's qrpush.login_channel.
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_LOGIN_CHANNEL",
        default_value = DEFAULT_LOGIN_CHANNEL
    )]
    pub login_channel: String,

    /// As php.ini's qrpush.login_channel_mode: `single` (one channel, routed by sessionId) or
    /// `per_login` (<login_channel>:<id>, subscribed while a socket of that login is open).
    #[arg(long, env = "QRPUSH_GATEWAY_CHANNEL_MODE", default_value = DEFAULT_LOGIN_CHANNEL_MODE.as_str(),
          value_parser = ["single", "per_login"])]
    pub channel_mode: String,

    /// On redis-cluster:// only, as php.ini's qrpush.cluster_publish: `sharded` (SSUBSCRIBE each
    /// channel on the primary owning its slot, where the extension SPUBLISHes) or `global`
    /// (SUBSCRIBE on one node, for the extension's classic PUBLISH).
    #[arg(long, env = "QRPUSH_GATEWAY_CLUSTER_PUBLISH", default_value = "sharded",
          value_parser = ["sharded", "global"])]
    pub cluster_publish: String,

    /// File holding the token secret (php.ini's qrpush.gateway_secret). Or set QRPUSH_GATEWAY_SECRET.
    #[arg(long, env = "QRPUSH_GATEWAY_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,

    /// File holding the previous token secret, still accepted while a rotation is under way (see
    /// ROTATING THE SECRET). Or set QRPUSH_GATEWAY_PREVIOUS_SECRET.
    #[arg(long, env = "QRPUSH_GATEWAY_PREVIOUS_SECRET_FILE")]
    pub previous_secret_file: Option<PathBuf>,

    /// How far the gateway's clock may be from Redis's: tokens are accepted until their expiry plus
    /// this (see CLOCKS). At most 5m.
    #[arg(long, env = "QRPUSH_GATEWAY_CLOCK_SKEW", default_value = "5s", value_parser = parse_duration)]
    pub clock_skew: Duration,

    /// Origins allowed to connect, comma-separated (e.g. https://example.com). Empty: same origin
    /// as the Host header only. `*`: any. Requests without an Origin (not from a browser) are allowed.
    #[arg(long, env = "QRPUSH_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Send a WebSocket ping this often.
    #[arg(long, env = "QRPUSH_GATEWAY_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Drop a socket that has not answered a ping within this time.
    #[arg(long, env = "QRPUSH_GATEWAY_PING_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub ping_timeout: Duration,

    /// Messages queued per socket; a socket whose queue is full is too slow and is dropped.
    #[arg(long, env = "QRPUSH_GATEWAY_SEND_QUEUE", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub send_queue: u32,

    /// Drop a socket when writing one message to it takes longer than this.
    #[arg(long, env = "QRPUSH_GATEWAY_SEND_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// How a general channel's live message reaches its sockets: `direct`, the fan-out writes the
    /// frame to each idle socket itself (Unix; about half the CPU per socket); `queue`, a copy is
    /// queued to each socket's task (the only way elsewhere).
    #[arg(long, env = "QRPUSH_GATEWAY_FANOUT", default_value = "direct", value_parser = ["direct", "queue"])]
    pub fanout: String,

    /// Refuse new sockets (HTTP 503) beyond this many open at once.
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_MAX_CONNECTIONS",
        default_value_t = 100_000
    )]
    pub max_connections: u64,

    /// Sockets one login (one token) may hold at once; more are closed with 4029.
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_MAX_SOCKETS_PER_LOGIN",
        default_value_t = 8
    )]
    pub max_sockets_per_login: usize,

    /// Sockets one client address (an IPv6 /64) may hold at once; more are refused with HTTP 429.
    /// Behind a proxy, list it in --trusted-proxies, or every client counts as the proxy.
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_MAX_SOCKETS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_sockets_per_address: usize,

    /// Proxies whose --real-ip-header names the client, comma-separated addresses or blocks
    /// (e.g. 127.0.0.1,::1 for nginx on the same host). Empty: the TCP peer is the client.
    #[arg(long, env = "QRPUSH_GATEWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// The header a trusted proxy puts the client's address in (the rightmost untrusted entry
    /// counts): X-Forwarded-For, or e.g. X-Real-IP if the proxy overwrites that one.
    #[arg(
        long,
        env = "QRPUSH_GATEWAY_REAL_IP_HEADER",
        default_value = "X-Forwarded-For"
    )]
    pub real_ip_header: String,

    /// Close an HTTP connection whose request head is not complete this long after it started
    /// (slow or stalled clients hold nothing for longer).
    #[arg(long, env = "QRPUSH_GATEWAY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// First delay before reconnecting to Redis; doubles per failed attempt.
    #[arg(long, env = "QRPUSH_GATEWAY_REDIS_BACKOFF_MIN", default_value = "100ms", value_parser = parse_duration)]
    pub redis_backoff_min: Duration,

    /// Longest delay between Redis reconnect attempts.
    #[arg(long, env = "QRPUSH_GATEWAY_REDIS_BACKOFF_MAX", default_value = "5s", value_parser = parse_duration)]
    pub redis_backoff_max: Duration,

    /// PING the Pub/Sub connection this often, to notice a dead link that sent no FIN.
    #[arg(long, env = "QRPUSH_GATEWAY_REDIS_PING_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub redis_ping_interval: Duration,

    /// Time bound of one Redis operation (connect, subscribe, ping, status read).
    #[arg(long, env = "QRPUSH_GATEWAY_REDIS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// On SIGTERM/SIGINT: close every socket with 1001, then wait at most this long for them.
    #[arg(long, env = "QRPUSH_GATEWAY_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log filter (tracing/RUST_LOG syntax): error, warn, info, debug, or e.g. qrpush_gateway=debug.
    #[arg(long, env = "QRPUSH_GATEWAY_LOG", default_value = "info")]
    pub log: String,
}

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The extension's configuration: endpoint, channel names and mode, the token secret.
    pub core: Config,
    /// The keys tokens may be signed with: the current secret's, then the previous one's (if any).
    pub token_keys: Vec<Key>,
    /// Allowed difference between the gateway's clock and Redis's, when checking token expiry.
    pub clock_skew: Duration,
    /// Lowercased origins without a trailing slash; empty: same origin; contains "*": any.
    pub allowed_origins: Vec<String>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub send_queue: usize,
    pub send_timeout: Duration,
    /// The fan-out writes live frames to idle general-channel sockets itself (`--fanout direct`).
    pub direct_fanout: bool,
    pub max_connections: usize,
    pub max_sockets_per_login: usize,
    pub max_sockets_per_address: usize,
    /// Peers whose `real_ip_header` is believed.
    pub trusted_proxies: Vec<Cidr>,
    pub real_ip_header: HeaderName,
    pub header_read_timeout: Duration,
    pub redis_backoff_min: Duration,
    pub redis_backoff_max: Duration,
    pub redis_ping_interval: Duration,
    pub redis_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// The secrets given in the environment (never as flags: flags show in `ps`).
#[derive(Default)]
pub struct SecretsFromEnv {
    /// QRPUSH_GATEWAY_SECRET
    pub current: Option<String>,
    /// QRPUSH_GATEWAY_PREVIOUS_SECRET (empty: none)
    pub previous: Option<String>,
}

impl SecretsFromEnv {
    pub fn read() -> SecretsFromEnv {
        SecretsFromEnv {
            current: std::env::var("QRPUSH_GATEWAY_SECRET").ok(),
            previous: std::env::var("QRPUSH_GATEWAY_PREVIOUS_SECRET").ok(),
        }
    }
}

/// The longest accepted --clock-skew: beyond it, fix the clocks (NTP) rather than the tokens.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The file's text, or why it cannot be read.
fn read_secret_file(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot read it: {e}", path.display()))
}

impl Settings {
    /// Validates `args`; a secret comes from its `--…-file` flag, else from `env`.
    pub fn from_args(args: &Args, env: SecretsFromEnv) -> anyhow::Result<Settings> {
        let secret = match (&args.secret_file, env.current) {
            (Some(path), _) => read_secret_file("--secret-file", path)?,
            (None, Some(value)) => value,
            (None, None) => anyhow::bail!(
                "no secret: give --secret-file PATH or QRPUSH_GATEWAY_SECRET (the same value as php.ini's qrpush.gateway_secret)"
            ),
        };
        let previous = match (&args.previous_secret_file, env.previous) {
            (Some(path), _) => Some(read_secret_file("--previous-secret-file", path)?),
            (None, Some(value)) if !value.trim().is_empty() => Some(value),
            (None, _) => None,
        };
        let mut core = Config::default();
        for (name, value, flag) in [
            (name::URL, args.redis_url.as_str(), "--redis-url"),
            (
                name::CHANNEL_PREFIX,
                &args.channel_prefix,
                "--channel-prefix",
            ),
            (name::LOGIN_CHANNEL, &args.login_channel, "--login-channel"),
            (
                name::LOGIN_CHANNEL_MODE,
                &args.channel_mode,
                "--channel-mode",
            ),
            (
                "cluster_publish",
                &args.cluster_publish,
                "--cluster-publish",
            ),
            (name::GATEWAY_SECRET, &secret, "the secret"),
        ] {
            core.set(name, value)
                .map_err(|e| anyhow::anyhow!("{flag}: {}", e.detail()))?;
        }
        let Some(current) = &core.gateway_secret else {
            anyhow::bail!("the secret is empty");
        };
        let mut token_keys = vec![Key::new(current.expose().as_bytes())];
        if let Some(previous) = previous {
            // Trimmed like every setting (a secret file's newline is not part of it).
            let previous = previous.trim();
            if previous.len() < MIN_GATEWAY_SECRET_LEN {
                anyhow::bail!(
                    "the previous secret must be at least {MIN_GATEWAY_SECRET_LEN} bytes, got {}",
                    previous.len()
                );
            }
            token_keys.push(Key::new(previous.as_bytes()));
        }
        if args.clock_skew > MAX_CLOCK_SKEW {
            anyhow::bail!("--clock-skew must be at most 5m");
        }
        // Status reads go through the core's client: bound them like the Pub/Sub operations.
        let seconds = format!("{}", args.redis_timeout.as_secs_f64());
        core.set(name::CONNECT_TIMEOUT, &seconds)
            .and_then(|()| core.set(name::TIMEOUT, &seconds))
            .map_err(|e| anyhow::anyhow!("--redis-timeout: {}", e.detail()))?;
        let mut allowed_origins = Vec::new();
        for origin in &args.allowed_origins {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            if origin.is_empty() {
                continue;
            }
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                anyhow::bail!(
                    "--allowed-origins: '{origin}' is not an origin (expected like https://example.com[:port], or *)"
                );
            }
            allowed_origins.push(origin);
        }
        for (name, value) in [
            ("--ping-interval", args.ping_interval),
            ("--ping-timeout", args.ping_timeout),
            ("--send-timeout", args.send_timeout),
            ("--redis-backoff-min", args.redis_backoff_min),
            ("--redis-backoff-max", args.redis_backoff_max),
            ("--redis-ping-interval", args.redis_ping_interval),
            ("--redis-timeout", args.redis_timeout),
            ("--header-read-timeout", args.header_read_timeout),
        ] {
            if value.is_zero() {
                anyhow::bail!("{name} must be greater than 0");
            }
        }
        for (name, value) in [
            ("--max-connections", args.max_connections),
            ("--max-sockets-per-login", args.max_sockets_per_login as u64),
            (
                "--max-sockets-per-address",
                args.max_sockets_per_address as u64,
            ),
        ] {
            if value == 0 {
                anyhow::bail!("{name} must be at least 1");
            }
        }
        let trusted_proxies = args
            .trusted_proxies
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        let real_ip_header = HeaderName::from_bytes(args.real_ip_header.trim().as_bytes())
            .map_err(|_| {
                anyhow::anyhow!(
                    "--real-ip-header: '{}' is not a header name",
                    args.real_ip_header
                )
            })?;
        Ok(Settings {
            listen: args.listen,
            core,
            token_keys,
            clock_skew: args.clock_skew,
            allowed_origins,
            ping_interval: args.ping_interval,
            ping_timeout: args.ping_timeout,
            send_queue: args.send_queue as usize,
            send_timeout: args.send_timeout,
            direct_fanout: args.fanout == "direct",
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_sockets_per_login: args.max_sockets_per_login,
            max_sockets_per_address: args.max_sockets_per_address,
            trusted_proxies,
            real_ip_header,
            header_read_timeout: args.header_read_timeout,
            redis_backoff_min: args.redis_backoff_min,
            redis_backoff_max: args.redis_backoff_max.max(args.redis_backoff_min),
            redis_ping_interval: args.redis_ping_interval,
            redis_timeout: args.redis_timeout,
            shutdown_timeout: args.shutdown_timeout,
        })
    }

    /// Settings from flags given as a list (the defaults for the rest), for tests and tools.
    pub fn from_flags<I, S>(flags: I, secret: &str) -> anyhow::Result<Settings>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(
            std::iter::once(std::ffi::OsString::from("qrpush-gateway"))
                .chain(flags.into_iter().map(Into::into)),
        )?;
        Settings::from_args(
            &args,
            SecretsFromEnv {
                current: Some(secret.to_string()),
                previous: None,
            },
        )
    }

    pub fn mode(&self) -> LoginChannelMode {
        self.core.login_channel_mode
    }

    /// The ids of the token keys, for the startup log: `current` or `current, previous`.
    pub fn key_ids(&self) -> String {
        let ids: Vec<&str> = self.token_keys.iter().map(Key::id).collect();
        ids.join(", ")
    }
}

/// `250ms`, `20s`, `2m`, or plain (fractional) seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (like 250ms, 20s, 2m or 1.5)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{text}': unknown unit (use ms, s or m)")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("'{text}' is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cluster_publish_is_the_extension_setting() {
        use qrpush_core::ClusterPublish;
        let s = Settings::from_flags(Vec::<String>::new(), "0123456789abcdef").unwrap();
        assert_eq!(s.core.cluster_publish, ClusterPublish::Sharded);
        let s = Settings::from_flags(["--cluster-publish", "global"], "0123456789abcdef").unwrap();
        assert_eq!(s.core.cluster_publish, ClusterPublish::Global);
        assert!(Settings::from_flags(["--cluster-publish", "both"], "0123456789abcdef").is_err());
        let s = Settings::from_flags(
            [
                "--redis-url",
                "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380#svc",
            ],
            "0123456789abcdef",
        )
        .unwrap();
        assert!(s.core.endpoint.is_sentinel());
        let s = Settings::from_flags(
            [
                "--redis-url",
                "redis-cluster://127.0.0.1:7000,127.0.0.1:7001",
            ],
            "0123456789abcdef",
        )
        .unwrap();
        assert!(s.core.endpoint.is_cluster());
    }

    #[test]
    fn defaults_and_validation() {
        let s = Settings::from_flags(Vec::<String>::new(), "0123456789abcdef").unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8090");
        assert_eq!(s.mode(), LoginChannelMode::Single);
        assert_eq!(s.token_keys.len(), 1);
        assert_eq!(s.key_ids(), Key::new(b"0123456789abcdef").id());
        assert_eq!(s.clock_skew, Duration::from_secs(5));
        assert_eq!(s.ping_interval, Duration::from_secs(20));
        assert!(s.allowed_origins.is_empty());
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.max_sockets_per_address, 256);
        assert!(
            s.trusted_proxies.is_empty(),
            "no proxy is trusted unless named"
        );
        assert_eq!(s.real_ip_header, "x-forwarded-for");
        // The Redis side defaults to the extension's own defaults (only the time bounds differ).
        let mut php = Config::default();
        php.set("gateway_secret", "0123456789abcdef").unwrap();
        php.set("connect_timeout", "2").unwrap();
        php.set("timeout", "2").unwrap();
        assert_eq!(s.core, php);
        let e = Settings::from_flags(Vec::<String>::new(), "short").unwrap_err();
        assert!(e.to_string().contains("at least 16 bytes"), "{e}");
        let e = Settings::from_flags(["--redis-url", "ftp://x"], "0123456789abcdef").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--redis-url: unsupported URL scheme"),
            "{e}"
        );
        let e = Settings::from_flags(["--allowed-origins", "example.com"], "0123456789abcdef")
            .unwrap_err();
        assert!(e.to_string().contains("is not an origin"), "{e}");
        let s = Settings::from_flags(
            [
                "--allowed-origins",
                "HTTPS://Example.com/,http://127.0.0.1:8080",
                "--channel-mode",
                "per_login",
            ],
            "0123456789abcdef",
        )
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://example.com", "http://127.0.0.1:8080"]
        );
        assert_eq!(s.mode(), LoginChannelMode::PerLogin);
        let s = Settings::from_flags(
            [
                "--trusted-proxies",
                "127.0.0.1, ::1,10.0.0.0/8",
                "--real-ip-header",
                "X-Real-IP",
            ],
            "0123456789abcdef",
        )
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
        assert_eq!(s.real_ip_header, "x-real-ip");
        for (flags, message) in [
            (["--trusted-proxies", "10.0.0.0/40"], "--trusted-proxies: '10.0.0.0/40': the prefix length must be 0 to 32"),
            (["--trusted-proxies", "nginx"], "--trusted-proxies: 'nginx' is not an address or an address block (like 10.0.0.0/8 or ::1)"),
            (["--real-ip-header", "X Real"], "--real-ip-header: 'X Real' is not a header name"),
            (["--max-connections", "0"], "--max-connections must be at least 1"),
            (["--max-sockets-per-address", "0"], "--max-sockets-per-address must be at least 1"),
            (["--header-read-timeout", "0"], "--header-read-timeout must be greater than 0"),
        ] {
            let e = Settings::from_flags(flags, "0123456789abcdef").unwrap_err();
            assert_eq!(e.to_string(), message);
        }
    }
}
