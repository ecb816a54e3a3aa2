// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! fork() as php-fpm and pcntl_fork do it: a child never writes to a connection its parent
//! opened; it opens its own, with its own counters, and the parent's connection keeps working.
//!
//! This binary holds a single test on purpose: fork() copies only the calling thread, so no
//! other test may hold a lock (or be mid-publish) when it happens.

use qrpush_test_support as support;

use std::time::Duration;

use support::{Login, RedisServer};

/// Child exit codes, one per check, so a failure in the child says which check failed.
const CHILD_OK: i32 = 0;
const CHILD_PANICKED: i32 = 10;
const CHILD_PUBLISH_FAILED: i32 = 11;
const CHILD_WRONG_RECEIVERS: i32 = 12;
const CHILD_STATS_NOT_RESET: i32 = 13;
const CHILD_NOT_ITS_OWN_CONNECTION: i32 = 14;

#[test]
fn a_forked_child_opens_its_own_connection() {
    let server = RedisServer::start();
    let mut sub = server.subscribe(&["f"]);
    let client = server.client(&[]);
    assert_eq!(client.publish(b"f", b"parent 1").unwrap(), 1);
    let parent_clients = server.qrpush_clients();
    assert_eq!(parent_clients.len(), 1);
    let parent_id = parent_clients[0].id();
    let port = server.port();

    // SAFETY: this binary runs one test, so the calling thread is the only one doing work; the
    // child only publishes through the core (which is what must be fork-safe) and then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match client.publish(b"f", b"child") {
                Ok(1) => {}
                Ok(_) => return CHILD_WRONG_RECEIVERS,
                Err(_) => return CHILD_PUBLISH_FAILED,
            }
            let stats = client.stats();
            if stats.published != 1
                || stats.connections_created != 1
                || stats.pid != std::process::id()
            {
                return CHILD_STATS_NOT_RESET;
            }
            // The server sees a connection named after the child.
            let mut admin = match support::Admin::connect(port, &Login::default()) {
                Ok(admin) => admin,
                Err(_) => return CHILD_PANICKED,
            };
            let mine = support::client_list(&admin.cmd(&["CLIENT", "LIST"]))
                .into_iter()
                .filter(|c| {
                    c.get("name") == Some(format!("qrpush-{}", std::process::id()).as_str())
                })
                .count();
            if mine != 1 {
                return CHILD_NOT_ITS_OWN_CONNECTION;
            }
            CHILD_OK
        }))
        .unwrap_or(CHILD_PANICKED);
        // SAFETY: leave without running the parent's atexit handlers or test harness code.
        unsafe { libc::_exit(code) };
    }

    let mut status = 0;
    // SAFETY: waiting for the child we just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        CHILD_OK,
        "child check failed (see CHILD_* codes)"
    );

    // The child's message arrived, and the parent's connection is intact and still reused.
    assert_eq!(client.publish(b"f", b"parent 2").unwrap(), 1);
    assert_eq!(
        sub.recv(3, Duration::from_secs(5)),
        vec![
            b"parent 1".to_vec(),
            b"child".to_vec(),
            b"parent 2".to_vec()
        ]
    );
    sub.nothing_more(Duration::from_millis(200));
    server.wait_until(
        "the child's connection to close",
        Duration::from_secs(5),
        |s| s.clients_named(&format!("qrpush-{pid}")).is_empty(),
    );
    let now = server.qrpush_clients();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].id(), parent_id, "the parent kept its connection");
    let stats = client.stats();
    assert_eq!(stats.published, 2, "the child's counters are its own");
    assert_eq!(stats.connections_created, 1);
    assert_eq!(stats.failed, 0);
}
