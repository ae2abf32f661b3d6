//! The spool's file format: a version byte (2), then entries of one project's rows each, in
//! ClickHouse's RowBinary encoding (what an insert sends), so that delivery sends slices of the
//! file as they are. Files of the first format (JSON lines) are still read.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::BufRead;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::rowbinary;
use super::rows::{ContentEventRow, SpanRow};
use super::terms::TermRow;
use crate::store::StoreError;

/// The first byte of a spool file in the binary format. Files of the first format are JSON
/// lines, and begin with `{`.
pub(super) const VERSION: u8 = 2;

/// What an entry's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spans = 1,
    ContentEvents = 2,
    /// The searchable terms of the spans of the entries before it (`terms`): not items, as
    /// they are no spans of their own (the spool counts spans and events).
    SpanTerms = 3,
}

impl Kind {
    /// Whether the entry's rows count as spool items (spans and content events).
    pub fn counts(self) -> bool {
        self != Kind::SpanTerms
    }
}

/// Rows of one project, in ClickHouse's RowBinary encoding (`rowbinary`): what an insert sends.
#[derive(Debug, Clone)]
pub struct SpoolEntry {
    pub kind: Kind,
    pub project_id: String,
    pub rows: u64,
    pub data: Bytes,
}

/// One acknowledged write as the first spool format had it: a JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LegacyEntry {
    Spans(Vec<SpanRow>),
    ContentEvents(Vec<ContentEventRow>),
}

/// The contents of one spool file being built: entries in the binary format. Rows are encoded
/// straight into the bytes written.
pub struct SpoolFile {
    pub(super) bytes: Vec<u8>,
    pub(super) items: u64,
    pub(super) projects: HashMap<String, u64>,
}

impl Default for SpoolFile {
    fn default() -> Self {
        Self::new()
    }
}

impl SpoolFile {
    pub fn new() -> Self {
        Self::with_capacity(1)
    }

    /// A file whose bytes need not grow up to `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity.max(1));
        bytes.push(VERSION);
        Self {
            bytes,
            items: 0,
            projects: HashMap::new(),
        }
    }

    /// Appends one entry: `kind`, the project, a u64 row count and a u64 length (both
    /// little-endian), then the rows that `encode` appends, returning how many.
    pub fn push(&mut self, kind: Kind, project_id: &str, encode: impl FnOnce(&mut Vec<u8>) -> u64) {
        self.bytes.push(kind as u8);
        self.bytes
            .extend_from_slice(&(project_id.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(project_id.as_bytes());
        let header = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 16]);
        let rows = encode(&mut self.bytes);
        let length = (self.bytes.len() - header - 16) as u64;
        self.bytes[header..header + 8].copy_from_slice(&rows.to_le_bytes());
        self.bytes[header + 8..header + 16].copy_from_slice(&length.to_le_bytes());
        if kind.counts() {
            self.items += rows;
            *self.projects.entry(project_id.to_owned()).or_default() += rows;
        }
    }

    /// Appends the span rows of one project that `rows` passes to its argument, one at a time
    /// (so that they need not all be in memory at once).
    pub fn push_spans_with(
        &mut self,
        project_id: &str,
        rows: impl FnOnce(&mut dyn FnMut(&SpanRow)),
    ) {
        self.push(Kind::Spans, project_id, |bytes| {
            let mut count = 0;
            rows(&mut |row| {
                rowbinary::put_span(bytes, row);
                count += 1;
            });
            count
        });
    }

    /// Appends span rows of one project.
    pub fn push_spans<'a>(
        &mut self,
        project_id: &str,
        rows: impl IntoIterator<Item = &'a SpanRow>,
    ) {
        self.push_spans_with(project_id, |put| rows.into_iter().for_each(put));
    }

    /// Appends content event rows of one project.
    pub fn push_content_events<'a>(
        &mut self,
        project_id: &str,
        rows: impl IntoIterator<Item = &'a ContentEventRow>,
    ) {
        self.push(Kind::ContentEvents, project_id, |bytes| {
            let mut count = 0;
            for row in rows {
                rowbinary::put_content_event(bytes, row);
                count += 1;
            }
            count
        });
    }

    /// Appends the term rows of one project's spans.
    pub fn push_terms<'a>(
        &mut self,
        project_id: &str,
        rows: impl IntoIterator<Item = &'a TermRow>,
    ) {
        self.push(Kind::SpanTerms, project_id, |bytes| {
            let mut count = 0;
            for row in rows {
                rowbinary::put_term(bytes, row);
                count += 1;
            }
            count
        });
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }
}

pub(super) fn read_file(path: &Path) -> Result<Vec<SpoolEntry>, StoreError> {
    let bytes = fs::read(path).map_err(|error| unavailable("read", error))?;
    match bytes.first() {
        // The first format: JSON lines.
        None | Some(b'{') => parse(read_legacy(path, &bytes)?.bytes.into(), path),
        Some(_) => parse(bytes.into(), path),
    }
}

/// The entries of a file in the binary format.
fn parse(bytes: Bytes, path: &Path) -> Result<Vec<SpoolEntry>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("spool {}: {what}", path.display()));
    if bytes.first() != Some(&VERSION) {
        return Err(corrupt("unknown format"));
    }
    let mut position = 1;
    let take = |position: &mut usize, count: u64| -> Result<Bytes, StoreError> {
        let count = usize::try_from(count).map_err(|_| corrupt("length"))?;
        let end = position
            .checked_add(count)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let slice = bytes.slice(*position..end);
        *position = end;
        Ok(slice)
    };
    let u64_at = |position: &mut usize| -> Result<u64, StoreError> {
        let slice = take(position, 8)?;
        Ok(u64::from_le_bytes(slice[..].try_into().expect("8 bytes")))
    };
    let mut entries = Vec::new();
    while position < bytes.len() {
        let kind = match take(&mut position, 1)?[0] {
            1 => Kind::Spans,
            2 => Kind::ContentEvents,
            3 => Kind::SpanTerms,
            other => return Err(corrupt(&format!("unknown entry kind {other}"))),
        };
        let length = u64_at(&mut position)?;
        let project_id = String::from_utf8(take(&mut position, length)?.to_vec())
            .map_err(|_| corrupt("project id"))?;
        let rows = u64_at(&mut position)?;
        let length = u64_at(&mut position)?;
        let data = take(&mut position, length)?;
        entries.push(SpoolEntry {
            kind,
            project_id,
            rows,
            data,
        });
    }
    Ok(entries)
}

/// A file of the first format (JSON lines), as the binary format has it.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<SpoolFile, StoreError> {
    let mut file = SpoolFile::new();
    for line in bytes.lines() {
        let line = line.map_err(|error| unavailable("read", error))?;
        let entry: LegacyEntry = serde_json::from_str(&line)
            .map_err(|error| StoreError::Corrupt(format!("spool {}: {error}", path.display())))?;
        match entry {
            LegacyEntry::Spans(rows) => {
                let mut by_project: BTreeMap<&str, Vec<&SpanRow>> = BTreeMap::new();
                for row in &rows {
                    by_project.entry(&row.project_id).or_default().push(row);
                }
                for (project_id, rows) in by_project {
                    file.push_spans(project_id, rows);
                }
            }
            LegacyEntry::ContentEvents(rows) => {
                let mut by_project: BTreeMap<&str, Vec<&ContentEventRow>> = BTreeMap::new();
                for row in &rows {
                    by_project.entry(&row.project_id).or_default().push(row);
                }
                for (project_id, rows) in by_project {
                    file.push_content_events(project_id, rows);
                }
            }
        }
    }
    Ok(file)
}

/// A spool file that cannot be written or read: the spool is unavailable until it can be.
pub(super) fn unavailable(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("spool: {what}: {error}"))
}
