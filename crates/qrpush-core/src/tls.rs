//! TLS for `rediss://` endpoints: rustls with the ring provider (no OpenSSL, nothing to ship beside
//! the extension), the trust store (a CA file, else Mozilla's roots compiled in), and the handshake,
//! bounded by `connect_timeout` like the TCP connect before it.
//!
//! The options ([`TlsOptions`]) come from settings, not from the URL (`config` parses them): they
//! are part of the endpoint (the pool key), so two clients that trust different CAs never share a
//! connection.
//!
//! A rustls connection sends nothing on drop (no `close_notify`: only `send_close_notify()` would),
//! so a forked child dropping the connections it inherited cannot disturb its parent's session.

use std::collections::HashMap;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};

/// A TLS session over a TCP socket. Timeouts are the socket's (`sock.set_read_timeout`).
pub(crate) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// How the server's certificate is checked (`tls_verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsVerify {
    /// The certificate must chain to a trusted CA (`tls_ca_file`, else the built-in Mozilla roots)
    /// and be valid for the server name (the URL's host, or `tls_server_name`). The default.
    #[default]
    Full,
    /// INSECURE, for testing only: any certificate is accepted, so anyone on the network path can
    /// impersonate the server and read the password and every message. The traffic is encrypted,
    /// but to whom is not checked.
    None,
}

/// The TLS settings of a `rediss://` endpoint. Part of the endpoint's identity (the pool key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust instead of the built-in roots (`tls_ca_file`).
    pub ca_file: Option<String>,
    pub verify: TlsVerify,
    /// The name the certificate must be valid for, and the SNI sent, instead of the URL's host
    /// (`tls_server_name`), for connecting by IP address to a server whose certificate names it.
    pub server_name: Option<String>,
}

/// The rustls client configuration for `options`, built once per process and options (the CA file
/// is read on the first TLS connection of the process, not at every connect): a failure is not
/// cached, so a fixed file is picked up by the next connect.
fn client_config(options: &TlsOptions) -> io::Result<Arc<ClientConfig>> {
    static CONFIGS: Lazy<Mutex<HashMap<TlsOptions, Arc<ClientConfig>>>> =
        Lazy::new(|| Mutex::new(HashMap::new()));
    if let Some(config) = CONFIGS.lock().get(options) {
        return Ok(Arc::clone(config));
    }
    let config = Arc::new(build_client_config(options)?);
    CONFIGS.lock().insert(options.clone(), Arc::clone(&config));
    Ok(config)
}

fn build_client_config(options: &TlsOptions) -> io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS is not available: {e}")))?;
    Ok(match options.verify {
        TlsVerify::Full => builder
            .with_root_certificates(trust_store(options)?)
            .with_no_client_auth(),
        TlsVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    })
}

/// The CA file's certificates, else Mozilla's roots (webpki-roots, compiled in).
fn trust_store(options: &TlsOptions) -> io::Result<RootCertStore> {
    let Some(path) = &options.ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let pem = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read tls_ca_file {path}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| invalid(format!("tls_ca_file {path} is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            invalid(format!(
                "tls_ca_file {path} holds a certificate that cannot be a trust anchor: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(invalid(format!(
            "tls_ca_file {path} holds no certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(roots)
}

/// The rustls configuration for `options`, loaded before the TCP connect so that a bad CA file
/// fails without touching the network.
pub(crate) fn prepare(options: &TlsOptions) -> io::Result<Arc<ClientConfig>> {
    client_config(options)
}

/// Runs the TLS handshake on a connected socket, within `deadline` (what is left of
/// `connect_timeout`). Every failure is an error that names the reason and never returns a stream
/// that did not verify: a wrong CA or name fails closed, before any command is written.
pub(crate) fn handshake(
    config: Arc<ClientConfig>,
    mut sock: TcpStream,
    host: &str,
    options: &TlsOptions,
    deadline: Instant,
) -> io::Result<TlsStream> {
    let name = options.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{name}' is not a valid TLS server name; set tls_server_name"),
        )
    })?;
    let mut conn = ClientConnection::new(config, server_name)
        .map_err(|e| describe(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    while conn.is_handshaking() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake timed out",
            ));
        }
        sock.set_read_timeout(Some(remaining))?;
        sock.set_write_timeout(Some(remaining))?;
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(describe(e)),
        }
    }
    Ok(StreamOwned::new(conn, sock))
}

/// A handshake failure as a message that says what to fix. Timeouts keep their kind (the caller
/// reports them as timeouts).
fn describe(e: io::Error) -> io::Error {
    let kind = e.kind();
    if matches!(kind, io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        return e;
    }
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let text = match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "TLS certificate verification failed: {}",
            certificate_problem(cert)
        ),
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::InappropriateMessage { .. }) => {
            "TLS handshake failed: the server did not answer with TLS (is this port a TLS port? use redis:// for a plain one)"
                .to_string()
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("TLS handshake failed: the server refused it with the alert {alert:?}")
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None if kind == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake (is this port a TLS port?)"
                .to_string()
        }
        None => format!("TLS handshake failed: {e}"),
    };
    io::Error::new(kind, text)
}

fn certificate_problem(cert: &CertificateError) -> String {
    match cert {
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted CA (set tls_ca_file to the CA certificate that signed it)"
                .to_string()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("{cert} (the name checked is the URL's host, or tls_server_name when set)")
        }
        other => other.to_string(),
    }
}

/// `tls_verify = none`: accepts any certificate (the handshake's signatures are still checked, so
/// the session is at least bound to the certificate presented). Insecure by design.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    /// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
    fn ca_and_server() -> (String, rustls::ServerConfig) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        (ca_cert.pem(), server)
    }

    /// A CA certificate in a PEM file of its own temporary directory, removed when dropped.
    struct CaFile {
        dir: std::path::PathBuf,
    }

    impl CaFile {
        /// `name` keeps the directories of tests running at the same time apart.
        fn write(name: &str, ca_pem: &str) -> CaFile {
            let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
            CaFile { dir }
        }

        /// The file's path, as `qrpush.tls_ca_file` takes it.
        fn path(&self) -> String {
            self.dir.join("ca.pem").display().to_string()
        }
    }

    impl Drop for CaFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Accepts one connection on a loopback port in a thread, and hands `serve` the server side
    /// of its TLS session (not yet handshaken; reads time out after 5 s). Returns the port and
    /// the thread, whose result is `serve`'s.
    fn serve_one_tls_connection<T: Send + 'static>(
        server_config: rustls::ServerConfig,
        serve: impl FnOnce(StreamOwned<rustls::ServerConnection, TcpStream>) -> T + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<T>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
            serve(StreamOwned::new(conn, sock))
        });
        (port, server)
    }

    /// The client side: connects to `port` on loopback and runs the handshake for `localhost`.
    fn connect_to_localhost(port: u16, options: &TlsOptions) -> io::Result<TlsStream> {
        let config = prepare(options).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        handshake(config, sock, "localhost", options, deadline)
    }

    /// Dropping a client stream must write nothing: no close_notify alert, just the socket's FIN.
    /// A forked child drops the connections it inherited; an alert on the shared session would
    /// make Redis close the parent's connection.
    #[test]
    fn dropping_a_stream_sends_no_close_notify() {
        let (ca_pem, server_config) = ca_and_server();
        let ca_file = CaFile::write("qrpush-tls-unit", &ca_pem);
        let (port, server) = serve_one_tls_connection(server_config, |mut tls| {
            let mut ping = [0u8; 4];
            tls.read_exact(&mut ping).unwrap();
            tls.write_all(b"pong").unwrap();
            // After the client's drop: a clean close (close_notify) reads as Ok(0), a bare FIN as
            // UnexpectedEof. Anything else would be bytes the client sent on drop.
            let mut rest = Vec::new();
            let end = tls.read_to_end(&mut rest);
            (ping, rest, end.map_err(|e| e.kind()))
        });

        let options = TlsOptions {
            ca_file: Some(ca_file.path()),
            ..TlsOptions::default()
        };
        let mut tls = connect_to_localhost(port, &options).unwrap();
        tls.write_all(b"ping").unwrap();
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"pong");
        drop(tls);

        let (ping, rest, end) = server.join().unwrap();
        assert_eq!(&ping, b"ping");
        assert!(rest.is_empty(), "bytes after the drop: {rest:?}");
        assert_eq!(
            end,
            Err(io::ErrorKind::UnexpectedEof),
            "the server saw a close_notify: dropping the client stream sent one"
        );
    }

    #[test]
    fn a_wrong_name_fails_closed_with_a_clear_message() {
        let (ca_pem, server_config) = ca_and_server();
        let ca_file = CaFile::write("qrpush-tls-unit-name", &ca_pem);
        let (port, server) = serve_one_tls_connection(server_config, |mut tls| {
            let mut buf = [0u8; 1];
            tls.read(&mut buf).map_err(|e| e.to_string())
        });
        let options = TlsOptions {
            ca_file: Some(ca_file.path()),
            server_name: Some("other.example".into()),
            ..TlsOptions::default()
        };
        let err = connect_to_localhost(port, &options)
            .expect_err("a certificate for another name must be refused");
        let text = err.to_string();
        assert!(
            text.starts_with("TLS certificate verification failed: certificate not valid for name \"other.example\""),
            "{text}"
        );
        // The server learns why (an alert) and never gets application data.
        assert!(server.join().unwrap().is_err());
    }
}
