//! The end of the data's life (SPEC §9): retention and the purge, one task per server.
//!
//! Every [`TICK`] the task reads each project's retention (its setting, else the server's
//! default, as the settings cache holds them: reloaded every 2 s). When one changed, and at the
//! latest every [`RETENTION_INTERVAL`], it deletes each project's traces older than its
//! retention (`TraceSelection::Matching` over `[0, now − days)`, no filter). It purges
//! ([`SpanStore::purge`]) right after a deletion — its own, or the API's, which wakes it — and
//! at the latest every [`PURGE_INTERVAL`]. Several servers of one deployment each do the same
//! work; deleting what is already deleted finds nothing, so that is only repeated effort.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::model::time::now_unix_nano;
use crate::settings::{RulesCache, retention_cutoff};
use crate::store::{Store, TraceSelection};

/// How often retention settings are looked at.
const TICK: Duration = Duration::from_secs(5);

/// Longest time between two retention runs with unchanged settings (SPEC: at most 10 minutes).
const RETENTION_INTERVAL: Duration = Duration::from_secs(300);

/// Longest time between two purges.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// Retention in days by project id, for the projects that have one.
type Retentions = BTreeMap<String, u32>;

/// Runs retention and the purge until the task is aborted. `purge_signal` is notified by
/// deletions through the API.
pub(super) async fn run(store: Arc<dyn Store>, rules: Arc<RulesCache>, purge_signal: Arc<Notify>) {
    let mut applied: Option<Retentions> = None;
    let mut last_retention = Instant::now();
    let mut last_purge = Instant::now();
    loop {
        let woken = tokio::select! {
            () = purge_signal.notified() => true,
            () = tokio::time::sleep(TICK) => false,
        };
        let mut purge_now = woken || last_purge.elapsed() >= PURGE_INTERVAL;
        match retentions(store.as_ref(), &rules).await {
            Ok(current) => {
                let due = last_retention.elapsed() >= RETENTION_INTERVAL;
                if applied.as_ref() != Some(&current) || due {
                    if apply_retention(store.as_ref(), &current).await {
                        purge_now = true;
                    }
                    applied = Some(current);
                    last_retention = Instant::now();
                }
            }
            Err(error) => tracing::warn!(%error, "reading projects for retention failed"),
        }
        if purge_now {
            last_purge = Instant::now();
            match store.purge().await {
                Ok(report) if report.traces > 0 || report.spans > 0 => tracing::info!(
                    traces = report.traces,
                    spans = report.spans,
                    "purged deleted traces from disk"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "purge failed; will retry"),
            }
        }
    }
}

/// Each project's retention now.
async fn retentions(
    store: &dyn Store,
    rules: &RulesCache,
) -> Result<Retentions, crate::store::StoreError> {
    Ok(store
        .list_projects()
        .await?
        .into_iter()
        .filter_map(|project| {
            let days = rules.retention_days(&project.id)?;
            Some((project.id, days))
        })
        .collect())
}

/// Deletes every project's traces older than its retention; whether any was deleted.
async fn apply_retention(store: &dyn Store, retentions: &Retentions) -> bool {
    let now = now_unix_nano();
    let mut any = false;
    for (project_id, &days) in retentions {
        let selection = TraceSelection::Matching {
            start_unix_nano: 0,
            end_unix_nano: retention_cutoff(now, days),
            filter: None,
        };
        match store.delete_traces(project_id, &selection).await {
            Ok(0) => {}
            Ok(deleted) => {
                any = true;
                tracing::info!(
                    project_id = %project_id,
                    retention_days = days,
                    deleted,
                    "deleted traces past the retention"
                );
            }
            Err(error) => {
                tracing::warn!(project_id = %project_id, %error, "retention failed; will retry")
            }
        }
    }
    any
}
