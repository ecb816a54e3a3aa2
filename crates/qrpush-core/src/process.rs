//! The current process id, without a syscall on every call.
//!
//! Every pooled call asks "was this connection opened by this process?" (after fork() the child
//! must never write to its parent's sockets). `getpid()` is a real syscall on Linux, so on Unix
//! the pid is cached and refreshed in the child by a `pthread_atfork` handler; glibc unregisters
//! the handler if PHP unloads the extension. Elsewhere (Windows has no fork) the std call is used.

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Once;

    static PID: AtomicU32 = AtomicU32::new(0);
    static REGISTER: Once = Once::new();

    extern "C" fn refresh_in_child() {
        PID.store(std::process::id(), Ordering::Relaxed);
    }

    pub fn current_pid() -> u32 {
        REGISTER.call_once(|| {
            PID.store(std::process::id(), Ordering::Relaxed);
            // SAFETY: registers a handler that only stores an integer; valid for the life of the
            // library (glibc drops it when the shared object is unloaded).
            unsafe { libc::pthread_atfork(None, None, Some(refresh_in_child)) };
        });
        PID.load(Ordering::Relaxed)
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn current_pid() -> u32 {
        std::process::id()
    }
}

pub use imp::current_pid;

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn matches_the_os_and_follows_fork() {
        assert_eq!(super::current_pid(), std::process::id());
        // SAFETY: the child only calls async-signal-safe functions (getpid via our handler's
        // effect, write, _exit) before exiting.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let ok = super::current_pid() == unsafe { libc::getpid() } as u32;
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child saw a stale pid"
        );
    }
}
