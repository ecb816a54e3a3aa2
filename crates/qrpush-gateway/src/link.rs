//! One Pub/Sub connection to one Redis node, in RESP3 so that ROLE can be asked on it while it
//! is subscribed (a replica found there means the node was demoted: the subscriber moves away).
//!
//! [`open`] connects, logs in (`HELLO 3 AUTH …`), and checks the node's role when asked to (a
//! Sentinel's or a Cluster's primary must say `master`: Sentinel may answer with a node it has
//! not yet seen demoted), all within one bound. Then a task of its own reads the node: every
//! frame goes to the subscriber's event queue tagged with the link's id, and the end of the
//! connection as [`LinkEvent::Closed`]. Commands are written through the [`Link`]; dropping it
//! ends the task and closes the connection.

use std::time::Duration;

use qrpush_core::endpoint::{Address, Endpoint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::resp::{self, Frame};

/// What a link tells the subscriber.
#[derive(Debug)]
pub enum LinkEvent {
    Frame(u64, Frame),
    /// The connection ended (closed, reset, unreadable bytes): why.
    Closed(u64, String),
}

/// A connected, logged-in node.
pub struct Link {
    pub node: Endpoint,
    commands: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

impl Link {
    /// Queues a command (`redis::cmd(...).get_packed_command()`); its reply comes as an event.
    /// A link whose task ended drops it: the `Closed` event is on its way.
    pub fn send(&self, command: Vec<u8>) {
        let _ = self.commands.send(command);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connects to `node`, logs in and (if `must_be_primary`) checks that it is a primary, within
/// `bound`; then starts reading it into `events`.
pub async fn open(
    id: u64,
    node: &Endpoint,
    must_be_primary: bool,
    bound: Duration,
    events: mpsc::UnboundedSender<LinkEvent>,
) -> Result<Link, String> {
    let label = node.label();
    let (stream, buf) = tokio::time::timeout(bound, handshake(node, must_be_primary))
        .await
        .map_err(|_| format!("connecting to {label} timed out after {bound:?}"))??;
    let (commands, queue) = mpsc::unbounded_channel();
    let task = tokio::spawn(read_and_write(id, stream, buf, queue, events));
    Ok(Link {
        node: node.clone(),
        commands,
        task,
    })
}

async fn connect(node: &Endpoint) -> Result<Box<dyn Stream>, String> {
    let label = node.label();
    match &node.address {
        Address::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot connect to {label}: {e}"))?;
            // Small writes (SUBSCRIBE, ROLE) go out at once.
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
        #[cfg(unix)]
        Address::Unix { path } => tokio::net::UnixStream::connect(path)
            .await
            .map(|s| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| format!("cannot connect to {label}: {e}")),
        _ => Err(format!(
            "the gateway connects to redis:// and unix:// nodes (Redis on a trusted network), not {}",
            node.redacted_url()
        )),
    }
}

/// The first bytes of a link: `HELLO 3 [AUTH user password] SETNAME qrpush-gateway`, and `ROLE`
/// when the node must be a primary. Returns the stream and what was read past the replies.
async fn handshake(
    node: &Endpoint,
    must_be_primary: bool,
) -> Result<(Box<dyn Stream>, Vec<u8>), String> {
    let label = node.label();
    let mut stream = connect(node).await?;
    let mut hello = redis::cmd("HELLO");
    hello.arg(3);
    if let Some(password) = &node.password {
        hello
            .arg("AUTH")
            .arg(node.username.as_deref().unwrap_or("default"))
            .arg(password.expose());
    }
    hello.arg("SETNAME").arg("qrpush-gateway");
    let mut bytes = hello.get_packed_command();
    if must_be_primary {
        bytes.extend(redis::cmd("ROLE").get_packed_command());
    }
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("cannot write to {label}: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    match read_frame(&mut stream, &mut buf, &label).await? {
        // The server's own words (WRONGPASS, NOAUTH, NOPROTO...) hold no secret of ours.
        Frame::Error(e) => return Err(format!("{label} refused the login: {e}")),
        Frame::List(_) => {}
        other => return Err(format!("unexpected reply to HELLO from {label}: {other:?}")),
    }
    if must_be_primary {
        let role = read_frame(&mut stream, &mut buf, &label).await?;
        if let Some(role) = role_of(&role) {
            if role != "master" {
                return Err(format!("{label} is a {role}, not the primary"));
            }
        } else {
            return Err(format!("unexpected reply to ROLE from {label}: {role:?}"));
        }
    }
    Ok((stream, buf))
}

/// `master`, `slave` or `sentinel`, from a ROLE reply.
pub fn role_of(reply: &Frame) -> Option<&str> {
    match reply {
        Frame::List(items) => items.first().and_then(Frame::text),
        _ => None,
    }
}

/// Reads until `buf` holds a complete frame, and takes it out of `buf`.
async fn read_frame(
    stream: &mut Box<dyn Stream>,
    buf: &mut Vec<u8>,
    label: &str,
) -> Result<Frame, String> {
    loop {
        if let Some((frame, used)) = resp::parse(buf).map_err(|e| format!("{label}: {e}"))? {
            buf.drain(..used);
            return Ok(frame);
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| format!("cannot read from {label}: {e}"))?;
        if n == 0 {
            return Err(format!("{label} closed the connection"));
        }
    }
}

async fn read_and_write(
    id: u64,
    stream: Box<dyn Stream>,
    mut buf: Vec<u8>,
    mut commands: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<LinkEvent>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let why = loop {
        // Frames already in the buffer first (the handshake may have read past its replies);
        // the buffer is shifted once per read, not once per frame.
        let mut at = 0;
        loop {
            match resp::parse(&buf[at..]) {
                Ok(Some((frame, used))) => {
                    at += used;
                    if events.send(LinkEvent::Frame(id, frame)).is_err() {
                        return; // the subscriber is gone
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = events.send(LinkEvent::Closed(id, e));
                    return;
                }
            }
        }
        buf.drain(..at);
        tokio::select! {
            command = commands.recv() => match command {
                Some(bytes) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        break format!("write failed: {e}");
                    }
                }
                None => return, // the link was dropped
            },
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break "the connection closed".to_string(),
                Ok(_) => {}
                Err(e) => break format!("read failed: {e}"),
            },
        }
    };
    let _ = events.send(LinkEvent::Closed(id, why));
}
