// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! `rediss-sentinel://`: Sentinels and data nodes on TLS (1 primary + 1 replica replicating over
//! TLS, 3 Sentinels with TLS ports that monitor the primary over TLS). The client asks the
//! Sentinels over TLS, trusting the test CA (`tls_ca_file`), and publishes to the primary they
//! name over TLS; a client trusting another CA is refused by the Sentinels' certificates.
//! Every server keeps a plain port for the test's own admin and subscriber connections.

use qrpush_test_support as support;

use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::{Client, Config, ErrorKind};
use redis::Value;
use support::{free_port, text, Pki, RedisServer};

const WAIT: Duration = Duration::from_secs(5);
const SERVICE: &str = "qrpush";

/// A data node or Sentinel with a TLS port besides its plain one.
struct TlsNode {
    server: RedisServer,
    tls_port: u16,
}

fn tls_args(pki: &Pki, tls_port: u16) -> Vec<String> {
    [
        "--tls-port".to_string(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        pki.path("server.pem"),
        "--tls-key-file".into(),
        pki.path("server.key"),
        "--tls-ca-cert-file".into(),
        pki.path("ca.pem"),
        "--tls-auth-clients".into(),
        "no".into(),
        "--tls-replication".into(),
        "yes".into(),
    ]
    .to_vec()
}

fn data_node(pki: &Pki, extra: &[&str]) -> TlsNode {
    let tls_port = free_port();
    let mut args = tls_args(pki, tls_port);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TlsNode {
        server: RedisServer::start_with(&args),
        tls_port,
    }
}

fn sentinel(pki: &Pki, primary_tls_port: u16) -> TlsNode {
    let tls_port = free_port();
    // Sentinel takes its TLS settings from its config file; with tls-replication it reaches the
    // data nodes (and announces itself) over TLS.
    let config = format!(
        "tls-port {tls_port}\n\
         tls-cert-file {cert}\n\
         tls-key-file {key}\n\
         tls-ca-cert-file {ca}\n\
         tls-auth-clients no\n\
         tls-replication yes\n\
         sentinel monitor {SERVICE} 127.0.0.1 {primary_tls_port} 2\n\
         sentinel down-after-milliseconds {SERVICE} 1000\n",
        cert = pki.path("server.pem"),
        key = pki.path("server.key"),
        ca = pki.path("ca.pem"),
    );
    TlsNode {
        server: RedisServer::start_sentinel(&config),
        tls_port,
    }
}

fn client(url: &str, ca: &str) -> Client {
    let mut config = Config::default();
    config.set("url", url).unwrap();
    config.set("tls_ca_file", ca).unwrap();
    config.set("connect_timeout", "2").unwrap();
    Client::new(config)
}

#[test]
fn sentinels_and_data_nodes_on_tls() {
    let pki = Pki::new();
    let primary = data_node(&pki, &[]);
    let primary_tls = primary.tls_port.to_string();
    let replica = data_node(&pki, &["--replicaof", "127.0.0.1", &primary_tls]);
    let sentinels: Vec<TlsNode> = (0..3).map(|_| sentinel(&pki, primary.tls_port)).collect();

    // Usable once every Sentinel names the primary's TLS port and the replica is in sync over
    // TLS (asked on the plain ports).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let named = sentinels.iter().all(|s| {
            match s
                .server
                .cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])
            {
                Value::Array(addr) if addr.len() == 2 => text(&addr[1]) == primary_tls,
                _ => false,
            }
        });
        let synced =
            text(&replica.server.cmd(&["INFO", "replication"])).contains("master_link_status:up");
        if named && synced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the TLS Sentinel topology did not settle"
        );
        thread::sleep(Duration::from_millis(50));
    }

    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.tls_port))
        .collect();
    let url = format!("rediss-sentinel://{}#{SERVICE}", hosts.join(","));
    let mut sub = primary.server.subscribe(&["events"]);
    let client = client(&url, &pki.path("ca.pem"));
    assert_eq!(client.publish(b"events", b"over TLS").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"over TLS".to_vec()]);
    let stats = client.stats();
    assert_eq!(
        stats.topology.primary,
        Some(format!("127.0.0.1:{}", primary.tls_port)),
        "the primary is reached on its TLS port"
    );
    assert!(stats.endpoint.starts_with("rediss-sentinel://127.0.0.1:"));
    // The connection QrPush holds to the primary is a TLS one: the primary counts it under its
    // TLS port's clients (laddr), none on the plain port but the test's own.
    let clients = text(&primary.server.cmd(&["CLIENT", "LIST"]));
    let name = support::qrpush_name();
    let ours: Vec<&str> = clients.lines().filter(|l| l.contains(&name)).collect();
    assert!(!ours.is_empty(), "{clients}");
    assert!(
        ours.iter()
            .all(|l| l.contains(&format!("laddr=127.0.0.1:{}", primary.tls_port))),
        "{ours:?}"
    );

    // Trusting another CA, the Sentinels' own certificates are refused: they are asked over TLS.
    let untrusting = self::client(&url, &pki.path("other-ca.pem"));
    let e = untrusting.publish(b"events", b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        e.message()
            .starts_with("no primary of the Sentinel service 'qrpush' found through 127.0.0.1:"),
        "{e}"
    );
    assert!(e.message().to_lowercase().contains("certificate"), "{e}");
    sub.nothing_more(Duration::from_millis(200));
}
