//! The ClickHouse schema, as versioned migrations, in two dialects: one that runs on the
//! ClickHouse Debian ships (18.16: no DateTime64, Map, TTL, CODEC or skip indexes), and one that
//! uses what current servers offer (codecs, bloom-filter indexes, LowCardinality, TTL retention).
//! Both store the same columns, so every query runs on either. A cluster option writes `ON
//! CLUSTER`, Replicated tables and Distributed tables in front of them.

/// What the server supports, read from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ClickHouse before 20.3 (Debian's 18.16).
    Legacy,
    /// ClickHouse 20.3 and later.
    Modern,
}

impl Dialect {
    /// The dialect of a server version such as `18.16.1` or `24.8.4.13`.
    pub fn of_version(version: &str) -> Self {
        let mut parts = version
            .split('.')
            .filter_map(|part| part.parse::<u32>().ok());
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        if (major, minor) >= (20, 3) {
            Self::Modern
        } else {
            Self::Legacy
        }
    }
}

/// Options that shape the DDL.
#[derive(Debug, Clone, Default)]
pub struct SchemaOptions {
    pub database: String,
    /// A cluster name from the server's `remote_servers`: tables are created `ON CLUSTER`, as
    /// Replicated tables (`*_local`) behind Distributed tables sharded by trace id.
    pub cluster: Option<String>,
    /// Days to keep spans (modern dialect only: TTL).
    pub retention_days: Option<u32>,
}

/// A table of the schema, in words both dialects and a cluster are written from.
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) columns: &'static str,
    /// Extra column definitions of the modern dialect (skip indexes).
    pub(super) modern_indexes: &'static str,
    pub(super) engine: Engine,
    pub(super) partition_by: Option<&'static str>,
    pub(super) order_by: &'static str,
    /// Whether rows expire after the retention period (modern dialect).
    pub(super) expires: bool,
    /// Distributed sharding key in a cluster.
    pub(super) sharding_key: &'static str,
}

impl Table {
    /// The column whose time, in nanoseconds, retention counts from.
    fn time_column(&self) -> &'static str {
        match self.name {
            "spans" => "start_ns",
            "traces" => "timestamp_ns",
            "trace_rollup" => "minute_ns",
            "span_terms" => "start_ns",
            _ => "time_ns",
        }
    }

    /// Table settings. Tables read by trace id take small granules: a lookup reads a granule
    /// per part (spans made before 0.2 keep ClickHouse's 8,192 rows).
    fn settings(&self) -> Option<&'static str> {
        match self.name {
            "trace_index" => Some("index_granularity = 256"),
            "spans" => Some("index_granularity = 1024"),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum Engine {
    Replacing(Option<&'static str>),
    /// Sums the given column; `""` sums every numeric column outside the key, and nested
    /// tables whose name ends in `Map` as maps.
    Summing(&'static str),
}

/// `{compressed}` marks columns of large text: ZSTD in the modern dialect.
const SPAN_COLUMNS: &str = "
    project_id String,
    trace_id String,
    span_id String,
    parent_span_id String,
    name String,
    kind Int8,
    start_ns UInt64,
    end_ns UInt64,
    status_code Int8,
    service_name Nullable(String),
    body String {compressed},
    input Nullable(String) {compressed},
    output Nullable(String) {compressed},
    session_id Nullable(String),
    user_id Nullable(String),
    pipeline_id Nullable(String),
    is_llm UInt8,
    llm Nullable(String) {compressed},
    model Nullable(String),
    prompt_tokens Nullable(Int64),
    completion_tokens Nullable(Int64),
    total_tokens Nullable(Int64),
    prompt_cost Nullable(Float64),
    completion_cost Nullable(Float64),
    total_cost Nullable(Float64),
    tool Nullable(String),
    tool_name Nullable(String),
    version UInt64";

fn tables() -> Vec<Table> {
    vec![
        Table {
            name: "projects",
            columns: "id String, name String, created_at_ns UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: None,
            order_by: "id",
            expires: false,
            sharding_key: "cityHash64(id)",
        },
        Table {
            name: "tokens",
            columns: "id String, project_id String, role String, name Nullable(String), \
                      secret_hash String, created_at_ns UInt64, revoked_at_ns Nullable(UInt64), \
                      version UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(Some("version")),
            partition_by: None,
            order_by: "id",
            expires: false,
            sharding_key: "cityHash64(id)",
        },
        Table {
            name: "project_settings",
            columns: "project_id String, settings String, updated_at_ns UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(Some("updated_at_ns")),
            partition_by: None,
            order_by: "project_id",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "ingestion_counts",
            columns: "project_id String, bucket_start_ns UInt64, counter String, label String, \
                      value UInt64",
            modern_indexes: "",
            engine: Engine::Summing("value"),
            partition_by: Some("toYYYYMM(toDateTime(intDiv(bucket_start_ns, 1000000000)))"),
            order_by: "(project_id, bucket_start_ns, counter, label)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "spans",
            columns: SPAN_COLUMNS,
            modern_indexes: ",
    INDEX spans_session session_id TYPE bloom_filter GRANULARITY 4,
    INDEX spans_user user_id TYPE bloom_filter GRANULARITY 4,
    INDEX spans_start start_ns TYPE minmax GRANULARITY 1",
            engine: Engine::Replacing(Some("version")),
            partition_by: Some("toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000)))"),
            order_by: "(project_id, trace_id, span_id)",
            expires: true,
            sharding_key: "cityHash64(trace_id)",
        },
        Table {
            name: "span_content_events",
            columns: "project_id String, trace_id String, span_id String, time_ns UInt64, \
                      name String, attributes String {compressed}, fingerprint String",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: Some("toYYYYMMDD(toDateTime(intDiv(time_ns, 1000000000)))"),
            order_by: "(project_id, trace_id, span_id, fingerprint)",
            expires: true,
            sharding_key: "cityHash64(trace_id)",
        },
    ]
}

/// The statements that create the schema from nothing, in order; all idempotent.
pub fn create_statements(dialect: Dialect, options: &SchemaOptions) -> Vec<String> {
    let database = &options.database;
    let on_cluster = options
        .cluster
        .as_ref()
        .map_or(String::new(), |cluster| format!(" ON CLUSTER {cluster}"));
    let mut statements = vec![format!(
        "CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"
    )];
    for table in tables() {
        statements.extend(table_statements(&table, dialect, options));
    }
    statements
}

/// Secrets of the deployment (the key that signs web UI session cookies), made by the first
/// server that needs one. ClickHouse has no unique key: servers that race may each insert a
/// value, all are kept (the sort key holds the value) and readers take the earliest.
fn deployment_secrets() -> Table {
    Table {
        name: "deployment_secrets",
        columns: "name String, value String, created_at_ns UInt64",
        modern_indexes: "",
        engine: Engine::Replacing(None),
        partition_by: None,
        order_by: "(name, created_at_ns, value)",
        expires: false,
        sharding_key: "cityHash64(name)",
    }
}

/// The statements that create one table (and its Distributed table in a cluster).
fn table_statements(table: &Table, dialect: Dialect, options: &SchemaOptions) -> Vec<String> {
    let database = &options.database;
    let on_cluster = options
        .cluster
        .as_ref()
        .map_or(String::new(), |cluster| format!(" ON CLUSTER {cluster}"));
    let mut statements = Vec::new();
    let compressed = match dialect {
        Dialect::Legacy => "",
        Dialect::Modern => "CODEC(ZSTD(3))",
    };
    let mut columns = table.columns.replace("{compressed}", compressed);
    if dialect == Dialect::Modern {
        // Low-cardinality text: names, roles and counters repeat a lot.
        for column in ["name String", "role String", "counter String"] {
            columns = columns.replace(
                &format!(" {column},"),
                &format!(
                    " {} LowCardinality(String),",
                    column.split(' ').next().unwrap_or_default()
                ),
            );
        }
        columns.push_str(table.modern_indexes);
    }
    let local_name = if options.cluster.is_some() {
        format!("{}_local", table.name)
    } else {
        table.name.to_owned()
    };
    let engine = match (table.engine, &options.cluster) {
        (Engine::Replacing(version), None) => {
            format!("ReplacingMergeTree({})", version.unwrap_or_default())
        }
        (Engine::Summing(column), None) => format!("SummingMergeTree({column})"),
        (Engine::Summing(""), Some(_)) => format!(
            "ReplicatedSummingMergeTree('/clickhouse/tables/{{shard}}/{database}/{local_name}', '{{replica}}')"
        ),
        (Engine::Replacing(version), Some(_)) => format!(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{database}/{local_name}', '{{replica}}'{})",
            version.map_or(String::new(), |version| format!(", {version}"))
        ),
        (Engine::Summing(column), Some(_)) => format!(
            "ReplicatedSummingMergeTree('/clickhouse/tables/{{shard}}/{database}/{local_name}', '{{replica}}', {column})"
        ),
    };
    let mut statement = format!(
        "CREATE TABLE IF NOT EXISTS {database}.{local_name}{on_cluster} ({columns}\n) ENGINE = {engine}"
    );
    if let Some(partition) = table.partition_by {
        statement.push_str(&format!(" PARTITION BY {partition}"));
    }
    statement.push_str(&format!(" ORDER BY {}", table.order_by));
    if let (Dialect::Modern, true, Some(days)) = (dialect, table.expires, options.retention_days) {
        let time = table.time_column();
        statement.push_str(&format!(
            " TTL toDateTime(intDiv({time}, 1000000000)) + INTERVAL {days} DAY"
        ));
    }
    if let Some(settings) = table.settings() {
        statement.push_str(&format!(" SETTINGS {settings}"));
    }
    statements.push(statement);
    if let Some(cluster) = &options.cluster {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {database}.{name}{on_cluster} AS {database}.{local_name} \
             ENGINE = Distributed({cluster}, {database}, {local_name}, {key})",
            name = table.name,
            key = table.sharding_key,
        ));
    }
    statements
}

/// The columns of a stored TraceRecord (`rows::TraceRow`).
const TRACE_COLUMNS: &str = "
    project_id String,
    trace_id String,
    timestamp_ns UInt64,
    trace_input Nullable(String) {compressed},
    trace_output Nullable(String) {compressed},
    trace_status_code Int8,
    has_root UInt8,
    duration_ns UInt64,
    trace_session_id Nullable(String),
    trace_user_id Nullable(String),
    trace_pipeline_id Nullable(String),
    root_span_name Nullable(String),
    trace_service_name Nullable(String),
    span_count UInt64,
    models Array(String),
    prompt_token_count Nullable(Int64),
    completion_token_count Nullable(Int64),
    total_token_count Nullable(Int64),
    trace_prompt_cost Nullable(Float64),
    trace_completion_cost Nullable(Float64),
    trace_total_cost Nullable(Float64),
    llm_call_count UInt64,
    tool_call_count UInt64,
    tool_call_error_count UInt64,
    tool_names Array(String),
    version UInt64,
    deleted UInt8";

/// The read model (migration 3): TraceRecords in time order, an index of them by trace id,
/// and the dashboard's per-minute rollup. See `trace_rows` for how they are kept.
fn read_model() -> Vec<Table> {
    vec![
        Table {
            name: "traces",
            columns: TRACE_COLUMNS,
            modern_indexes: "",
            engine: Engine::Replacing(Some("version")),
            partition_by: Some("toYYYYMM(toDateTime(intDiv(timestamp_ns, 1000000000)))"),
            order_by: "(project_id, timestamp_ns, trace_id)",
            expires: true,
            sharding_key: "cityHash64(trace_id)",
        },
        Table {
            name: "trace_index",
            columns: "project_id String, trace_id String, timestamp_ns UInt64, version UInt64, \
                      is_error UInt8, duration_ns UInt64, total_tokens Int64, total_cost Float64, \
                      models Array(String)",
            modern_indexes: "",
            engine: Engine::Replacing(Some("version")),
            partition_by: None,
            order_by: "(project_id, trace_id)",
            expires: false,
            sharding_key: "cityHash64(trace_id)",
        },
        Table {
            name: "trace_rollup",
            columns: "project_id String, minute_ns UInt64, model String, traces Int64, \
                      errors Int64, tokens Int64, cost_nanos Int64, \
                      durationsMap Nested(bin UInt16, count Int64)",
            modern_indexes: "",
            engine: Engine::Summing(""),
            partition_by: Some("toYYYYMM(toDateTime(intDiv(minute_ns, 1000000000)))"),
            order_by: "(project_id, minute_ns, model)",
            expires: true,
            sharding_key: "cityHash64(project_id)",
        },
        Table {
            name: "read_model_builds",
            columns: "name String, server String, started_at_ns UInt64, done UInt8",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: None,
            order_by: "(name, started_at_ns, server, done)",
            expires: false,
            sharding_key: "cityHash64(name)",
        },
    ]
}

/// Scores (SPEC §8), by project and id; the newest row of an id is the score (migration 4).
fn scores() -> Table {
    Table {
        name: "scores",
        columns: "project_id String, id String, trace_id String, span_id Nullable(String), \
                  name String, data_type String, number Nullable(Float64), \
                  label Nullable(String), comment Nullable(String), source String, \
                  created_at_ns UInt64, version UInt64, deleted UInt8",
        modern_indexes: "",
        engine: Engine::Replacing(Some("version")),
        partition_by: None,
        order_by: "(project_id, id)",
        expires: false,
        sharding_key: "cityHash64(project_id)",
    }
}

/// The searchable terms of spans (`store::terms`, and the LLM call's provider and operation)
/// and the keys a project's filters can name (migration 5; see `span_terms`). A span sent
/// twice leaves its terms twice until a merge: queries read them through `IN` and `DISTINCT`.
fn span_terms() -> Vec<Table> {
    vec![
        Table {
            name: "span_terms",
            columns: "project_id String, kind UInt8, key String, value String, \
                      value_type UInt8, number Float64, trace_id String, span_id String, \
                      start_ns UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: Some("toYYYYMM(toDateTime(intDiv(start_ns, 1000000000)))"),
            order_by: "(project_id, kind, key, value, trace_id, span_id)",
            expires: true,
            sharding_key: "cityHash64(trace_id)",
        },
        Table {
            name: "filter_keys",
            columns: "project_id String, kind UInt8, key String",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: None,
            order_by: "(project_id, kind, key)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
    ]
}

/// Deletion (migration 6; see `delete` and `purge`): `deleted_traces`, a tombstone per deleted
/// trace (the newest version of a trace's row says whether new spans made it a new trace and
/// whether its purge is done), which reads leave out until then; `trace_horizons`, per project the time before which retention hides
/// every trace (reads take the largest), and how far purges have removed.
fn deletion() -> Vec<Table> {
    vec![
        Table {
            name: "deleted_traces",
            columns: "project_id String, trace_id String, deleted_at_ns UInt64, \
                      base_version UInt64, reborn UInt8, purged UInt8, version UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(Some("version")),
            partition_by: None,
            order_by: "(project_id, trace_id)",
            expires: false,
            sharding_key: "cityHash64(trace_id)",
        },
        Table {
            name: "trace_horizons",
            columns: "project_id String, horizon_ns UInt64, purged_to_ns UInt64",
            modern_indexes: "",
            engine: Engine::Replacing(None),
            partition_by: None,
            order_by: "(project_id, horizon_ns, purged_to_ns)",
            expires: false,
            sharding_key: "cityHash64(project_id)",
        },
    ]
}

/// The versioned migrations: version 1 is the schema above, version 2 adds the deployment's
/// secrets, version 3 the read model (its rows are then built from the stored spans, see
/// `trace_rows::build`), version 4 scores, version 5 the terms of the filter language (spans
/// stored before it have none), version 6 the tombstones and horizons of deletion, version 7
/// alerts and leases. A later
/// change appends a version with its statements; a server applies the versions it has not
/// recorded.
pub fn migrations(dialect: Dialect, options: &SchemaOptions) -> Vec<(u32, Vec<String>)> {
    vec![
        (1, create_statements(dialect, options)),
        (2, table_statements(&deployment_secrets(), dialect, options)),
        (
            3,
            read_model()
                .iter()
                .flat_map(|table| table_statements(table, dialect, options))
                .collect(),
        ),
        (4, table_statements(&scores(), dialect, options)),
        (
            5,
            span_terms()
                .iter()
                .flat_map(|table| table_statements(table, dialect, options))
                .collect(),
        ),
        (
            6,
            deletion()
                .iter()
                .flat_map(|table| table_statements(table, dialect, options))
                .collect(),
        ),
        (
            7,
            super::alerts::tables()
                .iter()
                .flat_map(|table| table_statements(table, dialect, options))
                .collect(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cluster: Option<&str>) -> SchemaOptions {
        SchemaOptions {
            database: "spanhouse".into(),
            cluster: cluster.map(str::to_owned),
            retention_days: Some(30),
        }
    }

    #[test]
    fn versions_pick_the_dialect() {
        assert_eq!(Dialect::of_version("18.16.1"), Dialect::Legacy);
        assert_eq!(Dialect::of_version("20.3.1.1"), Dialect::Modern);
        assert_eq!(Dialect::of_version("24.8.4.13"), Dialect::Modern);
        assert_eq!(Dialect::of_version("garbage"), Dialect::Legacy);
    }

    #[test]
    fn legacy_ddl_avoids_what_18_16_lacks() {
        let ddl = create_statements(Dialect::Legacy, &options(None)).join("\n");
        for missing in [
            "CODEC",
            "TTL",
            "INDEX ",
            "LowCardinality",
            "DateTime64",
            "Map(",
        ] {
            assert!(!ddl.contains(missing), "{missing} in legacy DDL:\n{ddl}");
        }
        assert!(ddl.contains("ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMMDD"));
    }

    #[test]
    fn modern_ddl_uses_codecs_indexes_and_retention() {
        let ddl = create_statements(Dialect::Modern, &options(None)).join("\n");
        assert!(ddl.contains("body String CODEC(ZSTD(3))"));
        assert!(ddl.contains("INDEX spans_session session_id TYPE bloom_filter"));
        assert!(ddl.contains("name LowCardinality(String)"));
        assert!(ddl.contains("TTL toDateTime(intDiv(start_ns, 1000000000)) + INTERVAL 30 DAY"));
    }

    #[test]
    fn the_second_migration_adds_the_deployment_secrets() {
        let legacy = migrations(Dialect::Legacy, &options(None));
        assert_eq!(legacy.len(), 7);
        assert_eq!(
            legacy[1].1,
            vec![
                "CREATE TABLE IF NOT EXISTS spanhouse.deployment_secrets (name String, value String, \
                 created_at_ns UInt64\n) ENGINE = ReplacingMergeTree() ORDER BY (name, created_at_ns, value)"
            ]
        );
        let cluster = &migrations(Dialect::Modern, &options(Some("analytics")))[1].1;
        assert!(cluster[0].contains("deployment_secrets_local ON CLUSTER analytics"));
        assert!(cluster[1].contains("Distributed(analytics, spanhouse, deployment_secrets_local"));
    }

    #[test]
    fn cluster_ddl_is_replicated_and_distributed() {
        let ddl = create_statements(Dialect::Modern, &options(Some("analytics")));
        assert_eq!(
            ddl[0],
            "CREATE DATABASE IF NOT EXISTS spanhouse ON CLUSTER analytics"
        );
        let spans_local = ddl
            .iter()
            .find(|statement| statement.contains("spanhouse.spans_local ON CLUSTER analytics ("))
            .expect("a local spans table");
        assert!(spans_local.contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/spanhouse/spans_local', '{replica}', version)"
        ));
        assert!(ddl.iter().any(|statement| statement
            == "CREATE TABLE IF NOT EXISTS spanhouse.spans ON CLUSTER analytics AS spanhouse.spans_local \
                ENGINE = Distributed(analytics, spanhouse, spans_local, cityHash64(trace_id))"));
        assert!(
            ddl.iter()
                .all(|statement| statement.contains("ON CLUSTER analytics"))
        );
    }
}
