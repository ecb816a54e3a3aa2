//! Validated client configuration, built from `qrpush.*` php.ini directives or a Client's options.
//!
//! One table (`SETTINGS`) holds every setting: its name, default and meaning, and the functions
//! that parse its text into a [`Config`] and show its effective value. The PHP binding registers
//! the INI entries, prints phpinfo and checks option keys from it, so a setting is written once.
//! Parsing is shared by both sources; only the strictness differs: php.ini falls back to the
//! default with a warning, a Client option throws.
//!
//! The limits of the values are this module's own (`MIN_GATEWAY_SECRET_LEN`, ...): nothing here
//! depends on the modules that use a `Config`.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::endpoint::{Endpoint, SentinelAuth};
use crate::error::{Error, Result, Subject};
use crate::secret::Secret;
use crate::tls::{TlsOptions, TlsVerify};

/// One configuration setting, as a php.ini directive `qrpush.<name>` and a Client option `<name>`.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Whether phpinfo and stats must redact the value (it can carry a password).
    pub secret: bool,
    /// Reads the (trimmed) text into the config. On error the config is unchanged and the error
    /// does not name the setting yet ([`Config::set`] makes it about the setting).
    parse: fn(&mut Config, &str) -> Result<()>,
    /// The effective value as text, redacted when `secret`.
    show: fn(&Config) -> String,
}

/// The names of the settings other modules refer to (the gateway's flags, hints in messages, keys of
/// `stats()`), so each name is written once: here, and the table below uses them.
pub mod name {
    pub const URL: &str = "url";
    pub const POOL_SIZE: &str = "pool_size";
    pub const CONNECT_TIMEOUT: &str = "connect_timeout";
    pub const TIMEOUT: &str = "timeout";
    pub const BREAKER_COOLDOWN: &str = "breaker_cooldown";
    pub const CHANNEL_PREFIX: &str = "channel_prefix";
    pub const LOGIN_CHANNEL: &str = "login_channel";
    pub const LOGIN_CHANNEL_MODE: &str = "login_channel_mode";
    pub const GATEWAY_SECRET: &str = "gateway_secret";
}

/// The default Redis URL (also the WebSocket gateway's `--redis-url`).
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The default channel prefix: none (also the gateway's `--channel-prefix`).
pub const DEFAULT_CHANNEL_PREFIX: &str = "";
/// The default channel of the login events (also the gateway's `--login-channel`).
pub const DEFAULT_LOGIN_CHANNEL: &str = "qr-login-events";
/// The default login channel mode (also the gateway's `--channel-mode`).
pub const DEFAULT_LOGIN_CHANNEL_MODE: LoginChannelMode = LoginChannelMode::Single;
/// The shortest accepted `gateway_secret`, in bytes (also the gateway's secret).
pub const MIN_GATEWAY_SECRET_LEN: usize = 16;

/// What a call may take beyond [`Config::call_bound`]: the socket timeouts' slack (2 ms), the
/// kernel's timer granularity (a socket timeout runs in jiffies: up to 10 ms late at HZ=100) and
/// the CPU time of the call itself. Time spent waiting for a CPU on a saturated machine is not
/// the client's to bound.
pub const CALL_BOUND_MARGIN: Duration = Duration::from_millis(50);

const MAX_POOL_SIZE: usize = 1024;
/// The login script keeps one timestamp per counted scan: a small bound keeps that list short.
const MAX_LOGIN_SCAN_LIMIT: usize = 100;
const MAX_TIMEOUT_SECS: f64 = 3600.0;
/// Redis's own limit for one bulk string (proto-max-bulk-len).
const MAX_PAYLOAD_LIMIT: usize = 512 * 1024 * 1024;
const MAX_PREFIX_LEN: usize = 256;
/// Longest accepted CA file path.
const MAX_PATH_LEN: usize = 4096;
/// The most entries a durable channel's stream may be asked to keep.
const MAX_STREAM_MAXLEN: usize = 100_000_000;
/// The longest `stream_max_age` and `stream_ttl`: a year.
const MAX_STREAM_SECS: f64 = 365.0 * 24.0 * 3600.0;

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: name::URL,
        default: DEFAULT_URL,
        help: "redis://[user[:password]@]host[:port][/db], unix:///path/redis.sock, redis-cluster://[[user]:password@]seed1:port[,seed2:port...] or redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db]#service (rediss://, rediss-cluster://, rediss-sentinel:// for TLS)",
        secret: true,
        parse: |c, v| c.set_url(v),
        show: |c| c.endpoint.redacted_url(),
    },
    Setting {
        name: "cluster_publish",
        default: "sharded",
        help: "on Redis Cluster: sharded (SPUBLISH on the node owning the channel's slot) or global (PUBLISH, for SUBSCRIBE subscribers)",
        secret: false,
        parse: |c, v| ClusterPublish::parse(v).map(|mode| c.cluster_publish = mode),
        show: |c| c.cluster_publish.as_str().to_string(),
    },
    Setting {
        name: name::POOL_SIZE,
        default: "8",
        help: "connections per endpoint and process (threads wait for a free one under ZTS)",
        secret: false,
        parse: |c, v| parse_int(v, 1, MAX_POOL_SIZE).map(|value| c.pool_size = value),
        show: |c| c.pool_size.to_string(),
    },
    Setting {
        name: name::CONNECT_TIMEOUT,
        default: "1.0",
        help: "seconds to establish a connection, including AUTH",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.connect_timeout = value),
        show: |c| format_seconds(c.connect_timeout),
    },
    Setting {
        name: name::TIMEOUT,
        default: "1.0",
        help: "seconds to wait for Redis to read a command and answer",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.timeout = value),
        show: |c| format_seconds(c.timeout),
    },
    Setting {
        name: name::BREAKER_COOLDOWN,
        default: "0.5",
        help: "seconds to fail fast (circuit open) after a connection attempt timed out, before one trial; 0 disables",
        secret: false,
        parse: |c, v| parse_seconds_or_off(v).map(|value| c.breaker_cooldown = value),
        show: |c| format_seconds(c.breaker_cooldown),
    },
    Setting {
        name: "idle_check_after",
        default: "30",
        help: "seconds a pooled connection may sit unused before it must answer a PING to be reused (a NAT or load balancer may have forgotten it silently); 0: never",
        secret: false,
        parse: |c, v| parse_seconds_or_off(v).map(|value| c.idle_check_after = value),
        show: |c| format_seconds(c.idle_check_after),
    },
    Setting {
        name: name::CHANNEL_PREFIX,
        default: DEFAULT_CHANNEL_PREFIX,
        help: "prepended to every channel (Pub/Sub ignores database numbers)",
        secret: false,
        parse: |c, v| {
            validate_channel_part(v.as_bytes(), MAX_PREFIX_LEN)?;
            c.channel_prefix = v.to_string();
            Ok(())
        },
        show: |c| c.channel_prefix.clone(),
    },
    Setting {
        name: "max_payload",
        default: "1048576",
        help: "largest message in bytes, after JSON encoding",
        secret: false,
        parse: |c, v| parse_int(v, 1, MAX_PAYLOAD_LIMIT).map(|value| c.max_payload = value),
        show: |c| c.max_payload.to_string(),
    },
    Setting {
        name: "max_batch_payload",
        default: "16777216",
        help: "largest total of one publishMany's messages in bytes, after JSON encoding (a batch is held in memory, outside memory_limit, until it is sent)",
        secret: false,
        parse: |c, v| parse_int(v, 1, MAX_PAYLOAD_LIMIT).map(|value| c.max_batch_payload = value),
        show: |c| c.max_batch_payload.to_string(),
    },
    Setting {
        name: name::LOGIN_CHANNEL,
        default: DEFAULT_LOGIN_CHANNEL,
        help: "QrPush\\Login: channel of the login events (channel_prefix applies)",
        secret: false,
        parse: |c, v| {
            if v.is_empty() {
                return Err(Error::invalid("must not be empty"));
            }
            validate_channel_part(v.as_bytes(), MAX_PREFIX_LEN)?;
            c.login_channel = v.to_string();
            Ok(())
        },
        show: |c| c.login_channel.clone(),
    },
    Setting {
        name: name::LOGIN_CHANNEL_MODE,
        default: DEFAULT_LOGIN_CHANNEL_MODE.as_str(),
        help: "QrPush\\Login: single (every event on login_channel, with sessionId) or per_login (login_channel:<id>)",
        secret: false,
        parse: |c, v| LoginChannelMode::parse(v).map(|value| c.login_channel_mode = value),
        show: |c| c.login_channel_mode.as_str().to_string(),
    },
    Setting {
        name: "login_pending_ttl",
        default: "120",
        help: "QrPush\\Login: seconds a new login may wait to be scanned and approved",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.login_pending_ttl = value),
        show: |c| format_seconds(c.login_pending_ttl),
    },
    Setting {
        name: "login_approved_ttl",
        default: "30",
        help: "QrPush\\Login: seconds the browser has to redeem an approved login",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.login_approved_ttl = value),
        show: |c| format_seconds(c.login_approved_ttl),
    },
    Setting {
        name: "login_terminal_ttl",
        default: "60",
        help: "QrPush\\Login: seconds a finished login stays readable by status()",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.login_terminal_ttl = value),
        show: |c| format_seconds(c.login_terminal_ttl),
    },
    Setting {
        name: "login_scan_limit",
        default: "10",
        help: "QrPush\\Login: most logins one user may scan within login_scan_window (refused beyond: LoginRateLimitedException); 0: no limit",
        secret: false,
        parse: |c, v| parse_int(v, 0, MAX_LOGIN_SCAN_LIMIT).map(|value| c.login_scan_limit = value),
        show: |c| c.login_scan_limit.to_string(),
    },
    Setting {
        name: "login_scan_window",
        default: "600",
        help: "QrPush\\Login: seconds over which login_scan_limit counts a user's scans (a sliding window)",
        secret: false,
        parse: |c, v| parse_seconds(v).map(|value| c.login_scan_window = value),
        show: |c| format_seconds(c.login_scan_window),
    },
    Setting {
        name: name::GATEWAY_SECRET,
        default: "",
        help: "QrPush\\Login: the secret (at least 16 bytes) shared with the WebSocket gateway; start() signs the gateway_token with it; empty: no token",
        secret: true,
        parse: |c, v| parse_gateway_secret(v).map(|value| c.gateway_secret = value),
        show: |c| match c.gateway_secret {
            Some(_) => "<redacted>".to_string(),
            None => String::new(),
        },
    },
    Setting {
        name: "stream_maxlen",
        default: "1000",
        help: "durable publishes: entries kept in each channel's stream for replay (approximately: XADD MAXLEN ~)",
        secret: false,
        parse: |c, v| parse_int(v, 1, MAX_STREAM_MAXLEN).map(|value| c.stream_maxlen = value),
        show: |c| c.stream_maxlen.to_string(),
    },
    Setting {
        name: "stream_max_age",
        default: "0",
        help: "durable publishes: also drop stream entries older than this many seconds (XTRIM MINID ~); 0: no time bound",
        secret: false,
        parse: |c, v| parse_stream_seconds(v, MAX_STREAM_SECS).map(|value| c.stream_max_age = value),
        show: |c| format_seconds(c.stream_max_age),
    },
    Setting {
        name: "stream_ttl",
        default: "86400",
        help: "durable publishes: seconds a channel's stream lives after its last publish (then readers resync); 0: until trimmed",
        secret: false,
        parse: |c, v| parse_stream_seconds(v, MAX_STREAM_SECS).map(|value| c.stream_ttl = value),
        show: |c| format_seconds(c.stream_ttl),
    },
    Setting {
        name: "tls_ca_file",
        default: "",
        help: "rediss:// only: absolute path of the PEM CA certificate(s) to trust instead of the built-in Mozilla roots",
        secret: false,
        parse: |c, v| {
            parse_ca_file(v).map(|ca_file| c.set_tls(TlsOptions { ca_file, ..c.tls.clone() }))
        },
        show: |c| c.tls.ca_file.clone().unwrap_or_default(),
    },
    Setting {
        name: "tls_verify",
        default: tls_verify_text(TlsVerify::Full),
        help: "rediss:// only: full (certificate chain and host name) or none (INSECURE, testing only: anyone on the path can impersonate Redis)",
        secret: false,
        parse: |c, v| {
            parse_tls_verify(v).map(|verify| c.set_tls(TlsOptions { verify, ..c.tls.clone() }))
        },
        show: |c| tls_verify_text(c.tls.verify).to_string(),
    },
    Setting {
        name: "tls_server_name",
        default: "",
        help: "rediss:// only: the name the certificate must be valid for (and SNI), instead of the URL's host",
        secret: false,
        parse: |c, v| {
            parse_server_name(v).map(|server_name| c.set_tls(TlsOptions { server_name, ..c.tls.clone() }))
        },
        show: |c| c.tls.server_name.clone().unwrap_or_default(),
    },
    Setting {
        name: "sentinel_user",
        default: "",
        help: "redis-sentinel:// only: the ACL user to log in to the Sentinels as (their own, not the data nodes' of the URL); empty: the default user",
        secret: false,
        parse: |c, v| {
            parse_credential(v).map(|user| {
                c.set_sentinel_auth(SentinelAuth { user, ..c.sentinel_auth.clone() })
            })
        },
        show: |c| c.sentinel_auth.user.clone().unwrap_or_default(),
    },
    Setting {
        name: "sentinel_password",
        default: "",
        help: "redis-sentinel:// only: the password of the Sentinels themselves (their requirepass, or sentinel_user's), not the data nodes' of the URL; empty: none",
        secret: true,
        parse: |c, v| {
            parse_credential(v).map(|password| {
                let password = password.map(Secret::new);
                c.set_sentinel_auth(SentinelAuth { password, ..c.sentinel_auth.clone() })
            })
        },
        show: |c| match c.sentinel_auth.password {
            Some(_) => "<redacted>".to_string(),
            None => String::new(),
        },
    },
    Setting {
        name: "sentinel_check_interval",
        default: "1",
        help: "redis-sentinel:// only: seconds a primary named by the Sentinels is trusted before a call asks them again (a switch is learned within it); 0: asked before every call",
        secret: false,
        parse: |c, v| parse_seconds_or_off(v).map(|value| c.sentinel_check_interval = value),
        show: |c| format_seconds(c.sentinel_check_interval),
    },
    Setting {
        name: "sentinel_zero_check",
        default: "on",
        help: "redis-sentinel:// only: on: a publish that reached 0 subscribers asks a Sentinel (one round trip) whether its node is still the primary, and throws if not; off: 0 is returned as is",
        secret: false,
        parse: |c, v| parse_on_off(v).map(|on| c.sentinel_zero_check = on),
        show: |c| if c.sentinel_zero_check { "on" } else { "off" }.to_string(),
    },
];

/// The row of setting `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Where `QrPush\Login` publishes its events (`login_channel_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginChannelMode {
    /// The single-channel format: every event on `login_channel`, each with a `sessionId` field
    /// (the login id), which a subscriber of that one channel routes on.
    Single,
    /// One channel per login: `login_channel:<login id>`.
    PerLogin,
}

impl LoginChannelMode {
    pub const ALL: [LoginChannelMode; 2] = [LoginChannelMode::Single, LoginChannelMode::PerLogin];

    pub const fn as_str(self) -> &'static str {
        match self {
            LoginChannelMode::Single => "single",
            LoginChannelMode::PerLogin => "per_login",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        LoginChannelMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "expected single or per_login, got '{}'",
                    excerpt(text, 32)
                ))
            })
    }
}

/// How a publish travels on Redis Cluster (`cluster_publish`; ignored elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterPublish {
    /// SPUBLISH on the primary owning the channel's slot: the message stays on that shard.
    Sharded,
    /// Classic PUBLISH (sent to the slot's owner too), which the Cluster bus copies to every
    /// node: for subscribers that cannot SSUBSCRIBE.
    Global,
}

impl ClusterPublish {
    pub const fn as_str(self) -> &'static str {
        match self {
            ClusterPublish::Sharded => "sharded",
            ClusterPublish::Global => "global",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "sharded" => Ok(ClusterPublish::Sharded),
            "global" => Ok(ClusterPublish::Global),
            other => Err(Error::invalid(format!(
                "expected sharded or global, got '{}'",
                excerpt(other, 32)
            ))),
        }
    }
}

/// Everything a client needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub endpoint: Endpoint,
    pub cluster_publish: ClusterPublish,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Circuit breaker cool-down after a slow connection failure; zero disables it.
    pub breaker_cooldown: Duration,
    /// A pooled connection unused this long answers a PING before it is reused; zero: never.
    pub idle_check_after: Duration,
    pub channel_prefix: String,
    pub max_payload: usize,
    /// Largest total size of a batch's messages.
    pub max_batch_payload: usize,
    pub login_channel: String,
    pub login_channel_mode: LoginChannelMode,
    pub login_pending_ttl: Duration,
    pub login_approved_ttl: Duration,
    pub login_terminal_ttl: Duration,
    /// Scans one user may make within `login_scan_window`; 0: unlimited.
    pub login_scan_limit: usize,
    pub login_scan_window: Duration,
    /// Signs the WebSocket gateway's handshake tokens; `None`: no tokens.
    pub gateway_secret: Option<Secret>,
    /// Durable publishes: entries kept per channel's stream (approximately).
    pub stream_maxlen: usize,
    /// Durable publishes: the oldest entry kept, as an age; zero: no time bound.
    pub stream_max_age: Duration,
    /// Durable publishes: how long a stream lives after its last publish; zero: no expiry.
    pub stream_ttl: Duration,
    /// The `tls_*` settings; also copied into a `rediss://` endpoint (they are part of the pool key).
    pub tls: TlsOptions,
    /// The `sentinel_user`/`sentinel_password` settings; also copied into a `redis-sentinel://`
    /// endpoint.
    pub sentinel_auth: SentinelAuth,
    /// How long the Sentinels' answer is trusted before a call asks again; zero: every call.
    pub sentinel_check_interval: Duration,
    /// A publish through Sentinel that reached nobody asks whether its node is still the primary.
    pub sentinel_zero_check: bool,
}

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            endpoint: Endpoint::parse(DEFAULT_URL).expect("the default URL is valid"),
            cluster_publish: ClusterPublish::Sharded,
            pool_size: 0,
            connect_timeout: Duration::ZERO,
            timeout: Duration::ZERO,
            breaker_cooldown: Duration::ZERO,
            idle_check_after: Duration::ZERO,
            channel_prefix: String::new(),
            max_payload: 0,
            max_batch_payload: 0,
            login_channel: String::new(),
            login_channel_mode: DEFAULT_LOGIN_CHANNEL_MODE,
            login_pending_ttl: Duration::ZERO,
            login_approved_ttl: Duration::ZERO,
            login_terminal_ttl: Duration::ZERO,
            login_scan_limit: 0,
            login_scan_window: Duration::ZERO,
            gateway_secret: None,
            stream_maxlen: 0,
            stream_max_age: Duration::ZERO,
            stream_ttl: Duration::ZERO,
            tls: TlsOptions::default(),
            sentinel_auth: SentinelAuth::default(),
            sentinel_check_interval: Duration::ZERO,
            sentinel_zero_check: true,
        };
        for s in SETTINGS {
            config
                .set(s.name, s.default)
                .expect("every default is valid");
        }
        config
    }
}

impl Config {
    /// Sets one setting from its text form, validating it. Unknown names are an error.
    /// On error the config is unchanged and the error is about the setting
    /// ([`Subject::Setting`]), or about the settings as a whole for an unknown name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let Some(setting) = setting(name) else {
            let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
            return Err(Error::invalid(format!(
                "unknown option '{}'; known options: {}",
                excerpt(name, 64),
                known.join(", ")
            ))
            .about(Subject::Settings));
        };
        (setting.parse)(self, value.trim()).map_err(|e| e.about(Subject::Setting(setting.name)))
    }

    /// Sets the Redis URL given on its own (not as the setting of that name): errors are about
    /// [`Subject::Url`] and say "the Redis URL ..." themselves.
    pub fn set_url(&mut self, url: &str) -> Result<()> {
        self.endpoint = Endpoint::parse(url.trim())?
            .with_tls(&self.tls)
            .with_sentinel_auth(&self.sentinel_auth);
        Ok(())
    }

    /// Builds a config from (name, value) pairs leniently, as php.ini does: an invalid value keeps
    /// the default and is reported in the returned warnings (one per bad setting).
    pub fn from_lenient<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> (Self, Vec<Error>) {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        for (name, value) in pairs {
            if let Err(e) = config.set(name.as_ref(), value.as_ref()) {
                warnings.push(e);
            }
        }
        (config, warnings)
    }

    /// The whole time bound of one call: getting a connection (waiting for a free one, checking
    /// an idle one, resolving, connecting, logging in) plus the command itself. A call returns or
    /// throws within it plus [`CALL_BOUND_MARGIN`].
    pub fn call_bound(&self) -> Duration {
        self.connect_timeout + self.timeout
    }

    /// The effective value of a setting as text, redacted where it may hold a secret; empty for
    /// an unknown name.
    pub fn display_value(&self, name: &str) -> String {
        setting(name).map(|s| (s.show)(self)).unwrap_or_default()
    }

    /// New Sentinel credentials, copied into the endpoint too (a `redis-sentinel://` one).
    fn set_sentinel_auth(&mut self, auth: SentinelAuth) {
        self.endpoint = self.endpoint.clone().with_sentinel_auth(&auth);
        self.sentinel_auth = auth;
    }

    /// New TLS options, copied into the endpoint too (a `rediss://` one keys its pool on them).
    fn set_tls(&mut self, tls: TlsOptions) {
        self.endpoint = self.endpoint.clone().with_tls(&tls);
        self.tls = tls;
    }
}

/// Checks a channel name (or the prefix): bounded length and no ASCII control characters, which
/// RESP would carry fine but which only ever appear in channel names by mistake or by injection.
pub fn validate_channel_part(bytes: &[u8], max_len: usize) -> Result<()> {
    if bytes.len() > max_len {
        return Err(Error::invalid(format!(
            "must be at most {max_len} bytes, got {}",
            bytes.len()
        )));
    }
    if let Some(pos) = bytes.iter().position(|b| *b < 0x20 || *b == 0x7f) {
        return Err(Error::invalid(format!(
            "must not contain control characters (byte 0x{:02x} at offset {pos})",
            bytes[pos]
        )));
    }
    Ok(())
}

/// A user name or password for AUTH: empty for none; at most 1024 bytes, no control characters
/// (neither can be typed into a Redis config). The message never quotes the value.
fn parse_credential(value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 1024 || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::invalid(
            "must be at most 1024 bytes without control characters",
        ));
    }
    Ok(Some(value.to_string()))
}

/// The start of a value, for a message that quotes it.
fn excerpt(value: &str, chars: usize) -> String {
    value.chars().take(chars).collect()
}

fn parse_int(value: &str, min: usize, max: usize) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(format!(
            "expected a whole number from {min} to {max}, got '{}'",
            excerpt(value, 32)
        ))),
    }
}

fn parse_seconds(value: &str) -> Result<Duration> {
    match value.parse::<f64>() {
        // Below a nanosecond a positive value would become a zero Duration: a zero socket
        // timeout is an error, a zero TTL expires at once.
        Ok(s)
            if s.is_finite()
                && s > 0.0
                && s <= MAX_TIMEOUT_SECS
                && !Duration::from_secs_f64(s).is_zero() =>
        {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(Error::invalid(format!(
            "expected seconds greater than 0 and at most {MAX_TIMEOUT_SECS}, like 0.5, got '{}'",
            excerpt(value, 32)
        ))),
    }
}

/// Seconds, or 0 to disable (the circuit breaker's cool-down, the idle check).
fn parse_seconds_or_off(value: &str) -> Result<Duration> {
    match value.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_seconds(value).map_err(|_| {
            Error::invalid(format!(
                "expected 0 (off) or seconds greater than 0 and at most {MAX_TIMEOUT_SECS}, like 0.5, got '{}'",
                excerpt(value, 32)
            ))
        }),
    }
}

/// A switch: `on`, `off` or PHP's other spellings of them. PHP's ini parser turns an unquoted
/// `off`/`no`/`false`/`none` into an empty string, so an empty value is off.
fn parse_on_off(value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "1" | "yes" | "true" => Ok(true),
        "off" | "0" | "no" | "false" | "" => Ok(false),
        _ => Err(Error::invalid(format!(
            "expected on or off, got '{}'",
            excerpt(value, 32)
        ))),
    }
}

/// Whole or fractional seconds from 0 (off) to `max`, like 86400 or 0.5.
fn parse_stream_seconds(value: &str, max: f64) -> Result<Duration> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=max).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::invalid(format!(
            "expected 0 (off) or seconds up to {max}, like 86400, got '{}'",
            excerpt(value, 32)
        ))),
    }
}

fn format_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.1}")
    } else {
        format!("{s}")
    }
}

fn parse_gateway_secret(value: &str) -> Result<Option<Secret>> {
    match value.len() {
        0 => Ok(None),
        n if n < MIN_GATEWAY_SECRET_LEN => Err(Error::invalid(format!(
            "must be empty (no gateway tokens) or at least {MIN_GATEWAY_SECRET_LEN} bytes, got {n}"
        ))),
        _ => Ok(Some(Secret::new(value))),
    }
}

fn parse_ca_file(value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_PATH_LEN || value.contains('\0') {
        return Err(Error::invalid(format!(
            "must be a file path of at most {MAX_PATH_LEN} bytes without NUL"
        )));
    }
    // php-fpm workers and CLI scripts run from different directories: a relative path would
    // name different files in each.
    if !Path::new(value).is_absolute() {
        return Err(Error::invalid(format!(
            "must be an absolute path to a PEM file, got '{}'",
            excerpt(value, 64)
        )));
    }
    Ok(Some(value.to_string()))
}

const fn tls_verify_text(verify: TlsVerify) -> &'static str {
    match verify {
        TlsVerify::Full => "full",
        TlsVerify::None => "none",
    }
}

fn parse_tls_verify(value: &str) -> Result<TlsVerify> {
    if let Some(verify) = [TlsVerify::Full, TlsVerify::None]
        .into_iter()
        .find(|v| tls_verify_text(*v) == value)
    {
        return Ok(verify);
    }
    // Never "none" by accident: an empty value keeps verifying (with a warning).
    let hint = if value.is_empty() {
        " (php.ini reads an unquoted none, off, no or false as empty: write \"none\" in quotes)"
    } else {
        ""
    };
    Err(Error::invalid(format!(
        "expected full or none (insecure, for testing only), got '{}'{hint}",
        excerpt(value, 32)
    )))
}

fn parse_server_name(value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    match ServerName::try_from(value) {
        Ok(_) => Ok(Some(value.to_string())),
        Err(_) => Err(Error::invalid(format!(
            "expected a DNS name or an IP address, got '{}'",
            excerpt(value, 64)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.max_payload, 1 << 20);
        assert_eq!(c.channel_prefix, "");
        assert_eq!(c.endpoint.label(), "127.0.0.1:6379");
        assert_eq!(c.call_bound(), Duration::from_secs(2));
        assert_eq!(c.breaker_cooldown, Duration::from_millis(500));
        assert_eq!(c.login_channel, "qr-login-events");
        assert_eq!(c.login_channel_mode, LoginChannelMode::Single);
        assert_eq!(c.login_pending_ttl, Duration::from_secs(120));
        assert_eq!(c.login_approved_ttl, Duration::from_secs(30));
        assert_eq!(c.login_terminal_ttl, Duration::from_secs(60));
        assert_eq!(c.login_scan_limit, 10);
        assert_eq!(c.login_scan_window, Duration::from_secs(600));
    }

    #[test]
    fn login_settings_round_trip() {
        let mut c = Config::default();
        c.set("login_channel_mode", "per_login").unwrap();
        c.set("login_pending_ttl", "0.5").unwrap();
        c.set("login_channel", "logins").unwrap();
        assert_eq!(c.display_value("login_channel_mode"), "per_login");
        assert_eq!(c.display_value("login_pending_ttl"), "0.5");
        assert_eq!(c.display_value("login_approved_ttl"), "30.0");
        assert_eq!(c.display_value("login_channel"), "logins");
        c.set("login_scan_limit", "0").unwrap();
        c.set("login_scan_window", "1.5").unwrap();
        assert_eq!(c.display_value("login_scan_limit"), "0");
        assert_eq!(c.display_value("login_scan_window"), "1.5");
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let cases: &[(&str, &str, &str)] = &[
            ("pool_size", "0", "pool_size: expected a whole number from 1 to 1024, got '0'"),
            ("pool_size", "many", "pool_size: expected a whole number from 1 to 1024, got 'many'"),
            ("timeout", "-1", "timeout: expected seconds greater than 0 and at most 3600, like 0.5, got '-1'"),
            ("connect_timeout", "NaN", "connect_timeout: expected seconds greater than 0 and at most 3600, like 0.5, got 'NaN'"),
            ("max_payload", "0", "max_payload: expected a whole number from 1 to 536870912, got '0'"),
            ("login_scan_limit", "101", "login_scan_limit: expected a whole number from 0 to 100, got '101'"),
            ("login_scan_window", "0", "login_scan_window: expected seconds greater than 0 and at most 3600, like 0.5, got '0'"),
            ("channel_prefix", "a\nb", "channel_prefix: must not contain control characters (byte 0x0a at offset 1)"),
            ("url", "ftp://x", "url: unsupported URL scheme 'ftp://'; expected redis://, rediss://, unix://, redis-cluster:// or redis-sentinel://"),
            ("colour", "red", "unknown option 'colour'; known options: url, cluster_publish, pool_size, connect_timeout, timeout, breaker_cooldown, idle_check_after, channel_prefix, max_payload, max_batch_payload, login_channel, login_channel_mode, login_pending_ttl, login_approved_ttl, login_terminal_ttl, login_scan_limit, login_scan_window, gateway_secret, stream_maxlen, stream_max_age, stream_ttl, tls_ca_file, tls_verify, tls_server_name, sentinel_user, sentinel_password, sentinel_check_interval, sentinel_zero_check"),
            ("login_channel", "", "login_channel: must not be empty"),
            ("login_channel_mode", "fanout", "login_channel_mode: expected single or per_login, got 'fanout'"),
            ("cluster_publish", "broadcast", "cluster_publish: expected sharded or global, got 'broadcast'"),
            ("login_pending_ttl", "0", "login_pending_ttl: expected seconds greater than 0 and at most 3600, like 0.5, got '0'"),
        ];
        for (name, value, message) in cases {
            let mut c = Config::default();
            let err = c.set(name, value).expect_err(name);
            assert_eq!(err.message(), *message);
            assert_eq!(
                c,
                Config::default(),
                "a failed set leaves the config unchanged"
            );
        }
    }

    #[test]
    fn stream_settings() {
        let mut c = Config::default();
        assert_eq!(c.stream_maxlen, 1000);
        assert_eq!(c.stream_max_age, Duration::ZERO);
        assert_eq!(c.stream_ttl, Duration::from_secs(86400));
        c.set("stream_maxlen", "50").unwrap();
        c.set("stream_max_age", "3600").unwrap();
        c.set("stream_ttl", "0").unwrap();
        assert_eq!(c.display_value("stream_max_age"), "3600.0");
        assert_eq!(c.display_value("stream_ttl"), "0.0");
        assert_eq!(c.stream_ttl, Duration::ZERO);
        for (name, bad, message) in [
            ("stream_maxlen", "0", "stream_maxlen: expected a whole number from 1 to 100000000, got '0'"),
            ("stream_ttl", "-1", "stream_ttl: expected 0 (off) or seconds up to 31536000, like 86400, got '-1'"),
            ("stream_max_age", "forever", "stream_max_age: expected 0 (off) or seconds up to 31536000, like 86400, got 'forever'"),
        ] {
            assert_eq!(c.set(name, bad).unwrap_err().message(), message);
        }
    }

    #[test]
    fn breaker_cooldown_accepts_zero_to_disable() {
        let mut c = Config::default();
        c.set("breaker_cooldown", "0").unwrap();
        assert_eq!(c.breaker_cooldown, Duration::ZERO);
        assert_eq!(c.display_value("breaker_cooldown"), "0.0");
        c.set("breaker_cooldown", "1.5").unwrap();
        assert_eq!(c.breaker_cooldown, Duration::from_millis(1500));
        for bad in ["-1", "x", "NaN", "3601"] {
            let err = c.set("breaker_cooldown", bad).expect_err(bad);
            assert_eq!(
                err.message(),
                format!("breaker_cooldown: expected 0 (off) or seconds greater than 0 and at most 3600, like 0.5, got '{bad}'")
            );
        }
    }

    #[test]
    fn lenient_keeps_defaults_and_reports() {
        let (c, warnings) = Config::from_lenient([
            ("timeout", "0.25"),
            ("pool_size", "x"),
            ("url", "redis://h:1"),
        ]);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.endpoint.label(), "h:1");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message().starts_with("pool_size:"));
    }

    #[test]
    fn display_is_redacted() {
        let mut c = Config::default();
        c.set("url", "redis://u:pw@h:1/0").unwrap();
        assert_eq!(c.display_value("url"), "redis://u:<redacted>@h:1/0");
        assert_eq!(c.display_value("timeout"), "1.0");
        c.set("timeout", "0.5").unwrap();
        assert_eq!(c.display_value("timeout"), "0.5");
    }

    #[test]
    fn errors_are_about_the_setting() {
        let mut c = Config::default();
        let e = c.set("pool_size", "0").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Setting("pool_size")));
        assert_eq!(
            e.detail(),
            "expected a whole number from 1 to 1024, got '0'"
        );
        let e = c.set("colour", "red").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Settings));
        assert!(e.message().starts_with("unknown option 'colour'; "), "{e}");
        let e = c.set("url", "redis://h:0").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Setting("url")));
        assert_eq!(e.message(), "url: the Redis URL has port 0");
        let e = c.set_url("redis://h:0").unwrap_err();
        assert_eq!(e.subject(), Some(Subject::Url));
        assert_eq!(e.message(), "the Redis URL has port 0");
        c.set_url(" redis://h:1 ").unwrap();
        assert_eq!(c.display_value("url"), "redis://h:1/0");
    }

    #[test]
    fn every_default_shows_as_written_or_normalised() {
        let c = Config::default();
        for s in SETTINGS {
            let shown = c.display_value(s.name);
            let mut again = Config::default();
            if !s.secret {
                again.set(s.name, &shown).unwrap();
                assert_eq!(again.display_value(s.name), shown, "{}", s.name);
            }
        }
        assert_eq!(c.display_value("no_such_setting"), "");
    }

    /// An absolute path on the platform the tests run on: Windows wants a drive or a UNC prefix.
    const ABSOLUTE_CA_FILE: &str = if cfg!(windows) {
        r"C:\ssl\ca.pem"
    } else {
        "/etc/ssl/ca.pem"
    };

    #[test]
    fn tls_settings_parse_and_display() {
        let mut o = Config::default();
        assert_eq!(o.display_value("tls_verify"), "full");
        o.set("tls_verify", "none").unwrap();
        o.set("tls_ca_file", ABSOLUTE_CA_FILE).unwrap();
        o.set("tls_server_name", "redis.internal").unwrap();
        assert_eq!(o.tls.verify, TlsVerify::None);
        assert_eq!(o.display_value("tls_ca_file"), ABSOLUTE_CA_FILE);
        assert_eq!(o.display_value("tls_server_name"), "redis.internal");
        o.set("tls_server_name", "10.0.0.1").unwrap();
        o.set("tls_ca_file", "").unwrap();
        o.set("tls_server_name", "").unwrap();
        assert_eq!(o.tls.ca_file, None);
        assert_eq!(o.tls.server_name, None);

        let before = o.clone();
        for (name, value, message) in [
            (
                "tls_verify",
                "",
                "expected full or none (insecure, for testing only), got '' (php.ini reads an unquoted none, off, no or false as empty: write \"none\" in quotes)",
            ),
            (
                "tls_verify",
                "yes",
                "expected full or none (insecure, for testing only), got 'yes'",
            ),
            (
                "tls_ca_file",
                "ca.pem",
                "must be an absolute path to a PEM file, got 'ca.pem'",
            ),
            (
                "tls_server_name",
                "bad name!",
                "expected a DNS name or an IP address, got 'bad name!'",
            ),
        ] {
            let e = o.set(name, value).expect_err(name);
            assert_eq!(e.detail(), message);
            assert_eq!(o, before, "a failed set changes nothing");
        }
    }

    #[test]
    fn tls_settings_follow_into_the_endpoint() {
        let mut c = Config::default();
        c.set("url", "rediss://h:1").unwrap();
        c.set("tls_server_name", "redis.internal").unwrap();
        assert_eq!(
            c.endpoint.tls().and_then(|t| t.server_name.as_deref()),
            Some("redis.internal")
        );
        c.set("url", "rediss://h:2").unwrap();
        assert_eq!(
            c.endpoint.tls().and_then(|t| t.server_name.as_deref()),
            Some("redis.internal")
        );
    }

    #[test]
    fn the_gateway_secret_is_validated_and_never_shown() {
        let mut config = Config::default();
        assert_eq!(config.gateway_secret, None);
        assert_eq!(config.display_value("gateway_secret"), "");
        let e = config.set("gateway_secret", "short").unwrap_err();
        assert_eq!(
            e.message(),
            "gateway_secret: must be empty (no gateway tokens) or at least 16 bytes, got 5"
        );
        config.set("gateway_secret", " 0123456789abcdef\n").unwrap();
        assert_eq!(config.display_value("gateway_secret"), "<redacted>");
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        assert_eq!(
            config.gateway_secret.as_ref().unwrap().expose(),
            "0123456789abcdef",
            "trimmed, like every setting (a secret file's newline is not part of it)"
        );
        config.set("gateway_secret", "").unwrap();
        assert_eq!(config.gateway_secret, None);
    }

    #[test]
    fn sentinel_credentials_follow_into_the_sentinels_endpoint_only_and_are_never_shown() {
        // Given before the URL, kept when the URL comes (and comes again).
        let mut c = Config::default();
        c.set("sentinel_password", "s3ntinel-pw").unwrap();
        c.set("sentinel_user", "watcher").unwrap();
        c.set("url", "redis-sentinel://:data-pw@10.0.0.1,10.0.0.2#svc")
            .unwrap();
        for _ in 0..2 {
            let sentinel = c.endpoint.sentinel("10.0.0.1", 26379);
            assert_eq!(sentinel.username.as_deref(), Some("watcher"));
            assert_eq!(
                sentinel.password.as_ref().map(Secret::expose),
                Some("s3ntinel-pw")
            );
            let data = c.endpoint.member("10.0.0.9", 6379);
            assert_eq!(data.password.as_ref().map(Secret::expose), Some("data-pw"));
            assert_eq!(data.username, None);
            c.set("url", "redis-sentinel://:data-pw@10.0.0.1,10.0.0.2#svc")
                .unwrap();
        }
        assert_eq!(c.display_value("sentinel_user"), "watcher");
        assert_eq!(c.display_value("sentinel_password"), "<redacted>");
        assert!(!format!("{c:?}").contains("s3ntinel-pw"));
        let e = c.set("sentinel_password", "a\nb").unwrap_err();
        assert_eq!(
            e.message(),
            "sentinel_password: must be at most 1024 bytes without control characters"
        );
        c.set("sentinel_password", "").unwrap();
        c.set("sentinel_user", "").unwrap();
        assert_eq!(c.endpoint.sentinel("10.0.0.1", 26379).password, None);
        assert_eq!(c.display_value("sentinel_password"), "");
        // Other URLs ignore them.
        c.set("sentinel_password", "x").unwrap();
        c.set("url", "redis://:pw@h:1").unwrap();
        assert_eq!(c.endpoint, Endpoint::parse("redis://:pw@h:1").unwrap());
    }

    #[test]
    fn sentinel_switch_settings() {
        let mut c = Config::default();
        assert_eq!(c.sentinel_check_interval, Duration::from_secs(1));
        assert!(c.sentinel_zero_check);
        assert_eq!(c.display_value("sentinel_check_interval"), "1.0");
        assert_eq!(c.display_value("sentinel_zero_check"), "on");
        c.set("sentinel_check_interval", "0").unwrap();
        assert_eq!(c.sentinel_check_interval, Duration::ZERO);
        c.set("sentinel_check_interval", "0.25").unwrap();
        assert_eq!(c.display_value("sentinel_check_interval"), "0.25");
        let e = c.set("sentinel_check_interval", "-1").unwrap_err();
        assert!(
            e.message()
                .starts_with("sentinel_check_interval: expected 0 (off)"),
            "{}",
            e.message()
        );
        // PHP's ini parser reads an unquoted off as an empty string.
        for off in ["off", "OFF", "0", "no", "false", ""] {
            c.set("sentinel_zero_check", "on").unwrap();
            c.set("sentinel_zero_check", off).unwrap();
            assert!(!c.sentinel_zero_check, "{off:?}");
        }
        assert_eq!(c.display_value("sentinel_zero_check"), "off");
        for on in ["on", "1", "yes", "true"] {
            c.set("sentinel_zero_check", "off").unwrap();
            c.set("sentinel_zero_check", on).unwrap();
            assert!(c.sentinel_zero_check, "{on:?}");
        }
        let e = c.set("sentinel_zero_check", "maybe").unwrap_err();
        assert_eq!(
            e.message(),
            "sentinel_zero_check: expected on or off, got 'maybe'"
        );
    }
}
