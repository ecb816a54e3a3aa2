//! Validated client configuration, built from `qrpush.*` php.ini directives or a Client's options.
//!
//! One table (`SETTINGS`) names every setting with its default and meaning: the PHP binding
//! registers the INI entries, prints phpinfo and checks option keys from it, so a new setting is
//! added in one place. Parsing is shared by both sources; only the strictness differs: php.ini
//! falls back to the default with a warning, a Client option throws.

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::login::token::MIN_SECRET_LEN as MIN_GATEWAY_SECRET_LEN;
use crate::secret::Secret;
use crate::tls::TlsOptions;

/// One configuration setting, as a php.ini directive `qrpush.<name>` and a Client option `<name>`.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Whether phpinfo and stats must redact the value (it can carry a password).
    pub secret: bool,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "url",
        default: "redis://127.0.0.1:6379",
        help: "redis://[user[:password]@]host[:port][/db] or unix:///path/redis.sock",
        secret: true,
    },
    Setting {
        name: "pool_size",
        default: "8",
        help: "connections per endpoint and process (threads wait for a free one under ZTS)",
        secret: false,
    },
    Setting {
        name: "connect_timeout",
        default: "1.0",
        help: "seconds to establish a connection, including AUTH",
        secret: false,
    },
    Setting {
        name: "timeout",
        default: "1.0",
        help: "seconds to wait for Redis to read a command and answer",
        secret: false,
    },
    Setting {
        name: "breaker_cooldown",
        default: "0.5",
        help: "seconds to fail fast (circuit open) after a connection attempt timed out, before one trial; 0 disables",
        secret: false,
    },
    Setting {
        name: "channel_prefix",
        default: "",
        help: "prepended to every channel (Pub/Sub ignores database numbers)",
        secret: false,
    },
    Setting {
        name: "max_payload",
        default: "1048576",
        help: "largest message in bytes, after JSON encoding",
        secret: false,
    },
    Setting {
        name: "login_channel",
        default: "qr-login-events",
        help: "QrPush\\Login: channel of the login events (channel_prefix applies)",
        secret: false,
    },
    Setting {
        name: "login_channel_mode",
        default: "single",
        help: "QrPush\\Login: single (every event on login_channel, with sessionId) or per_login (login_channel:<id>)",
        secret: false,
    },
    Setting {
        name: "login_pending_ttl",
        default: "120",
        help: "QrPush\\Login: seconds a new login may wait to be scanned and approved",
        secret: false,
    },
    Setting {
        name: "login_approved_ttl",
        default: "30",
        help: "QrPush\\Login: seconds the browser has to redeem an approved login",
        secret: false,
    },
    Setting {
        name: "login_terminal_ttl",
        default: "60",
        help: "QrPush\\Login: seconds a finished login stays readable by status()",
        secret: false,
    },
    Setting {
        name: "gateway_secret",
        default: "",
        help: "QrPush\\Login: the secret (at least 16 bytes) shared with the WebSocket gateway; start() signs the gateway_token with it; empty: no token",
        secret: true,
    },
    Setting {
        name: "tls_ca_file",
        default: "",
        help: "rediss:// only: absolute path of the PEM CA certificate(s) to trust instead of the built-in Mozilla roots",
        secret: false,
    },
    Setting {
        name: "tls_verify",
        default: "full",
        help: "rediss:// only: full (certificate chain and host name) or none (INSECURE, testing only: anyone on the path can impersonate Redis)",
        secret: false,
    },
    Setting {
        name: "tls_server_name",
        default: "",
        help: "rediss:// only: the name the certificate must be valid for (and SNI), instead of the URL's host",
        secret: false,
    },
];

/// Where `QrPush\Login` publishes its events (`login_channel_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginChannelMode {
    /// Every event on `login_channel`, each with a `sessionId` field (the seed's Ratchet server).
    Single,
    /// One channel per login: `login_channel:<login id>`.
    PerLogin,
}

impl LoginChannelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginChannelMode::Single => "single",
            LoginChannelMode::PerLogin => "per_login",
        }
    }
}

/// Everything a client needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub endpoint: Endpoint,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Circuit breaker cool-down after a slow connection failure; zero disables it.
    pub breaker_cooldown: Duration,
    pub channel_prefix: String,
    pub max_payload: usize,
    pub login_channel: String,
    pub login_channel_mode: LoginChannelMode,
    pub login_pending_ttl: Duration,
    pub login_approved_ttl: Duration,
    pub login_terminal_ttl: Duration,
    /// Signs the WebSocket gateway's handshake tokens (`login::token`); `None`: no tokens.
    pub gateway_secret: Option<Secret>,
    /// The `tls_*` settings; also copied into a `rediss://` endpoint (they are part of the pool key).
    pub tls: TlsOptions,
}

const MAX_POOL_SIZE: usize = 1024;
const MAX_TIMEOUT_SECS: f64 = 3600.0;
/// Redis's own limit for one bulk string (proto-max-bulk-len).
const MAX_PAYLOAD_LIMIT: usize = 512 * 1024 * 1024;
const MAX_PREFIX_LEN: usize = 256;

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            endpoint: Endpoint::parse(SETTINGS[0].default).expect("the default URL is valid"),
            pool_size: 0,
            connect_timeout: Duration::ZERO,
            timeout: Duration::ZERO,
            breaker_cooldown: Duration::ZERO,
            channel_prefix: String::new(),
            max_payload: 0,
            login_channel: String::new(),
            login_channel_mode: LoginChannelMode::Single,
            login_pending_ttl: Duration::ZERO,
            login_approved_ttl: Duration::ZERO,
            login_terminal_ttl: Duration::ZERO,
            gateway_secret: None,
            tls: TlsOptions::default(),
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
    /// On error the config is unchanged and the message names the setting.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let value = value.trim();
        let named = |e: Error| Error::invalid(format!("{name}: {}", e.message()));
        match name {
            "url" => self.endpoint = Endpoint::parse(value).map_err(named)?.with_tls(&self.tls),
            "pool_size" => self.pool_size = parse_int(value, 1, MAX_POOL_SIZE).map_err(named)?,
            "connect_timeout" => self.connect_timeout = parse_seconds(value).map_err(named)?,
            "timeout" => self.timeout = parse_seconds(value).map_err(named)?,
            "breaker_cooldown" => {
                self.breaker_cooldown = match value.parse::<f64>() {
                    Ok(0.0) => Duration::ZERO,
                    _ => parse_seconds(value)
                        .map_err(|_| {
                            Error::invalid(format!(
                                "expected 0 (off) or seconds greater than 0 and at most {MAX_TIMEOUT_SECS}, like 0.5, got '{}'",
                                value.chars().take(32).collect::<String>()
                            ))
                        })
                        .map_err(named)?,
                }
            }
            "channel_prefix" => {
                validate_channel_part(value.as_bytes(), MAX_PREFIX_LEN).map_err(named)?;
                self.channel_prefix = value.to_string();
            }
            "max_payload" => {
                self.max_payload = parse_int(value, 1, MAX_PAYLOAD_LIMIT).map_err(named)?
            }
            "login_channel" => {
                if value.is_empty() {
                    return Err(named(Error::invalid("must not be empty")));
                }
                validate_channel_part(value.as_bytes(), MAX_PREFIX_LEN).map_err(named)?;
                self.login_channel = value.to_string();
            }
            "login_channel_mode" => {
                self.login_channel_mode = match value {
                    "single" => LoginChannelMode::Single,
                    "per_login" => LoginChannelMode::PerLogin,
                    _ => {
                        return Err(named(Error::invalid(format!(
                            "expected single or per_login, got '{}'",
                            value.chars().take(32).collect::<String>()
                        ))))
                    }
                }
            }
            "login_pending_ttl" => self.login_pending_ttl = parse_seconds(value).map_err(named)?,
            "login_approved_ttl" => {
                self.login_approved_ttl = parse_seconds(value).map_err(named)?
            }
            "login_terminal_ttl" => {
                self.login_terminal_ttl = parse_seconds(value).map_err(named)?
            }
            "gateway_secret" => {
                self.gateway_secret = match value.len() {
                    0 => None,
                    n if n < MIN_GATEWAY_SECRET_LEN => {
                        return Err(named(Error::invalid(format!(
                            "must be empty (no gateway tokens) or at least {MIN_GATEWAY_SECRET_LEN} bytes, got {n}"
                        ))))
                    }
                    _ => Some(Secret::new(value)),
                }
            }
            "tls_ca_file" | "tls_verify" | "tls_server_name" => {
                self.tls.set(name, value).map_err(named)?;
                self.endpoint = self.endpoint.clone().with_tls(&self.tls);
            }
            _ => {
                let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                return Err(Error::invalid(format!(
                    "unknown option '{}'; known options: {}",
                    name.chars().take(64).collect::<String>(),
                    known.join(", ")
                )));
            }
        }
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

    /// The whole time bound of one call: connecting (if needed) plus the command itself.
    pub fn call_bound(&self) -> Duration {
        self.connect_timeout + self.timeout
    }

    /// The effective value of a setting as text, redacted where it may hold a secret.
    pub fn display_value(&self, name: &str) -> String {
        match name {
            "url" => self.endpoint.redacted_url(),
            "pool_size" => self.pool_size.to_string(),
            "connect_timeout" => format_seconds(self.connect_timeout),
            "timeout" => format_seconds(self.timeout),
            "breaker_cooldown" => format_seconds(self.breaker_cooldown),
            "channel_prefix" => self.channel_prefix.clone(),
            "max_payload" => self.max_payload.to_string(),
            "login_channel" => self.login_channel.clone(),
            "login_channel_mode" => self.login_channel_mode.as_str().to_string(),
            "login_pending_ttl" => format_seconds(self.login_pending_ttl),
            "login_approved_ttl" => format_seconds(self.login_approved_ttl),
            "login_terminal_ttl" => format_seconds(self.login_terminal_ttl),
            "gateway_secret" => match self.gateway_secret {
                Some(_) => "<redacted>".to_string(),
                None => String::new(),
            },
            "tls_ca_file" | "tls_verify" | "tls_server_name" => self.tls.display_value(name),
            _ => String::new(),
        }
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

fn parse_int(value: &str, min: usize, max: usize) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(format!(
            "expected a whole number from {min} to {max}, got '{}'",
            value.chars().take(32).collect::<String>()
        ))),
    }
}

fn parse_seconds(value: &str) -> Result<Duration> {
    match value.parse::<f64>() {
        // Below a nanosecond a positive value would become a zero Duration (found by
        // tests/proptest_parsers.rs): a zero socket timeout is an error, a zero TTL expires at once.
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
            value.chars().take(32).collect::<String>()
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
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let cases: &[(&str, &str, &str)] = &[
            ("pool_size", "0", "pool_size: expected a whole number from 1 to 1024, got '0'"),
            ("pool_size", "many", "pool_size: expected a whole number from 1 to 1024, got 'many'"),
            ("timeout", "-1", "timeout: expected seconds greater than 0 and at most 3600, like 0.5, got '-1'"),
            ("connect_timeout", "NaN", "connect_timeout: expected seconds greater than 0 and at most 3600, like 0.5, got 'NaN'"),
            ("max_payload", "0", "max_payload: expected a whole number from 1 to 536870912, got '0'"),
            ("channel_prefix", "a\nb", "channel_prefix: must not contain control characters (byte 0x0a at offset 1)"),
            ("url", "ftp://x", "url: unsupported URL scheme 'ftp://'; expected redis://, rediss:// or unix://"),
            ("colour", "red", "unknown option 'colour'; known options: url, pool_size, connect_timeout, timeout, breaker_cooldown, channel_prefix, max_payload, login_channel, login_channel_mode, login_pending_ttl, login_approved_ttl, login_terminal_ttl, gateway_secret, tls_ca_file, tls_verify, tls_server_name"),
            ("login_channel", "", "login_channel: must not be empty"),
            ("login_channel_mode", "fanout", "login_channel_mode: expected single or per_login, got 'fanout'"),
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
}
