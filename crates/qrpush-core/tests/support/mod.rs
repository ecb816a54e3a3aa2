//! Test support shared by the integration tests: a private `redis-server` per test, a raw RESP
//! admin connection for assertions, a Pub/Sub subscriber, and a TCP proxy that can lose replies.
//!
//! Every test starts its own server on its own loopback port: the core's pool is process-wide and
//! keyed by endpoint, so separate ports keep tests independent while they run in parallel.
//! `redis-server` is found through `REDIS_SERVER` or `PATH`; when it is missing the test fails
//! (it does not skip), because a silently skipped suite proves nothing.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::{Client, Config};
use redis::Value;

/// How long a server may take to answer its first PING.
const STARTUP_BOUND: Duration = Duration::from_secs(10);
/// How long an admin command may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The redis-server binary: `$REDIS_SERVER`, else the first `redis-server` on `PATH`.
pub fn redis_server_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("REDIS_SERVER").filter(|p| !p.is_empty()) {
                let path = PathBuf::from(path);
                return if path.is_file() {
                    Ok(path)
                } else {
                    Err(format!(
                        "REDIS_SERVER={} does not name a file",
                        path.display()
                    ))
                };
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| is_executable(candidate))
                .ok_or_else(|| "redis-server is not on PATH".to_string())
        })
        .clone()
        .unwrap_or_else(|why| {
            panic!(
                "{why}: the integration tests need a real redis-server. Set REDIS_SERVER=/path/to/redis-server \
                 or run them in the provisioned chroot: \
                 `source scripts/lib.sh && qr_run \"cargo test -p qrpush-core\"`"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Ports handed out by this process, so two servers of one test binary never race for one.
fn claimed_ports() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A free loopback port: the kernel picks one for a throw-away listener. Never 2024 (reserved
/// in this environment) nor 6379 (a developer's own Redis).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if port == 2024 || port == 6379 {
            continue;
        }
        if claimed_ports().lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The password of the default user, and optionally an ACL user to log in as, for admin work.
#[derive(Clone, Debug, Default)]
pub struct Login {
    pub user: Option<String>,
    pub password: Option<String>,
}

/// One private redis-server child process on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    login: Login,
    child: Option<Child>,
    frozen: bool,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl RedisServer {
    /// A server with no password.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server whose default user needs `password`.
    pub fn start_with_password(password: &str) -> Self {
        let mut server = Self::prepare(&["--requirepass", password]);
        server.login.password = Some(password.to_string());
        server.launch_on_free_port();
        server
    }

    /// A server that also listens on a Unix socket (see `socket_path`).
    pub fn start_with_unix_socket() -> Self {
        let mut server = Self::prepare(&[]);
        let socket = server.dir.join("redis.sock");
        server.extra.extend([
            "--unixsocket".to_string(),
            socket.display().to_string(),
            "--unixsocketperm".to_string(),
            "700".to_string(),
        ]);
        server.launch_on_free_port();
        server
    }

    /// A server with extra command-line arguments (`--name value` pairs).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = Self::prepare(extra);
        server.launch_on_free_port();
        server
    }

    fn prepare(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "qrpush-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        RedisServer {
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            login: Login::default(),
            child: None,
            frozen: false,
        }
    }

    /// Starts on a fresh port, retrying with another one when the port was taken meanwhile.
    fn launch_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port();
            match self.launch() {
                Ok(()) => return,
                Err(why) => last = why,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Spawns the server on `self.port` and waits until it answers PING (and is our process).
    fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is already running");
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(redis_server_binary());
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", redis_server_binary().display()))?;
        let pid = child.id();
        let deadline = Instant::now() + STARTUP_BOUND;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "redis-server on port {} exited with {status}; log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            // Any reply (even NOAUTH) means it listens; the pid check proves it is ours.
            if let Ok(mut admin) = Admin::connect(self.port, &self.login) {
                if let Ok(info) = admin.try_cmd(&["INFO", "server"]) {
                    let info = text(&info);
                    if info.contains(&format!("process_id:{pid}\r")) {
                        self.child = Some(child);
                        return Ok(());
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "port {} answered, but not from our redis-server (pid {pid})",
                        self.port
                    ));
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {STARTUP_BOUND:?}; log:\n{}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// `redis://127.0.0.1:PORT` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://[user][:password]@127.0.0.1:PORT`, the parts percent-encoded as a URL needs.
    pub fn url_with(&self, user: Option<&str>, password: Option<&str>) -> String {
        let user = user.map(encode).unwrap_or_default();
        let password = password
            .map(|p| format!(":{}", encode(p)))
            .unwrap_or_default();
        format!("redis://{user}{password}@127.0.0.1:{}", self.port)
    }

    /// The Unix socket of a server from `start_with_unix_socket`.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Kills the server (SIGKILL) and reaps it. The port stays reserved for `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
    }

    /// Starts the server again on the same port (after `stop`, or stops it first).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP_BOUND;
        loop {
            match self.launch() {
                Ok(()) => return,
                // The port may briefly be unavailable (e.g. taken by an outgoing connection).
                Err(why) if Instant::now() < deadline => {
                    let _ = why;
                    thread::sleep(Duration::from_millis(20));
                }
                Err(why) => panic!("could not restart redis-server: {why}"),
            }
        }
    }

    /// SIGSTOP: the kernel still accepts connections and buffers bytes, nothing answers.
    pub fn freeze(&mut self) {
        self.signal(libc::SIGSTOP);
        self.frozen = true;
    }

    /// SIGCONT after `freeze`.
    pub fn thaw(&mut self) {
        self.signal(libc::SIGCONT);
        self.frozen = false;
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child, which has not been reaped (we hold its Child).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
    }

    /// A raw RESP connection logged in as the admin (default user).
    pub fn admin(&self) -> Admin {
        Admin::connect(self.port, &self.login)
            .unwrap_or_else(|e| panic!("admin connection to port {}: {e}", self.port))
    }

    /// Runs one command on a new admin connection; panics on an I/O error, returns error replies.
    pub fn cmd(&self, args: &[&str]) -> Value {
        self.admin().cmd(args)
    }

    /// The clients named `name` in CLIENT LIST, as field maps.
    pub fn clients_named(&self, name: &str) -> Vec<ClientInfo> {
        client_list(&self.cmd(&["CLIENT", "LIST"]))
            .into_iter()
            .filter(|c| c.get("name") == Some(name))
            .collect()
    }

    /// The QrPush connections of this process (`qrpush-<pid>`).
    pub fn qrpush_clients(&self) -> Vec<ClientInfo> {
        self.clients_named(&qrpush_name())
    }

    /// Waits (bounded) until `cond` holds, polling; panics with `what` when it does not.
    pub fn wait_until(&self, what: &str, bound: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + bound;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A subscriber to `channels` on this server.
    pub fn subscribe(&self, channels: &[&str]) -> Subscriber {
        Subscriber::connect(self.port, &self.login, channels)
            .unwrap_or_else(|e| panic!("subscribing on port {}: {e}", self.port))
    }

    /// A client for this server with `settings` applied over the defaults.
    pub fn client(&self, settings: &[(&str, &str)]) -> Client {
        Client::new(self.config(settings))
    }

    /// A config for this server (URL set first, so `settings` may override it).
    pub fn config(&self, settings: &[(&str, &str)]) -> Config {
        let mut config = Config::default();
        config.set("url", &self.url()).expect("url");
        for (name, value) in settings {
            config
                .set(name, value)
                .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
        config
    }

    pub fn set_login(&mut self, login: Login) {
        self.login = login;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        claimed_ports().lock().unwrap().remove(&self.port);
    }
}

/// The client name QrPush gives its connections in this process.
pub fn qrpush_name() -> String {
    format!("qrpush-{}", std::process::id())
}

fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A reply as text (bulk, simple or verbatim string), for INFO and CLIENT LIST.
pub fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".to_string(),
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// One line of CLIENT LIST as `key=value` fields.
#[derive(Debug, Clone)]
pub struct ClientInfo(Vec<(String, String)>);

impl ClientInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn id(&self) -> u64 {
        self.get("id").and_then(|v| v.parse().ok()).expect("id")
    }
}

pub fn client_list(reply: &Value) -> Vec<ClientInfo> {
    text(reply)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            ClientInfo(
                line.split(' ')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

/// A raw RESP2 connection for assertions, independent of the code under test: commands are
/// encoded by `redis::cmd(..).get_packed_command()`, replies read by `redis::Parser`.
pub struct Admin {
    stream: TcpStream,
    parser: redis::Parser,
}

impl Admin {
    pub fn connect(port: u16, login: &Login) -> io::Result<Admin> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        stream.set_write_timeout(Some(ADMIN_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut admin = Admin {
            stream,
            parser: redis::Parser::new(),
        };
        if let Some(password) = &login.password {
            let mut args = vec!["AUTH"];
            if let Some(user) = &login.user {
                args.push(user);
            }
            args.push(password);
            match admin.try_cmd(&args)? {
                Value::Okay => {}
                other => {
                    return Err(io::Error::other(format!("admin AUTH failed: {other:?}")));
                }
            }
        }
        Ok(admin)
    }

    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Value> {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(a.as_ref());
        }
        self.stream.write_all(&cmd.get_packed_command())?;
        self.parser
            .parse_value(&mut self.stream)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Runs a command; an error reply is returned as `Value::ServerError`.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("admin command failed: {e}"))
    }

    /// Runs a command that must answer OK.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        match self.cmd(args) {
            Value::Okay => {}
            other => panic!("expected OK, got {other:?}"),
        }
    }
}

/// What a subscriber's next read produced.
#[derive(Debug)]
pub enum Next {
    /// (channel, payload)
    Message(Vec<u8>, Vec<u8>),
    Timeout,
    Closed,
}

/// A Pub/Sub subscriber on a raw connection.
pub struct Subscriber {
    stream: TcpStream,
    parser: redis::Parser,
}

impl Subscriber {
    pub fn connect(port: u16, login: &Login, channels: &[&str]) -> io::Result<Subscriber> {
        let admin = Admin::connect(port, login)?;
        let mut sub = Subscriber {
            stream: admin.stream,
            parser: admin.parser,
        };
        let mut cmd = redis::cmd("SUBSCRIBE");
        for c in channels {
            cmd.arg(*c);
        }
        sub.stream.write_all(&cmd.get_packed_command())?;
        sub.stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        for c in channels {
            let reply = sub
                .parser
                .parse_value(&mut sub.stream)
                .map_err(|e| io::Error::other(e.to_string()))?;
            match &reply {
                Value::Array(items)
                    if items.len() == 3
                        && items[0] == Value::BulkString(b"subscribe".to_vec())
                        && items[1] == Value::BulkString(c.as_bytes().to_vec()) => {}
                other => {
                    return Err(io::Error::other(format!(
                        "unexpected SUBSCRIBE reply: {other:?}"
                    )))
                }
            }
        }
        Ok(sub)
    }

    /// The next message, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Next {
        let wait = wait.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set_read_timeout");
        match self.parser.parse_value(&mut self.stream) {
            Ok(Value::Array(items)) | Ok(Value::Push { data: items, .. })
                if items.len() == 3 && items[0] == Value::BulkString(b"message".to_vec()) =>
            {
                let mut items = items.into_iter().skip(1);
                match (items.next(), items.next()) {
                    (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                        Next::Message(channel, payload)
                    }
                    other => panic!("malformed Pub/Sub message: {other:?}"),
                }
            }
            Ok(other) => panic!("unexpected value on a subscriber connection: {other:?}"),
            Err(e) if e.is_timeout() => Next::Timeout,
            Err(_) => Next::Closed,
        }
    }

    /// Exactly `n` messages as (channel, payload), within `timeout` overall; panics otherwise.
    pub fn recv_messages(&mut self, n: usize, timeout: Duration) -> Vec<(Vec<u8>, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(n);
        while got.len() < n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                panic!(
                    "expected {n} messages within {timeout:?}, got {}: {:?}",
                    got.len(),
                    got.iter()
                        .take(5)
                        .map(|(c, p)| (
                            String::from_utf8_lossy(c).into_owned(),
                            String::from_utf8_lossy(p).into_owned()
                        ))
                        .collect::<Vec<_>>()
                );
            }
            match self.next(remaining) {
                Next::Message(c, p) => got.push((c, p)),
                Next::Timeout => {}
                Next::Closed => panic!(
                    "subscriber connection closed after {} of {n} messages",
                    got.len()
                ),
            }
        }
        got
    }

    /// Exactly `n` message payloads within `timeout`.
    pub fn recv(&mut self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.recv_messages(n, timeout)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Asserts that no message arrives within `wait`.
    pub fn nothing_more(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return;
            }
            match self.next(remaining) {
                Next::Message(c, p) => panic!(
                    "unexpected message on {:?}: {:?}",
                    String::from_utf8_lossy(&c),
                    String::from_utf8_lossy(&p)
                ),
                Next::Timeout => {}
                Next::Closed => panic!("subscriber connection closed"),
            }
        }
    }
}

/// A TCP proxy in front of a server that can be told to swallow the next reply on the
/// connections open now and drop them: the command reached Redis (and was executed), its reply
/// never reaches the client. Connections opened later pass everything through.
pub struct Proxy {
    port: u16,
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
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<ProxyConn>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let acceptor = {
            let (stop, conns, accepted) = (stop.clone(), conns.clone(), accepted.clone());
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
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue; // dropping `client` refuses it
                    };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let cut = Arc::new(AtomicBool::new(false));
                    conns.lock().unwrap().push(ProxyConn {
                        cut: cut.clone(),
                        client: client.try_clone().unwrap(),
                    });
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    // client -> server: forward everything.
                    let (mut c_in, mut s_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match c_in.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if s_out.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = s_out.shutdown(Shutdown::Write);
                    });
                    // server -> client: forward, unless told to cut this connection.
                    let (mut s_in, mut c_out) = (server, client);
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match s_in.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if cut.load(Ordering::SeqCst) => break,
                                Ok(n) => {
                                    if c_out.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = c_out.shutdown(Shutdown::Both);
                        let _ = s_in.shutdown(Shutdown::Both);
                    });
                }
            })
        };
        Proxy {
            port,
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

/// Asserts `elapsed` lies within `[min, max]`.
#[track_caller]
pub fn assert_within(elapsed: Duration, min: Duration, max: Duration, what: &str) {
    assert!(
        elapsed >= min && elapsed <= max,
        "{what} took {elapsed:?}, expected between {min:?} and {max:?}"
    );
}
