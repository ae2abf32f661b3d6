//! Projects, tokens, settings, the deployment's secrets, ingestion counters and migrations in
//! ClickHouse, shared by every
//! server. Rows are never updated in place: a change inserts a newer version, and reads take
//! the latest (`FINAL` on ReplacingMergeTree tables, sums on the SummingMergeTree one).

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::rows::{CountRow, ProjectRow, SecretRow, SettingsRow, TokenRow};
use super::schema::{Dialect, SchemaOptions, migrations};
use super::{unavailable, version_now};
use crate::model::project::ProjectSettings;
use crate::model::project::Role;
use crate::model::time::now_unix_nano;
use crate::store::{
    ActiveToken, CountDelta, NewToken, Project, StoreError, StoreResult, TokenInfo,
};

/// Applies the migrations this database has not recorded. Every statement is idempotent, so
/// servers starting at once may apply the same version together safely.
pub async fn migrate(
    client: &Client,
    dialect: Dialect,
    options: &SchemaOptions,
) -> StoreResult<()> {
    let database = &options.database;
    let on_cluster = options
        .cluster
        .as_ref()
        .map_or(String::new(), |cluster| format!(" ON CLUSTER {cluster}"));
    for statement in [
        format!("CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.schema_migrations{on_cluster} \
             (version UInt32, applied_at_ns UInt64) ENGINE = ReplacingMergeTree() ORDER BY version"
        ),
    ] {
        client
            .query(&statement)
            .execute()
            .await
            .map_err(unavailable)?;
    }
    let applied: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT version FROM {database}.schema_migrations"
        ))
        .fetch_all()
        .await
        .map_err(unavailable)?;
    for (version, statements) in migrations(dialect, options) {
        if applied.contains(&version) {
            continue;
        }
        for statement in statements {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(unavailable)?;
        }
        client
            .query(&format!(
                "INSERT INTO {database}.schema_migrations (version, applied_at_ns) VALUES (?, ?)"
            ))
            .bind(version)
            .bind(now_unix_nano())
            .execute()
            .await
            .map_err(unavailable)?;
        tracing::info!(version, "applied clickhouse migration");
    }
    Ok(())
}

fn project(row: ProjectRow) -> Project {
    Project {
        id: row.id,
        name: row.name,
        created_at_unix_nano: row.created_at_ns,
    }
}

pub async fn list_projects(client: &Client) -> StoreResult<Vec<Project>> {
    let rows: Vec<ProjectRow> = client
        .query("SELECT id, name, created_at_ns FROM projects FINAL ORDER BY created_at_ns, name")
        .fetch_all()
        .await
        .map_err(unavailable)?;
    Ok(rows.into_iter().map(project).collect())
}

pub async fn find_project(client: &Client, id_or_name: &str) -> StoreResult<Option<Project>> {
    let rows: Vec<ProjectRow> = client
        .query(
            "SELECT id, name, created_at_ns FROM projects FINAL WHERE id = ? OR name = ? \
             ORDER BY id = ? DESC, created_at_ns LIMIT 1",
        )
        .bind(id_or_name)
        .bind(id_or_name)
        .bind(id_or_name)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    Ok(rows.into_iter().next().map(project))
}

/// Creates a project unless one of that name exists. Two servers creating the same name at the
/// same instant may both succeed; the earlier one is the one found by name.
pub async fn create_project(client: &Client, name: &str) -> StoreResult<Project> {
    if let Some(existing) = find_project(client, name).await?
        && existing.name == name
    {
        return Err(StoreError::Conflict(format!(
            "a project named {name:?} already exists"
        )));
    }
    let row = ProjectRow {
        id: {
            use rand::RngCore as _;
            let mut bytes = [0u8; 8];
            rand::rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        },
        name: name.to_owned(),
        created_at_ns: now_unix_nano(),
    };
    insert(client, "projects", std::slice::from_ref(&row)).await?;
    Ok(project(row))
}

/// Inserts rows into a table in one statement.
pub async fn insert<T>(client: &Client, table: &str, rows: &[T]) -> StoreResult<()>
where
    T: serde::Serialize,
    for<'a> T: Row<Value<'a> = T>,
{
    let mut insert = client.insert::<T>(table).await.map_err(unavailable)?;
    for row in rows {
        insert.write(row).await.map_err(unavailable)?;
    }
    insert.end().await.map_err(unavailable)
}

const TOKEN_COLUMNS: &str =
    "id, project_id, role, name, secret_hash, created_at_ns, revoked_at_ns, version";

pub async fn create_token(client: &Client, token: NewToken) -> StoreResult<()> {
    let row = TokenRow {
        id: token.id,
        project_id: token.project_id,
        role: token.role.as_str().to_owned(),
        name: token.name,
        secret_hash: hex::encode(token.secret_hash),
        created_at_ns: now_unix_nano(),
        revoked_at_ns: None,
        version: version_now(),
    };
    insert(client, "tokens", &[row]).await
}

async fn token_rows(
    client: &Client,
    condition: &str,
    value: Option<&str>,
) -> StoreResult<Vec<TokenRow>> {
    let mut query = client.query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens FINAL WHERE {condition} ORDER BY created_at_ns, id"
    ));
    if let Some(value) = value {
        query = query.bind(value);
    }
    query.fetch_all().await.map_err(unavailable)
}

fn role(text: &str) -> StoreResult<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role {text:?}")))
}

pub async fn list_tokens(client: &Client, project_id: &str) -> StoreResult<Vec<TokenInfo>> {
    token_rows(client, "project_id = ?", Some(project_id))
        .await?
        .into_iter()
        .map(|row| {
            Ok(TokenInfo {
                role: role(&row.role)?,
                id: row.id,
                project_id: row.project_id,
                name: row.name,
                created_at_unix_nano: row.created_at_ns,
                revoked_at_unix_nano: row.revoked_at_ns,
            })
        })
        .collect()
}

pub async fn revoke_token(client: &Client, token_id: &str) -> StoreResult<bool> {
    let Some(mut row) = token_rows(client, "id = ?", Some(token_id))
        .await?
        .into_iter()
        .next()
    else {
        return Ok(false);
    };
    if row.revoked_at_ns.is_none() {
        row.revoked_at_ns = Some(now_unix_nano());
        row.version = version_now();
        insert(client, "tokens", &[row]).await?;
    }
    Ok(true)
}

pub async fn active_tokens(client: &Client) -> StoreResult<Vec<ActiveToken>> {
    let tokens = token_rows(client, "isNull(revoked_at_ns)", None).await?;
    let projects = list_projects(client).await?;
    let mut active = Vec::with_capacity(tokens.len());
    for row in tokens {
        let Some(project) = projects.iter().find(|project| project.id == row.project_id) else {
            continue;
        };
        let mut secret_hash = [0u8; 32];
        hex::decode_to_slice(&row.secret_hash, &mut secret_hash)
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes of hex".into()))?;
        active.push(ActiveToken {
            secret_hash,
            token_id: row.id,
            role: role(&row.role)?,
            project: project.clone(),
        });
    }
    Ok(active)
}

/// The earliest value stored under `name`: what every server that reads it agrees on.
async fn stored_secret(client: &Client, name: &str) -> StoreResult<Option<Vec<u8>>> {
    let values: Vec<String> = client
        .query(
            "SELECT value FROM deployment_secrets WHERE name = ? \
             ORDER BY created_at_ns, value LIMIT 1",
        )
        .bind(name)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    values
        .first()
        .map(|value| {
            hex::decode(value)
                .map_err(|_| StoreError::Corrupt(format!("secret {name:?} is not hex")))
        })
        .transpose()
}

/// Insert-if-absent, then read back. Two servers that both found none both insert; each reads
/// the earliest of what it sees, and once both inserts are visible every reader gets the same
/// one (see `Store::deployment_secret`).
pub async fn deployment_secret(
    client: &Client,
    name: &str,
    candidate: &[u8],
) -> StoreResult<Vec<u8>> {
    if let Some(stored) = stored_secret(client, name).await? {
        return Ok(stored);
    }
    let row = SecretRow {
        name: name.to_owned(),
        value: hex::encode(candidate),
        created_at_ns: now_unix_nano(),
    };
    insert(client, "deployment_secrets", &[row]).await?;
    // A Distributed table may not show the insert yet: then ours is the only one this server
    // knows of.
    Ok(stored_secret(client, name)
        .await?
        .unwrap_or_else(|| candidate.to_vec()))
}

fn parse_settings(text: &str) -> StoreResult<ProjectSettings> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("settings: {error}")))
}

pub async fn get_settings(client: &Client, project_id: &str) -> StoreResult<ProjectSettings> {
    let rows: Vec<SettingsRow> = client
        .query("SELECT project_id, settings, updated_at_ns FROM project_settings FINAL WHERE project_id = ?")
        .bind(project_id)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    rows.first().map_or(Ok(ProjectSettings::default()), |row| {
        parse_settings(&row.settings)
    })
}

pub async fn put_settings(
    client: &Client,
    project_id: &str,
    settings: &ProjectSettings,
) -> StoreResult<()> {
    let row = SettingsRow {
        project_id: project_id.to_owned(),
        settings: serde_json::to_string(settings)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        updated_at_ns: version_now(),
    };
    insert(client, "project_settings", &[row]).await
}

pub async fn all_settings(client: &Client) -> StoreResult<Vec<(String, ProjectSettings)>> {
    let rows: Vec<SettingsRow> = client
        .query("SELECT project_id, settings, updated_at_ns FROM project_settings FINAL")
        .fetch_all()
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| Ok((row.project_id, parse_settings(&row.settings)?)))
        .collect()
}

pub async fn add_ingestion_counts(client: &Client, deltas: Vec<CountDelta>) -> StoreResult<()> {
    let rows: Vec<CountRow> = deltas
        .into_iter()
        .map(|delta| CountRow {
            project_id: delta.project_id,
            bucket_start_ns: delta.bucket_start_unix_nano,
            counter: delta.counter,
            label: delta.label,
            value: delta.value,
        })
        .collect();
    insert(client, "ingestion_counts", &rows).await
}

#[derive(Row, Deserialize)]
struct CountSum {
    bucket_start_ns: u64,
    counter: String,
    label: String,
    value: u64,
}

pub async fn ingestion_counts(
    client: &Client,
    project_id: &str,
    start: u64,
    end: u64,
) -> StoreResult<Vec<CountDelta>> {
    let rows: Vec<CountSum> = client
        .query(
            "SELECT bucket_start_ns, counter, label, sum(value) FROM ingestion_counts \
             WHERE project_id = ? AND bucket_start_ns >= ? AND bucket_start_ns < ? \
             GROUP BY bucket_start_ns, counter, label ORDER BY bucket_start_ns",
        )
        .bind(project_id)
        .bind(start)
        .bind(end)
        .fetch_all()
        .await
        .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .map(|row| CountDelta {
            project_id: project_id.to_owned(),
            bucket_start_unix_nano: row.bucket_start_ns,
            counter: row.counter,
            label: row.label,
            value: row.value,
        })
        .collect())
}
