//! Property tests of the RESP reply handling: a fake server on loopback answers the handshake
//! or the PUBLISH with arbitrary bytes (random, or RESP-shaped with hostile lengths), then
//! closes. Whatever it sends:
//! - nothing panics and nothing hangs past the configured time bound;
//! - the result is a value or a typed error (Protocol, Connection, Timeout or Server);
//! - a well-formed integer reply is the receiver count, and only then is a publish a success;
//! - an error reply is a Server error that starts with its code;
//! - the stats count exactly what happened.
//!
//! Failures are persisted in proptest-regressions/proptest_resp.txt and replayed first.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use qrpush_core::connection::Connection;
use qrpush_core::{Client, Config, Endpoint, ErrorKind};

#[path = "common/proptest_config.rs"]
mod proptest_config;

fn config(cases: u32) -> ProptestConfig {
    proptest_config::config("proptest-regressions/proptest_resp.txt", cases)
}

const BOUND: Duration = Duration::from_millis(300);
/// Commands a new connection sends before any request: CLIENT SETNAME, ROLE and WAIT (a fake
/// server's `+OK` to ROLE and WAIT is no role information: the connection is used without the
/// primary check).
const HANDSHAKE: usize = 3;

/// Counts complete RESP command arrays (`*N` of `$len` bulks) at the start of `buf`.
fn complete_commands(buf: &[u8]) -> usize {
    fn line(buf: &[u8], at: usize) -> Option<(i64, usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    let (mut at, mut count) = (0, 0);
    while at < buf.len() {
        let Some((n, mut next)) = line(buf, at) else {
            break;
        };
        let mut complete = true;
        for _ in 0..n {
            match line(buf, next) {
                Some((len, body)) if body + len as usize + 2 <= buf.len() => {
                    next = body + len as usize + 2
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            break;
        }
        at = next;
        count += 1;
    }
    count
}

/// A one-connection fake server: answers the first `answered` commands with `+OK`, then reads
/// `then_read` more commands and writes `reply`, then closes. Returns its port.
fn fake_server(answered: usize, then_read: usize, reply: Vec<u8>) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut read_until = |stream: &mut std::net::TcpStream, buf: &mut Vec<u8>, n: usize| {
            while complete_commands(buf) < n {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            true
        };
        if answered > 0 {
            if !read_until(&mut stream, &mut buf, answered) {
                return;
            }
            let _ = stream.write_all(&b"+OK\r\n".repeat(answered));
        }
        if !read_until(&mut stream, &mut buf, answered + then_read) {
            return;
        }
        let _ = stream.write_all(&reply);
        let _ = stream.shutdown(Shutdown::Both);
    });
    (port, handle)
}

/// `+OK` to each handshake command.
fn handshake() -> Vec<Vec<u8>> {
    vec![b"+OK\r\n".to_vec(); HANDSHAKE]
}

fn endpoint(port: u16) -> Endpoint {
    Endpoint::parse(&format!("redis://127.0.0.1:{port}")).unwrap()
}

fn client(port: u16) -> Client {
    let mut c = Config::default();
    c.set("url", &format!("redis://127.0.0.1:{port}")).unwrap();
    c.set("pool_size", "1").unwrap();
    c.set("connect_timeout", "0.3").unwrap();
    c.set("timeout", "0.3").unwrap();
    Client::new(c)
}

/// RESP-shaped replies: frames of every RESP2/RESP3 type with random or hostile lengths and
/// payloads, sometimes cut short.
fn resp_like() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        -3i64..20,
        Just(-1i64),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1i64 << 40),
        Just(4_294_967_296),
        any::<i64>(),
    ];
    let frame = (
        prop::sample::select(b"+-:$*%~>_,#!=(|x\r\n0".to_vec()),
        number,
        proptest::collection::vec(any::<u8>(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(kind, n, payload, as_number)| {
            let mut out = vec![kind];
            if as_number {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                out.extend_from_slice(&payload);
            }
            out.extend_from_slice(b"\r\n");
            if !as_number {
                return out;
            }
            out.extend_from_slice(&payload);
            out.extend_from_slice(b"\r\n");
            out
        });
    (proptest::collection::vec(frame, 1..6), any::<usize>()).prop_map(|(frames, cut)| {
        let all = frames.concat();
        let keep = if cut % 3 == 0 {
            cut % (all.len() + 1)
        } else {
            all.len()
        };
        all[..keep].to_vec()
    })
}

fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        resp_like(),
        prop::sample::select(vec![
            b"+garbage\r\n".to_vec(),
            b"$-5\r\n".to_vec(),
            b"$5\r\nabc".to_vec(),
            b":1\r\n".to_vec(),
            b":-1\r\n".to_vec(),
            b": 7 \r\n".to_vec(),
            b":99999999999999999999\r\n".to_vec(),
            b"-ERR boom\r\n".to_vec(),
            b"-\r\n".to_vec(),
            b"*-1\r\n".to_vec(),
            b"*2\r\n:1\r\n:2\r\n".to_vec(),
            b"*9223372036854775807\r\n".to_vec(),
            b"%9223372036854775807\r\n".to_vec(),
            b"|1\r\n+a\r\n+b\r\n:1\r\n".to_vec(),
            b">2\r\n+message\r\n+x\r\n".to_vec(),
            b"$9223372036854775807\r\n".to_vec(),
            b"=5\r\ntxt:hi\r\n".to_vec(),
            "+\u{2028}é\r\n".as_bytes().to_vec(),
            b"+\xff\xfe\r\n".to_vec(),
            [b"*".as_slice(), &b"*1\r\n".repeat(2000)].concat(),
        ]),
    ]
}

/// The receiver count if `bytes` starts with a well-formed RESP integer reply.
fn integer_reply(bytes: &[u8]) -> Option<i64> {
    let rest = bytes.strip_prefix(b":")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(&rest[..end]).ok()?.trim().parse().ok()
}

/// True if `bytes` starts with a well-formed RESP error reply (one UTF-8 line after '-', with no
/// line feed before its CRLF: a bare LF ends a line too early).
fn error_reply(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(b"-") else {
        return false;
    };
    rest.windows(2)
        .position(|w| w == b"\r\n")
        .is_some_and(|end| {
            !rest[..end].contains(&b'\n') && std::str::from_utf8(&rest[..end]).is_ok()
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes in answer to the handshake (CLIENT SETNAME).
    #[test]
    fn any_handshake_reply_is_a_connection_or_an_error(reply in reply_bytes()) {
        let (port, server) = fake_server(0, 1, reply.clone());
        let start = Instant::now();
        let result = Connection::open(&endpoint(port), start + BOUND);
        let elapsed = start.elapsed();
        prop_assert!(elapsed < BOUND + Duration::from_millis(500), "took {elapsed:?}");
        match result {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(
                    matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Server),
                    "{:?}: {}", e.kind(), e
                );
                prop_assert!(e.message().contains(&format!("127.0.0.1:{port}")), "{}", e);
                if error_reply(&reply) && !reply.starts_with(b"-NOPERM") && !reply.starts_with(b"-ERR unknown") {
                    // A refusal of the handshake names Redis's error code first.
                    prop_assert_eq!(e.kind(), ErrorKind::Server, "{}", e);
                }
            }
        }
        drop(server.join());
    }

    /// Arbitrary bytes in answer to a PUBLISH on a connection that was set up fine.
    #[test]
    fn any_publish_reply_is_a_count_or_a_typed_error(reply in reply_bytes()) {
        let (port, server) = fake_server(HANDSHAKE, 1, reply.clone());
        let client = client(port);
        // Pools are per process and endpoint: a port the OS hands out again brings back the
        // pool (and counters) of an earlier case, so only the differences count.
        let before = client.stats();
        let start = Instant::now();
        let result = client.publish(b"ch", b"payload");
        let elapsed = start.elapsed();
        prop_assert!(elapsed < 2 * BOUND + Duration::from_millis(500), "took {elapsed:?}");
        let after = client.stats();
        let stats = qrpush_core::StatsSnapshot {
            published: after.published - before.published,
            failed: after.failed - before.failed,
            connections_created: after.connections_created - before.connections_created,
            ..after
        };
        match (integer_reply(&reply), result) {
            (Some(n), Ok(got)) => {
                prop_assert_eq!(got, n);
                prop_assert_eq!((stats.published, stats.failed), (1, 0));
            }
            (Some(n), Err(e)) => prop_assert!(false, "a well-formed :{} reply failed: {}", n, e),
            (None, Ok(got)) => prop_assert!(false, "{:?} was taken for {} receivers", String::from_utf8_lossy(&reply), got),
            (None, Err(e)) => {
                prop_assert!(
                    matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Server),
                    "{:?}: {}", e.kind(), e
                );
                if error_reply(&reply) {
                    prop_assert_eq!(e.kind(), ErrorKind::Server, "{}", e);
                    prop_assert!(e.message().contains("(PUBLISH)"), "{}", e);
                }
                // Bytes were sent: never retried (a retry would be a possible duplicate).
                prop_assert!(e.maybe_sent() || e.kind() == ErrorKind::Server, "{}", e);
                prop_assert_eq!((stats.published, stats.failed), (0, 1));
                prop_assert_eq!(stats.last_error.as_deref(), Some(e.message()));
                prop_assert_eq!(stats.connections_created, 1);
            }
        }
        drop(server.join());
    }

    /// A pipelined batch: the replies are read in order; one bad reply fails the call as a whole.
    #[test]
    fn any_batch_reply_is_counts_or_a_typed_error(reply in reply_bytes(), n in 1usize..4) {
        let (port, server) = fake_server(HANDSHAKE, n, reply.clone());
        let client = client(port);
        let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| (b"ch".to_vec(), format!("m{i}").into_bytes())).collect();
        match client.publish_many(&batch) {
            Ok(counts) => {
                prop_assert_eq!(counts.len(), n);
                let mut rest: &[u8] = &reply;
                for count in counts {
                    let expected = integer_reply(rest);
                    prop_assert_eq!(Some(count), expected, "from {:?}", String::from_utf8_lossy(&reply));
                    let end = rest.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                    rest = &rest[end..];
                }
            }
            Err(e) => prop_assert!(
                matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Server),
                "{:?}: {}", e.kind(), e
            ),
        }
        drop(server.join());
    }
}

/// The replies the PHP bad-input matrix also uses, with their exact outcome.
#[test]
fn known_garbage_replies() {
    let cases: &[(&[u8], ErrorKind, &str)] = &[
        (
            b"+garbage\r\n",
            ErrorKind::Protocol,
            "unexpected reply to PUBLISH",
        ),
        (
            b"$-5\r\n",
            ErrorKind::Protocol,
            "unexpected reply to PUBLISH",
        ),
        (
            b"-ERR fake failure\r\n",
            ErrorKind::Server,
            "ERR fake failure (PUBLISH)",
        ),
        (b"", ErrorKind::Connection, "lost"),
        (b":12x\r\n", ErrorKind::Protocol, "invalid reply"),
    ];
    for (reply, kind, fragment) in cases {
        let (port, server) = fake_server(HANDSHAKE, 1, reply.to_vec());
        let err = client(port).publish(b"ch", b"x").unwrap_err();
        assert_eq!(
            err.kind(),
            *kind,
            "{:?}: {err}",
            String::from_utf8_lossy(reply)
        );
        assert!(
            err.message().contains(fragment),
            "{:?}: {err}",
            String::from_utf8_lossy(reply)
        );
        server.join().unwrap();
    }
}

/// A fake server that serves up to `scripts.len()` connections one after the other: on the n-th,
/// the k-th command gets `scripts[n][k]` (then the connection stays open until the client
/// closes it). Returns the port and a handle that yields the commands each connection sent.
fn scripted_server(scripts: Vec<Vec<Vec<u8>>>) -> (u16, thread::JoinHandle<Vec<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for script in scripts {
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break Some(stream),
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => break None,
                }
            };
            let Some(stream) = stream.as_mut() else { break };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let (mut buf, mut chunk, mut answered) = (Vec::new(), [0u8; 4096], 0);
            loop {
                let complete = complete_commands(&buf);
                while answered < complete && answered < script.len() {
                    let _ = stream.write_all(&script[answered]);
                    answered += 1;
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            seen.push(complete_commands(&buf));
        }
        seen
    });
    (port, handle)
}

/// Found by any_publish_reply_is_a_count_or_a_typed_error: a reply that is not an integer
/// (here RESP3's null, or garbage) to a PUBLISH on a reused connection was retried silently on a
/// new connection, although that PUBLISH had reached Redis: a possible duplicate. It must fail
/// instead, and be sent once.
#[test]
fn an_unexpected_publish_reply_on_a_reused_connection_is_not_retried() {
    for bad in [b"_\r\n".as_slice(), b"+garbage\r\n", b"$-1\r\n", b"*0\r\n"] {
        let (port, server) = scripted_server(vec![
            [handshake(), vec![b":1\r\n".to_vec(), bad.to_vec()]].concat(),
            [handshake(), vec![b":1\r\n".to_vec()]].concat(),
        ]);
        let client = client(port);
        assert_eq!(client.publish(b"ch", b"first").unwrap(), 1);
        let err = client.publish(b"ch", b"second").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(err.maybe_sent(), "{err}");
        drop(client);
        // The handshake + 2 PUBLISH on the first connection; no second connection, no resend.
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            vec![HANDSHAKE + 2],
            "commands per connection for {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// A connection lost after the first reply of a batch: the first message was published (its
/// count is kept), the others have an unknown outcome (maybe sent); nothing is re-sent.
#[test]
fn a_connection_lost_mid_batch_keeps_what_was_published() {
    let (port, server) = fake_server(HANDSHAKE, 3, b":2\r\n".to_vec());
    let client = client(port);
    let err = client
        .publish_many(&[("ch", "a"), ("ch", "b"), ("ch", "c")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.maybe_sent(), "{err}");
    let outcome = err.batch_outcome().expect("a per-message outcome");
    assert_eq!(outcome.published, vec![(0, 2)]);
    let failed: Vec<(usize, bool)> = outcome
        .failed
        .iter()
        .map(|(i, e)| (*i, e.maybe_sent()))
        .collect();
    assert_eq!(failed, vec![(1, true), (2, true)]);
    let stats = client.stats();
    assert_eq!((stats.published, stats.failed), (1, 2));
    server.join().unwrap();
}
