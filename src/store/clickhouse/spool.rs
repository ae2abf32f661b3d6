//! The durable local spool in front of ClickHouse: an acknowledged write is a file in
//! `DATA_DIR/spool`, fsynced (file and directory) before the write returns, and delivered to
//! ClickHouse later in large batches, retried while ClickHouse is down. Files are delivered
//! oldest first and deleted once ClickHouse has them; delivering one twice after a crash is
//! harmless (the tables deduplicate). The spool's size is bounded: past it, writes fail as
//! unavailable (503 with `Retry-After`), and what is spooled is the `buffered` count.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::rows::{ContentEventRow, SpanRow};
use crate::store::StoreError;

/// One acknowledged write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpoolEntry {
    Spans(Vec<SpanRow>),
    ContentEvents(Vec<ContentEventRow>),
}

impl SpoolEntry {
    pub fn items(&self) -> u64 {
        match self {
            SpoolEntry::Spans(rows) => rows.len() as u64,
            SpoolEntry::ContentEvents(rows) => rows.len() as u64,
        }
    }

    /// Items per project.
    fn by_project(&self, counts: &mut HashMap<String, u64>) {
        let projects: Vec<&str> = match self {
            SpoolEntry::Spans(rows) => rows.iter().map(|row| row.project_id.as_str()).collect(),
            SpoolEntry::ContentEvents(rows) => {
                rows.iter().map(|row| row.project_id.as_str()).collect()
            }
        };
        for project in projects {
            *counts.entry(project.to_owned()).or_default() += 1;
        }
    }
}

fn count_by_project(entries: &[SpoolEntry]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for entry in entries {
        entry.by_project(&mut counts);
    }
    counts
}

#[derive(Debug, Default)]
struct State {
    next_sequence: u64,
    /// Sequence → (bytes, items) of each file not yet delivered.
    files: BTreeMap<u64, (u64, u64)>,
    /// Sequence → items per project, for each file not yet delivered.
    projects: BTreeMap<u64, HashMap<String, u64>>,
    bytes: u64,
    items: u64,
}

pub struct Spool {
    directory: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("spool: {what}: {error}"))
}

impl Spool {
    /// Opens the spool, counting what an earlier run left in it.
    pub fn open(directory: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(directory).map_err(|error| unavailable("create", error))?;
        let mut state = State::default();
        for entry in fs::read_dir(directory).map_err(|error| unavailable("list", error))? {
            let entry = entry.map_err(|error| unavailable("list", error))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(sequence) = name
                .strip_suffix(".spool")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                // A file being written when the process died: never acknowledged.
                if name.ends_with(".partial") {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            };
            let bytes = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
            let entries = read_file(&entry.path())?;
            let items = entries.iter().map(SpoolEntry::items).sum();
            state.projects.insert(sequence, count_by_project(&entries));
            state.files.insert(sequence, (bytes, items));
            state.bytes += bytes;
            state.items += items;
            state.next_sequence = state.next_sequence.max(sequence + 1);
        }
        Ok(Self {
            directory: directory.to_owned(),
            max_bytes,
            state: Mutex::new(state),
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

    /// Writes entries durably as one file. Blocking.
    pub fn append(&self, entries: &[SpoolEntry]) -> Result<(), StoreError> {
        let mut text = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut text, entry)
                .map_err(|error| unavailable("encode", error))?;
            text.push(b'\n');
        }
        let items: u64 = entries.iter().map(SpoolEntry::items).sum();
        let sequence = {
            let mut state = self.lock();
            if state.bytes + text.len() as u64 > self.max_bytes && state.bytes > 0 {
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
        let mut file = File::create(&partial).map_err(|error| unavailable("create file", error))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|error| unavailable("write", error))?;
        fs::rename(&partial, &final_path).map_err(|error| unavailable("rename", error))?;
        File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| unavailable("sync directory", error))?;
        let mut state = self.lock();
        state.projects.insert(sequence, count_by_project(entries));
        state.files.insert(sequence, (text.len() as u64, items));
        state.bytes += text.len() as u64;
        state.items += items;
        Ok(())
    }

    /// The oldest files, up to about `max_items` spans and events (at least one file).
    pub fn oldest(&self, max_items: u64) -> Result<Vec<(u64, Vec<SpoolEntry>)>, StoreError> {
        let chosen: Vec<u64> = {
            let state = self.lock();
            let mut total = 0;
            let mut chosen = Vec::new();
            for (sequence, (_, items)) in &state.files {
                if !chosen.is_empty() && total + items > max_items {
                    break;
                }
                total += items;
                chosen.push(*sequence);
            }
            chosen
        };
        chosen
            .into_iter()
            .map(|sequence| {
                let path = self.directory.join(format!("{sequence:020}.spool"));
                Ok((sequence, read_file(&path)?))
            })
            .collect()
    }

    /// Forgets delivered files.
    pub fn remove(&self, sequences: &[u64]) {
        let mut state = self.lock();
        for sequence in sequences {
            let _ = fs::remove_file(self.directory.join(format!("{sequence:020}.spool")));
            state.projects.remove(sequence);
            if let Some((bytes, items)) = state.files.remove(sequence) {
                state.bytes -= bytes;
                state.items -= items;
            }
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<SpoolEntry>, StoreError> {
    let file = File::open(path).map_err(|error| unavailable("open", error))?;
    BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line.map_err(|error| unavailable("read", error))?;
            serde_json::from_str(&line)
                .map_err(|error| StoreError::Corrupt(format!("spool {}: {error}", path.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> SpoolEntry {
        SpoolEntry::ContentEvents(vec![ContentEventRow {
            project_id: "p".into(),
            trace_id: "t".into(),
            span_id: "s".into(),
            time_ns: 1,
            name: name.into(),
            attributes: "{}".into(),
            fingerprint: name.into(),
        }])
    }

    #[test]
    fn survives_reopening_and_bounds_its_size() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path(), 600).unwrap();
        spool.append(&[event("a")]).unwrap();
        spool.append(&[event("b"), event("c")]).unwrap();
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
        let oldest = reopened.oldest(1).unwrap();
        assert_eq!(oldest.len(), 1, "at least one file, no more than asked");
        reopened.remove(&[oldest[0].0]);
        assert_eq!(reopened.items(), 2);
        assert!(
            !directory
                .path()
                .join("00000000000000000009.partial")
                .exists()
        );

        let mut full = Ok(());
        for _ in 0..20 {
            full = reopened.append(&[event("d")]);
            if full.is_err() {
                break;
            }
        }
        assert!(matches!(full, Err(StoreError::Unavailable(_))));
    }
}
