//! What the login tests on one server (`login.rs`) and on a Cluster (`cluster_login.rs`) share:
//! reading a login refusal out of an error, and racing scans against the per-user scan limit.

use std::sync::{Arc, Barrier};
use std::thread;

use qrpush_core::login::{Login, LoginError};
use qrpush_core::{Client, ErrorKind};

/// The login refusal `e` carries; any other error fails the test.
pub fn login_err(e: qrpush_core::Error) -> LoginError {
    match e.kind() {
        ErrorKind::Login(l) => l,
        other => panic!("expected a login error, got {other:?}: {e}"),
    }
}

/// Scans every QR of `qrs` as `user` at once, one thread each released by one barrier, and
/// checks that exactly `limit` of them win and every other is refused as `RateLimited`: the
/// limit holds under a race, not only one scan after another.
pub fn racing_scans_pass_exactly(client: &Arc<Client>, qrs: Vec<String>, user: &str, limit: usize) {
    let barrier = Arc::new(Barrier::new(qrs.len()));
    let handles: Vec<_> = qrs
        .into_iter()
        .map(|qr| {
            let (client, barrier) = (client.clone(), barrier.clone());
            let user = user.to_string();
            thread::spawn(move || {
                barrier.wait();
                Login::new(&client)
                    .scan(&qr, &user, "")
                    .map(|_| ())
                    .map_err(login_err)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        limit,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(LoginError::RateLimited))));
}
