//! The durable local spool in front of ClickHouse: an acknowledged write is a file in
//! `DATA_DIR/spool`, fsynced (file and directory) before the write returns, and delivered to
//! ClickHouse later in large batches, retried while ClickHouse is down. Files are delivered
//! oldest first and deleted once ClickHouse has them; delivering one twice after a crash is
//! harmless (the tables deduplicate). The spool's size is bounded: past it, writes fail as
//! unavailable (503 with `Retry-After`), and what is spooled is the `buffered` count.
//!
//! A file that cannot be decoded (a damaged disk, a hand edit) is moved into `spool/corrupt/`,
//! bytes intact, for an operator to look at: one bad file must neither stop the server from
//! starting nor hold back the files behind it. A write that fails removes its `.partial` file
//! (it was never acknowledged), and so does start-up for one a crash left behind.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::spool_format::{Kind, LegacyEntry, SpoolEntry, SpoolFile};
use super::spool_format::{VERSION, read_file, unavailable};
use crate::store::StoreError;

fn count_by_project(entries: &[SpoolEntry]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for entry in entries.iter().filter(|entry| entry.kind.counts()) {
        *counts.entry(entry.project_id.clone()).or_default() += entry.rows;
    }
    counts
}

#[derive(Debug, Default)]
struct State {
    next_sequence: u64,
    /// Sequence → (bytes, items, when written or found) of each file not yet delivered.
    files: BTreeMap<u64, (u64, u64, Instant)>,
    /// Sequence → items per project, for each file not yet delivered.
    projects: BTreeMap<u64, HashMap<String, u64>>,
    bytes: u64,
    items: u64,
    /// Files being delivered, with their items: not offered again until released or removed.
    claimed: HashMap<u64, u64>,
}

/// Where files that cannot be decoded are moved, inside the spool directory.
pub const CORRUPT_DIRECTORY: &str = "corrupt";

pub struct Spool {
    directory: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Bytes per item of the last file written, to size the next one.
    bytes_per_item: AtomicU64,
    /// Files in `spool/corrupt/`: set aside by this run or an earlier one, until an operator
    /// deals with them. Never delivered.
    corrupt_files: AtomicU64,
}

impl Spool {
    /// Opens the spool, counting what an earlier run left in it. Files it cannot decode are
    /// set aside (see the module's doc) rather than failing the start.
    pub fn open(directory: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(directory).map_err(|error| unavailable("create", error))?;
        let corrupt_directory = directory.join(CORRUPT_DIRECTORY);
        let already_corrupt = fs::read_dir(&corrupt_directory)
            .map(|entries| entries.count() as u64)
            .unwrap_or(0);
        let mut state = State::default();
        let mut set_aside = 0;
        for entry in fs::read_dir(directory).map_err(|error| unavailable("list", error))? {
            let entry = entry.map_err(|error| unavailable("list", error))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(sequence) = name
                .strip_suffix(".spool")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                // A file being written when the process died: never acknowledged.
                if name.ends_with(".partial")
                    && let Err(error) = fs::remove_file(entry.path())
                {
                    tracing::warn!(%error, file = name, "cannot remove a partial spool file");
                }
                continue;
            };
            // Past the highest sequence found, set aside or not, so that no new file takes the
            // name of one an operator may move back.
            state.next_sequence = state.next_sequence.max(sequence + 1);
            let entries = match read_file(&entry.path()) {
                Ok(entries) => entries,
                Err(error) => {
                    set_aside_file(directory, sequence, &error);
                    set_aside += 1;
                    continue;
                }
            };
            let bytes = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
            let items = entries
                .iter()
                .filter(|entry| entry.kind.counts())
                .map(|entry| entry.rows)
                .sum();
            state.projects.insert(sequence, count_by_project(&entries));
            state.files.insert(sequence, (bytes, items, Instant::now()));
            state.bytes += bytes;
            state.items += items;
        }
        Ok(Self {
            directory: directory.to_owned(),
            max_bytes,
            state: Mutex::new(state),
            bytes_per_item: AtomicU64::new(0),
            corrupt_files: AtomicU64::new(already_corrupt + set_aside),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Spans and events spooled and not yet delivered.
    pub fn items(&self) -> u64 {
        self.lock().items
    }

    /// Spans and events of one project spooled and not yet delivered.
    pub fn items_of(&self, project_id: &str) -> u64 {
        self.lock()
            .projects
            .values()
            .filter_map(|counts| counts.get(project_id))
            .sum()
    }

    /// Files in `spool/corrupt/`, which are not delivered: set aside because they could not be
    /// decoded, by this run or an earlier one.
    pub fn corrupt_files(&self) -> u64 {
        self.corrupt_files.load(Ordering::Relaxed)
    }

    /// An empty file for about `items` spans or events, sized after the last one written so
    /// that encoding into it does not grow it.
    pub fn file_for(&self, items: usize) -> SpoolFile {
        let per_item = self.bytes_per_item.load(Ordering::Relaxed) as usize;
        SpoolFile::with_capacity((per_item + per_item / 8 + 64) * items + 64)
    }

    /// Items waiting and not claimed, and how long the oldest such file has waited.
    pub fn waiting(&self) -> (u64, Duration) {
        let state = self.lock();
        let age = state
            .files
            .iter()
            .find(|(sequence, _)| !state.claimed.contains_key(sequence))
            .map(|(_, (_, _, written))| written.elapsed())
            .unwrap_or_default();
        let claimed: u64 = state.claimed.values().sum();
        (state.items - claimed, age)
    }

    /// Writes a file durably. Blocking.
    pub fn append(&self, file: SpoolFile) -> Result<(), StoreError> {
        self.append_parts(vec![file])
    }

    /// Writes the entries of several files, encoded apart (say, on several threads), durably
    /// as one file. Blocking.
    pub fn append_parts(&self, parts: Vec<SpoolFile>) -> Result<(), StoreError> {
        let length: u64 = 1 + parts
            .iter()
            .map(|part| part.bytes.len() as u64 - 1)
            .sum::<u64>();
        let items: u64 = parts.iter().map(|part| part.items).sum();
        let mut projects: HashMap<String, u64> = HashMap::new();
        for part in &parts {
            for (project, count) in &part.projects {
                *projects.entry(project.clone()).or_default() += count;
            }
        }
        let sequence = {
            let mut state = self.lock();
            if state.bytes + length > self.max_bytes && state.bytes > 0 {
                return Err(StoreError::Unavailable(format!(
                    "the spool is full ({} bytes waiting for ClickHouse); retry later",
                    state.bytes
                )));
            }
            let sequence = state.next_sequence;
            state.next_sequence += 1;
            sequence
        };
        let partial = self.directory.join(format!("{sequence:020}.partial"));
        let final_path = self.directory.join(format!("{sequence:020}.spool"));
        let written = File::create(&partial)
            .map_err(|error| unavailable("create file", error))
            .and_then(|mut file| {
                // The version byte once, then every part's entries.
                let mut written = file.write_all(&[VERSION]);
                for part in &parts {
                    written = written.and_then(|()| file.write_all(&part.bytes[1..]));
                }
                written
                    .and_then(|()| file.sync_all())
                    .map_err(|error| unavailable("write", error))
            })
            .and_then(|()| {
                fs::rename(&partial, &final_path).map_err(|error| unavailable("rename", error))
            });
        if let Err(error) = written {
            // Not acknowledged: the file must not be left to fill the disk (or be taken for a
            // crash's leftovers at the next start).
            let _ = fs::remove_file(&partial);
            return Err(error);
        }
        File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| unavailable("sync directory", error))?;
        let mut state = self.lock();
        state.projects.insert(sequence, projects);
        state
            .files
            .insert(sequence, (length, items, Instant::now()));
        if let Some(per_item) = length.checked_div(items) {
            self.bytes_per_item.store(per_item, Ordering::Relaxed);
        }
        state.bytes += length;
        state.items += items;
        Ok(())
    }

    /// Claims the oldest files not claimed yet, up to about `max_items` spans and events (at
    /// least one file), and reads them. They are not offered again until `release`d (delivery
    /// failed) or `remove`d (delivered).
    pub fn take_oldest(&self, max_items: u64) -> Result<Vec<(u64, Vec<SpoolEntry>)>, StoreError> {
        let chosen: Vec<u64> = {
            let mut state = self.lock();
            let mut total = 0;
            let mut chosen = Vec::new();
            for (sequence, (_, items, _)) in &state.files {
                if state.claimed.contains_key(sequence) {
                    continue;
                }
                if !chosen.is_empty() && total + items > max_items {
                    break;
                }
                total += items;
                chosen.push((*sequence, *items));
            }
            state.claimed.extend(chosen.iter().copied());
            chosen.into_iter().map(|(sequence, _)| sequence).collect()
        };
        let mut read = Vec::with_capacity(chosen.len());
        for sequence in &chosen {
            let path = self.directory.join(format!("{sequence:020}.spool"));
            match read_file(&path) {
                Ok(entries) => read.push((*sequence, entries)),
                // It will not decode the next time either: out of the way of the others.
                Err(error @ StoreError::Corrupt(_)) => self.set_aside(*sequence, &error),
                // The disk (a transient failure, or a failing disk): every file stays, to be
                // tried again.
                Err(error) => {
                    self.release(&chosen);
                    return Err(error);
                }
            }
        }
        Ok(read)
    }

    /// Moves a file that cannot be decoded into `spool/corrupt/` and forgets it.
    fn set_aside(&self, sequence: u64, error: &StoreError) {
        set_aside_file(&self.directory, sequence, error);
        self.corrupt_files.fetch_add(1, Ordering::Relaxed);
        self.forget(sequence);
    }

    /// Offers claimed files again (their delivery failed).
    pub fn release(&self, sequences: &[u64]) {
        let mut state = self.lock();
        for sequence in sequences {
            state.claimed.remove(sequence);
        }
    }

    /// Forgets delivered files.
    pub fn remove(&self, sequences: &[u64]) {
        for sequence in sequences {
            let _ = fs::remove_file(self.directory.join(format!("{sequence:020}.spool")));
            self.forget(*sequence);
        }
    }

    /// Drops a file from the counts (delivered, or set aside).
    fn forget(&self, sequence: u64) {
        let mut state = self.lock();
        state.projects.remove(&sequence);
        state.claimed.remove(&sequence);
        if let Some((bytes, items, _)) = state.files.remove(&sequence) {
            state.bytes -= bytes;
            state.items -= items;
        }
    }
}

/// Files claimed for one delivery. Dropped before `delivered` — the delivery failed, panicked
/// or was cancelled — it releases them, so that they are offered again: a claim cannot outlive
/// the task that holds it, and no file stays claimed forever.
pub struct Claim {
    spool: Arc<Spool>,
    sequences: Vec<u64>,
}

impl Claim {
    /// Takes over the claim of `sequences` (from `take_oldest`).
    pub fn new(spool: Arc<Spool>, sequences: Vec<u64>) -> Self {
        Self { spool, sequences }
    }

    /// ClickHouse has them: the files are removed.
    pub fn delivered(mut self) {
        let sequences = std::mem::take(&mut self.sequences);
        self.spool.remove(&sequences);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.sequences.is_empty() {
            self.spool.release(&self.sequences);
        }
    }
}

/// Moves spool file `sequence` into `spool/corrupt/`, keeping its name and bytes, and says so.
/// Should the move fail, the file stays where it is and is tried again at the next start.
fn set_aside_file(directory: &Path, sequence: u64, error: &StoreError) {
    let name = format!("{sequence:020}.spool");
    let corrupt = directory.join(CORRUPT_DIRECTORY);
    let moved = fs::create_dir_all(&corrupt)
        .and_then(|()| fs::rename(directory.join(&name), corrupt.join(&name)));
    match moved {
        Ok(()) => tracing::error!(
            %error,
            file = %corrupt.join(&name).display(),
            "a spool file cannot be decoded; set aside, not delivered"
        ),
        Err(move_error) => tracing::error!(
            %error,
            %move_error,
            file = name,
            "a spool file cannot be decoded, nor set aside; not delivered by this run"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::clickhouse::rowbinary::{Reader, read_content_event, read_span};
    use crate::store::clickhouse::rows::ContentEventRow;

    fn event_row(name: &str) -> ContentEventRow {
        ContentEventRow {
            project_id: "p".into(),
            trace_id: "t".into(),
            span_id: "s".into(),
            time_ns: 1,
            name: name.into(),
            attributes: "{}".into(),
            fingerprint: name.into(),
        }
    }

    fn events(names: &[&str]) -> SpoolFile {
        let mut file = SpoolFile::new();
        for name in names {
            file.push_content_events("p", [&event_row(name)]);
        }
        file
    }

    /// Terms ride with their spans but are not spans: the spool's counts (`buffered`, batch
    /// sizes) leave them out, before and after a restart.
    #[test]
    fn terms_are_kept_but_not_counted() {
        use crate::store::clickhouse::rowbinary::read_term;
        use crate::store::clickhouse::terms::TermRow;
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path(), 1 << 20).unwrap();
        let term = TermRow {
            project_id: "p".into(),
            kind: 1,
            key: "tenant".into(),
            value: "acme".into(),
            value_type: 1,
            number: 0.0,
            trace_id: "t".into(),
            span_id: "s".into(),
            start_ns: 1,
        };
        let mut file = events(&["a"]);
        file.push_terms("p", [&term, &term]);
        spool.append(file).unwrap();
        assert_eq!((spool.items(), spool.items_of("p")), (1, 1));
        let reopened = Spool::open(directory.path(), 1 << 20).unwrap();
        assert_eq!((reopened.items(), reopened.items_of("p")), (1, 1));
        let files = reopened.take_oldest(10).unwrap();
        let terms = &files[0].1[1];
        assert_eq!((terms.kind, terms.rows), (Kind::SpanTerms, 2));
        assert_eq!(read_term(&mut Reader::new(&terms.data)).unwrap(), term);
    }

    #[test]
    fn survives_reopening_and_bounds_its_size() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path(), 600).unwrap();
        spool.append(events(&["a"])).unwrap();
        spool.append(events(&["b", "c"])).unwrap();
        assert_eq!(spool.items(), 3);
        assert_eq!(spool.items_of("p"), 3);
        assert_eq!(spool.items_of("other"), 0);
        std::fs::write(
            directory.path().join("00000000000000000009.partial"),
            "junk",
        )
        .unwrap();

        let reopened = Spool::open(directory.path(), 600).unwrap();
        assert_eq!(reopened.items(), 3);
        assert_eq!(reopened.items_of("p"), 3);
        let oldest = reopened.take_oldest(1).unwrap();
        assert_eq!(oldest.len(), 1, "at least one file, no more than asked");
        let entry = &oldest[0].1[0];
        assert_eq!(
            (entry.kind, entry.project_id.as_str(), entry.rows),
            (Kind::ContentEvents, "p", 1)
        );
        assert_eq!(
            read_content_event(&mut Reader::new(&entry.data)).unwrap(),
            event_row("a")
        );
        assert_eq!(reopened.waiting().0, 2, "claimed files are not waiting");
        let next = reopened.take_oldest(1).unwrap();
        assert_eq!(next.len(), 1);
        assert_ne!(
            next[0].0, oldest[0].0,
            "a claimed file is not offered twice"
        );
        reopened.release(&[next[0].0]);
        assert_eq!(
            reopened.take_oldest(1).unwrap()[0].0,
            next[0].0,
            "released, offered again"
        );
        reopened.release(&[next[0].0]);
        reopened.remove(&[oldest[0].0]);
        assert_eq!(reopened.items(), 2);
        assert_eq!(reopened.waiting().0, 2);
        assert!(
            !directory
                .path()
                .join("00000000000000000009.partial")
                .exists()
        );

        let mut full = Ok(());
        for _ in 0..20 {
            full = reopened.append(events(&["d"]));
            if full.is_err() {
                break;
            }
        }
        assert!(matches!(full, Err(StoreError::Unavailable(_))));
    }

    /// A spool file written by the first format (JSON lines, before an upgrade) is still read,
    /// and delivered as the same rows.
    #[test]
    fn reads_files_of_the_first_format() {
        let directory = tempfile::tempdir().unwrap();
        let mut span = crate::store::clickhouse::rowbinary::tests::span_row("a", true);
        let mut other = crate::store::clickhouse::rowbinary::tests::span_row("b", false);
        other.project_id = "q".into();
        span.body = "{\"name\":\"quoted \\\" and \\n\"}".into();
        let mut text = String::new();
        for entry in [
            LegacyEntry::Spans(vec![span.clone(), other.clone()]),
            LegacyEntry::ContentEvents(vec![event_row("e")]),
        ] {
            text.push_str(&serde_json::to_string(&entry).unwrap());
            text.push('\n');
        }
        assert!(
            text.starts_with("{\"Spans\":[{\"project_id\":\"p\""),
            "{text}"
        );
        std::fs::write(directory.path().join("00000000000000000004.spool"), &text).unwrap();

        let spool = Spool::open(directory.path(), 1 << 20).unwrap();
        assert_eq!(
            (spool.items(), spool.items_of("p"), spool.items_of("q")),
            (3, 2, 1)
        );
        let files = spool.take_oldest(100).unwrap();
        assert_eq!(files.len(), 1);
        let (sequence, entries) = &files[0];
        assert_eq!(*sequence, 4);
        let mut spans = Vec::new();
        let mut content = Vec::new();
        for entry in entries {
            let mut reader = Reader::new(&entry.data);
            for _ in 0..entry.rows {
                let project_id = match entry.kind {
                    Kind::Spans => {
                        spans.push(read_span(&mut reader).unwrap());
                        spans.last().unwrap().project_id.clone()
                    }
                    Kind::ContentEvents => {
                        content.push(read_content_event(&mut reader).unwrap());
                        content.last().unwrap().project_id.clone()
                    }
                    Kind::SpanTerms => unreachable!("no terms were spooled"),
                };
                assert_eq!(project_id, entry.project_id);
            }
            assert!(reader.is_empty());
        }
        assert_eq!(spans, vec![span, other]);
        assert_eq!(content, vec![event_row("e")]);

        // New files after an upgrade follow the old ones.
        spool.append(events(&["f"])).unwrap();
        assert!(directory.path().join("00000000000000000005.spool").exists());
    }

    /// A file that does not decode — truncated at start-up, or damaged by the time it is
    /// delivered — is moved into `corrupt/` with its bytes and counted; the others are
    /// delivered.
    #[test]
    fn sets_aside_files_it_cannot_decode() {
        let directory = tempfile::tempdir().unwrap();
        let mut truncated = events(&["a"]);
        truncated.bytes.truncate(truncated.bytes.len() - 1);
        std::fs::write(
            directory.path().join("00000000000000000001.spool"),
            &truncated.bytes,
        )
        .unwrap();
        std::fs::write(
            directory.path().join("00000000000000000002.spool"),
            events(&["b", "c"]).bytes,
        )
        .unwrap();

        let spool = Spool::open(directory.path(), 1 << 20).unwrap();
        assert_eq!((spool.items(), spool.corrupt_files()), (2, 1));
        let corrupt = directory.path().join(CORRUPT_DIRECTORY);
        assert_eq!(
            std::fs::read(corrupt.join("00000000000000000001.spool")).unwrap(),
            truncated.bytes,
            "kept as it was, for an operator"
        );
        assert!(!directory.path().join("00000000000000000001.spool").exists());

        // Damaged after the start: set aside when it is read for delivery.
        spool.append(events(&["d"])).unwrap();
        let damaged = directory.path().join("00000000000000000003.spool");
        assert!(
            damaged.exists(),
            "no new file takes the name of one set aside"
        );
        std::fs::write(&damaged, b"\x07garbage").unwrap();
        let taken = spool.take_oldest(100).unwrap();
        assert_eq!(
            taken
                .iter()
                .map(|(sequence, _)| *sequence)
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!((spool.items(), spool.corrupt_files()), (2, 2));
        assert!(corrupt.join("00000000000000000003.spool").exists());
        spool.remove(&[2]);
        assert_eq!((spool.items(), spool.waiting().0), (0, 0));

        // What is in `corrupt/` is counted again at the next start, and never delivered.
        let reopened = Spool::open(directory.path(), 1 << 20).unwrap();
        assert_eq!((reopened.items(), reopened.corrupt_files()), (0, 2));
    }

    /// A write that fails (here its rename, onto a directory) leaves no `.partial` file.
    #[test]
    fn a_failed_write_removes_its_partial_file() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path(), 1 << 20).unwrap();
        std::fs::create_dir_all(
            directory
                .path()
                .join("00000000000000000000.spool/in-the-way"),
        )
        .unwrap();
        assert!(matches!(
            spool.append(events(&["a"])),
            Err(StoreError::Unavailable(_))
        ));
        let partial = directory.path().join("00000000000000000000.partial");
        assert!(!partial.exists(), "the failed write left its partial file");
        assert_eq!(spool.items(), 0);
        spool.append(events(&["b"])).unwrap();
        assert_eq!(spool.items(), 1, "the next write succeeds");
    }
}
