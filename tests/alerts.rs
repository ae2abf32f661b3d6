//! Alerts (SPEC §10) against the real server and a real webhook receiver on 127.0.0.1, on both
//! backends: a rule fires once when its condition starts and resolves once when it ends, each
//! webhook signed with the rule's secret; a failing receiver is retried until it answers;
//! roles, checks and the secret shown once; the project's figures on `/metrics`. Rules are
//! evaluated every second here (a `Config` built in code may go below the 10 s floor).

mod common;
#[path = "common/webhook.rs"]
mod webhook;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use webhook::{Receiver, signature};

async fn start_server() -> TestServer {
    TestServer::start_with(|config| {
        config.alerts.evaluation_interval = Duration::from_secs(1);
    })
    .await
}

/// Traces of one root span each, started 5 s ago, with an error status or not, in one request.
async fn send_traces(server: &TestServer, traces: impl IntoIterator<Item = u8>, error: bool) {
    let spans = traces
        .into_iter()
        .map(|trace| root_span(trace, error))
        .collect();
    let response = server
        .post_protobuf("/v1/traces", &server.admin_token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&server.admin_token).await;
}

/// How many rules this server has evaluated (`/metrics`).
async fn evaluations(server: &TestServer) -> u64 {
    let text = server.public_metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("spanhouse_alert_evaluations_total "))
        .and_then(|value| value.parse().ok())
        .expect("the evaluations counter")
}

/// Waits until the server has evaluated rules `more` more times (at most 60 s).
async fn wait_for_evaluations(server: &TestServer, more: u64) {
    let target = evaluations(server).await + more;
    let deadline = Instant::now() + Duration::from_secs(60);
    while evaluations(server).await < target {
        assert!(Instant::now() < deadline, "rules were not evaluated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rule(name: &str, metric: &str, op: &str, threshold: f64, webhook_url: &str) -> Value {
    json!({"name": name, "metric": metric, "window": "1h", "op": op, "threshold": threshold,
           "webhook_url": webhook_url})
}

async fn create_rule(server: &TestServer, body: Value) -> (String, String) {
    let (status, created) = server
        .post_json("/api/v1/alerts", &server.admin_token, body)
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    (id, secret)
}

async fn events(server: &TestServer, token: &str, id: &str) -> Vec<Value> {
    let (status, body) = server
        .get_json(&format!("/api/v1/alerts/{id}/events"), token)
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rule_fires_once_when_its_condition_starts_and_resolves_once_when_it_ends() {
    let server = start_server().await;
    let receiver = Receiver::start(0).await;
    let mut body = rule("errors", "error_rate", ">", 0.5, &receiver.url);
    body["min_traces"] = json!(3);
    let (id, secret) = create_rule(&server, body).await;

    // Two failing traces: too few for the rule, which neither fires nor resolves.
    send_traces(&server, 1..=2, true).await;
    wait_for_evaluations(&server, 3).await;
    assert!(receiver.received().is_empty());

    send_traces(&server, 3..=4, true).await;
    let firing = receiver.wait_for(1).await;
    // Firing stays firing: no second notification while it holds.
    wait_for_evaluations(&server, 3).await;
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
    let notice = firing[0].json();
    assert_eq!(notice["state"], "firing");
    assert_eq!(notice["alert"], "errors");
    assert_eq!(notice["alert_id"], id.as_str());
    assert_eq!(notice["project"], "default");
    assert_eq!(notice["metric"], "error_rate");
    assert_eq!(notice["value"], 1.0);
    assert_eq!(notice["threshold"], 0.5);
    assert_eq!(notice["window"], "1h");
    assert_eq!(notice["filter"], Value::Null);
    assert_eq!(notice["traces"], 4);
    assert!(
        spanhouse::model::time::parse_rfc3339(notice["at"].as_str().unwrap()).is_some(),
        "{notice}"
    );
    assert_eq!(firing[0].signature, signature(&secret, &firing[0].body));
    assert_eq!(firing[0].event, notice["event_id"].as_str().unwrap());

    let (status, list) = server.get_json("/api/v1/alerts", &server.admin_token).await;
    assert_eq!(status, 200);
    assert_eq!(list["alerts"][0]["state"], "firing", "{list}");

    // Many successful traces bring the rate under the threshold: resolved, once.
    send_traces(&server, 10..30, false).await;
    let both = receiver.wait_for(2).await;
    wait_for_evaluations(&server, 3).await;
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());
    let resolved = both[1].json();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["traces"], 24);
    assert!(resolved["value"].as_f64().unwrap() < 0.5, "{resolved}");
    assert_eq!(both[1].signature, signature(&secret, &both[1].body));
    assert_ne!(resolved["event_id"], notice["event_id"]);

    // Each delivery is recorded once its answer has come.
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = loop {
        let history = events(&server, &server.admin_token, &id).await;
        if history.iter().all(|event| event["delivered"] == true) {
            break history;
        }
        assert!(Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["state"], "resolved", "newest first");
    assert_eq!(history[1]["state"], "firing");
    for event in &history {
        assert_eq!(event["attempts"], 1, "{event}");
        assert_eq!(event["finished"], true, "{event}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_is_retried_until_it_answers() {
    let server = start_server().await;
    let receiver = Receiver::start(2).await;
    let (id, secret) = create_rule(&server, rule("any", "traces", ">", 0.0, &receiver.url)).await;
    send_traces(&server, [1], false).await;
    let attempts = receiver.wait_for(3).await;
    // One notification, sent three times alike.
    for attempt in &attempts {
        assert_eq!(attempt.body, attempts[0].body);
        assert_eq!(attempt.signature, signature(&secret, &attempt.body));
    }
    assert_eq!(attempts[0].json()["state"], "firing");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = events(&server, &server.admin_token, &id).await;
        if history[0]["delivered"] == true {
            assert_eq!(history[0]["attempts"], 3, "{history:?}");
            assert_eq!(history[0]["finished"], true);
            break;
        }
        assert!(Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_score_mean_can_fire() {
    let server = start_server().await;
    let receiver = Receiver::start(0).await;
    let mut body = rule("unhelpful", "score:helpful", "<", 0.5, &receiver.url);
    body["filter"] = json!("status == \"ok\"");
    create_rule(&server, body).await;
    send_traces(&server, [1, 2], false).await;
    // Both in one request: the first alone would fire at its own value.
    let scores = json!({"scores": [
        {"trace_id": hex_trace(1), "name": "helpful", "value": 0.0},
        {"trace_id": hex_trace(2), "name": "helpful", "value": 0.5},
    ]});
    let (status, answer) = server
        .post_json("/api/v1/scores", &server.admin_token, scores)
        .await;
    assert_eq!(status, 200, "{answer}");
    let notice = receiver.wait_for(1).await[0].json();
    assert_eq!(notice["state"], "firing");
    assert_eq!(notice["metric"], "score:helpful");
    assert_eq!(notice["value"], 0.25);
    assert_eq!(notice["filter"], "status == \"ok\"");
    server.stop().await;
}

#[tokio::test]
async fn rules_are_checked_admin_only_and_their_secret_is_shown_once() {
    let server = start_server().await;
    let admin = server.admin_token.clone();
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let webhook = "http://127.0.0.1:9/hooks/T000/credential";
    let (id, secret) = create_rule(
        &server,
        rule("slow", "p95_duration_ms", ">", 2000.0, webhook),
    )
    .await;
    assert!(secret.len() >= 64, "{secret}");

    // Reads never show the secret; read tokens see the webhook's host only.
    for (token, shown) in [(&admin, webhook), (&read, "http://127.0.0.1/…")] {
        for path in [
            "/api/v1/alerts".to_owned(),
            format!("/api/v1/alerts/{id}"),
            format!("/api/v1/alerts/{id}/events"),
        ] {
            let (status, body) = server.get_json(&path, token).await;
            assert_eq!(status, 200, "{path}: {body}");
            let text = body.to_string();
            assert!(!text.contains(&secret), "{path} shows the secret: {text}");
            assert!(!text.contains("\"secret\""), "{path}: {text}");
        }
        let (_, one) = server
            .get_json(&format!("/api/v1/alerts/{id}"), token)
            .await;
        assert_eq!(one["webhook_url"], shown);
        assert_eq!(one["state"], "ok");
        assert_eq!(one["window"], "1h");
    }

    // Read tokens never write.
    let body = rule("x", "traces", ">", 1.0, "http://127.0.0.1:9/");
    let (status, _) = server
        .post_json("/api/v1/alerts", &read, body.clone())
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .put_json(&format!("/api/v1/alerts/{id}"), &read, body.clone())
        .await;
    assert_eq!(status, 403);
    let delete = |token: &str| {
        server
            .client
            .delete(server.url(&format!("/api/v1/alerts/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(delete(&read).await.unwrap().status(), 403);

    // Each bad field is a 400 that names it.
    let bad = [
        ("webhook_url", json!("ftp://example.com/hook")),
        ("webhook_url", json!("javascript:alert(1)")),
        ("metric", json!("latency")),
        ("metric", json!("score:")),
        ("window", json!("5")),
        ("window", json!("2w")),
        ("op", json!(">=")),
        ("filter", json!("duration_ms >")),
    ];
    for (field, value) in bad {
        let mut body = rule("bad", "traces", ">", 1.0, "http://127.0.0.1:9/");
        body[field] = value.clone();
        let (status, answer) = server.post_json("/api/v1/alerts", &admin, body).await;
        assert_eq!(status, 400, "{field} {value}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field} {value}: {message}");
    }
    let mut unknown = rule("bad", "traces", ">", 1.0, "http://127.0.0.1:9/");
    unknown["severity"] = json!("high");
    let (status, _) = server.post_json("/api/v1/alerts", &admin, unknown).await;
    assert_eq!(status, 400);

    // PUT replaces the fields and keeps the id; another project's admin finds nothing.
    let mut changed = rule("slower", "p95_duration_ms", ">", 5000.0, webhook);
    changed["window"] = json!("30m");
    let (status, replaced) = server
        .put_json(&format!("/api/v1/alerts/{id}"), &admin, changed)
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        (&replaced["id"], &replaced["name"]),
        (&json!(id), &json!("slower"))
    );
    assert_eq!(replaced["window"], "30m");
    assert!(!replaced.to_string().contains(&secret));
    let other = server.create_token("other", "admin").await;
    server.wait_for_token(&other).await;
    let (status, _) = server
        .get_json(&format!("/api/v1/alerts/{id}"), &other)
        .await;
    assert_eq!(status, 404);
    let (_, theirs) = server.get_json("/api/v1/alerts", &other).await;
    assert_eq!(theirs["alerts"], json!([]));
    assert_eq!(delete(&other).await.unwrap().status(), 404);

    assert_eq!(delete(&admin).await.unwrap().status(), 204);
    let (status, _) = server
        .get_json(&format!("/api/v1/alerts/{id}"), &admin)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get_json(&format!("/api/v1/alerts/{id}/events"), &admin)
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn prometheus_sees_the_projects_figures_of_the_last_whole_minutes() {
    let server = start_server().await;
    // Two minutes back: inside the five whole minutes before the running one.
    let mut failed = span(1, 1, None, "agent", recent(120));
    failed.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 2,
        message: String::new(),
    });
    let spans = vec![failed, span(2, 1, None, "agent", recent(125))];
    let response = server
        .post_protobuf("/v1/traces", &server.admin_token, &request("svc", spans))
        .await;
    assert_eq!(response.status(), 200);
    server.settle(&server.admin_token).await;
    let (status, _) = server
        .post_json(
            "/api/v1/scores",
            &server.admin_token,
            json!({"trace_id": hex_trace(1), "name": "helpful", "value": true}),
        )
        .await;
    assert_eq!(status, 200);
    let text = server.metrics_text().await;
    let project_id = text
        .split("spanhouse_project_traces{project_id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no project traces gauge in:\n{text}"));
    let labels =
        |extra: &str| format!("{{project_id=\"{project_id}\",project=\"default\"{extra}}}");
    for expected in [
        format!("spanhouse_project_traces{} 2\n", labels("")),
        format!("spanhouse_project_trace_errors{} 1\n", labels("")),
        format!(
            "spanhouse_project_trace_duration_p95_seconds{} ",
            labels("")
        ),
        format!(
            "spanhouse_project_score_mean{} 1\n",
            labels(",score=\"helpful\"")
        ),
        format!(
            "spanhouse_project_scores{} 1\n",
            labels(",score=\"helpful\"")
        ),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
    // Without a token: no project's figures.
    let public = server.public_metrics_text().await;
    assert!(!public.contains("spanhouse_project_"), "{public}");
    assert!(
        public.contains("# TYPE spanhouse_alerts_lease_held gauge"),
        "{public}"
    );
    server.stop().await;
}
