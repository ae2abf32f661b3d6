//! Alert rules of the caller's project (SPEC §10): `GET /api/v1/alerts` (read), `POST` (admin:
//! the answer holds the rule's webhook secret, this once), `GET`/`PUT`/`DELETE
//! /api/v1/alerts/{id}` (read; admin to change), and `GET /api/v1/alerts/{id}/events` (read):
//! the rule's changes of state and their deliveries. Evaluation is `alerts`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::query::limit_param;
use super::{ApiError, AppState, authenticate};
use crate::auth::{Access, Role};
use crate::model::alert::{
    AlertEvent, AlertRule, AlertRuleInput, AlertRuleSpec, AlertRuleState, format_window,
    webhook_origin,
};
use crate::model::time::{format_rfc3339, now_unix_nano};

/// Most rules a project may have: each is evaluated every interval.
pub const MAX_RULES_PER_PROJECT: usize = 100;

/// A rule as the API shows it: never its secret.
#[derive(Debug, Serialize)]
pub struct AlertView {
    /// `al_…`: what `/api/v1/alerts/{id}` takes.
    id: String,
    name: String,
    /// `traces`, `error_rate`, `p95_duration_ms`, `cost_per_trace`, `tokens_per_trace` or
    /// `score:<name>`.
    metric: String,
    /// The filter language's condition the traces must match; `null`: every trace.
    filter: Option<String>,
    /// Like `15m`.
    window: String,
    /// `>` or `<`.
    op: &'static str,
    threshold: f64,
    min_traces: Option<u64>,
    /// The whole URL for admins; scheme and host only for read tokens (a path or query often
    /// carries a credential).
    webhook_url: String,
    /// `ok` or `firing`.
    state: &'static str,
    /// The value of the last change of state; `null` before the first.
    state_value: Option<f64>,
    /// When the state last changed, RFC 3339; `null` before the first change.
    state_changed_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl AlertView {
    fn new(rule: &AlertRule, state: Option<&AlertRuleState>, role: Role) -> Self {
        let spec = &rule.spec;
        Self {
            id: rule.id.clone(),
            name: spec.name.clone(),
            metric: spec.metric.to_string(),
            filter: spec.filter.clone(),
            window: format_window(spec.window_seconds),
            op: spec.op.as_str(),
            threshold: spec.threshold,
            min_traces: spec.min_traces,
            webhook_url: if role == Role::Admin {
                spec.webhook_url.clone()
            } else {
                webhook_origin(&spec.webhook_url)
            },
            state: state.map_or("ok", |state| state.state.as_str()),
            state_value: state.and_then(|state| state.value),
            state_changed_at: state.map(|state| format_rfc3339(state.changed_at_unix_nano)),
            created_at: format_rfc3339(rule.created_at_unix_nano),
            updated_at: format_rfc3339(rule.updated_at_unix_nano),
        }
    }
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize)]
pub struct AlertListView {
    /// The project's rules, oldest first.
    alerts: Vec<AlertView>,
}

/// `POST /api/v1/alerts`: the new rule and its secret.
#[derive(Debug, Serialize)]
pub struct CreatedView {
    #[serde(flatten)]
    alert: AlertView,
    /// The HMAC-SHA256 key of the webhook's `x-spanhouse-signature` (this text's bytes), shown
    /// this once.
    secret: String,
}

/// One change of state of a rule.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// `ev_…`, also the webhook body's `event_id`.
    id: String,
    /// `firing` or `resolved`, as the webhook said.
    state: &'static str,
    value: f64,
    threshold: f64,
    /// When the state changed, RFC 3339.
    at: String,
    /// A receiver answered 2xx.
    delivered: bool,
    /// Attempts made so far.
    attempts: u32,
    /// No more attempts will be made (delivered, or given up).
    finished: bool,
    /// Why the last attempt failed.
    last_error: Option<String>,
    last_attempt_at: Option<String>,
}

impl From<&AlertEvent> for EventView {
    fn from(event: &AlertEvent) -> Self {
        Self {
            id: event.id.clone(),
            state: event.state.notified_as(),
            value: event.value,
            threshold: event.threshold,
            at: format_rfc3339(event.at_unix_nano),
            delivered: event.delivered,
            attempts: event.attempts,
            finished: event.finished,
            last_error: event.last_error.clone(),
            last_attempt_at: event.last_attempt_unix_nano.map(format_rfc3339),
        }
    }
}

/// `GET /api/v1/alerts/{id}/events`.
#[derive(Debug, Serialize)]
pub struct EventListView {
    /// Newest first.
    events: Vec<EventView>,
}

#[derive(Debug, Deserialize)]
pub struct EventParams {
    limit: Option<String>,
}

/// A rule's body, checked: the fields by the model, the filter by the filter parser.
fn checked_spec(body: &[u8]) -> Result<AlertRuleSpec, ApiError> {
    let input: AlertRuleInput = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid alert rule: {error}")))?;
    let spec = input
        .check()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    super::filters::trace_filter_param(spec.filter.clone())?;
    Ok(spec)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("alert rule {id:?} not found"))
}

/// A new rule's webhook secret: 32 random bytes, hex, after a recognisable prefix.
fn new_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("shwh_{}", hex::encode(bytes))
}

/// `GET /api/v1/alerts`
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AlertListView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let project_id = principal.project.id.as_str();
    let rules = state.store.alert_rules(Some(project_id)).await?;
    let states: HashMap<String, AlertRuleState> = state
        .store
        .alert_states(Some(project_id))
        .await?
        .into_iter()
        .map(|state| (state.rule_id.clone(), state))
        .collect();
    Ok(Json(AlertListView {
        alerts: rules
            .iter()
            .map(|rule| AlertView::new(rule, states.get(&rule.id), principal.role))
            .collect(),
    }))
}

/// `POST /api/v1/alerts` → 201 with the rule and its secret, marked `no-store`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let spec = checked_spec(&body)?;
    let project_id = &principal.project.id;
    if state.store.alert_rules(Some(project_id)).await?.len() >= MAX_RULES_PER_PROJECT {
        return Err(ApiError::bad_request(format!(
            "a project has at most {MAX_RULES_PER_PROJECT} alert rules; delete one first"
        )));
    }
    let now = now_unix_nano();
    let rule = AlertRule {
        id: format!("al_{:032x}", rand::random::<u128>()),
        project_id: project_id.clone(),
        spec,
        secret: new_secret(),
        created_at_unix_nano: now,
        updated_at_unix_nano: now,
    };
    state.store.put_alert_rule(&rule).await?;
    let created = CreatedView {
        alert: AlertView::new(&rule, None, principal.role),
        secret: rule.secret,
    };
    Ok(super::session::no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

/// `GET /api/v1/alerts/{id}`
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let project_id = &principal.project.id;
    let rule = state
        .store
        .alert_rule(project_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let states = state.store.alert_states(Some(project_id)).await?;
    let rule_state = states.iter().find(|state| state.rule_id == rule.id);
    Ok(Json(AlertView::new(&rule, rule_state, principal.role)))
}

/// `PUT /api/v1/alerts/{id}` with every field of the rule → the rule. Its id, secret and state
/// stay: a rule that fires and no longer holds under the new fields resolves.
pub async fn replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<AlertView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    let spec = checked_spec(&body)?;
    let project_id = &principal.project.id;
    let current = state
        .store
        .alert_rule(project_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let rule = AlertRule {
        spec,
        updated_at_unix_nano: now_unix_nano(),
        ..current
    };
    state.store.put_alert_rule(&rule).await?;
    let states = state.store.alert_states(Some(project_id)).await?;
    let rule_state = states.iter().find(|state| state.rule_id == rule.id);
    Ok(Json(AlertView::new(&rule, rule_state, principal.role)))
}

/// `DELETE /api/v1/alerts/{id}` → 204; 404 for a rule of another project, as for none.
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = authenticate(&state, &headers, Access::Admin)?;
    if state
        .store
        .delete_alert_rule(&principal.project.id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

/// `GET /api/v1/alerts/{id}/events?limit=50`
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<EventParams>,
) -> Result<Json<EventListView>, ApiError> {
    let principal = authenticate(&state, &headers, Access::Read)?;
    let limit = limit_param(params.limit)?;
    let project_id = &principal.project.id;
    if state.store.alert_rule(project_id, &id).await?.is_none() {
        return Err(not_found(&id));
    }
    let events = state.store.alert_events(project_id, &id, limit).await?;
    Ok(Json(EventListView {
        events: events.iter().map(EventView::from).collect(),
    }))
}
