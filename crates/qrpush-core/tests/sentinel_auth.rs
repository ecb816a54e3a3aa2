// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Sentinels with credentials of their own (`requirepass`, and an ACL user that may only ask
//! for the primary), in front of data nodes with another password: the `sentinel_user` /
//! `sentinel_password` settings log in to the Sentinels, the URL's password to the data nodes,
//! and neither is sent where it does not belong nor shown in a message or the stats.

use qrpush_test_support as support;

use std::time::Duration;

use qrpush_core::{Client, Config, ErrorKind};
use support::{SentinelSecrets, SentinelTopology};

const WAIT: Duration = Duration::from_secs(5);

fn secrets() -> SentinelSecrets {
    SentinelSecrets {
        data_password: "data-pw-1f2e".into(),
        sentinel_password: "sentinel-pw-9a8b".into(),
        sentinel_user: "watcher".into(),
        sentinel_user_password: "watcher-pw-7c6d".into(),
    }
}

fn client(url: &str, settings: &[(&str, &str)]) -> Client {
    let mut config = Config::default();
    for (name, value) in settings {
        config.set(name, value).unwrap();
    }
    config.set("url", url).unwrap();
    Client::new(config)
}

#[test]
fn the_sentinels_own_credentials_are_used_for_the_sentinels_only() {
    let s = secrets();
    let topology = SentinelTopology::start_secured(&s);
    let url = topology.url_with_password(&s.data_password);
    let all_secrets = [
        s.data_password.as_str(),
        s.sentinel_password.as_str(),
        s.sentinel_user_password.as_str(),
    ];
    let mut sub = topology.primary().subscribe(&["events"]);

    // The ACL user that may only ask for the primary, and the Sentinels' default user.
    let as_user = client(
        &url,
        &[
            ("sentinel_user", &s.sentinel_user),
            ("sentinel_password", &s.sentinel_user_password),
        ],
    );
    assert_eq!(as_user.publish(b"events", b"as watcher").unwrap(), 1);
    let as_default = client(&url, &[("sentinel_password", &s.sentinel_password)]);
    assert_eq!(as_default.publish(b"events", b"as default").unwrap(), 1);
    assert_eq!(
        sub.recv(2, WAIT),
        vec![b"as watcher".to_vec(), b"as default".to_vec()]
    );
    let stats = as_user.stats();
    assert_eq!(
        stats.topology.primary,
        Some(format!("127.0.0.1:{}", topology.primary().port()))
    );
    for secret in all_secrets {
        assert!(!format!("{stats:?}").contains(secret));
    }

    // Without them the Sentinels refuse: the URL's password (the data nodes') is not theirs
    // and is never sent to them.
    let without = client(&url, &[]);
    let e = without.publish(b"events", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        e.message()
            .starts_with("no primary of the Sentinel service 'qrpush' found through 127.0.0.1:"),
        "{e}"
    );
    assert!(e.message().contains("NOAUTH"), "{e}");
    // A wrong password, and the data nodes' password given as the Sentinels': refused too.
    for wrong in ["not-the-password", s.data_password.as_str()] {
        let c = client(&url, &[("sentinel_password", wrong)]);
        let e = c.publish(b"events", b"x").unwrap_err();
        assert!(e.message().contains("WRONGPASS"), "{e}");
        for secret in all_secrets.iter().chain([&wrong]) {
            assert!(!e.message().contains(secret), "{e}");
            assert!(!format!("{:?}", c.stats()).contains(secret));
        }
    }
    // The ACL user may only ask for the primary (and name its connection): it was never refused
    // anything, so that is all QrPush asks a Sentinel.
    let sentinel = &topology.sentinels()[0];
    let log = sentinel.cmd(&["ACL", "LOG"]);
    let log = format!("{log:?}");
    assert!(
        log.contains("\"auth\""),
        "the log holds the refused passwords: {log}"
    );
    assert!(!log.contains("watcher"), "{log}");
    sub.nothing_more(Duration::from_millis(200));
}
