//! The writer connection on a thread of its own. Every write of the store is serial, through
//! this one thread, while decoding, normalizing and compressing spans runs on all the
//! runtime's threads: the server lowers those threads' priority
//! ([`super::lower_thread_priority`]), so that on a machine whose cores are busy the writer gets
//! a core when it has work rather than waiting its turn behind work that can wait.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Runs jobs on the writer connection, one after another, in the order they are given.
pub(super) struct WriterThread {
    /// `None` once dropped: the thread then ends after the jobs given.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl WriterThread {
    pub(super) fn start(mut connection: Connection) -> StoreResult<Self> {
        let (jobs, received) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("spanhouse-writer".into())
            .spawn(move || {
                for job in received {
                    // A job that panics answers nothing (its caller gets an error); the writer
                    // goes on with the next.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut connection)));
                }
            })
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the writer thread: {error}"))
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the writer connection and waits for its result.
    pub(super) async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let _ = answer.send(work(connection));
        });
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Unavailable(
                "the writer thread has stopped".into(),
            ));
        }
        answered
            .await
            .map_err(|_| StoreError::Unavailable("a write failed unexpectedly (a panic)".into()))?
    }
}

impl Drop for WriterThread {
    /// Lets the jobs given finish, then closes the connection.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_panics_fails_alone() {
        let writer = WriterThread::start(Connection::open_in_memory().unwrap()).unwrap();
        writer
            .run(|connection| Ok(connection.execute_batch("CREATE TABLE t (x)")?))
            .await
            .unwrap();
        let failed = writer
            .run(|connection| -> StoreResult<()> {
                connection.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("a bug in a write")
            })
            .await;
        assert!(
            matches!(&failed, Err(StoreError::Unavailable(message)) if message.contains("panic")),
            "{failed:?}"
        );
        // The writer goes on, on the same connection.
        let rows: i64 = writer
            .run(|connection| {
                connection.execute("INSERT INTO t VALUES (2)", [])?;
                Ok(connection.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(rows, 2);
    }
}
