//! The admin commands: projects and tokens, on the same store a server may be running on.

use anyhow::{Context as _, bail};

use crate::auth::{self, Role};
use crate::config::{
    ClickhouseCommand, Config, DialectArg, ProjectCommand, StorageKind, TokenCommand,
};
use crate::model::project::{CustomRedactRule, RedactRule};
use crate::model::time::format_rfc3339;
use crate::server::{StoreUser, open_store};
use crate::store::{NewToken, Project, Store};

async fn project_named(store: &dyn Store, id_or_name: &str) -> anyhow::Result<Project> {
    match store.find_project(id_or_name).await? {
        Some(project) => Ok(project),
        None => bail!("no project with id or name {id_or_name:?} (see `spanhouse project list`)"),
    }
}

pub async fn project(config: &Config, command: ProjectCommand) -> anyhow::Result<()> {
    let store = open_store(config, StoreUser::Command).await?;
    match command {
        ProjectCommand::Create { name } => {
            if name.trim().is_empty() {
                bail!("a project name must not be empty");
            }
            let project = store.create_project(&name).await?;
            println!("{}", project.id);
        }
        ProjectCommand::Configure(arguments) => {
            let project = project_named(store.as_ref(), &arguments.name).await?;
            let mut settings = store.get_settings(&project.id).await?;
            if arguments.no_sample_attribute {
                settings.sample_attribute = None;
            }
            if let Some(attribute) = arguments.sample_attribute {
                settings.sample_attribute = Some(attribute);
            }
            if arguments.clear_filters {
                settings.filters.clear();
            }
            settings.filters.extend(arguments.filters);
            if arguments.no_rate_limit {
                settings.rate_limit = None;
                settings.rate_limit_burst = None;
            }
            if let Some(rate) = arguments.rate_limit {
                settings.rate_limit = Some(rate);
            }
            if arguments.no_retention {
                settings.retention_days = None;
            }
            if let Some(days) = arguments.retention_days {
                settings.retention_days = Some(days);
            }
            if arguments.no_redact {
                settings.redact.clear();
            }
            if !(arguments.redact.is_empty() && arguments.redact_patterns.is_empty()) {
                settings.redact = redact_rules(&arguments.redact, arguments.redact_patterns);
            }
            settings
                .compile()
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            store.put_settings(&project.id, &settings).await?;
            println!("{}", serde_json::to_string_pretty(&settings)?);
            eprintln!("saved; running servers apply these settings within 5 seconds");
        }
        ProjectCommand::List => {
            println!("{:<18} {:<24} CREATED", "ID", "NAME");
            for project in store.list_projects().await? {
                println!(
                    "{:<18} {:<24} {}",
                    project.id,
                    project.name,
                    format_rfc3339(project.created_at_unix_nano)
                );
            }
        }
    }
    Ok(())
}

pub async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(config, StoreUser::Command).await?;
    match command {
        TokenCommand::Create {
            project,
            role,
            name,
        } => {
            let project = project_named(store.as_ref(), &project).await?;
            let role: Role = role.into();
            let secret = auth::generate_token_secret();
            let id = auth::generate_token_id();
            store
                .create_token(NewToken {
                    id: id.clone(),
                    project_id: project.id.clone(),
                    role,
                    name,
                    secret_hash: auth::hash_token(&secret),
                })
                .await
                .context("creating the token")?;
            eprintln!(
                "created {} token {id} for project {:?}; it is shown only now:",
                role.as_str(),
                project.name
            );
            println!("{secret}");
        }
        TokenCommand::List { project } => {
            let project = project_named(store.as_ref(), &project).await?;
            println!(
                "{:<17} {:<7} {:<20} {:<31} REVOKED",
                "ID", "ROLE", "NAME", "CREATED"
            );
            for token in store.list_tokens(&project.id).await? {
                println!(
                    "{:<17} {:<7} {:<20} {:<31} {}",
                    token.id,
                    token.role.as_str(),
                    token.name.as_deref().unwrap_or("-"),
                    format_rfc3339(token.created_at_unix_nano),
                    token
                        .revoked_at_unix_nano
                        .map_or_else(|| "-".to_owned(), format_rfc3339)
                );
            }
        }
        TokenCommand::Revoke { token_id } => {
            if !store.revoke_token(&token_id).await? {
                bail!("no token with id {token_id:?} (see `spanhouse token list --project NAME`)");
            }
            eprintln!("revoked {token_id}; running servers stop accepting it within 5 seconds");
        }
    }
    Ok(())
}

pub async fn clickhouse(config: &Config, command: ClickhouseCommand) -> anyhow::Result<()> {
    use crate::store::clickhouse::schema::{Dialect, SchemaOptions, create_statements};
    let clickhouse = &config.clickhouse;
    match command {
        ClickhouseCommand::Migrate => {
            let mut config = config.clone();
            config.storage = StorageKind::Clickhouse;
            open_store(&config, StoreUser::Command).await?;
            eprintln!("the schema of {} is up to date", clickhouse.database);
        }
        ClickhouseCommand::Schema { dialect } => {
            let dialect = match dialect {
                Some(DialectArg::Legacy) => Dialect::Legacy,
                Some(DialectArg::Modern) => Dialect::Modern,
                None => crate::store::clickhouse::server_dialect(clickhouse)
                    .await
                    .unwrap_or(Dialect::Modern),
            };
            let options = SchemaOptions {
                database: clickhouse.database.clone(),
                cluster: clickhouse.cluster.clone(),
                retention_days: clickhouse.retention_days,
            };
            for statement in create_statements(dialect, &options) {
                println!("{statement};\n");
            }
        }
    }
    Ok(())
}

/// The redaction rules of `project configure --redact … --redact-pattern …`: detectors by name
/// (`all` for every built-in one, each named once), then the patterns with the default
/// replacement. Unknown names are refused when the settings compile.
fn redact_rules(detectors: &[String], patterns: Vec<String>) -> Vec<RedactRule> {
    let mut names: Vec<String> = Vec::new();
    for name in detectors.iter().map(|name| name.trim()) {
        let expanded: Vec<&str> = if name == "all" {
            crate::redact::DETECTORS.to_vec()
        } else {
            vec![name]
        };
        for name in expanded {
            if !name.is_empty() && !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
        .into_iter()
        .map(RedactRule::Detector)
        .chain(patterns.into_iter().map(|pattern| {
            RedactRule::Custom(CustomRedactRule {
                pattern,
                replacement: None,
            })
        }))
        .collect()
}
