//! Futures a socket's task polls only when they woke it: the read side, the timers and the
//! shutdown wait are ready rarely, while the socket's queue wakes the task once per message of a
//! fan-out. Each such future is polled with a waker of its own that records its wake-up before it
//! wakes the task, so a task woken for a queued message polls its queue and skips the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::AcqRel;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::Release);
        self.task.wake();
    }
}

/// Whether one future must be polled: it has not been yet, it woke the task, or it was ready
/// last time (a stream may hold more, a timer re-arms only when polled).
pub(crate) struct WakeFlag {
    flag: Arc<Flag>,
    waker: Waker,
}

impl WakeFlag {
    pub(crate) fn new() -> WakeFlag {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        WakeFlag {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// The future must be polled next time (it was replaced or re-armed without a poll).
    pub(crate) fn set(&self) {
        self.flag
            .woken
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// `future`, polled only when this flag says so.
    pub(crate) fn guard<F: Future + Unpin>(&self, future: F) -> Guarded<'_, F> {
        Guarded { flag: self, future }
    }
}

/// The flags of the futures a socket's task polls besides its queue, one per future.
pub(crate) struct Wakes {
    pub shutdown: WakeFlag,
    pub token: WakeFlag,
    pub read: WakeFlag,
    pub ping: WakeFlag,
    pub heartbeat: WakeFlag,
}

impl Wakes {
    pub(crate) fn new() -> Wakes {
        Wakes {
            shutdown: WakeFlag::new(),
            token: WakeFlag::new(),
            read: WakeFlag::new(),
            ping: WakeFlag::new(),
            heartbeat: WakeFlag::new(),
        }
    }
}

pub(crate) struct Guarded<'a, F> {
    flag: &'a WakeFlag,
    future: F,
}

impl<F: Future + Unpin> Future for Guarded<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let flag = self.flag;
        // Registered before the flag is read: a wake-up after the read wakes this task again.
        flag.flag.task.register(cx.waker());
        if !flag.flag.woken.swap(false, AcqRel) {
            return Poll::Pending;
        }
        let mut own = Context::from_waker(&flag.waker);
        let polled = Pin::new(&mut self.future).poll(&mut own);
        if polled.is_ready() {
            flag.set();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn a_guarded_future_is_polled_again_once_it_woke_the_task() {
        let flag = WakeFlag::new();
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(7).await.unwrap();
        });
        let got = tokio::time::timeout(Duration::from_secs(5), flag.guard(Box::pin(rx.recv())))
            .await
            .expect("the guarded receive woke its task");
        assert_eq!(got, Some(7));
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn a_guarded_future_is_skipped_until_it_wakes() {
        let flag = WakeFlag::new();
        let polls = std::cell::Cell::new(0);
        let counted = std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        });
        let mut guarded = std::pin::pin!(flag.guard(counted));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..3 {
            assert!(guarded.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.get(), 1, "polled once, then only after a wake-up");
        flag.waker.wake_by_ref();
        assert!(guarded.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 2);
    }
}
