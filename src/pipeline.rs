//! The ingest pipeline: a bounded queue between the receivers and the store.
//!
//! Receivers submit the spans of one request and wait for the answer. One writer task takes
//! everything queued at that moment and stores it in one write (group commit), then answers all
//! of those requests at once: a receiver answers 200 only after its spans are durable, while
//! concurrent requests share commits instead of paying for one each.
//!
//! The queue is bounded by a count of spans. When it is full, submitting fails at once with
//! [`PipelineError::Overloaded`] (503 with `Retry-After`), so memory stays bounded whatever the
//! load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::model::NormalizedSpan;
use crate::store::{SpanBatch, Store, StoreError};

/// How the pipeline is sized.
#[derive(Debug, Clone, Copy)]
pub struct PipelineLimits {
    /// Spans that may wait for the store at once; more is answered with 503.
    pub queue_capacity_spans: usize,
    /// Most spans stored in one write.
    pub max_batch_spans: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ingest queue is full ({capacity} spans waiting); retry later")]
    Overloaded { capacity: usize },
    #[error("request has {spans} spans, more than the ingest queue holds ({capacity})")]
    TooManySpans { spans: usize, capacity: usize },
    #[error("server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct WriteJob {
    batch: SpanBatch,
    /// Holds the job's place in the queue until it is stored.
    _permit: OwnedSemaphorePermit,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// The sending side, cloned into every receiver.
#[derive(Clone)]
pub struct Pipeline {
    jobs: mpsc::UnboundedSender<WriteJob>,
    capacity: Arc<Semaphore>,
    limits: PipelineLimits,
    buffered: Arc<AtomicU64>,
}

impl Pipeline {
    /// Starts the writer task. It ends once every `Pipeline` clone is dropped and the queue is
    /// drained.
    pub fn start(store: Arc<dyn Store>, limits: PipelineLimits) -> (Self, JoinHandle<()>) {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(run_writer(
            store,
            receiver,
            limits.max_batch_spans,
            Arc::clone(&buffered),
        ));
        let pipeline = Self {
            jobs,
            capacity: Arc::new(Semaphore::new(limits.queue_capacity_spans)),
            limits,
            buffered,
        };
        (pipeline, writer)
    }

    /// Spans accepted and not yet stored.
    pub fn buffered(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Queues the spans of one request and waits until they are durable.
    pub async fn submit(
        &self,
        project_id: &str,
        spans: Vec<NormalizedSpan>,
    ) -> Result<(), PipelineError> {
        if spans.is_empty() {
            return Ok(());
        }
        let capacity = self.limits.queue_capacity_spans;
        if spans.len() > capacity {
            return Err(PipelineError::TooManySpans {
                spans: spans.len(),
                capacity,
            });
        }
        let permit = Arc::clone(&self.capacity)
            .try_acquire_many_owned(spans.len() as u32)
            .map_err(|_| PipelineError::Overloaded { capacity })?;
        let span_count = spans.len() as u64;
        let (done, answer) = oneshot::channel();
        let job = WriteJob {
            batch: SpanBatch {
                project_id: project_id.to_owned(),
                spans,
            },
            _permit: permit,
            done,
        };
        self.buffered.fetch_add(span_count, Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            self.buffered.fetch_sub(span_count, Ordering::Relaxed);
            return Err(PipelineError::ShuttingDown);
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(PipelineError::Store(StoreError::Unavailable(
                error.to_string(),
            ))),
            Err(_) => Err(PipelineError::ShuttingDown),
        }
    }
}

async fn run_writer(
    store: Arc<dyn Store>,
    mut receiver: mpsc::UnboundedReceiver<WriteJob>,
    max_batch_spans: usize,
    buffered: Arc<AtomicU64>,
) {
    while let Some(first) = receiver.recv().await {
        let mut span_count = first.batch.spans.len();
        let mut jobs = vec![first];
        while span_count < max_batch_spans {
            match receiver.try_recv() {
                Ok(job) => {
                    span_count += job.batch.spans.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (batches, answers): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|job| (job.batch, (job.done, job._permit)))
            .unzip();
        let started = std::time::Instant::now();
        let result = store.write_spans(batches).await.map_err(Arc::new);
        match &result {
            Ok(()) => tracing::debug!(
                spans = span_count,
                requests = answers.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "stored batch"
            ),
            Err(error) => tracing::error!(spans = span_count, %error, "storing batch failed"),
        }
        buffered.fetch_sub(span_count as u64, Ordering::Relaxed);
        for (done, permit) in answers {
            let _ = done.send(result.clone());
            drop(permit);
        }
    }
}
