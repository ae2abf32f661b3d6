//! Every DDL statement and query text of the ClickHouse backend runs on a current ClickHouse
//! engine (chdb, in process), in both dialects: the legacy one the integration tests run on
//! Debian's 18.16 server, and the modern one servers from 20.3 on get.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::require;
use spanhouse::store::clickhouse::queries::sample_queries;
use spanhouse::store::clickhouse::schema::{Dialect, SchemaOptions, migrations};

fn python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".e2e/venv/bin/python");
    let has_chdb = python.exists()
        && Command::new(&python)
            .args(["-c", "import chdb"])
            .status()
            .is_ok_and(|status| status.success());
    require(has_chdb.then_some(python), "chdb")
}

#[test]
fn ddl_and_queries_run_on_a_current_clickhouse() {
    let Some(python) = python() else { return };
    let mut statements = Vec::new();
    for (dialect, database) in [
        (Dialect::Modern, "spanhouse"),
        (Dialect::Legacy, "spanhouse_legacy"),
    ] {
        let options = SchemaOptions {
            database: database.into(),
            cluster: None,
            retention_days: Some(30),
        };
        let all = migrations(dialect, &options)
            .into_iter()
            .flat_map(|(_, ddl)| ddl);
        for (index, statement) in all.enumerate() {
            statements.push((format!("{dialect:?} ddl {index}"), statement));
        }
    }
    statements.push(("use".into(), "USE spanhouse".into()));
    for (name, query) in sample_queries() {
        statements.push((format!("query {name}"), query));
    }
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("statements.json");
    std::fs::write(
        &file,
        serde_json::json!({ "statements": statements }).to_string(),
    )
    .unwrap();
    let output = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clickhouse/validate_chdb.py"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", statements.len())),
        "{stdout}"
    );
}

/// The same statements on the ClickHouse the integration tests use (Debian's 18.16, the oldest
/// the legacy dialect serves), in a database of their own that is dropped after.
#[tokio::test]
async fn ddl_and_queries_run_on_the_test_clickhouse() {
    if !common::clickhouse_available().await {
        return;
    }
    let database = common::fresh_database();
    let options = SchemaOptions {
        database: database.clone(),
        cluster: None,
        retention_days: None,
    };
    let client = reqwest::Client::new();
    let run = |sql: String, use_database: bool| {
        let client = client.clone();
        let database = database.clone();
        async move {
            let mut url = common::clickhouse_url();
            if use_database {
                url = format!("{url}/?database={database}");
            }
            let response = client.post(url).body(sql.clone()).send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            (status.is_success(), format!("{sql}\n→ {text}"))
        }
    };
    let mut failures = Vec::new();
    for (_, ddl) in migrations(Dialect::Legacy, &options) {
        for statement in ddl {
            let (ok, text) = run(statement, false).await;
            if !ok {
                failures.push(text);
            }
        }
    }
    for (name, query) in sample_queries() {
        if name == "delete_orphan_content" || name.starts_with("purge_") {
            continue; // mutations (of the database `spanhouse`): tests/clickhouse.rs runs them
        }
        let (ok, text) = run(query, true).await;
        if !ok {
            failures.push(format!("{name}: {text}"));
        }
    }
    run(format!("DROP DATABASE {database}"), false).await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
