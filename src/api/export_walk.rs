//! How export walks a window oldest first, a page at a time, without rereading it.
//!
//! A page after a cursor is a keyset read, but a store may still look at every trace from the
//! cursor to the window's end to pick the page's oldest (ClickHouse sorts the rest of the
//! window's keys per page): a million traces read so would cost half a million trace keys per
//! page. So each read looks at a *probe*, a part of the window after the cursor: the whole
//! window at first; after a full page, about two pages' worth at that page's density; after a
//! short page (the probe is exhausted), the next part, four times as wide. Every read then
//! looks at a few pages' worth of traces however long the window, and a sparse or empty
//! stretch is crossed in a few widening steps.

use super::export::PAGE_TRACES;
use crate::store::{TraceCursor, TracePage, TraceQuery};

/// The state of an export's walk through its window `[start, end)`.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    /// Traces before this were all read (or are before the cursor's trace).
    from: u64,
    /// The window's exclusive end.
    end: u64,
    /// The last trace read, when the last page was full: the next page starts after it.
    cursor: Option<TraceCursor>,
    /// The exclusive end of the next read's probe.
    probe_end: u64,
    /// Every matching trace was read.
    done: bool,
}

impl Walk {
    pub(super) fn new(start: u64, end: u64) -> Self {
        Self {
            from: start,
            end,
            cursor: None,
            probe_end: end,
            done: start >= end,
        }
    }

    /// The window, cursor, order and size of the next read (the caller adds what to select);
    /// `None` when done.
    pub(super) fn query(&self) -> Option<TraceQuery> {
        if self.done {
            return None;
        }
        Some(TraceQuery {
            start_unix_nano: self.from,
            end_unix_nano: self.probe_end,
            limit: PAGE_TRACES,
            cursor: self.cursor,
            oldest_first: true,
            ..TraceQuery::default()
        })
    }

    /// Takes in the page [`Walk::query`] read.
    pub(super) fn advance(&mut self, page: &TracePage) {
        if let Some(next) = page.next_cursor {
            // A full page: go on after it, probing about two pages' worth at its density.
            let first = page
                .traces
                .first()
                .map_or(next.timestamp_unix_nano, |trace| trace.timestamp_unix_nano);
            let width = next
                .timestamp_unix_nano
                .saturating_sub(first)
                .saturating_mul(2)
                .max(1);
            self.cursor = Some(next);
            self.from = next.timestamp_unix_nano;
            self.probe_end = next.timestamp_unix_nano.saturating_add(width).min(self.end);
            return;
        }
        // A short page: the probe holds nothing more.
        if self.probe_end >= self.end {
            self.done = true;
            return;
        }
        let width = self
            .probe_end
            .saturating_sub(self.from)
            .saturating_mul(4)
            .max(1);
        self.from = self.probe_end;
        self.cursor = None;
        self.probe_end = self.probe_end.saturating_add(width).min(self.end);
    }

    /// Ends the walk (after a failure: the body ends there).
    pub(super) fn stop(&mut self) {
        self.done = true;
    }

    pub(super) fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TraceId, TraceRecord};

    /// Reads `query` from `timestamps` (sorted, each trace's id its index) as a store would;
    /// also says how many traces the read had to look at (those of its window from its start).
    fn read(timestamps: &[u64], query: &TraceQuery) -> (TracePage, usize) {
        let in_window: Vec<(u64, TraceId)> = timestamps
            .iter()
            .enumerate()
            .map(|(index, timestamp)| {
                let mut id = [0u8; 16];
                id[8..].copy_from_slice(&(index as u64 + 1).to_be_bytes());
                (*timestamp, TraceId(id))
            })
            .filter(|(timestamp, _)| {
                *timestamp >= query.start_unix_nano && *timestamp < query.end_unix_nano
            })
            .collect();
        let looked_at = in_window.len();
        let after: Vec<(u64, TraceId)> = in_window
            .into_iter()
            .filter(|(timestamp, id)| match query.cursor {
                None => true,
                Some(cursor) => (*timestamp, *id) > (cursor.timestamp_unix_nano, cursor.trace_id),
            })
            .collect();
        let traces: Vec<TraceRecord> = after
            .iter()
            .take(query.limit)
            .map(|(timestamp, id)| TraceRecord {
                trace_id: id.to_hex(),
                timestamp_unix_nano: *timestamp,
                ..TraceRecord::default()
            })
            .collect();
        let next_cursor = (after.len() > query.limit).then(|| {
            let (timestamp, id) = after[query.limit - 1];
            TraceCursor {
                timestamp_unix_nano: timestamp,
                trace_id: id,
            }
        });
        (
            TracePage {
                traces,
                next_cursor,
            },
            looked_at,
        )
    }

    /// Walks `timestamps` in `[start, end)`: the timestamps read, in order, the number of
    /// reads and the most traces one read looked at.
    fn walk(timestamps: &[u64], start: u64, end: u64) -> (Vec<u64>, usize, usize) {
        let mut walk = Walk::new(start, end);
        let (mut seen, mut reads, mut most) = (Vec::new(), 0, 0);
        while let Some(query) = walk.query() {
            let (page, looked_at) = read(timestamps, &query);
            reads += 1;
            most = most.max(looked_at);
            seen.extend(page.traces.iter().map(|trace| trace.timestamp_unix_nano));
            walk.advance(&page);
            assert!(reads < 10_000, "the walk does not end");
        }
        (seen, reads, most)
    }

    #[test]
    fn every_trace_is_read_once_in_order_with_bounded_reads() {
        // Evenly spread, bursts of equal timestamps, a long gap, and a window from the epoch.
        let mut timestamps: Vec<u64> = (0..20_000u64).map(|i| 1_000_000 + i * 1_000).collect();
        timestamps.extend(std::iter::repeat_n(50_000_000, 1_700));
        timestamps.extend((0..3_000u64).map(|i| 9_000_000_000 + i * 7));
        timestamps.sort_unstable();
        let (seen, reads, most) = walk(&timestamps, 0, u64::MAX / 2);
        assert_eq!(seen, timestamps);
        let pages = timestamps.len().div_ceil(PAGE_TRACES);
        assert!(reads <= pages * 2 + 40, "{reads} reads for {pages} pages");
        // The first read looks at the whole window; later ones at a few pages' worth, except
        // where many traces share one timestamp (the burst is read past by the cursor).
        let (_, _, evenly_most) = walk(&timestamps[..20_000], 1_000_000, 30_000_000);
        assert_eq!(evenly_most, 20_000);
        assert!(most <= timestamps.len());
        let mut later = Walk::new(1_000_000, 30_000_000);
        let (first_page, _) = read(&timestamps, &later.query().unwrap());
        later.advance(&first_page);
        let (_, looked_at) = read(&timestamps, &later.query().unwrap());
        assert!(looked_at <= 4 * PAGE_TRACES, "{looked_at}");
    }

    #[test]
    fn a_window_is_respected_and_an_empty_one_ends_at_once() {
        let timestamps: Vec<u64> = (0..5_000u64).map(|i| i * 10).collect();
        let (seen, _, _) = walk(&timestamps, 100, 20_000);
        assert_eq!(seen, (10..2_000u64).map(|i| i * 10).collect::<Vec<_>>());
        let (seen, reads, _) = walk(&timestamps, 60_000, 70_000);
        assert!(seen.is_empty());
        assert_eq!(reads, 1);
        assert!(Walk::new(5, 5).query().is_none());
    }
}
