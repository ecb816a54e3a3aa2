//! A redis-server with a TLS port, and the certificates for it: a CA and a server certificate it
//! signed (for `localhost` and 127.0.0.1), plus an unrelated CA, generated per test with rcgen.
//! The server keeps its plain port for the test's own admin and subscriber connections.

use std::path::PathBuf;

use qrpush_core::{Client, Config};

use crate::ports::free_port;
use crate::server::RedisServer;

/// Certificates for one test: a CA, a server certificate it signed (for `localhost` and
/// 127.0.0.1), and an unrelated CA.
pub struct Pki {
    dir: PathBuf,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qrpush-tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, issuer) = ca("QrPush test CA");
        let (other_pem, _) = ca("Some other CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.join("other-ca.pem"), other_pem).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    /// `ca.pem`, `other-ca.pem`, `server.pem` or `server.key`, as a path.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// A redis-server with a TLS port (and a plain one for the test's own connections).
pub struct TlsServer {
    /// The server (its plain port is for the test's own admin and subscriber connections).
    pub server: RedisServer,
    pub tls_port: u16,
    pub pki: Pki,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        Self::start_with(&[])
    }

    /// With more redis-server arguments.
    pub fn start_with(extra: &[&str]) -> TlsServer {
        let pki = Pki::new();
        let tls_port = free_port().to_string();
        let (cert, key, ca) = (
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem"),
        );
        let mut args = vec![
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let server = RedisServer::start_with(&args);
        TlsServer {
            server,
            tls_port: tls_port.parse().unwrap(),
            pki,
        }
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// A config for the TLS port, trusting the test CA, with `settings` on top.
    pub fn config(&self, settings: &[(&str, &str)]) -> Config {
        let mut config = Config::default();
        config.set("url", &self.url()).unwrap();
        config.set("tls_ca_file", &self.pki.path("ca.pem")).unwrap();
        for (name, value) in settings {
            config
                .set(name, value)
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
        config
    }

    /// A client for the TLS port that trusts the test CA, with `settings` on top.
    pub fn client(&self, settings: &[(&str, &str)]) -> Client {
        Client::new(self.config(settings))
    }
}
