//! The SQLite schema, applied as numbered migrations recorded in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreResult;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a shipped entry:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    created_at_ns INTEGER NOT NULL
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    role          TEXT NOT NULL,
    name          TEXT,
    secret_hash   BLOB NOT NULL UNIQUE,
    created_at_ns INTEGER NOT NULL,
    revoked_at_ns INTEGER
);

-- One row per span. The columns hold what queries and TraceRecords need; `body` holds the rest
-- of the span losslessly (see store/codec.rs); `llm` is the normalized LLM call as JSON.
CREATE TABLE spans (
    project_id        TEXT NOT NULL,
    trace_id          BLOB NOT NULL,
    span_id           BLOB NOT NULL,
    parent_span_id    BLOB,
    name              TEXT NOT NULL,
    kind              INTEGER NOT NULL,
    start_ns          INTEGER NOT NULL,
    end_ns            INTEGER NOT NULL,
    status_code       INTEGER NOT NULL,
    service_name      TEXT,
    body              TEXT NOT NULL,
    input             TEXT,
    output            TEXT,
    session_id        TEXT,
    user_id           TEXT,
    pipeline_id       TEXT,
    llm               TEXT,
    model             TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    prompt_cost       REAL,
    completion_cost   REAL,
    total_cost        REAL,
    tool              TEXT
);
-- Deduplicates retries and finds the spans of a trace.
CREATE UNIQUE INDEX spans_identity ON spans (project_id, trace_id, span_id);

-- One row per trace: its TraceRecord, recomputed whenever a span of the trace is stored.
CREATE TABLE traces (
    project_id   TEXT NOT NULL,
    trace_id     BLOB NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT,
    output       TEXT,
    session_id   TEXT,
    user_id      TEXT,
    pipeline_id  TEXT,
    models       TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE UNIQUE INDEX traces_identity ON traces (project_id, trace_id);
CREATE INDEX traces_by_time ON traces (project_id, timestamp_ns DESC, trace_id DESC);
CREATE INDEX traces_by_session ON traces (project_id, session_id, timestamp_ns DESC)
    WHERE session_id IS NOT NULL;
CREATE INDEX traces_by_user ON traces (project_id, user_id, timestamp_ns DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX traces_by_pipeline ON traces (project_id, pipeline_id, timestamp_ns DESC)
    WHERE pipeline_id IS NOT NULL;
"#,
    r#"
-- GenAI content that arrived as log records, kept per span so that it is attached whether the
-- span came before or after it. `fingerprint` deduplicates retried records.
CREATE TABLE span_content_events (
    project_id  TEXT NOT NULL,
    trace_id    BLOB NOT NULL,
    span_id     BLOB NOT NULL,
    time_ns     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    fingerprint BLOB NOT NULL
);
CREATE UNIQUE INDEX span_content_events_identity
    ON span_content_events (project_id, trace_id, span_id, fingerprint);
"#,
    r#"
-- The models of each trace, one row per model, so that the model filter uses an index.
CREATE TABLE trace_models (
    project_id   TEXT NOT NULL,
    model        TEXT NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    trace_id     BLOB NOT NULL,
    PRIMARY KEY (project_id, model, timestamp_ns, trace_id)
) WITHOUT ROWID;
CREATE INDEX trace_models_by_trace ON trace_models (project_id, trace_id);
INSERT INTO trace_models (project_id, model, timestamp_ns, trace_id)
    SELECT traces.project_id, json_each.value, traces.timestamp_ns, traces.trace_id
    FROM traces, json_each(traces.models);
"#,
    r#"
CREATE TABLE project_settings (
    project_id    TEXT PRIMARY KEY REFERENCES projects(id),
    settings      TEXT NOT NULL,
    updated_at_ns INTEGER NOT NULL
);

-- Ingestion counters per project and minute; `label` is the filter rule or rejection reason.
CREATE TABLE ingestion_counts (
    project_id      TEXT NOT NULL,
    bucket_start_ns INTEGER NOT NULL,
    counter         TEXT NOT NULL,
    label           TEXT NOT NULL,
    value           INTEGER NOT NULL,
    PRIMARY KEY (project_id, bucket_start_ns, counter, label)
) WITHOUT ROWID;
"#,
    r#"
-- Text search over traces' input and output (`q`): a trigram index finds any substring of three
-- characters or more, case-insensitively, without reading every trace. Rows are keyed by the
-- rowid of `traces`; the index keeps no copy of the text.
CREATE VIRTUAL TABLE traces_text USING fts5(
    input, output, content = '', contentless_delete = 1, tokenize = 'trigram'
);
INSERT INTO traces_text (rowid, input, output) SELECT rowid, input, output FROM traces;
"#,
    r#"
-- The text index moves to search.sqlite, kept by a thread of its own (store/sqlite/search.rs):
-- the writer only stamps a trace with the next `text_seq` when its input or output changes, and
-- the indexer indexes what was stamped after its mark. Existing traces are stamped once here,
-- so the first start indexes them all.
DROP TABLE traces_text;
ALTER TABLE traces ADD COLUMN text_seq INTEGER NOT NULL DEFAULT 0;
UPDATE traces SET text_seq = rowid;
CREATE INDEX traces_by_text_seq ON traces (text_seq);
"#,
    r#"
-- Spans written from here on keep their semantics (input, output, the LLM call with its
-- messages, the tool execution) compressed with the body (format 2, store/codec.rs) instead of
-- in the `input`, `output`, `llm` and `tool` columns, which stay NULL for them: the columns
-- repeated text the body holds and doubled what each span wrote. Two small columns keep what
-- trace records are computed from; they are NULL for spans written before.
ALTER TABLE spans ADD COLUMN is_llm INTEGER;
ALTER TABLE spans ADD COLUMN tool_name TEXT;
"#,
    r#"
-- Spans are found through their trace's row: `trace_key` is the rowid of the trace in `traces`
-- (rowids stay put: nothing here runs VACUUM). Trace ids are random, so an index led by them
-- sent every span to a random page and each batch rewrote about one index page per span; new
-- traces take growing keys, so their spans go to the end of this index. For the same reason
-- `trace_models` rows are deleted by their primary key, and their index by trace goes.
ALTER TABLE spans ADD COLUMN trace_key INTEGER;
UPDATE spans SET trace_key = (
    SELECT traces.rowid FROM traces
    WHERE traces.project_id = spans.project_id AND traces.trace_id = spans.trace_id
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_key, span_id);
DROP INDEX spans_identity;
DROP INDEX trace_models_by_trace;
"#,
    r#"
-- Spans of one trace that arrive in one request are compressed together into a block
-- (store/codec/blocks.rs); their bodies (format 5) name the block and their part of it.
CREATE TABLE span_blocks (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"#,
    r#"
-- Secrets of the deployment (the key that signs web UI session cookies), made by the first
-- server that needs one and then used by every server of this store.
CREATE TABLE deployment_secrets (
    name          TEXT PRIMARY KEY,
    value         BLOB NOT NULL,
    created_at_ns INTEGER NOT NULL
);
"#,
    r#"
-- The dashboard's rollup (store/sqlite/rollup.rs): per project, minute of the trace timestamp
-- and model ('' for every trace of the minute), the traces, errors, tokens, cost in
-- nano-dollars and a sketch of durations (store/sketch.rs), changed in the transaction that
-- writes the trace rows. Filled from the stored traces by `rollup::rebuild` right after this.
CREATE TABLE trace_rollup (
    project_id TEXT NOT NULL,
    minute_ns  INTEGER NOT NULL,
    model      TEXT NOT NULL,
    traces     INTEGER NOT NULL,
    errors     INTEGER NOT NULL,
    tokens     INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    durations  BLOB NOT NULL,
    PRIMARY KEY (project_id, minute_ns, model)
) WITHOUT ROWID;
"#,
    r#"
-- `?status=` reads its page from here (store/sqlite/read.rs names the index): through the time
-- index it looked up every trace of the window when few or none had the status.
CREATE INDEX traces_by_status ON traces (project_id, status, timestamp_ns DESC, trace_id DESC);
"#,
    r#"
-- Scores (SPEC §8), by id; a trace's are found by `scores_by_trace`, oldest first. A score may
-- name a trace that has not arrived.
CREATE TABLE scores (
    project_id    TEXT NOT NULL,
    id            TEXT NOT NULL,
    trace_id      BLOB NOT NULL,
    span_id       BLOB,
    name          TEXT NOT NULL,
    data_type     TEXT NOT NULL,
    number        REAL,
    label         TEXT,
    comment       TEXT,
    source        TEXT NOT NULL,
    created_at_ns INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) WITHOUT ROWID;
CREATE INDEX scores_by_trace ON scores (project_id, trace_id, created_at_ns, id);
"#,
    r#"
-- The filter language (SPEC §7, store/sqlite/term_index.rs): each searchable term of a span
-- (store/terms.rs) once, under its key's id; values keep their types (booleans as one-byte
-- blobs). The primary key finds the traces and spans of a term without reading `spans`;
-- `span_terms_by_span` the terms of a span.
-- Filled for the stored spans by `term_index::fill` right after this, with the LLM provider and
-- operation that span filters read from their own columns.
CREATE TABLE filter_keys (
    id         INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL,
    kind       INTEGER NOT NULL,
    key        TEXT NOT NULL,
    UNIQUE (project_id, kind, key)
);
CREATE TABLE span_terms (
    key_id    INTEGER NOT NULL,
    value     NOT NULL,
    trace_key INTEGER NOT NULL,
    span_key  INTEGER NOT NULL,
    PRIMARY KEY (key_id, value, trace_key, span_key)
) WITHOUT ROWID;
CREATE INDEX span_terms_by_span ON span_terms (span_key, key_id);
ALTER TABLE spans ADD COLUMN llm_provider TEXT;
ALTER TABLE spans ADD COLUMN llm_operation TEXT;
-- `GET /api/v1/spans` pages through spans newest first.
CREATE INDEX spans_by_start ON spans (project_id, start_ns);
-- `scores["name"]` finds the traces with a score of a name.
CREATE INDEX scores_by_name ON scores (project_id, name, trace_id);
"#,
    r#"
-- Deletion (store/sqlite/delete.rs): each deleted trace leaves a row here, which the purge
-- (store/sqlite/purge.rs) takes away once it has removed what the trace left beside its rows:
-- its group's entry of the text index in search.sqlite, and the old pages in the WAL files.
CREATE TABLE purge_pending (
    id         INTEGER PRIMARY KEY,
    text_group INTEGER NOT NULL,
    spans      INTEGER NOT NULL
);
"#,
    r#"
-- Alerts (SPEC §10, store/sqlite/alerts.rs): the rules of each project (the secret is kept:
-- every delivery signs with it), the state the evaluator last wrote of each (none: ok), and
-- each change of state with its webhook's delivery.
CREATE TABLE alert_rules (
    project_id    TEXT NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    metric        TEXT NOT NULL,
    filter        TEXT,
    window_s      INTEGER NOT NULL,
    op            TEXT NOT NULL,
    threshold     REAL NOT NULL,
    min_traces    INTEGER,
    webhook_url   TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_at_ns INTEGER NOT NULL,
    updated_at_ns INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) WITHOUT ROWID;
CREATE TABLE alert_states (
    project_id    TEXT NOT NULL,
    rule_id       TEXT NOT NULL,
    state         TEXT NOT NULL,
    value         REAL,
    changed_at_ns INTEGER NOT NULL,
    transitions   INTEGER NOT NULL,
    PRIMARY KEY (project_id, rule_id)
) WITHOUT ROWID;
CREATE TABLE alert_events (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    rule_id         TEXT NOT NULL,
    state           TEXT NOT NULL,
    value           REAL NOT NULL,
    threshold       REAL NOT NULL,
    at_ns           INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    delivered       INTEGER NOT NULL,
    finished        INTEGER NOT NULL,
    last_error      TEXT,
    last_attempt_ns INTEGER
);
CREATE INDEX alert_events_by_rule ON alert_events (project_id, rule_id, at_ns DESC);
CREATE INDEX alert_events_unfinished ON alert_events (at_ns) WHERE finished = 0;
-- Leases (ControlPlane::acquire_lease): which server does a deployment's one-server work
-- (alert evaluation), until when.
CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    expires_at_ns INTEGER NOT NULL
);
"#,
];

/// The migration that makes the term index, which [`super::term_index::fill`] fills from the
/// stored spans (SQL cannot decode their bodies).
pub(super) const TERMS_MIGRATION: usize = 13;

/// The migration that makes `trace_rollup`, which [`super::rollup::rebuild`] fills from the
/// stored traces (SQL cannot compute the sketches).
pub(super) const ROLLUP_MIGRATION: usize = 10;

/// Brings the schema up to date. Safe when several processes open the same file at once: the
/// version is read and raised inside one write transaction.
pub fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        transaction.execute_batch(migration)?;
        if index == ROLLUP_MIGRATION {
            super::rollup::rebuild(&transaction)?;
        }
        if index == TERMS_MIGRATION {
            super::term_index::fill(&transaction)?;
        }
    }
    if version < MIGRATIONS.len() {
        transaction.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    }
    Ok(transaction.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(connection: &Connection) -> i64 {
        connection
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    }

    /// New files take the store's page size; a file made with 4 KiB pages keeps them, and
    /// opens and migrates as before.
    #[test]
    fn new_files_take_8_kib_pages_and_older_files_keep_theirs() {
        let directory = tempfile::tempdir().unwrap();
        let mut new = super::super::open_wal(&directory.path().join("new.db")).unwrap();
        migrate(&mut new).unwrap();
        assert_eq!(page_size(&new), 8192);

        let path = directory.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.pragma_update(None, "page_size", 4096).unwrap();
        old.execute_batch("CREATE TABLE kept (x); INSERT INTO kept VALUES (1);")
            .unwrap();
        drop(old);
        let mut old = super::super::open_wal(&path).unwrap();
        migrate(&mut old).unwrap();
        assert_eq!(page_size(&old), 4096);
        let kept: i64 = old
            .query_row("SELECT x FROM kept", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, 1);
    }

    /// A store of the version that indexed text in the writer's transaction migrates: the old
    /// index is dropped and every trace is stamped, so that the indexer indexes it.
    #[test]
    fn moving_the_text_index_out_stamps_existing_traces() {
        let mut connection = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..5] {
            connection.execute_batch(migration).unwrap();
        }
        connection.pragma_update(None, "user_version", 5).unwrap();
        for trace in 1..=3u8 {
            connection
                .execute(
                    "INSERT INTO traces (project_id, trace_id, timestamp_ns, status, input,
                         models, record)
                     VALUES ('p', ?1, 1, 'ok', 'some input', '[]', '{}')",
                    [vec![trace; 16]],
                )
                .unwrap();
        }
        migrate(&mut connection).unwrap();
        let stamps: Vec<(i64, i64)> = connection
            .prepare("SELECT rowid, text_seq FROM traces ORDER BY rowid")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(stamps, [(1, 1), (2, 2), (3, 3)]);
        let old_index: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'traces_text'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(old_index, 0);
    }

    /// Spans stored before `trace_key` get the rowid of their trace's row; the index by trace
    /// id goes, and the new index keeps a retry out.
    #[test]
    fn spans_get_their_traces_key() {
        let mut connection = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..7] {
            connection.execute_batch(migration).unwrap();
        }
        connection.pragma_update(None, "user_version", 7).unwrap();
        for (project, trace) in [("p", 1u8), ("q", 1), ("p", 2)] {
            connection
                .execute(
                    "INSERT INTO traces (project_id, trace_id, timestamp_ns, status, models, record)
                     VALUES (?1, ?2, 1, 'ok', '[]', '{}')",
                    rusqlite::params![project, vec![trace; 16]],
                )
                .unwrap();
            for span in 1..=2u8 {
                connection
                    .execute(
                        "INSERT INTO spans (project_id, trace_id, span_id, name, kind, start_ns,
                             end_ns, status_code, body)
                         VALUES (?1, ?2, ?3, 'span', 1, 1, 2, 0, '{}')",
                        rusqlite::params![project, vec![trace; 16], vec![span; 8]],
                    )
                    .unwrap();
            }
        }
        migrate(&mut connection).unwrap();
        let keys: Vec<(String, Vec<u8>, i64)> = connection
            .prepare(
                "SELECT spans.project_id, spans.trace_id, traces.rowid FROM spans
                 JOIN traces ON traces.rowid = spans.trace_key
                 WHERE traces.project_id = spans.project_id
                     AND traces.trace_id = spans.trace_id
                 ORDER BY spans.rowid",
            )
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<(String, Vec<u8>, i64)> = [("p", 1u8, 1), ("q", 1, 2), ("p", 2, 3)]
            .into_iter()
            .flat_map(|(project, trace, key)| {
                let row = (project.to_string(), vec![trace; 16], key);
                [row.clone(), row]
            })
            .collect();
        assert_eq!(keys, expected);
        let retry = connection.execute(
            "INSERT INTO spans (project_id, trace_id, span_id, name, kind, start_ns, end_ns,
                 status_code, body, trace_key)
             VALUES ('p', ?1, ?2, 'span', 1, 1, 2, 0, '{}', 1)",
            rusqlite::params![vec![1u8; 16], vec![1u8; 8]],
        );
        assert!(
            retry.is_err(),
            "a second span with the same trace key and id was stored"
        );
        let indexes: Vec<String> = connection
            .prepare(
                "SELECT name FROM sqlite_schema
                 WHERE type = 'index' AND tbl_name IN ('spans', 'trace_models') ORDER BY name",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        // `spans_by_start` comes later, with the filter language.
        assert_eq!(indexes, ["spans_by_start", "spans_by_trace"]);
    }
}
