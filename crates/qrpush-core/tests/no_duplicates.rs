// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! A PUBLISH that may have reached Redis is never sent again: failures after the command was
//! written say so (`maybe_sent`), and no subscriber ever sees a message twice, even when the
//! server dies mid-flight or a reply is lost after Redis executed the command.

use qrpush_test_support as support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use qrpush_core::{ErrorKind, Result};
use support::{Login, Next, Proxy, RedisServer, Subscriber};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn a_lost_reply_is_reported_and_not_resent() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let proxy = Proxy::start(server.port());
    let client = server.client(&[("url", &proxy.url()), ("timeout", "2")]);

    assert_eq!(client.publish(b"c", b"first").unwrap(), 1);
    assert_eq!(proxy.accepted(), 1);

    // Redis runs the next PUBLISH, but its reply never comes back and the connection drops.
    proxy.cut_existing();
    let start = Instant::now();
    let err = client.publish(b"c", b"second").unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the drop is noticed at once"
    );
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.maybe_sent(), "the command was written: {err}");
    assert!(
        err.message().starts_with(&format!(
            "connection to Redis at 127.0.0.1:{} lost",
            proxy.port()
        )),
        "{}",
        err.message()
    );

    // It was delivered once, and not re-sent on a new connection.
    assert_eq!(
        sub.recv(2, WAIT),
        vec![b"first".to_vec(), b"second".to_vec()]
    );
    sub.nothing_more(Duration::from_millis(300));
    assert_eq!(proxy.accepted(), 1, "no retry connection was opened");

    // The next call uses a new connection and works.
    assert_eq!(client.publish(b"c", b"third").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"third".to_vec()]);
    assert_eq!(proxy.accepted(), 2);
    let stats = client.stats();
    assert_eq!(stats.published, 2);
    assert_eq!(stats.failed, 1);
}

#[test]
fn a_lost_batch_reply_is_not_resent() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["c"]);
    let proxy = Proxy::start(server.port());
    let client = server.client(&[("url", &proxy.url())]);
    client.ping().unwrap();

    proxy.cut_existing();
    let batch: Vec<(&str, String)> = (0..20).map(|i| ("c", format!("b{i}"))).collect();
    let err = client.publish_many(&batch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.maybe_sent());
    let got = sub.recv(20, WAIT);
    let expected: Vec<Vec<u8>> = batch.iter().map(|(_, p)| p.clone().into_bytes()).collect();
    assert_eq!(got, expected);
    sub.nothing_more(Duration::from_millis(300));
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(client.stats().failed, 20);
}

#[test]
fn server_killed_while_a_publish_is_in_flight() {
    let mut server = RedisServer::start();
    let client = Arc::new(server.client(&[("connect_timeout", "1"), ("timeout", "3")]));
    assert_eq!(client.publish(b"c", b"warm").unwrap(), 0);

    // Frozen, the server accepts the bytes into its socket buffer but never reads them.
    server.freeze();
    let publisher = {
        let client = client.clone();
        thread::spawn(move || {
            let start = Instant::now();
            (client.publish(b"c", b"in flight"), start.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(150));
    server.stop(); // SIGKILL while the publish waits for its reply
    let (result, elapsed) = publisher.join().unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.maybe_sent(),
        "bytes were written before the kill: {err}"
    );
    assert!(
        err.message().starts_with("connection to Redis at"),
        "not a retry's connect error: {}",
        err.message()
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "the kill ends the wait at once, not the 3 s timeout ({elapsed:?})"
    );

    // After a restart nothing arrives late, and the next publish is a fresh one.
    server.restart();
    let mut sub = server.subscribe(&["c"]);
    assert_eq!(client.publish(b"c", b"next").unwrap(), 1);
    assert_eq!(sub.recv(1, WAIT), vec![b"next".to_vec()]);
    sub.nothing_more(Duration::from_millis(300));
    let stats = client.stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.published, 2);
}

#[test]
fn unique_messages_across_a_restart_arrive_at_most_once() {
    const TOTAL: usize = 200;
    const KILL_AT: usize = 60;
    const RESUME_AT: usize = 150;

    let server = Arc::new(Mutex::new(RedisServer::start()));
    let port = server.lock().unwrap().port();
    let client = server
        .lock()
        .unwrap()
        .client(&[("connect_timeout", "0.5"), ("timeout", "0.5")]);

    // A subscriber that reconnects whenever its connection drops, counting every receipt.
    let received: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let generation = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let subscriber = {
        let (received, generation, done) = (received.clone(), generation.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let Ok(mut sub) = Subscriber::connect(port, &Login::default(), &["ids"]) else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                generation.fetch_add(1, Ordering::SeqCst);
                loop {
                    match sub.next(Duration::from_millis(20)) {
                        Next::Message(_, payload) => {
                            let text = String::from_utf8(payload).unwrap();
                            let id: usize = text.strip_prefix("id-").unwrap().parse().unwrap();
                            *received.lock().unwrap().entry(id).or_insert(0) += 1;
                        }
                        Next::Timeout if done.load(Ordering::SeqCst) => return,
                        Next::Timeout => {}
                        Next::Closed => break,
                    }
                }
            }
        })
    };
    wait_for("the first subscription", || {
        generation.load(Ordering::SeqCst) >= 1
    });

    // Kills (SIGKILL) and restarts the server while the publisher keeps going.
    let kill = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let killer = {
        let (server, kill, restarted) = (server.clone(), kill.clone(), restarted.clone());
        thread::spawn(move || {
            wait_for("the kill signal", || kill.load(Ordering::SeqCst));
            let mut server = server.lock().unwrap();
            server.stop();
            let dead_at = Instant::now();
            thread::sleep(Duration::from_millis(30));
            server.restart();
            restarted.store(true, Ordering::SeqCst);
            dead_at
        })
    };

    let mut results: Vec<Result<i64>> = Vec::with_capacity(TOTAL);
    let mut ended: Vec<Instant> = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        if i == KILL_AT {
            kill.store(true, Ordering::SeqCst);
        }
        if i == RESUME_AT {
            // From here on the subscriber is back: these must all be delivered.
            wait_for("the restart", || restarted.load(Ordering::SeqCst));
            wait_for("the subscriber to come back", || {
                generation.load(Ordering::SeqCst) >= 2
            });
        }
        results.push(client.publish(b"ids", format!("id-{i}").as_bytes()));
        ended.push(Instant::now());
        thread::sleep(Duration::from_millis(1));
    }
    let dead_at = killer.join().unwrap();

    // Redis writes a PUBLISH's reply before the subscribers' copies (its pending-write list is
    // served newest first), so the one message acknowledged last before the SIGKILL may die in
    // the server's output buffer. Pub/Sub is at-most-once: that message may be missing, no other.
    let last_before_kill = (0..TOTAL)
        .filter(|i| matches!(results[*i], Ok(n) if n >= 1) && ended[*i] <= dead_at)
        .max();
    let must_arrive: Vec<usize> = (0..TOTAL)
        .filter(|i| matches!(results[*i], Ok(n) if n >= 1) && Some(*i) != last_before_kill)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let missing: Vec<usize> = {
            let got = received.lock().unwrap();
            must_arrive
                .iter()
                .copied()
                .filter(|i| !got.contains_key(i))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged (Ok(n>=1)) but never received: {missing:?}; subscriptions: {}; results: {:?}",
            generation.load(Ordering::SeqCst),
            results
                .iter()
                .enumerate()
                .map(|(i, r)| format!("{i}:{}", match r {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("E({:?},{})", e.kind(), e.maybe_sent()),
                }))
                .collect::<Vec<_>>()
                .join(" ")
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(200)); // room for a duplicate to show up
    done.store(true, Ordering::SeqCst);
    subscriber.join().unwrap();

    let received = received.lock().unwrap();
    let mut failures = 0;
    for (i, result) in results.iter().enumerate() {
        let count = received.get(&i).copied().unwrap_or(0);
        assert!(count <= 1, "id-{i} was received {count} times ({result:?})");
        match result {
            Ok(n) if *n >= 1 && Some(i) == last_before_kill => {}
            Ok(n) if *n >= 1 => assert_eq!(count, 1, "id-{i} was acknowledged but not received"),
            Ok(_) => assert_eq!(count, 0, "id-{i} had no receivers yet arrived"),
            Err(e) => {
                failures += 1;
                assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                    "id-{i}: {e}"
                );
                if !e.maybe_sent() {
                    assert_eq!(count, 0, "id-{i} failed before sending ({e}) yet arrived");
                }
            }
        }
    }
    assert!(
        (0..KILL_AT).all(|i| matches!(results[i], Ok(1))),
        "all publishes before the kill succeed"
    );
    assert!(
        (RESUME_AT..TOTAL).all(|i| matches!(results[i], Ok(1))),
        "all publishes after the resubscription succeed"
    );
    assert!(
        failures >= 1,
        "some publishes must hit the dead server (the scenario did not happen)"
    );
    let stats = client.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.failed as usize, failures);
    assert_eq!(stats.published as usize, TOTAL - failures);
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}
