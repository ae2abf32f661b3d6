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

use crate::model::{ContentEvent, NormalizedSpan};
use crate::store::{ContentEventBatch, SpanBatch, Store, StoreError};

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

/// What a job stores: the spans of a request, or the GenAI content events of a logs request.
enum Payload {
    Spans(SpanBatch),
    ContentEvents(ContentEventBatch),
}

struct WriteJob {
    payload: Payload,
    /// Spans or events in the payload: its share of the queue.
    items: usize,
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
        let items = spans.len();
        let batch = SpanBatch {
            project_id: project_id.to_owned(),
            spans,
        };
        self.enqueue(Payload::Spans(batch), items).await
    }

    /// Queues the GenAI content events of one logs request and waits until they are durable.
    pub async fn submit_content_events(
        &self,
        project_id: &str,
        events: Vec<ContentEvent>,
    ) -> Result<(), PipelineError> {
        let items = events.len();
        let batch = ContentEventBatch {
            project_id: project_id.to_owned(),
            events,
        };
        self.enqueue(Payload::ContentEvents(batch), items).await
    }

    async fn enqueue(&self, payload: Payload, items: usize) -> Result<(), PipelineError> {
        if items == 0 {
            return Ok(());
        }
        let capacity = self.limits.queue_capacity_spans;
        if items > capacity {
            return Err(PipelineError::TooManySpans {
                spans: items,
                capacity,
            });
        }
        let permit = Arc::clone(&self.capacity)
            .try_acquire_many_owned(items as u32)
            .map_err(|_| PipelineError::Overloaded { capacity })?;
        let span_count = items as u64;
        let (done, answer) = oneshot::channel();
        let job = WriteJob {
            payload,
            items,
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
        let mut item_count = first.items;
        let mut jobs = vec![first];
        while item_count < max_batch_spans {
            match receiver.try_recv() {
                Ok(job) => {
                    item_count += job.items;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut span_batches = Vec::new();
        let mut span_answers = Vec::new();
        let mut event_batches = Vec::new();
        let mut event_answers = Vec::new();
        for job in jobs {
            let answer = (job.done, job._permit, job.items);
            match job.payload {
                Payload::Spans(batch) => {
                    span_batches.push(batch);
                    span_answers.push(answer);
                }
                Payload::ContentEvents(batch) => {
                    event_batches.push(batch);
                    event_answers.push(answer);
                }
            }
        }
        if !span_batches.is_empty() {
            let result = store.write_spans(span_batches).await;
            finish("spans", result, span_answers, &buffered);
        }
        if !event_batches.is_empty() {
            let result = store.write_content_events(event_batches).await;
            finish("content events", result, event_answers, &buffered);
        }
    }
}

type Answer = (
    oneshot::Sender<Result<(), Arc<StoreError>>>,
    OwnedSemaphorePermit,
    usize,
);

/// Answers the jobs of one write and frees their place in the queue.
fn finish(
    what: &'static str,
    result: Result<(), StoreError>,
    answers: Vec<Answer>,
    buffered: &AtomicU64,
) {
    let items: usize = answers.iter().map(|(_, _, items)| items).sum();
    let result = result.map_err(Arc::new);
    match &result {
        Ok(()) => tracing::debug!(items, requests = answers.len(), what, "stored batch"),
        Err(error) => tracing::error!(items, what, %error, "storing batch failed"),
    }
    buffered.fetch_sub(items as u64, Ordering::Relaxed);
    for (done, permit, _) in answers {
        let _ = done.send(result.clone());
        drop(permit);
    }
}
