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

use std::collections::HashMap;

use crate::metrics::Metrics;
use crate::model::{ContentEvent, NormalizedSpan};
use crate::store::{ContentEventBatch, PreparedTraces, SpanBatch, Store, StoreError};

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
    buffered: Arc<Buffered>,
}

/// Items waiting for the store, in all and per project.
#[derive(Default)]
struct Buffered {
    total: AtomicU64,
    by_project: std::sync::Mutex<HashMap<String, u64>>,
}

impl Buffered {
    fn add(&self, project_id: &str, items: u64) {
        self.total.fetch_add(items, Ordering::Relaxed);
        *self
            .by_project
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(project_id.to_owned())
            .or_default() += items;
    }

    fn remove(&self, project_id: &str, items: u64) {
        self.total.fetch_sub(items, Ordering::Relaxed);
        let mut by_project = self
            .by_project
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = by_project.get_mut(project_id) {
            *count = count.saturating_sub(items);
            if *count == 0 {
                by_project.remove(project_id);
            }
        }
    }
}

impl Pipeline {
    /// Starts the writer task. It ends once every `Pipeline` clone is dropped and the queue is
    /// drained.
    pub fn start(
        store: Arc<dyn Store>,
        limits: PipelineLimits,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<()>) {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let buffered = Arc::new(Buffered::default());
        let writer = tokio::spawn(run_writer(
            store,
            receiver,
            limits.max_batch_spans,
            Arc::clone(&buffered),
            metrics,
        ));
        let pipeline = Self {
            jobs,
            capacity: Arc::new(Semaphore::new(limits.queue_capacity_spans)),
            limits,
            buffered,
        };
        (pipeline, writer)
    }

    /// Spans and content events the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.limits.queue_capacity_spans
    }

    /// Spans and content events waiting for the store.
    pub fn buffered(&self) -> u64 {
        self.buffered.total.load(Ordering::Relaxed)
    }

    /// Spans and content events of one project waiting for the store.
    pub fn buffered_for(&self, project_id: &str) -> u64 {
        self.buffered
            .by_project
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(project_id)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `items` spans would find room in the queue now: a receiver asks before it
    /// normalizes and compresses a request's spans, so that under overload it answers 503
    /// without doing that work, and without holding its result, for a request the queue would
    /// refuse as overloaded (more than the whole queue holds is `submit`'s error, 413). The
    /// answer may change by the time the spans are submitted; `submit` decides.
    pub fn has_room(&self, items: usize) -> bool {
        items > self.limits.queue_capacity_spans || self.capacity.available_permits() >= items
    }

    /// Queues the spans of one request, with what the store prepared from them, and waits until
    /// they are durable.
    pub async fn submit(
        &self,
        project_id: &str,
        spans: Vec<NormalizedSpan>,
        prepared: Vec<PreparedTraces>,
    ) -> Result<(), PipelineError> {
        let items = spans.len();
        let batch = SpanBatch {
            project_id: project_id.to_owned(),
            spans,
            prepared,
        };
        self.enqueue(project_id, Payload::Spans(batch), items).await
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
        self.enqueue(project_id, Payload::ContentEvents(batch), items)
            .await
    }

    async fn enqueue(
        &self,
        project_id: &str,
        payload: Payload,
        items: usize,
    ) -> Result<(), PipelineError> {
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
        self.buffered.add(project_id, span_count);
        if self.jobs.send(job).is_err() {
            self.buffered.remove(project_id, span_count);
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
    buffered: Arc<Buffered>,
    metrics: Arc<Metrics>,
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
            let project_id = match &job.payload {
                Payload::Spans(batch) => batch.project_id.clone(),
                Payload::ContentEvents(batch) => batch.project_id.clone(),
            };
            let answer = (job.done, job._permit, job.items, project_id);
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
            let started = std::time::Instant::now();
            let result = store.write_spans(span_batches).await;
            metrics.store_writes.observe(started.elapsed());
            finish("spans", result, span_answers, &buffered);
        }
        if !event_batches.is_empty() {
            let started = std::time::Instant::now();
            let result = store.write_content_events(event_batches).await;
            metrics.store_writes.observe(started.elapsed());
            finish("content events", result, event_answers, &buffered);
        }
    }
}

type Answer = (
    oneshot::Sender<Result<(), Arc<StoreError>>>,
    OwnedSemaphorePermit,
    usize,
    String,
);

/// Answers the jobs of one write and frees their place in the queue.
fn finish(
    what: &'static str,
    result: Result<(), StoreError>,
    answers: Vec<Answer>,
    buffered: &Buffered,
) {
    let items: usize = answers.iter().map(|(_, _, items, _)| items).sum();
    let result = result.map_err(Arc::new);
    match &result {
        Ok(()) => tracing::debug!(items, requests = answers.len(), what, "stored batch"),
        Err(error) => tracing::error!(items, what, %error, "storing batch failed"),
    }
    for (done, permit, items, project_id) in answers {
        buffered.remove(&project_id, items as u64);
        let _ = done.send(result.clone());
        drop(permit);
    }
}
