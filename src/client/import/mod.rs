//! `spanhouse import` (SPEC §9): OTLP files of past traces sent to a server, to backfill it.
//!
//! One thread reads the files in order ([`read`]) and regroups their documents into requests
//! ([`batch`]); a bounded queue hands them to a few concurrent senders ([`send`]), so memory
//! stays bounded by the queue whatever the files' size. The server keeps each span's own
//! timestamps and ignores spans it already has, so an import run twice stores everything
//! once. A progress bar on a terminal, a line every few seconds otherwise, and a summary.

pub mod batch;
pub mod read;
pub mod send;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use self::batch::{Batch, BatchLimits, Batcher};
use self::read::Document;
use self::send::{Sender, Tally};
use super::Endpoint;
use crate::config::ImportArgs;

/// Most encoded bytes of spans per request: far under the server's body limit.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Runs an import to the end; an error when a span was neither accepted nor refused by the
/// server, or a file could not be read.
pub async fn run(endpoint: Endpoint, args: &ImportArgs) -> anyhow::Result<()> {
    let files = collect_files(&args.paths)?;
    let total_bytes: u64 = files
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |meta| meta.len()))
        .sum();
    let concurrency = args.concurrency.max(1);
    let sender = Arc::new(Sender {
        client: endpoint.client()?,
        base_url: endpoint.base_url,
        token: endpoint.token,
        retry_for: Duration::from_secs(args.retry_for),
    });
    let tally = Arc::new(Tally::default());
    let read_bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let (queue, batches) = tokio::sync::mpsc::channel::<Batch>(concurrency * 2);
    let batches = Arc::new(tokio::sync::Mutex::new(batches));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (sender, tally, batches, stop) = (
            Arc::clone(&sender),
            Arc::clone(&tally),
            Arc::clone(&batches),
            Arc::clone(&stop),
        );
        senders.spawn(async move {
            loop {
                let Some(batch) = batches.lock().await.recv().await else {
                    return Ok(());
                };
                if let Err(fatal) = sender.send(&batch, &tally).await {
                    stop.store(true, Ordering::Relaxed);
                    batches.lock().await.close();
                    return Err(fatal);
                }
            }
        });
    }

    let reader = {
        let (read_bytes, stop) = (Arc::clone(&read_bytes), Arc::clone(&stop));
        let limits = BatchLimits {
            spans: args.batch_spans,
            bytes: BATCH_BYTES,
        };
        std::thread::spawn(move || read_all(&files, limits, &read_bytes, &stop, &queue))
    };

    let progress = Progress::start(total_bytes);
    let mut fatal = None;
    loop {
        tokio::select! {
            joined = senders.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => { fatal.get_or_insert(error); }
                Some(Err(error)) => anyhow::bail!("a sender stopped: {error}"),
            },
            () = tokio::time::sleep(progress.every) => {
                progress.show(read_bytes.load(Ordering::Relaxed), &tally);
            }
        }
    }
    progress.finish(read_bytes.load(Ordering::Relaxed), &tally);
    let reading = tokio::task::spawn_blocking(move || reader.join())
        .await
        .context("the file reader")?
        .map_err(|_| anyhow::anyhow!("the file reader panicked"))?;
    if let Some(fatal) = fatal {
        return Err(fatal).context("import stopped");
    }
    summarize(&reading, &tally, started.elapsed())
}

/// What reading the files came to.
struct Reading {
    files: usize,
    /// Files that could not be read to their end, with why.
    errors: Vec<String>,
    /// Metrics documents skipped.
    metrics: u64,
}

/// Reads every file, batching as it goes; stops early when a sender met a fatal answer.
fn read_all(
    files: &[PathBuf],
    limits: BatchLimits,
    read_bytes: &Arc<AtomicU64>,
    stop: &AtomicBool,
    queue: &tokio::sync::mpsc::Sender<Batch>,
) -> Reading {
    let mut batcher = Batcher::new(limits);
    let mut reading = Reading {
        files: files.len(),
        errors: Vec::new(),
        metrics: 0,
    };
    // `false` once the senders are gone: nothing more is read.
    let enqueue = |batch: Batch| queue.blocking_send(batch).is_ok();
    for path in files {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut open = true;
        let result = read::read_file(path, Arc::clone(read_bytes), &mut |document| {
            match document {
                Document::Traces(request) => {
                    batcher.push(request, &mut |batch| open &= enqueue(batch));
                }
                Document::Logs(request) => {
                    if let Some(batch) = batch::logs_batch(&request) {
                        open &= enqueue(batch);
                    }
                }
                Document::Metrics => reading.metrics += 1,
            }
            open && !stop.load(Ordering::Relaxed)
        });
        if let Err(error) = result {
            reading.errors.push(format!("{}: {error}", path.display()));
        }
    }
    if let Some(batch) = batcher.finish() {
        enqueue(batch);
    }
    reading
}

/// The files named, directories read recursively (hidden entries skipped), in name order.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The progress display: a bar on a terminal, plain lines on stderr otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    every: Duration,
}

impl Progress {
    fn start(total_bytes: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                total_bytes,
                every: Duration::from_secs(5),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            bar: Some(bar),
            total_bytes,
            every: Duration::from_millis(200),
        }
    }

    fn message(tally: &Tally) -> String {
        format!(
            "{} spans sent, {} accepted",
            tally.spans_sent.load(Ordering::Relaxed),
            tally.spans_accepted.load(Ordering::Relaxed)
        )
    }

    fn show(&self, read: u64, tally: &Tally) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(read);
                bar.set_message(Self::message(tally));
            }
            None => eprintln!(
                "import: {read} of {} bytes read ({:.0} %), {}",
                self.total_bytes,
                100.0 * read as f64 / self.total_bytes.max(1) as f64,
                Self::message(tally)
            ),
        }
    }

    fn finish(&self, read: u64, tally: &Tally) {
        if let Some(bar) = &self.bar {
            bar.set_position(read);
            bar.set_message(Self::message(tally));
            bar.finish();
        }
    }
}

/// Prints the summary; an error when anything was neither accepted nor refused.
fn summarize(reading: &Reading, tally: &Tally, elapsed: Duration) -> anyhow::Result<()> {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    eprintln!(
        "import: {} files, {} spans sent: {} accepted, {} rejected, {} not delivered; \
         {} log records sent: {} accepted, {} rejected; {} metrics documents skipped; \
         {} retries; {:.1} s",
        reading.files,
        load(&tally.spans_sent),
        load(&tally.spans_accepted),
        load(&tally.spans_rejected),
        load(&tally.spans_failed),
        load(&tally.records_sent),
        load(&tally.records_accepted),
        load(&tally.records_rejected),
        reading.metrics,
        load(&tally.retries),
        elapsed.as_secs_f64(),
    );
    for message in tally
        .messages
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
    {
        eprintln!("import: server said: {message}");
    }
    for error in &reading.errors {
        eprintln!("import: unreadable: {error}");
    }
    let undelivered = load(&tally.spans_failed) + load(&tally.records_failed);
    if undelivered > 0 || !reading.errors.is_empty() {
        anyhow::bail!(
            "{undelivered} spans and log records were not delivered, {} files not read to their end",
            reading.errors.len()
        );
    }
    Ok(())
}
