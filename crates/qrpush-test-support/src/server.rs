//! A private `redis-server` per test: a child process on a free loopback port, without
//! persistence, in a directory of its own; killed and its directory removed when dropped.
//!
//! The core's pool is process-wide and keyed by endpoint, so separate ports keep tests
//! independent while they run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::{Client, Config};
use redis::Value;

use crate::admin::{client_list, text, Admin, ClientInfo};
use crate::ports;
use crate::subscriber::Subscriber;

/// How long a server may take to answer its first PING.
const STARTUP_BOUND: Duration = Duration::from_secs(10);

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
                .map(|dir| dir.join(if cfg!(windows) { "redis-server.exe" } else { "redis-server" }))
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

/// The redis-cli binary (`redis-cli --cluster create`): `$REDIS_CLI`, else the `redis-cli` beside
/// the redis-server in use, else the first on `PATH`.
pub fn redis_cli_binary() -> PathBuf {
    let name = if cfg!(windows) {
        "redis-cli.exe"
    } else {
        "redis-cli"
    };
    if let Some(path) = std::env::var_os("REDIS_CLI").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let beside = redis_server_binary().with_file_name(name);
    if is_executable(&beside) {
        return beside;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("redis-cli is not beside redis-server nor on PATH; set REDIS_CLI")
        })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
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
    /// A config file given before the other arguments (a Sentinel needs one it can rewrite).
    config_file: Option<PathBuf>,
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

    /// A server with extra command-line arguments that needs `login` (its `--requirepass` or an
    /// ACL user among `extra`): the test's own admin connections log in with it.
    pub fn start_with_login(extra: &[&str], login: Login) -> Self {
        let mut server = Self::prepare(extra);
        server.login = login;
        server.launch_on_free_port();
        server
    }

    /// A Sentinel (`redis-server CONFIG --sentinel`) whose config file holds `config`; Sentinel
    /// rewrites that file as it learns the topology, so it lives in the server's own directory.
    pub fn start_sentinel(config: &str) -> Self {
        Self::start_sentinel_with_login(config, Login::default())
    }

    /// [`start_sentinel`](Self::start_sentinel) for a Sentinel whose `config` makes it need
    /// `login` (`requirepass`, `user`).
    pub fn start_sentinel_with_login(config: &str, login: Login) -> Self {
        let mut server = Self::prepare(&["--sentinel"]);
        server.login = login;
        let file = server.dir.join("sentinel.conf");
        std::fs::write(&file, config).expect("write the Sentinel's config file");
        server.config_file = Some(file);
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
            config_file: None,
            login: Login::default(),
            child: None,
            frozen: false,
        }
    }

    /// Starts on a fresh port, retrying with another one when the port was taken meanwhile.
    fn launch_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = ports::free_port();
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
        if let Some(file) = &self.config_file {
            cmd.arg(file);
        }
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

    /// The server's own directory (its log, a Cluster node's nodes.conf, a Sentinel's config).
    pub fn dir(&self) -> &Path {
        &self.dir
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
    #[cfg(unix)]
    pub fn freeze(&mut self) {
        self.signal(libc::SIGSTOP);
        self.frozen = true;
    }

    /// SIGCONT after `freeze`.
    #[cfg(unix)]
    pub fn thaw(&mut self) {
        self.signal(libc::SIGCONT);
        self.frozen = false;
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    #[cfg(unix)]
    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child, which has not been reaped (we hold its Child).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Whether the child is running (not stopped by `stop`; it may be frozen).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// An admin connection, or why there is none (the server may be down on purpose).
    pub fn try_admin(&self) -> std::io::Result<Admin> {
        Admin::connect(self.port, &self.login)
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

    /// A sharded Pub/Sub subscriber (SSUBSCRIBE) of `channels`.
    pub fn subscribe_sharded(&self, channels: &[&str]) -> Subscriber {
        Subscriber::connect_sharded(self.port, &self.login, channels)
            .unwrap_or_else(|e| panic!("SSUBSCRIBE on port {}: {e}", self.port))
    }

    /// A client for this server with `settings` applied over the defaults.
    pub fn client(&self, settings: &[(&str, &str)]) -> Client {
        Client::new(self.config(settings))
    }

    /// A config for this server (URL set first, so `settings` may override it).
    pub fn config(&self, settings: &[(&str, &str)]) -> Config {
        config_for(&self.url(), settings)
    }

    pub fn set_login(&mut self, login: Login) {
        self.login = login;
    }
}

/// A config for the server or topology at `url` with `settings` applied over the defaults (the
/// URL first, so `settings` may override it); a setting the core refuses fails the test, naming
/// it. Shared by the single server and the Cluster.
pub(crate) fn config_for(url: &str, settings: &[(&str, &str)]) -> Config {
    let mut config = Config::default();
    config.set("url", url).expect("url");
    for (name, value) in settings {
        config
            .set(name, value)
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
    }
    config
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        ports::release(self.port);
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
