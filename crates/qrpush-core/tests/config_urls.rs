// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Redis URLs through `Config::set("url", ..)`, the way php.ini and Client options arrive:
//! what each URL means (label, database, user, password), the exact message of each invalid
//! one, and that a password never shows in an error, a `Debug` dump, phpinfo or stats.

use qrpush_core::{Address, Client, Config, ErrorKind};

struct Valid {
    url: &'static str,
    label: &'static str,
    db: u32,
    user: Option<&'static str>,
    password: Option<&'static str>,
}

const fn ok(
    url: &'static str,
    label: &'static str,
    db: u32,
    user: Option<&'static str>,
    password: Option<&'static str>,
) -> Valid {
    Valid {
        url,
        label,
        db,
        user,
        password,
    }
}

const VALID: &[Valid] = &[
    ok("redis://127.0.0.1:6379", "127.0.0.1:6379", 0, None, None),
    ok("redis://localhost", "localhost:6379", 0, None, None),
    ok("redis://127.0.0.1:6380/3", "127.0.0.1:6380", 3, None, None),
    ok("redis://h:1/", "h:1", 0, None, None),
    ok("  redis://h:1/15  ", "h:1", 15, None, None),
    // The scheme is case-insensitive; the host is kept as written (redis:// is not a
    // "special" scheme for the URL standard, so no lower-casing).
    ok(
        "REDIS://Cache.Example:7000",
        "Cache.Example:7000",
        0,
        None,
        None,
    ),
    ok(
        "redis://:s3cret@127.0.0.1",
        "127.0.0.1:6379",
        0,
        None,
        Some("s3cret"),
    ),
    ok(
        "redis://app:p%40ss%3Aw%2Frd@h:1/2",
        "h:1",
        2,
        Some("app"),
        Some("p@ss:w/rd"),
    ),
    ok("redis://app:p@ss@h", "h:6379", 0, Some("app"), Some("p@ss")),
    ok("redis://app@h", "h:6379", 0, Some("app"), None),
    ok("redis://app:@h", "h:6379", 0, Some("app"), None),
    ok("redis://[::1]:7000", "[::1]:7000", 0, None, None),
    ok("redis://10.1.2.3", "10.1.2.3:6379", 0, None, None),
    ok("redis://h/4294967295", "h:6379", 4294967295, None, None),
    ok(
        "unix:///run/redis.sock",
        "unix:/run/redis.sock",
        0,
        None,
        None,
    ),
    ok(
        "redis+unix:///tmp/r.sock",
        "unix:/tmp/r.sock",
        0,
        None,
        None,
    ),
    ok(
        "unix:///run/redis.sock?db=2&user=app&password=pw",
        "unix:/run/redis.sock",
        2,
        Some("app"),
        Some("pw"),
    ),
];

#[test]
fn valid_urls() {
    for case in VALID {
        let mut config = Config::default();
        config
            .set("url", case.url)
            .unwrap_or_else(|e| panic!("{:?}: {e}", case.url));
        let e = &config.endpoint;
        assert_eq!(e.label(), case.label, "{:?}", case.url);
        assert_eq!(e.db, case.db, "{:?}", case.url);
        assert_eq!(e.username.as_deref(), case.user, "{:?}", case.url);
        assert_eq!(
            e.password.as_ref().map(|p| p.expose()),
            case.password,
            "{:?}",
            case.url
        );
        // Other settings are untouched.
        let defaults = Config::default();
        assert_eq!(config.pool_size, defaults.pool_size);
        assert_eq!(config.timeout, defaults.timeout);
    }
}

#[test]
fn address_kinds() {
    let mut config = Config::default();
    config.set("url", "redis://[::1]:7000").unwrap();
    assert_eq!(
        config.endpoint.address,
        Address::Tcp {
            host: "::1".into(),
            port: 7000
        }
    );
    config
        .set("url", "unix:///var/run/redis/redis.sock")
        .unwrap();
    assert_eq!(
        config.endpoint.address,
        Address::Unix {
            path: "/var/run/redis/redis.sock".into()
        }
    );
}

const NOT_VALID: &str =
    "expected redis://[user[:password]@]host[:port][/db] or unix:///path/redis.sock";

#[test]
fn invalid_urls_have_exact_messages() {
    let cases: Vec<(&str, String)> = vec![
        ("", "url: the Redis URL is empty".into()),
        ("   ", "url: the Redis URL is empty".into()),
        (
            "http://h",
            "url: unsupported URL scheme 'http://'; expected redis://, rediss://, unix://, redis-cluster:// or redis-sentinel://".into(),
        ),
        (
            "localhost:6379",
            "url: unsupported URL scheme 'localhost://'; expected redis://, rediss://, unix://, redis-cluster:// or redis-sentinel://".into(),
        ),
        (
            // TLS options are settings (tls_ca_file, ...), not URL parameters.
            "rediss://h:6380?ca_file=/ca.pem",
            "url: the Redis URL has an unknown query parameter 'ca_file'".into(),
        ),
        (
            "127.0.0.1:6379",
            format!("url: the Redis URL is not valid (relative URL without a base); {NOT_VALID}"),
        ),
        (
            "redis://h:99999",
            format!("url: the Redis URL is not valid (invalid port number); {NOT_VALID}"),
        ),
        ("redis://", "url: the Redis URL has no host".into()),
        ("redis:///3", "url: the Redis URL has no host".into()),
        ("redis://h:0", "url: the Redis URL has port 0".into()),
        (
            "redis://h/x",
            "url: the Redis URL's database must be a number like /0, got 'x'".into(),
        ),
        (
            "redis://h/-1",
            "url: the Redis URL's database must be a number like /0, got '-1'".into(),
        ),
        (
            "redis://h/4294967296",
            "url: the Redis URL's database must be a number like /0, got '4294967296'".into(),
        ),
        (
            "redis://h/0/1",
            "url: the Redis URL's database must be a number like /0, got '0/1'".into(),
        ),
        (
            "redis://h?timeout=1",
            "url: the Redis URL has an unknown query parameter 'timeout'".into(),
        ),
        (
            "redis://u:%FF@h",
            "url: the Redis URL's password is not valid UTF-8".into(),
        ),
        (
            "unix://relative",
            "url: the unix:// URL must not have a host part; write the absolute path after three slashes, e.g. unix:///run/redis/redis.sock".into(),
        ),
        (
            "unix:///",
            "url: the unix:// URL needs an absolute socket path, e.g. unix:///run/redis/redis.sock".into(),
        ),
        (
            "unix:///s?db=x",
            "url: the Redis URL's database must be a number like /0, got 'x'".into(),
        ),
        (
            "unix:///s?timeout=1",
            "url: the Redis URL has an unknown query parameter 'timeout'".into(),
        ),
    ];
    for (url, message) in &cases {
        let mut config = Config::default();
        config.set("url", "redis://before:1/1").unwrap();
        let before = config.clone();
        let err = config.set("url", url).expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url:?}");
        assert_eq!(err.message(), message, "{url:?}");
        assert_eq!(
            config, before,
            "{url:?}: a failed set leaves the config unchanged"
        );
    }
}

#[test]
fn errors_never_contain_the_password() {
    let secret = "T0pS3cret";
    let urls = [
        format!("redis://u:{secret}@h:99999"),
        format!("redis://u:{secret}@h/x"),
        format!("redis://u:{secret}@h:0"),
        format!("redis://u:{secret}@h?password={secret}"),
        format!("rediss://u:{secret}@h:0"),
        format!("http://u:{secret}@h"),
        format!("redis://:{secret}@"),
        format!("unix:///s?password={secret}&db=x"),
        format!("unix:///s?password={secret}&nope=1"),
        format!("redis://u:{secret}@[::1"),
        format!("redis://u:{secret}@h h"),
    ];
    for url in &urls {
        let mut config = Config::default();
        let err = config.set("url", url).expect_err(url);
        for shown in [
            err.message().to_string(),
            format!("{err:?}"),
            err.to_string(),
        ] {
            assert!(
                !shown.contains(secret),
                "{url:?} leaked the password: {shown}"
            );
        }
        let (_, warnings) = Config::from_lenient([("url", url.as_str())]);
        assert_eq!(warnings.len(), 1);
        assert!(!warnings[0].message().contains(secret));
    }
}

#[test]
fn debug_and_display_never_contain_the_password() {
    let secret = "hunter2!";
    let urls = [
        (
            "redis://app:hunter2%21@10.0.0.1:6380/1",
            "redis://app:<redacted>@10.0.0.1:6380/1",
        ),
        ("redis://:hunter2%21@h", "redis://:<redacted>@h:6379/0"),
        (
            "unix:///run/r.sock?password=hunter2%21&user=app",
            "unix://app:<redacted>@/run/r.sock?db=0",
        ),
    ];
    for (url, redacted) in urls {
        let mut config = Config::default();
        config.set("url", url).unwrap();
        assert_eq!(config.endpoint.password.as_ref().unwrap().expose(), secret);
        let dumps = [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{:?}", config.endpoint),
            format!("{:?}", config.endpoint.password),
            config.display_value("url"),
        ];
        for dump in &dumps {
            assert!(!dump.contains(secret), "{url}: {dump}");
            assert!(!dump.contains("hunter2"), "{url}: {dump}");
        }
        assert!(dumps[0].contains(redacted), "{}", dumps[0]);
        assert_eq!(config.display_value("url"), redacted);
        // stats() of a client (which does not connect) shows the redacted URL too.
        let client = Client::new(config);
        let stats = client.stats();
        assert_eq!(stats.endpoint, redacted);
        assert!(!format!("{stats:?}").contains("hunter2"));
    }
}

#[test]
fn settings_apply_in_any_order_and_the_last_url_wins() {
    let mut config = Config::default();
    config.set("pool_size", "3").unwrap();
    config.set("url", "redis://a:1/1").unwrap();
    config.set("url", "redis://b:2/2").unwrap();
    config.set("channel_prefix", "app:").unwrap();
    assert_eq!(config.endpoint.label(), "b:2");
    assert_eq!(config.endpoint.db, 2);
    assert_eq!(config.pool_size, 3);
    assert_eq!(config.channel_prefix, "app:");
    assert_eq!(config.display_value("url"), "redis://b:2/2");
}
