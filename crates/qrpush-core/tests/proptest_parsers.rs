// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Property tests of the configuration parsers: `Endpoint::parse` and `Config::set`.
//!
//! - Neither ever panics, whatever the text (arbitrary Unicode, URL-shaped noise, huge numbers).
//! - A URL whose credentials are percent-encoded parses back to exactly its parts.
//! - No message, `Debug` output or redacted URL ever contains the password, also when the password
//!   is written raw and its `/`, `?`, `#` or `@` make the URL parse differently than meant.
//! - A failed `Config::set` leaves the config unchanged; a successful one displays a value that
//!   `set` accepts again to the same effect.
//!
//! Failures are persisted in proptest-regressions/proptest_parsers.txt and replayed first.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use proptest::prelude::*;
use qrpush_core::config::SETTINGS;
use qrpush_core::{Address, Config, Endpoint, ErrorKind};

#[path = "common/proptest_config.rs"]
mod proptest_config;

fn config(cases: u32) -> ProptestConfig {
    proptest_config::config("proptest-regressions/proptest_parsers.txt", cases)
}

/// RFC 3986 userinfo: everything but unreserved characters and sub-delims is encoded (and ':').
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A password that cannot occur in a message by coincidence: a marker plus random letters,
/// with URL delimiters and other troublesome characters mixed in at random places.
fn password() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{10,16}",
        proptest::collection::vec(
            (
                0usize..16,
                prop::sample::select(vec![
                    "/", "?", "#", "@", ":", "%", "%4", "%zz", " ", "[", "]", "\\", "é", "€",
                    "\u{2028}", "\t", "=", "&", "+", "..", "//",
                ]),
            ),
            0..4,
        ),
    )
        .prop_map(|(letters, inserts)| {
            let mut p = format!("Pw{letters}");
            for (at, what) in inserts {
                let at = (at % (p.len() + 1)).min(p.len());
                // Keep char boundaries: the letters are ASCII and inserts go between chars.
                let at = (0..=at).rev().find(|i| p.is_char_boundary(*i)).unwrap_or(0);
                p.insert_str(at, what);
            }
            p
        })
}

/// The distinctive runs of a password: any of them in a message is a leak. Short fragments
/// around the delimiters are not counted (a URL's own "/" or "@" would match them).
fn secret_fragments(password: &str) -> Vec<String> {
    password
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= 6)
        .flat_map(|run| {
            let bytes = run.as_bytes();
            bytes
                .windows(6)
                .map(|w| String::from_utf8(w.to_vec()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_no_secret(text: &str, password: &str, what: &str) -> Result<(), TestCaseError> {
    for fragment in secret_fragments(password) {
        prop_assert!(
            !text.contains(&fragment),
            "{what} leaks the password fragment {fragment:?} of {password:?}: {text:?}"
        );
    }
    Ok(())
}

fn host() -> impl Strategy<Value = (String, String)> {
    // (as written in the URL, as parsed)
    prop_oneof![
        Just(("127.0.0.1".to_string(), "127.0.0.1".to_string())),
        Just(("localhost".to_string(), "localhost".to_string())),
        Just(("[::1]".to_string(), "::1".to_string())),
        "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}".prop_map(|h| (h.clone(), h)),
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255).prop_map(|(a, b, c, d)| {
            let h = format!("{a}.{b}.{c}.{d}");
            (h.clone(), h)
        }),
    ]
}

/// Text that looks like a URL often enough to get past the first checks: a scheme, maybe
/// credentials, a host, a port, a path, a query and a fragment, each sometimes malformed.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec![
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "http://",
        "REDIS://",
        "redis:",
        "redis:/",
        "",
        "redis:///",
        "unix:",
        "redis://redis://",
    ]);
    let userinfo = prop_oneof![
        Just(String::new()),
        "[^@/]{0,12}@",
        "[a-z]{0,6}:[^/]{0,12}@",
        ":[^@]{0,12}@",
        Just("@".to_string()),
        Just("::@".to_string()),
    ];
    let host = prop_oneof![
        host().prop_map(|(written, _)| written),
        "[^/:?#]{0,12}",
        Just("[::1".to_string()),
        Just("[zz]".to_string()),
        Just("999.1.1.1".to_string()),
        Just(String::new()),
    ];
    let port = prop_oneof![
        Just(String::new()),
        (0u32..70000).prop_map(|p| format!(":{p}")),
        ":[0-9]{6,30}",
        ":[^/?#]{0,6}",
        Just(":".to_string()),
    ];
    let path = prop_oneof![
        Just(String::new()),
        Just("/".to_string()),
        (0u64..u64::MAX).prop_map(|d| format!("/{d}")),
        "/[^?#]{0,24}",
        Just("/-1".to_string()),
        Just("/4294967296".to_string()),
        Just("/0/0".to_string()),
    ];
    let query = prop_oneof![
        3 => Just(String::new()),
        1 => "\\?[a-z]{0,8}(=[^#&]{0,8})?(&[a-z]{0,8}=[^#&]{0,8}){0,3}",
        1 => Just("?db=1&password=Pwquerysecret1".to_string()),
    ];
    let fragment = prop_oneof![4 => Just(String::new()), 1 => "#[^ ]{0,8}"];
    (scheme, userinfo, host, port, path, query, fragment).prop_map(
        |(scheme, userinfo, host, port, path, query, fragment)| {
            format!("{scheme}{userinfo}{host}{port}{path}{query}{fragment}")
        },
    )
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any Unicode text: an endpoint or an InvalidArgument error, never a panic.
    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        match Endpoint::parse(&text) {
            Ok(endpoint) => {
                // What parsed is usable: a label and a redacted URL without the password.
                let _ = (endpoint.label(), endpoint.redacted_url(), format!("{endpoint:?}"));
                if let Some(p) = &endpoint.password {
                    prop_assert!(endpoint.redacted_url().contains("<redacted>"));
                    prop_assert_eq!(format!("{p:?} {p}"), "<redacted> <redacted>");
                }
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert!(!e.message().is_empty());
            }
        }
    }

    /// URL-shaped noise, including credentials in every position: never a panic, and every error
    /// says it is about the URL.
    #[test]
    fn parse_never_panics_on_url_like_text(text in url_like()) {
        if let Err(e) = Endpoint::parse(&text) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            prop_assert!(
                e.message().contains("URL") || e.message().contains("unix://") || e.message().contains("rediss://"),
                "an error that does not say what is wrong: {:?} for {:?}", e.message(), text
            );
        }
        // The same text through Config::set: same outcome, the setting named.
        let mut c = Config::default();
        let before = c.clone();
        match c.set("url", &text) {
            Ok(()) => prop_assert!(Endpoint::parse(&text).is_ok()),
            Err(e) => {
                prop_assert!(e.message().starts_with("url: "), "{}", e.message());
                prop_assert_eq!(&c, &before, "a failed set changed the config");
            }
        }
    }

    /// Well-formed redis:// URLs with percent-encoded credentials parse to exactly their parts,
    /// and the password is in none of: the label, the redacted URL, Debug.
    #[test]
    fn encoded_credentials_round_trip(
        user in prop_oneof![Just(None), "[^\\x00-\\x1f]{1,12}".prop_map(Some)],
        password in password(),
        (host_written, host_parsed) in host(),
        port in 1u16..=65535,
        db in prop_oneof![Just(None), (0u32..=u32::MAX).prop_map(Some)],
    ) {
        let user_part = user.as_deref().map(|u| utf8_percent_encode(u, USERINFO).to_string()).unwrap_or_default();
        let url = format!(
            "redis://{user_part}:{}@{host_written}:{port}{}",
            utf8_percent_encode(&password, USERINFO),
            db.map(|d| format!("/{d}")).unwrap_or_default(),
        );
        let e = Endpoint::parse(&url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
        prop_assert_eq!(&e.address, &Address::Tcp { host: host_parsed, port });
        prop_assert_eq!(e.username.as_deref(), user.as_deref());
        prop_assert_eq!(e.password.as_ref().map(|p| p.expose()), Some(password.as_str()));
        prop_assert_eq!(e.db, db.unwrap_or(0));
        assert_no_secret(&e.label(), &password, "label()")?;
        assert_no_secret(&e.redacted_url(), &password, "redacted_url()")?;
        assert_no_secret(&format!("{e:?}"), &password, "Debug")?;
        let mut c = Config::default();
        c.set("url", &url).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_no_secret(&c.display_value("url"), &password, "display_value(url)")?;
        assert_no_secret(&format!("{c:?}"), &password, "Config Debug")?;
    }

    /// The same URLs made invalid in one place (and passwords written raw, unencoded): whatever
    /// the error, its message never contains the password.
    #[test]
    fn errors_never_contain_the_password(
        password in password(),
        raw in any::<bool>(),
        user in prop_oneof![Just(""), Just("app"), Just("u:")],
        damage in prop::sample::select(vec![
            "", "/x", "/-1", "/99999999999", "?timeout=1", "?", ":0", ":99999", ":abc", "/0?db=1", "#f",
            "/0/", "/ 1", "%", "/%ff",
        ]),
        scheme in prop::sample::select(vec!["redis://", "rediss://", "http://", "unix://", "redis:"]),
        host in prop::sample::select(vec!["127.0.0.1", "h", "[::1]", "", "[x]", "a b"]),
    ) {
        let written = if raw { password.clone() } else { utf8_percent_encode(&password, USERINFO).to_string() };
        for url in [
            format!("{scheme}{user}:{written}@{host}{damage}"),
            format!("{scheme}{user}:{written}@{host}:6379{damage}"),
            format!("{scheme}{host}{damage}?password={written}"),
            format!("unix:///run/redis.sock?password={written}{damage}"),
            format!("unix://{user}:{written}@/run/redis.sock{damage}"),
        ] {
            match Endpoint::parse(&url) {
                Err(e) => assert_no_secret(e.message(), &password, &format!("the error for {url:?}"))?,
                Ok(endpoint) => {
                    assert_no_secret(&endpoint.label(), &password, &format!("label() of {url:?}"))?;
                    assert_no_secret(&endpoint.redacted_url(), &password, &format!("redacted_url() of {url:?}"))?;
                }
            }
            let mut c = Config::default();
            if let Err(e) = c.set("url", &url) {
                assert_no_secret(e.message(), &password, &format!("Config::set(url) error for {url:?}"))?;
            }
            let (_, warnings) = Config::from_lenient([("url", url.as_str())]);
            for w in warnings {
                assert_no_secret(w.message(), &password, "a php.ini warning")?;
            }
        }
    }

    /// Every setting, any text: never a panic; an error leaves the config unchanged and names
    /// the setting; a success round-trips through display_value (for non-secret settings), and a
    /// secret setting never displays its value.
    #[test]
    fn config_set_never_panics(
        index in 0..SETTINGS.len() + 1,
        value in prop_oneof![
            any::<String>(),
            "[ \\t]*-?[0-9]{0,25}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?[ \\t]*",
            prop::sample::select(vec![
                "NaN", "inf", "-inf", "1e309", "0x10", "1_000", "+1", "0.0000000001", "3600", "3600.0000001",
                "1024", "1025", "536870912", "536870913", "18446744073709551616", "single", "per_login",
                "SINGLE", "", " ", "\0", "a\nb", "\u{7f}", "é",
            ]).prop_map(str::to_string),
        ],
    ) {
        let name = SETTINGS.get(index).map(|s| s.name).unwrap_or("no_such_setting");
        let secret = SETTINGS.get(index).is_some_and(|s| s.secret);
        let mut c = Config::default();
        let before = c.clone();
        match c.set(name, &value) {
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert_eq!(&c, &before, "a failed set changed the config");
                prop_assert!(
                    e.message().starts_with(&format!("{name}: ")) || e.message().starts_with("unknown option"),
                    "{}", e.message()
                );
            }
            Ok(()) => {
                let shown = c.display_value(name);
                // Secret settings display redacted: nothing to read back.
                if !secret {
                    let mut again = Config::default();
                    again.set(name, &shown).map_err(|e| TestCaseError::fail(format!("{name}={shown:?} (displayed) is refused: {e}")))?;
                    prop_assert_eq!(again.display_value(name), shown.clone());
                }
                if secret && value.trim().len() >= 6 {
                    prop_assert!(!shown.contains(value.trim()), "{} displays its secret value: {:?}", name, shown);
                }
                prop_assert!(c.call_bound() > std::time::Duration::ZERO);
                prop_assert!(c.pool_size >= 1 && c.max_payload >= 1);
            }
        }
    }
}

/// Hand-picked inputs that earlier fuzzing or reviews found interesting: they stay as a corpus
/// that runs on every `cargo test`, whatever proptest's random choices are.
#[test]
fn corpus_of_hostile_urls() {
    let corpus: &[&str] = &[
        "",
        " ",
        "redis://",
        "redis:///",
        "redis://:@",
        "redis://@/",
        "redis://[",
        "redis://[::1",
        "redis://[::1]:",
        "redis://h:65536",
        "redis://h:-1",
        "redis://h:99999999999999999999",
        "redis://h/4294967296",
        "redis://h/18446744073709551616",
        "redis://h/%00",
        "redis://%ff:%fe@h",
        "redis://u:%ZZ@h",
        "redis://h?",
        "redis://h?&",
        "redis://h#",
        "unix://",
        "unix:///",
        "unix:relative.sock",
        "unix:///s?db=-1",
        "unix:///s?db=1&db=2",
        "unix:///s?%ff=1",
        "unix:///%ff",
        "redis+unix:///s",
        "rediss://h",
        "\u{0}redis://h",
        "redis://h\u{0}",
        "redis://h\r\n:1",
        "redis://\u{2028}",
        "redis://xn--",
        "redis://xn--zz",
        "redis://ß.example",
        "redis://a..b",
        "redis://255.255.255.256",
        "redis://0x7f.1",
    ];
    for url in corpus {
        let _ = Endpoint::parse(url);
        let mut c = Config::default();
        let _ = c.set("url", url);
    }
    // Long inputs: bounded echoes, no panic.
    let long = format!("redis://h/{}", "9".repeat(100_000));
    let e = Endpoint::parse(&long).unwrap_err();
    assert!(e.message().len() < 300, "{}", e.message().len());
    let long_user = format!("redis://{}:{}@h", "u".repeat(100_000), "p".repeat(100_000));
    let parsed = Endpoint::parse(&long_user).unwrap();
    assert_eq!(parsed.password.unwrap().expose().len(), 100_000);
}

/// A password written raw with a '/' or '?' makes the URL parser cut the authority early: the
/// rest of the password then sits in what looks like the path or the query. The error must not
/// echo it (found by errors_never_contain_the_password).
#[test]
fn a_raw_password_with_delimiters_is_not_echoed() {
    for (url, password) in [
        ("redis://app:12/Pwsecretpart@h:6379/0", "12/Pwsecretpart"),
        ("redis://app:12?Pwsecretpart@h:6379/0", "12?Pwsecretpart"),
        ("redis://:12/Pwsecret?part@h", "12/Pwsecret?part"),
    ] {
        let err = Endpoint::parse(url).expect_err(url);
        for fragment in secret_fragments(password) {
            assert!(
                !err.message().contains(&fragment),
                "{url}: {}",
                err.message()
            );
        }
    }
}

/// Found by config_set_never_panics: a positive number of seconds below a nanosecond became a
/// zero Duration (a zero socket timeout is an error; a zero TTL expires at once).
#[test]
fn sub_nanosecond_seconds_are_refused() {
    for (name, value) in [
        ("timeout", ".1e-10"),
        ("connect_timeout", "1e-300"),
        ("login_pending_ttl", "4.9e-324"),
    ] {
        let mut c = Config::default();
        let err = c.set(name, value).expect_err(value);
        assert!(
            err.message().contains("expected seconds greater than 0"),
            "{err}"
        );
    }
    let mut c = Config::default();
    c.set("timeout", "1e-9").unwrap();
    assert_eq!(c.timeout, std::time::Duration::from_nanos(1));
}
