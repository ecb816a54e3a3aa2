//! Writing a general channel's live message straight to each socket, from the fan-out itself.
//!
//! Queuing a copy to each socket's task costs a wake-up, a poll of the task and the WebSocket
//! layers for every socket, on top of the one `write` the kernel needs: for one event fanned out
//! to 10,000 sockets that was ≈ 9 µs a socket, twice the system call. A server's frames are
//! never masked, so every socket of a channel gets the same bytes: the fan-out builds the frame
//! once and writes it to each socket that is *lent* to it, without waking anything.
//!
//! **Who writes.** A socket's task owns its write side. When it has nothing queued and every
//! channel is live (no replay in flight), it lends the write side to the fan-out ([`Direct::lend`]),
//! with the position it sent last on each channel. Any time it needs to write itself (a status,
//! a replay, a ping, a close; before it reads, since the WebSocket layer may answer a ping), it
//! takes the write side back ([`Direct::take_back`], then [`Direct::flush_rest`]). Both happen under one lock per socket, and
//! the fan-out decides under that same lock whether to write or to queue: so a queued message is
//! never overtaken by a direct one, and no two writers ever meet on the wire.
//!
//! **A write the socket cannot take whole.** Nothing written: the socket stops being lent, and the
//! message is queued for the task (which waits for room, within the send timeout, as for any
//! message). Part of it: the rest is kept here, the socket stops being lent, and the task writes
//! that rest before anything else, again within the send timeout (else the socket is dropped as
//! too slow, as before).
//!
//! Only on Unix: the fan-out writes to the connection's own descriptor, borrowed, not duplicated
//! (a gateway's capacity is its open-file limit: a second descriptor per socket would halve it).
//! The borrow is safe because every write happens under the lock, and the socket's task makes
//! the way inert ([`Direct::close`], also run by [`CloseOnDrop`] if the task unwinds or is dropped)
//! before the connection, and so its descriptor, can be closed. Elsewhere no socket is ever lent,
//! and every message takes the queue.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use qrpush_core::durable::Offset;

/// A position in a stream: its epoch and an entry's offset.
pub type At = (Arc<str>, Offset);

/// One WebSocket text frame, as the server sends it (unmasked): built once per event.
#[derive(Clone, Debug)]
pub struct Frame(Arc<[u8]>);

impl Frame {
    pub fn text(text: &str) -> Frame {
        let payload = text.as_bytes();
        let mut out = Vec::with_capacity(payload.len() + 10);
        out.push(0x81); // FIN, text
        match payload.len() {
            len if len < 126 => out.push(len as u8),
            len if len <= usize::from(u16::MAX) => {
                out.push(126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        Frame(out.into())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What the fan-out did with a message for one socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written whole.
    Written,
    /// Written in part: the socket's task must be woken to write the rest.
    Partly,
    /// Sent already on this socket (by its replay): nothing to do.
    Known,
    /// Not lent, or the socket took nothing, or it needs its task (another epoch): queue it.
    Queue,
}

/// The connection's socket, borrowed: never closed from here (see the module's text).
#[cfg(unix)]
type Socket = std::mem::ManuallyDrop<std::net::TcpStream>;
/// No socket is ever lent off Unix: this type has no value.
#[cfg(not(unix))]
type Socket = std::convert::Infallible;

#[derive(Debug)]
struct State {
    socket: Option<Socket>,
    /// The fan-out may write (the task lent the write side, and no write has failed since).
    open: bool,
    /// Lent since the task last took the write side back: `positions` are the fan-out's.
    lent: bool,
    /// The last position sent on each channel of the socket (index as in its token).
    positions: Vec<Option<At>>,
    /// The unwritten end of a frame the socket took only in part.
    rest: Option<(Frame, usize)>,
}

/// The fan-out's way to one socket; see the module's text.
#[derive(Debug)]
pub struct Direct {
    state: Mutex<State>,
}

impl Direct {
    /// The way to the socket of the connection whose descriptor is `fd`.
    ///
    /// # Safety
    /// `fd` must be the descriptor of an open connection, and stay open until [`Direct::close`]
    /// has returned (hold a [`CloseOnDrop`] of this way in the task that owns the connection,
    /// declared after the connection's value, so it is dropped first).
    #[cfg(unix)]
    pub unsafe fn of(fd: std::os::fd::RawFd) -> Direct {
        use std::os::fd::FromRawFd;
        // SAFETY: per this function's contract; ManuallyDrop: the descriptor is never closed here.
        let socket = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        Direct::with(Some(socket))
    }

    #[cfg(unix)]
    fn with(socket: Option<Socket>) -> Direct {
        Direct {
            state: Mutex::new(State {
                socket,
                open: false,
                lent: false,
                positions: Vec::new(),
                rest: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No step under this lock can leave it inconsistent (plain assignments).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `frame` (the message at `at` of channel `index`) to the socket; `queue` is called,
    /// under the same lock, when the socket's task must take it.
    pub fn deliver(
        &self,
        index: usize,
        at: Option<&At>,
        frame: &Frame,
        queue: impl FnOnce(),
    ) -> Delivery {
        let mut state = self.lock();
        let verdict = state.write(index, at, frame);
        if verdict == Delivery::Queue {
            queue();
        }
        verdict
    }

    /// The task lends the write side, if `idle()` (checked under the lock: nothing queued), with
    /// its last position on each channel (asked only if it was not lent already: then the
    /// positions are the fan-out's until taken back). False: not lent (no socket here, a rest to
    /// write, or something queued).
    pub fn lend(
        &self,
        idle: impl FnOnce() -> bool,
        positions: impl FnOnce() -> Vec<Option<At>>,
    ) -> bool {
        let mut state = self.lock();
        if state.socket.is_none() || state.rest.is_some() || !idle() {
            return false;
        }
        if !state.lent {
            state.positions = positions();
            state.lent = true;
        }
        state.open = true;
        true
    }

    /// The fan-out stops writing for now; the positions stay its own (lent). At once, so a
    /// cancelled caller loses nothing.
    pub fn pause(&self) {
        self.lock().open = false;
    }

    /// The task takes the write side back (at once: nothing to await, so nothing is lost if the
    /// caller is cancelled): the fan-out writes no more. Returns the positions the fan-out sent,
    /// if the side was lent. Before the task writes, [`Direct::flush_rest`] must have succeeded.
    pub fn take_back(&self) -> Option<Vec<Option<At>>> {
        let mut state = self.lock();
        state.open = false;
        std::mem::take(&mut state.lent).then(|| std::mem::take(&mut state.positions))
    }

    /// Writes the rest of a frame the socket took in part, waiting for room within `limit`
    /// (`Err`: it did not take it, or is gone). Cancel-safe: what is not written stays here.
    pub async fn flush_rest(&self, limit: Duration) -> Result<(), ()> {
        if self.lock().rest.is_none() {
            return Ok(());
        }
        flush_rest(self, limit).await
    }

    /// The socket's task ends: the fan-out never touches the descriptor again.
    pub fn close(&self) {
        let mut state = self.lock();
        state.open = false;
        state.socket = None;
    }
}

/// Runs [`Direct::close`] when dropped: however the socket's task ends (returns, unwinds, or is
/// dropped by the runtime), the way is inert before the connection's descriptor is closed.
pub struct CloseOnDrop(pub Option<Arc<Direct>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(direct) = &self.0 {
            direct.close();
        }
    }
}

impl State {
    fn write(&mut self, index: usize, at: Option<&At>, frame: &Frame) -> Delivery {
        if !self.open {
            return Delivery::Queue;
        }
        let Some(known) = self.positions.get(index) else {
            // Not a channel of this socket's: its task sorts it out, and nothing overtakes it.
            self.open = false;
            return Delivery::Queue;
        };
        if let (Some((epoch, offset)), Some((known_epoch, known_offset))) = (at, known) {
            if epoch != known_epoch {
                // The stream was made again: the task tells the browser to resync first.
                self.open = false;
                return Delivery::Queue;
            }
            if offset <= known_offset {
                return Delivery::Known;
            }
        }
        let verdict = self.write_now(frame);
        if verdict != Delivery::Queue {
            if let Some(at) = at {
                self.positions[index] = Some(at.clone());
            }
        }
        verdict
    }

    #[cfg(unix)]
    fn write_now(&mut self, frame: &Frame) -> Delivery {
        use std::io::Write;
        let Some(socket) = self.socket.as_mut() else {
            return Delivery::Queue;
        };
        let bytes = frame.bytes();
        match socket.write(bytes) {
            Ok(n) if n == bytes.len() => Delivery::Written,
            Ok(n) if n > 0 => {
                self.open = false;
                self.rest = Some((frame.clone(), n));
                Delivery::Partly
            }
            // Full (or gone: the task's own write finds out and ends the socket).
            _ => {
                self.open = false;
                Delivery::Queue
            }
        }
    }

    #[cfg(not(unix))]
    fn write_now(&mut self, _frame: &Frame) -> Delivery {
        Delivery::Queue
    }
}

/// The first wait between two tries at the rest; doubled up to [`REST_RETRY_MAX`].
#[cfg(unix)]
const REST_RETRY_MIN: Duration = Duration::from_millis(1);
#[cfg(unix)]
const REST_RETRY_MAX: Duration = Duration::from_millis(20);

/// Tries the rest again and again, on a timer: the connection's descriptor is registered with the
/// runtime by its owner already (a second registration of it is refused), and a cut frame only
/// happens to a socket whose buffer is full, which waits in any case.
#[cfg(unix)]
async fn flush_rest(direct: &Direct, limit: Duration) -> Result<(), ()> {
    use std::io::Write;
    let deadline = tokio::time::Instant::now() + limit;
    let mut wait = REST_RETRY_MIN;
    loop {
        {
            let mut state = direct.lock();
            let state = &mut *state;
            let (Some((frame, written)), Some(socket)) =
                (state.rest.as_mut(), state.socket.as_mut())
            else {
                return if state.rest.is_none() {
                    Ok(())
                } else {
                    Err(())
                };
            };
            loop {
                match socket.write(&frame.bytes()[*written..]) {
                    Ok(0) => return Err(()),
                    Ok(n) => {
                        *written += n;
                        if *written == frame.bytes().len() {
                            state.rest = None;
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
        }
        if tokio::time::Instant::now() + wait > deadline {
            return Err(());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(REST_RETRY_MAX);
    }
}

#[cfg(not(unix))]
async fn flush_rest(_direct: &Direct, _limit: Duration) -> Result<(), ()> {
    Ok(()) // never a rest: nothing is lent off Unix
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected loopback pair: the server side non-blocking, as the runtime keeps it.
    #[cfg(unix)]
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    #[cfg(unix)]
    fn at(epoch: &str, ms: u64) -> Option<At> {
        Some((Arc::from(epoch), Offset::new(ms, 0)))
    }

    #[cfg(unix)]
    #[test]
    fn a_lent_socket_gets_new_messages_skips_known_ones_and_hands_its_positions_back() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let (server, mut client) = pair();
        // SAFETY: `server` outlives every use: `close` runs before it is dropped.
        let direct = unsafe { Direct::of(server.as_raw_fd()) };
        let never = || panic!("queued");
        assert_eq!(
            direct.deliver(0, None, &Frame::text("x"), || ()),
            Delivery::Queue,
            "not lent yet"
        );
        assert!(!direct.lend(|| false, Vec::new), "something is queued");
        assert!(direct.lend(|| true, || vec![at("e1", 5)]));
        let old = direct.deliver(0, at("e1", 5).as_ref(), &Frame::text("old"), never);
        assert_eq!(old, Delivery::Known);
        let new = direct.deliver(0, at("e1", 6).as_ref(), &Frame::text("new"), never);
        assert_eq!(new, Delivery::Written);
        assert_eq!(
            direct.deliver(0, None, &Frame::text("plain"), never),
            Delivery::Written
        );
        // Another epoch needs the task (a resync first): queued, and nothing overtakes it.
        let mut queued = 0;
        let other = direct.deliver(0, at("e2", 1).as_ref(), &Frame::text("e2"), || queued += 1);
        assert_eq!((other, queued), (Delivery::Queue, 1));
        let later = direct.deliver(0, at("e1", 9).as_ref(), &Frame::text("later"), || {
            queued += 1
        });
        assert_eq!((later, queued), (Delivery::Queue, 2));
        assert_eq!(direct.take_back(), Some(vec![at("e1", 6)]));
        assert_eq!(direct.take_back(), None, "taken back once");
        let mut got = [0u8; 12];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\x81\x03new\x81\x05plain");
        direct.close();
        assert!(!direct.lend(|| true, Vec::new), "closed: never lent again");
        drop(server);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_frame_the_socket_takes_in_part_is_finished_before_anything_else() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let (server, mut client) = pair();
        // SAFETY: as above.
        let direct = unsafe { Direct::of(server.as_raw_fd()) };
        assert!(direct.lend(|| true, || vec![None]));
        let frame = Frame::text(&"z".repeat(64 * 1024));
        let mut sent = 0usize;
        loop {
            assert!(sent < 100_000_000, "the socket's buffer never filled");
            match direct.deliver(0, None, &frame, || panic!("queued before a cut")) {
                Delivery::Written => sent += frame.bytes().len(),
                Delivery::Partly => break,
                other => panic!("{other:?} before the buffer cut a frame"),
            }
        }
        sent += frame.bytes().len();
        assert!(
            !direct.lend(|| true, Vec::new),
            "a rest is pending: not lent again"
        );
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            while all.len() < sent {
                let n = client.read(&mut buf).unwrap();
                assert!(n > 0);
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        direct.take_back();
        direct
            .flush_rest(Duration::from_secs(10))
            .await
            .expect("the rest went out");
        let all = reader.join().unwrap();
        assert_eq!(all.len(), sent);
        assert!(
            all.chunks(frame.bytes().len()).all(|c| c == frame.bytes()),
            "whole frames only"
        );
        assert!(
            direct.lend(|| true, || vec![None]),
            "lent again once the rest is out"
        );
        direct.close();
        drop(server);
    }

    #[test]
    fn frames_are_unmasked_text_frames_with_the_shortest_length() {
        let short = Frame::text("hi");
        assert_eq!(short.bytes(), b"\x81\x02hi");
        let medium = "x".repeat(300);
        let framed = Frame::text(&medium);
        assert_eq!(&framed.bytes()[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(framed.bytes().len(), 304);
        let long = "y".repeat(70_000);
        let framed = Frame::text(&long);
        assert_eq!(framed.bytes()[1], 127);
        assert_eq!(&framed.bytes()[2..10], &70_000u64.to_be_bytes());
        assert_eq!(framed.bytes().len(), 70_010);
    }
}
