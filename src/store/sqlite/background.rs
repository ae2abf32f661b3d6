//! What the store's background threads (the text indexer, the checkpointer) share: the signal
//! that wakes and stops them, and the lower priority of work that can wait.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lock;
use crate::store::{StoreError, StoreResult};

/// Wakes a background thread of the store (the text indexer, the checkpointer) when the writer
/// committed work for it, and tells it to stop.
#[derive(Default)]
pub(super) struct Signal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Default)]
struct SignalState {
    pending: bool,
    stop: bool,
}

impl Signal {
    /// Called by the writer after a commit that left work for the thread.
    pub(super) fn notify(&self) {
        lock(&self.state).pending = true;
        self.changed.notify_all();
    }

    pub(super) fn stop(&self) {
        lock(&self.state).stop = true;
        self.changed.notify_all();
    }

    /// Waits for a notification (or `timeout`); `false` when the thread must stop.
    pub(super) fn wait_for_work(&self, timeout: Duration) -> bool {
        let mut state = lock(&self.state);
        let deadline = Instant::now() + timeout;
        while !state.pending && !state.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        state.pending = false;
        !state.stop
    }

    /// Sleeps for `duration` unless told to stop first; `false` when the thread must stop.
    pub(super) fn pause(&self, duration: Duration) -> bool {
        let state = lock(&self.state);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, duration, |state| !state.stop)
            .unwrap_or_else(|poison| poison.into_inner());
        !state.stop
    }
}

/// `nice` of work that can lag behind ingest (the text indexer): on a machine whose cores are
/// all busy, the writer and the receivers, which hold exporters' requests, get the CPU first.
pub(super) const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to `nice` (Linux). Where that is not
/// possible, nothing changes.
pub fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
        let result = unsafe {
            let thread = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, nice)
        };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the priority of a thread"
            );
        }
    }
}

/// A background thread of the store with its signal; stopping (or dropping) it lets the work
/// in hand finish.
pub(super) struct Worker {
    /// What the thread is, for messages ("text indexer").
    what: &'static str,
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `work` on a thread named `name` until `signal` tells it to stop.
    pub(super) fn start(
        name: &str,
        what: &'static str,
        signal: Arc<Signal>,
        work: impl FnOnce(&Signal) + Send + 'static,
    ) -> StoreResult<Self> {
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(&thread_signal))
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the {what}: {error}"))
            })?;
        Ok(Self {
            what,
            signal,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(&mut self) {
        self.signal.stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the {} panicked", self.what);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
