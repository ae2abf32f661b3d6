//! The query texts of the read path; placeholders `?` are bound by the client, never spliced.

use super::filter_sql::{
    SAMPLE_SPAN_FILTER, SAMPLE_TRACE_FILTER, Window, span_split, trace_condition, trace_split,
    with_values,
};
use super::hidden::{HORIZON, visible_span, visible_trace};

/// The columns of a stored TraceRecord after its project id, in the order of `rows::TraceRow`.
pub const TRACE_COLUMNS: &str = "trace_id, timestamp_ns, trace_input, trace_output, trace_status_code, \
    has_root, duration_ns, trace_session_id, trace_user_id, trace_pipeline_id, root_span_name, \
    trace_service_name, span_count, models, prompt_token_count, completion_token_count, \
    total_token_count, trace_prompt_cost, trace_completion_cost, trace_total_cost, \
    llm_call_count, tool_call_count, tool_call_error_count, tool_names";

/// The filters a trace list may have, in the order their placeholders are bound.
#[derive(Debug, Default, Clone)]
pub struct ListFilters {
    pub cursor: bool,
    pub text: bool,
    pub status: bool,
    pub session_id: bool,
    pub user_id: bool,
    pub pipeline_id: bool,
    pub model: bool,
    /// Oldest first (export), the cursor then bounding from below; newest first otherwise.
    /// Binds nothing.
    pub oldest_first: bool,
}

/// The keys of a page of traces, newest first (or oldest first), from the `traces` table:
/// only the narrow columns the filters need are read for the window.
///
/// Placeholders: project, window start, window end, project twice (deletions: `hidden`), then
/// each filter present in the order of [`ListFilters`], then the limit.
pub fn trace_keys(filters: &ListFilters) -> String {
    trace_keys_where(filters, None, None)
}

/// [`trace_keys`] with the conditions of the filter language (`filter_sql::trace_split`):
/// `prewhere`'s placeholders come after the window's (before the deletions'), `condition`'s
/// after the filters', before the limit.
pub fn trace_keys_where(
    filters: &ListFilters,
    prewhere: Option<&str>,
    condition: Option<&str>,
) -> String {
    let visible = visible_trace();
    let mut sql = match prewhere {
        None => format!(
            "SELECT timestamp_ns, trace_id FROM traces FINAL \
             WHERE project_id = ? AND timestamp_ns >= ? AND timestamp_ns < ? AND deleted = 0 \
             AND {visible}"
        ),
        Some(prewhere) => format!(
            "SELECT timestamp_ns, trace_id FROM traces FINAL \
             PREWHERE project_id = ? AND timestamp_ns >= ? AND timestamp_ns < ? AND {prewhere} \
             WHERE deleted = 0 AND {visible}"
        ),
    };
    let (direction, after) = if filters.oldest_first {
        ("ASC", ">")
    } else {
        ("DESC", "<")
    };
    if filters.cursor {
        sql.push_str(&format!(
            " AND (timestamp_ns {after} ? OR (timestamp_ns = ? AND trace_id {after} ?))"
        ));
    }
    if filters.text {
        sql.push_str(
            " AND (positionCaseInsensitiveUTF8(ifNull(trace_input, ''), ?) > 0 \
             OR positionCaseInsensitiveUTF8(ifNull(trace_output, ''), ?) > 0)",
        );
    }
    if filters.status {
        sql.push_str(" AND trace_status_code = ?");
    }
    if filters.session_id {
        sql.push_str(" AND trace_session_id = ?");
    }
    if filters.user_id {
        sql.push_str(" AND trace_user_id = ?");
    }
    if filters.pipeline_id {
        sql.push_str(" AND trace_pipeline_id = ?");
    }
    if filters.model {
        sql.push_str(" AND has(models, ?)");
    }
    if let Some(condition) = condition {
        sql.push_str(" AND ");
        sql.push_str(condition);
    }
    sql.push_str(&format!(
        " ORDER BY timestamp_ns {direction}, trace_id {direction} LIMIT ?"
    ));
    sql
}

/// The rows of a page's traces; the key columns in `PREWHERE` (the same in every version of a
/// row), so that only the granules holding the page's rows are read whole. Placeholders: project, the page's oldest and newest timestamp,
/// its trace ids (an array).
pub fn traces_by_keys() -> String {
    format!(
        "SELECT project_id, {TRACE_COLUMNS}, version, deleted FROM traces FINAL \
         PREWHERE project_id = ? AND timestamp_ns >= ? AND timestamp_ns <= ? \
         AND trace_id IN (SELECT arrayJoin(?)) WHERE deleted = 0"
    )
}

/// The figures of the matching traces of a window, for filtered stats. Placeholders: project,
/// window start, window end, then `prewhere`'s, project twice (deletions), then `condition`'s.
pub fn matching_trace_facts(prewhere: &str, condition: &str) -> String {
    format!(
        "SELECT timestamp_ns, trace_status_code, duration_ns, total_token_count, \
         trace_total_cost, models FROM traces FINAL PREWHERE project_id = ? \
         AND timestamp_ns >= ? AND timestamp_ns < ? AND {prewhere} \
         WHERE deleted = 0 AND {} AND {condition}",
        visible_trace()
    )
}

/// The ids of the matching traces of a window, for a deletion. Placeholders as
/// [`matching_trace_facts`].
pub fn matching_trace_ids(prewhere: &str, condition: &str) -> String {
    format!(
        "SELECT trace_id FROM traces FINAL PREWHERE project_id = ? \
         AND timestamp_ns >= ? AND timestamp_ns < ? AND {prewhere} \
         WHERE deleted = 0 AND {} AND {condition}",
        visible_trace()
    )
}

/// Which of some traces match, and their timestamps (for the scores of filtered stats).
/// Placeholders: project, window start, window end, project twice (deletions), trace ids (an
/// array), the condition's.
pub fn matching_trace_timestamps(condition: &str) -> String {
    format!(
        "SELECT trace_id, timestamp_ns FROM traces FINAL WHERE project_id = ? \
         AND timestamp_ns >= ? AND timestamp_ns < ? AND deleted = 0 AND {} \
         AND trace_id IN (SELECT arrayJoin(?)) AND {condition}",
        visible_trace()
    )
}

/// The keys of a page of spans, newest start first (ties: trace id, span id, descending).
/// Placeholders: project, window start, window end, `prewhere`'s, project four times
/// (deletions), with a cursor its start (twice), trace id (twice) and span id, then `condition`'s, then the
/// limit.
pub fn span_keys(cursor: bool, prewhere: &str, condition: &str) -> String {
    let mut sql = format!(
        "SELECT start_ns, trace_id, span_id FROM spans FINAL \
         PREWHERE project_id = ? AND start_ns >= ? AND start_ns < ? AND {prewhere} WHERE {}",
        visible_span()
    );
    if cursor {
        sql.push_str(
            " AND (start_ns < ? OR (start_ns = ? AND (trace_id < ? \
             OR (trace_id = ? AND span_id < ?))))",
        );
    }
    sql.push_str(" AND ");
    sql.push_str(condition);
    sql.push_str(" ORDER BY start_ns DESC, trace_id DESC, span_id DESC LIMIT ?");
    sql
}

/// The attribute, resource attribute and metadata keys of a project, at most `limit` of each
/// kind. Placeholders: project.
pub fn filter_keys(limit: usize) -> String {
    format!(
        "SELECT DISTINCT kind, key FROM filter_keys WHERE project_id = ? AND kind IN (1, 2, 3) \
         ORDER BY kind, key LIMIT {limit} BY kind"
    )
}

/// The score names of a project, at most `limit`. Placeholders: project.
pub fn score_names(limit: usize) -> String {
    format!(
        "SELECT DISTINCT name FROM scores FINAL WHERE project_id = ? AND deleted = 0 \
         ORDER BY name LIMIT {limit}"
    )
}

/// The dashboard's rollup cells of a window, from the project's horizon on (a horizon is a
/// minute; deleted traces were retracted from their cells). Placeholders: project, first
/// minute, window end, project.
pub fn rollup_cells() -> String {
    format!(
        "SELECT minute_ns, model, sum(traces), sum(errors), sum(tokens), \
         sum(cost_nanos), sumMap(durationsMap.bin, durationsMap.count) FROM trace_rollup \
         WHERE project_id = ? AND minute_ns >= ? AND minute_ns < ? AND minute_ns >= {HORIZON} \
         GROUP BY minute_ns, model"
    )
}

/// The columns of a span, in the order of `SpanRow`.
pub const SPAN_COLUMNS: &str = "project_id, trace_id, span_id, parent_span_id, name, kind, \
    start_ns, end_ns, status_code, service_name, body, input, output, session_id, user_id, \
    pipeline_id, is_llm, llm, model, prompt_tokens, completion_tokens, total_tokens, \
    prompt_cost, completion_cost, total_cost, tool, tool_name, version";

pub fn spans_of_trace() -> String {
    format!(
        "SELECT {SPAN_COLUMNS} FROM spans FINAL PREWHERE project_id = ? AND trace_id = ? \
         ORDER BY start_ns, span_id"
    )
}

/// Some spans: those of the traces whose ids are among the span ids (a superset, read narrowly
/// before the bodies). Placeholders: project, trace ids, span ids (arrays).
pub fn spans_by_ids() -> String {
    format!(
        "SELECT {SPAN_COLUMNS} FROM spans FINAL PREWHERE project_id = ? \
         AND trace_id IN (SELECT arrayJoin(?)) AND span_id IN (SELECT arrayJoin(?))"
    )
}

pub fn span_by_id() -> String {
    format!(
        "SELECT {SPAN_COLUMNS} FROM spans FINAL \
         PREWHERE project_id = ? AND trace_id = ? AND span_id = ?"
    )
}

pub const CONTENT_EVENT_COLUMNS: &str =
    "project_id, trace_id, span_id, time_ns, name, attributes, fingerprint";

/// Deletes content events older than the bound whose span is not stored; ClickHouse 18.16 runs
/// it as a mutation (on a cluster, of the local tables). Spans are looked up only for the
/// traces that have such events.
pub fn delete_orphan_content(cluster: Option<&str>) -> String {
    let (table, on_cluster) = match cluster {
        Some(cluster) => (
            "span_content_events_local".to_owned(),
            format!(" ON CLUSTER {cluster}"),
        ),
        None => ("span_content_events".to_owned(), String::new()),
    };
    format!(
        "ALTER TABLE {table}{on_cluster} DELETE WHERE time_ns < ? \
         AND (project_id, trace_id, span_id) NOT IN ( \
           SELECT project_id, trace_id, span_id FROM spans WHERE trace_id IN ( \
             SELECT trace_id FROM span_content_events WHERE time_ns < ?))"
    )
}

pub fn content_events_of_span() -> String {
    format!(
        "SELECT {CONTENT_EVENT_COLUMNS} FROM span_content_events FINAL \
         WHERE project_id = ? AND trace_id = ? AND span_id = ? ORDER BY time_ns, fingerprint"
    )
}

/// The content events of some traces, each span's in the order delivery normalizes with.
/// Placeholders: project, trace ids (an array).
pub const CONTENT_EVENTS_OF_TRACES: &str = "SELECT project_id, trace_id, span_id, time_ns, name, \
    attributes, fingerprint FROM span_content_events FINAL \
    WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?)) \
    ORDER BY trace_id, span_id, time_ns, fingerprint";

/// Which of the given traces have content events, and for which spans.
pub const SPANS_WITH_CONTENT: &str = "SELECT DISTINCT trace_id, span_id FROM span_content_events \
    WHERE project_id = ? AND trace_id IN (SELECT arrayJoin(?))";

/// Every query text with sample values in place of its placeholders, for validating them
/// against a current ClickHouse engine (tests/clickhouse_sql.rs runs them in chdb).
pub fn sample_queries() -> Vec<(String, String)> {
    let all_filters = ListFilters {
        cursor: true,
        text: true,
        status: true,
        session_id: true,
        user_id: true,
        pipeline_id: true,
        model: true,
        oldest_first: false,
    };
    let oldest_first = ListFilters {
        oldest_first: true,
        ..all_filters.clone()
    };
    let samples = [
        (
            "trace_keys_oldest_first",
            trace_keys(&oldest_first),
            vec![
                "'p'", "0", "10", "'p'", "'p'", "5", "5", "'t'", "'q'", "'q'", "2", "'s'", "'u'",
                "'l'", "'m'", "50",
            ],
        ),
        (
            "content_events_of_traces",
            CONTENT_EVENTS_OF_TRACES.to_owned(),
            vec!["'p'", "['t']"],
        ),
        (
            "trace_keys",
            trace_keys(&ListFilters::default()),
            vec!["'p'", "0", "10", "'p'", "'p'", "50"],
        ),
        (
            "trace_keys_all_filters",
            trace_keys(&all_filters),
            vec![
                "'p'", "0", "10", "'p'", "'p'", "5", "5", "'t'", "'q'", "'q'", "2", "'s'", "'u'",
                "'l'", "'m'", "50",
            ],
        ),
        (
            "traces_by_keys",
            traces_by_keys(),
            vec!["'p'", "0", "10", "['t']"],
        ),
        (
            "rollup_cells",
            rollup_cells(),
            vec!["'p'", "0", "10", "'p'"],
        ),
        (
            "spans_of_traces",
            super::trace_rows::spans_of_traces(),
            vec!["'p'", "['t']"],
        ),
        (
            "score_by_id",
            super::scores::score_by_id(),
            vec!["'p'", "'s'"],
        ),
        (
            "numeric_scores",
            super::scores::numeric_scores(),
            vec!["'p'", "'p'", "'p'", "'p'"],
        ),
        (
            "timestamps_of_traces",
            super::scores::timestamps_of_traces(),
            vec!["'p'", "['t']", "'p'"],
        ),
        (
            "scores_of_trace_ids",
            super::scores::scores_of_trace_ids(),
            vec!["'p'", "['t']", "'p'", "'p'", "'p'"],
        ),
        (
            "index_of_traces",
            super::trace_rows::INDEX_OF_TRACES.to_owned(),
            vec!["'p'", "['t']"],
        ),
        ("spans_of_trace", spans_of_trace(), vec!["'p'", "'t'"]),
        ("span_by_id", span_by_id(), vec!["'p'", "'t'", "'s'"]),
        (
            "content_events_of_span",
            content_events_of_span(),
            vec!["'p'", "'t'", "'s'"],
        ),
        (
            "spans_with_content",
            SPANS_WITH_CONTENT.to_owned(),
            vec!["'p'", "['t']"],
        ),
        (
            "delete_orphan_content",
            delete_orphan_content(None),
            vec!["0", "0"],
        ),
    ];
    let trace_filter = crate::filter::query::parse_trace_filter(SAMPLE_TRACE_FILTER)
        .expect("the sample trace filter parses");
    let span_filter = crate::filter::query::parse_span_filter(SAMPLE_SPAN_FILTER)
        .expect("the sample span filter parses");
    let trace_condition = with_values(&trace_condition("p", &trace_filter));
    let window = Window {
        start_unix_nano: 0,
        end_unix_nano: 10,
    };
    let trace_split = trace_split("p", &trace_filter);
    let (trace_prewhere, trace_rest) = (
        with_values(&trace_split.prewhere.expect("stable conjuncts")),
        with_values(&trace_split.rest.expect("other conjuncts")),
    );
    let span_split = span_split("p", window, &span_filter);
    let (span_prewhere, span_rest) = (
        with_values(&span_split.prewhere.expect("stable conjuncts")),
        with_values(&span_split.rest.expect("other conjuncts")),
    );
    let filtered = [
        (
            "trace_keys_filtered",
            trace_keys_where(&all_filters, Some(&trace_prewhere), Some(&trace_rest)),
            vec![
                "'p'", "0", "10", "'p'", "'p'", "5", "5", "'t'", "'q'", "'q'", "2", "'s'", "'u'",
                "'l'", "'m'", "50",
            ],
        ),
        (
            "matching_trace_facts",
            matching_trace_facts(&trace_prewhere, &trace_rest),
            vec!["'p'", "0", "10", "'p'", "'p'"],
        ),
        (
            "matching_trace_ids",
            matching_trace_ids(&trace_prewhere, &trace_rest),
            vec!["'p'", "0", "10", "'p'", "'p'"],
        ),
        (
            "matching_trace_timestamps",
            matching_trace_timestamps(&trace_condition),
            vec!["'p'", "0", "10", "'p'", "'p'", "['t']"],
        ),
        (
            "span_keys",
            span_keys(true, &span_prewhere, &span_rest),
            vec![
                "'p'", "0", "10", "'p'", "'p'", "'p'", "'p'", "5", "5", "'t'", "'t'", "'s'", "50",
            ],
        ),
        (
            "spans_by_ids",
            spans_by_ids(),
            vec!["'p'", "['t']", "['s']"],
        ),
        ("filter_keys", filter_keys(1000), vec!["'p'"]),
        ("score_names", score_names(1000), vec!["'p'"]),
    ];
    let samples = samples
        .into_iter()
        .chain(super::delete::sample_queries())
        .chain(super::purge::sample_queries())
        .chain(super::alerts::sample_queries());
    samples
        .into_iter()
        .chain(filtered)
        .map(|(name, sql, values)| {
            let mut filled = String::new();
            let mut values = values.into_iter();
            for (index, part) in sql.split('?').enumerate() {
                if index > 0 {
                    let value = values.next();
                    assert!(value.is_some(), "{name}: a value per placeholder");
                    filled.push_str(value.unwrap_or_default());
                }
                filled.push_str(part);
            }
            assert!(
                values.next().is_none(),
                "{name}: more values than placeholders"
            );
            (name.to_owned(), filled)
        })
        .collect()
}
