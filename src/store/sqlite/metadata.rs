//! The control plane on the embedded store: projects, tokens, the deployment's secrets,
//! project settings and ingestion counters (beside `store::clickhouse::metadata`, the same for
//! ClickHouse).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::model::project::{ProjectSettings, Role};
use crate::model::time::now_unix_nano;
use crate::store::{
    ActiveToken, ControlPlane, CountDelta, LeaseGrant, NewToken, Project, StoreError, StoreResult,
    TokenInfo,
};

fn random_project_id() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn project_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at_unix_nano: row.get::<_, i64>(2)? as u64,
    })
}

fn parse_settings(text: &str) -> StoreResult<ProjectSettings> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("settings: {error}")))
}

fn role_from_text(text: &str) -> StoreResult<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role {text:?}")))
}

#[async_trait]
impl ControlPlane for SqliteStore {
    async fn create_project(&self, name: &str) -> StoreResult<Project> {
        let name = name.to_owned();
        self.with_writer(move |connection| {
            let project = Project {
                id: random_project_id(),
                name,
                created_at_unix_nano: now_unix_nano(),
            };
            let inserted = connection.execute(
                "INSERT INTO projects (id, name, created_at_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![
                    project.id,
                    project.name,
                    project.created_at_unix_nano as i64
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a project named {:?} already exists",
                    project.name
                )));
            }
            Ok(project)
        })
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, name, created_at_ns FROM projects ORDER BY created_at_ns, name",
            )?;
            let projects = statement
                .query_map([], project_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(projects)
        })
        .await
    }

    async fn find_project(&self, id_or_name: &str) -> StoreResult<Option<Project>> {
        let key = id_or_name.to_owned();
        self.with_reader(move |connection| {
            Ok(connection
                .query_row(
                    "SELECT id, name, created_at_ns FROM projects WHERE id = ?1 OR name = ?1
                     ORDER BY id = ?1 DESC LIMIT 1",
                    [key],
                    project_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn create_token(&self, token: NewToken) -> StoreResult<()> {
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO tokens (id, project_id, role, name, secret_hash, created_at_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.id,
                    token.project_id,
                    token.role.as_str(),
                    token.name,
                    token.secret_hash.as_slice(),
                    now_unix_nano() as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_tokens(&self, project_id: &str) -> StoreResult<Vec<TokenInfo>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare(
                "SELECT id, project_id, role, name, created_at_ns, revoked_at_ns FROM tokens
                 WHERE project_id = ?1 ORDER BY created_at_ns, id",
            )?;
            let rows = statement.query_map([project_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (id, project_id, role, name, created, revoked) = row?;
                tokens.push(TokenInfo {
                    id,
                    project_id,
                    role: role_from_text(&role)?,
                    name,
                    created_at_unix_nano: created as u64,
                    revoked_at_unix_nano: revoked.map(|revoked| revoked as u64),
                });
            }
            Ok(tokens)
        })
        .await
    }

    async fn revoke_token(&self, token_id: &str) -> StoreResult<bool> {
        let token_id = token_id.to_owned();
        self.with_writer(move |connection| {
            let exists = connection
                .query_row(
                    "SELECT 1 FROM tokens WHERE id = ?1",
                    [&token_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            connection.execute(
                "UPDATE tokens SET revoked_at_ns = ?2 WHERE id = ?1 AND revoked_at_ns IS NULL",
                params![token_id, now_unix_nano() as i64],
            )?;
            Ok(exists)
        })
        .await
    }

    async fn active_tokens(&self) -> StoreResult<Vec<ActiveToken>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare(
                "SELECT t.secret_hash, t.id, t.role, p.id, p.name, p.created_at_ns
                 FROM tokens t JOIN projects p ON p.id = t.project_id
                 WHERE t.revoked_at_ns IS NULL",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    Project {
                        id: row.get(3)?,
                        name: row.get(4)?,
                        created_at_unix_nano: row.get::<_, i64>(5)? as u64,
                    },
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (hash, token_id, role, project) = row?;
                let secret_hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?;
                tokens.push(ActiveToken {
                    secret_hash,
                    token_id,
                    role: role_from_text(&role)?,
                    project,
                });
            }
            Ok(tokens)
        })
        .await
    }

    async fn deployment_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        const SELECT: &str = "SELECT value FROM deployment_secrets WHERE name = ?1";
        let key = name.to_owned();
        let stored: Option<Vec<u8>> = self
            .with_reader(move |connection| {
                Ok(connection
                    .query_row(SELECT, [key], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        if let Some(stored) = stored {
            return Ok(stored);
        }
        // Inserted and read back by the one writer: of servers racing here, the first wins.
        let key = name.to_owned();
        let candidate = candidate.to_vec();
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO deployment_secrets (name, value, created_at_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![key, candidate, now_unix_nano() as i64],
            )?;
            Ok(connection.query_row(SELECT, [key], |row| row.get(0))?)
        })
        .await
    }

    async fn get_settings(&self, project_id: &str) -> StoreResult<ProjectSettings> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let text: Option<String> = connection
                .query_row(
                    "SELECT settings FROM project_settings WHERE project_id = ?1",
                    [project_id],
                    |row| row.get(0),
                )
                .optional()?;
            text.map_or(Ok(ProjectSettings::default()), |text| parse_settings(&text))
        })
        .await
    }

    async fn put_settings(&self, project_id: &str, settings: &ProjectSettings) -> StoreResult<()> {
        let project_id = project_id.to_owned();
        let text = serde_json::to_string(settings)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        self.with_writer(move |connection| {
            connection.execute(
                "INSERT INTO project_settings (project_id, settings, updated_at_ns)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (project_id) DO UPDATE SET
                     settings = excluded.settings, updated_at_ns = excluded.updated_at_ns",
                params![project_id, text, now_unix_nano() as i64],
            )?;
            Ok(())
        })
        .await
    }

    async fn all_settings(&self) -> StoreResult<Vec<(String, ProjectSettings)>> {
        self.with_reader(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT project_id, settings FROM project_settings")?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(project_id, text)| Ok((project_id, parse_settings(&text)?)))
                .collect()
        })
        .await
    }

    async fn add_ingestion_counts(&self, deltas: Vec<CountDelta>) -> StoreResult<()> {
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            {
                let mut add = transaction.prepare_cached(
                    "INSERT INTO ingestion_counts (project_id, bucket_start_ns, counter, label, value)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (project_id, bucket_start_ns, counter, label)
                     DO UPDATE SET value = value + excluded.value",
                )?;
                for delta in &deltas {
                    add.execute(params![
                        delta.project_id,
                        delta.bucket_start_unix_nano as i64,
                        delta.counter,
                        delta.label,
                        delta.value as i64
                    ])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn ingestion_counts(
        &self,
        project_id: &str,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> StoreResult<Vec<CountDelta>> {
        let project_id = project_id.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT bucket_start_ns, counter, label, value FROM ingestion_counts
                 WHERE project_id = ?1 AND bucket_start_ns >= ?2 AND bucket_start_ns < ?3
                 ORDER BY bucket_start_ns",
            )?;
            let rows = statement
                .query_map(
                    params![
                        project_id,
                        start_unix_nano.min(i64::MAX as u64) as i64,
                        end_unix_nano.min(i64::MAX as u64) as i64
                    ],
                    |row| {
                        Ok(CountDelta {
                            project_id: project_id.clone(),
                            bucket_start_unix_nano: row.get::<_, i64>(0)? as u64,
                            counter: row.get(1)?,
                            label: row.get(2)?,
                            value: row.get::<_, i64>(3)? as u64,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<Option<LeaseGrant>> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.with_writer(move |connection| {
            super::alerts::acquire_lease(connection, &name, &holder, ttl)
        })
        .await
    }
}
