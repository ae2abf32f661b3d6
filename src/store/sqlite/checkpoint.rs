//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1000 pages (4 MiB).
//! A batch of a thousand LLM spans is several MiB of pages, so nearly every commit of the single
//! writer also copied the WAL into the database file and synced it before the requests of that
//! batch could be answered. A server turns that off on the writer connection and runs passive
//! checkpoints here instead, on its own connection: they never block the writer or readers, and a
//! commit's durability does not depend on them (it is in the WAL, synced per `synchronous`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Synchronous, open_connection};
use crate::store::StoreResult;

/// How often the thread checkpoints: at 30,000 spans/s about 15 MiB of WAL between two.
const INTERVAL: Duration = Duration::from_millis(100);

pub(super) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, synchronous: Synchronous) -> StoreResult<Self> {
        let connection = open_connection(path, synchronous)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    if let Err(error) =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%error, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|error| {
                crate::store::StoreError::Unavailable(format!(
                    "cannot start the checkpoint thread: {error}"
                ))
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub(super) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
