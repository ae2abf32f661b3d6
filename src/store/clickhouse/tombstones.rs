//! How a refresh of the read model (`trace_rows::refresh`) treats a trace id that was deleted
//! (`delete`): until the purge, spans written before the deletion are left out, and spans
//! written after it make a new trace, whose rows get the tombstone's base version added so that
//! they replace the deleted trace's in `traces` and `trace_index`. After the purge, spans
//! written before the deletion can still arrive late from a server's spool: they delete the
//! trace again (the tombstone is re-armed) and the next purge removes them.

use super::rows::{DeletedTraceRow, SpanRow, TraceIndexRow};

/// The tombstones of some traces (purged or not). Placeholders: project id, trace ids (an
/// array).
pub const TOMBSTONES_OF_TRACES: &str = "SELECT project_id, trace_id, deleted_at_ns, base_version, \
    reborn, purged, version FROM deleted_traces FINAL \
    WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?))";

/// What a refresh does with one trace's stored spans.
#[derive(Debug, PartialEq)]
pub enum Plan<'a> {
    /// Computes the trace's row from these spans, its version raised by `base`; `reborn` is the
    /// tombstone to write when these spans make a deleted id a new trace.
    Compute {
        spans: Vec<&'a SpanRow>,
        base: u64,
        reborn: Option<DeletedTraceRow>,
    },
    /// Nothing to show: only spans of the deleted trace.
    Skip,
    /// Spans of the deleted trace came after its purge: hide the trace again (this tombstone)
    /// and let the next purge remove them.
    Rearm(DeletedTraceRow),
}

pub fn plan<'a>(
    spans: &[&'a SpanRow],
    tombstone: Option<&DeletedTraceRow>,
    previous: Option<&TraceIndexRow>,
    now: u64,
) -> Plan<'a> {
    let Some(tombstone) = tombstone else {
        return Plan::Compute {
            spans: spans.to_vec(),
            base: 0,
            reborn: None,
        };
    };
    let deleted_at = tombstone.deleted_at_ns;
    if tombstone.purged == 1 {
        if spans.iter().any(|span| span.version <= deleted_at) {
            return Plan::Rearm(DeletedTraceRow {
                base_version: previous.map_or(0, |entry| entry.version.saturating_add(1)),
                reborn: 0,
                purged: 0,
                version: now,
                ..tombstone.clone()
            });
        }
        return Plan::Compute {
            spans: spans.to_vec(),
            base: 0,
            reborn: None,
        };
    }
    let fresh: Vec<&SpanRow> = spans
        .iter()
        .copied()
        .filter(|span| span.version > deleted_at)
        .collect();
    if fresh.is_empty() {
        return Plan::Skip;
    }
    let reborn = (tombstone.reborn == 0).then(|| DeletedTraceRow {
        reborn: 1,
        version: now,
        ..tombstone.clone()
    });
    Plan::Compute {
        spans: fresh,
        base: tombstone.base_version,
        reborn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(version: u64) -> SpanRow {
        let normalized = crate::model::NormalizedSpan {
            span: crate::model::span::test_support::make_span(1, 1),
            semantics: crate::model::SpanSemantics::default(),
            encoded_body: None,
        };
        SpanRow::new("p", &normalized, version)
    }

    fn tombstone(purged: u8, reborn: u8) -> DeletedTraceRow {
        DeletedTraceRow {
            project_id: "p".into(),
            trace_id: "t".into(),
            deleted_at_ns: 100,
            base_version: 7,
            reborn,
            purged,
            version: 100,
        }
    }

    #[test]
    fn spans_after_a_deletion_make_a_new_trace_and_spans_before_it_stay_hidden() {
        let (old, new) = (span(50), span(150));
        let live = tombstone(0, 0);
        assert_eq!(plan(&[&old], Some(&live), None, 200), Plan::Skip);
        let Plan::Compute {
            spans,
            base,
            reborn,
        } = plan(&[&old, &new], Some(&live), None, 200)
        else {
            panic!("a new trace");
        };
        assert_eq!((spans.len(), spans[0].version, base), (1, 150, 7));
        assert_eq!(reborn.map(|row| (row.reborn, row.version)), Some((1, 200)));
        let again = plan(&[&new], Some(&tombstone(0, 1)), None, 300);
        assert!(matches!(
            again,
            Plan::Compute {
                reborn: None,
                base: 7,
                ..
            }
        ));
    }

    #[test]
    fn spans_of_a_deleted_trace_late_after_its_purge_delete_it_again() {
        let (old, new) = (span(50), span(150));
        let purged = tombstone(1, 1);
        assert!(matches!(
            plan(&[&new], Some(&purged), None, 300),
            Plan::Compute { base: 0, .. }
        ));
        let previous = TraceIndexRow {
            version: 41,
            ..TraceIndexRow::default()
        };
        let Plan::Rearm(row) = plan(&[&old, &new], Some(&purged), Some(&previous), 300) else {
            panic!("re-armed");
        };
        assert_eq!((row.purged, row.reborn, row.base_version), (0, 0, 42));
    }
}
