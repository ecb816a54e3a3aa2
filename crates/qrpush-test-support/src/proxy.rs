//! A TCP proxy in front of a server that can lose replies or inject bytes: how the tests make a
//! command reach Redis while its reply never reaches the client. It can also forget its flows
//! silently (a NAT or load balancer that dropped their state) and send new connections to another
//! server (a DNS name or virtual IP moved by a failover).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A TCP proxy in front of a server that can be told to swallow the next reply on the
/// connections open now and drop them: the command reached Redis (and was executed), its reply
/// never reaches the client. Connections opened later pass everything through.
pub struct Proxy {
    port: u16,
    /// Where new connections go.
    upstream: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<ProxyConn>>>,
    accepted: Arc<AtomicU64>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let upstream = Arc::new(AtomicU16::new(upstream_port));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<ProxyConn>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let acceptor = {
            let (stop, conns, accepted) = (stop.clone(), conns.clone(), accepted.clone());
            let upstream = upstream.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        Err(_) => break,
                    };
                    client.set_nonblocking(false).unwrap();
                    let to = upstream.load(Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                        continue; // dropping `client` refuses it
                    };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let cut = Arc::new(AtomicBool::new(false));
                    let silent = Arc::new(AtomicBool::new(false));
                    conns.lock().unwrap().push(ProxyConn {
                        cut: cut.clone(),
                        silent: silent.clone(),
                        client: client.try_clone().unwrap(),
                    });
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    // client -> server: forward everything (nothing once the flow is forgotten).
                    let (mut c_in, mut s_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let quiet = silent.clone();
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match c_in.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if quiet.load(Ordering::SeqCst) => {}
                                Ok(n) => {
                                    if s_out.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = s_out.shutdown(Shutdown::Write);
                    });
                    // server -> client: forward, unless told to cut this connection. A forgotten
                    // flow forwards nothing and never closes the client's side.
                    let (mut s_in, mut c_out) = (server, client);
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match s_in.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if cut.load(Ordering::SeqCst) => break,
                                Ok(_) if silent.load(Ordering::SeqCst) => {}
                                Ok(n) => {
                                    if c_out.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        if !silent.load(Ordering::SeqCst) {
                            let _ = c_out.shutdown(Shutdown::Both);
                        }
                        let _ = s_in.shutdown(Shutdown::Both);
                    });
                }
            })
        };
        Proxy {
            port,
            upstream,
            stop,
            conns,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The next reply on every connection open now is swallowed and the connection dropped.
    pub fn cut_existing(&self) {
        for c in self.conns.lock().unwrap().iter() {
            c.cut.store(true, Ordering::SeqCst);
        }
    }

    /// New connections go to the server on `port` from now on; open ones stay where they are (a
    /// DNS name or virtual IP moved to another server).
    pub fn point_at(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
    }

    /// Every connection open now goes silent both ways and stays open: no byte is forwarded, no
    /// FIN or RST reaches the client (a NAT or load balancer that forgot the flow). Connections
    /// opened later pass.
    pub fn forget_existing(&self) {
        for c in self.conns.lock().unwrap().iter() {
            c.silent.store(true, Ordering::SeqCst);
        }
    }

    /// Sends `bytes` to the client on every connection open now, as if Redis had sent them
    /// unasked (the proxy keeps forwarding Redis's own replies too).
    pub fn inject_existing(&self, bytes: &[u8]) {
        for c in self.conns.lock().unwrap().iter_mut() {
            let _ = c.client.write_all(bytes);
        }
    }
}

struct ProxyConn {
    cut: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    /// Also keeps the client's side open after a forgotten flow's server closed.
    client: TcpStream,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}
