//! Token administration over the API: admin only, own project only, the secret shown once.

mod common;

use common::*;

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    send_json(request, body).await
}

#[tokio::test]
async fn creates_lists_and_revokes_tokens_of_its_own_project() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    let (status, created) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/tokens",
        &admin,
        Some(serde_json::json!({"role": "ingest", "name": "exporter"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sh_"));
    assert_eq!(created["role"], "ingest");

    // The new token works at once on this server, and the list never shows a secret.
    let response = server
        .post_protobuf(
            "/v1/traces",
            &secret,
            &request("svc", vec![span(1, 1, None, "x", recent(1))]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, list) = send(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let listed = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["name"], "exporter");
    assert!(listed["revoked_at"].is_null());
    assert!(!list.to_string().contains(&secret));

    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let response = server
        .post_protobuf(
            "/v1/traces",
            &secret,
            &request("svc", vec![span(2, 1, None, "x", recent(1))]),
        )
        .await;
    assert_eq!(response.status(), 401);
    let (_, list) = send(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &admin,
        None,
    )
    .await;
    assert!(list.to_string().contains("revoked_at\":\"20"), "{list}");
    server.stop().await;
}

#[tokio::test]
async fn only_admins_of_the_project_manage_its_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin_token.clone();
    let read = server.create_token("default", "read").await;
    let foreign_admin = server.create_token("other", "admin").await;
    server.wait_for_token(&read).await;
    server.wait_for_token(&foreign_admin).await;
    let body = || Some(serde_json::json!({"role": "admin"}));
    let (status, _) = send(&server, reqwest::Method::GET, "/api/v1/tokens", &read, None).await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/tokens",
        &read,
        body(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(&server, reqwest::Method::POST, "/api/v1/tokens", "", body()).await;
    assert_eq!(status, 401);

    // Another project's admin neither sees nor revokes this project's tokens.
    let (_, mine) = send(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &admin,
        None,
    )
    .await;
    let my_ids: Vec<String> = mine["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_str().unwrap().to_owned())
        .collect();
    let (_, theirs) = send(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &foreign_admin,
        None,
    )
    .await;
    for id in &my_ids {
        assert!(!theirs.to_string().contains(id.as_str()), "{theirs}");
        let (status, _) = send(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &foreign_admin,
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    let (status, _) = send(
        &server,
        reqwest::Method::GET,
        "/api/v1/traces",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "the admin token still works");

    for bad in [
        serde_json::json!({"role": "owner"}),
        serde_json::json!({"name": "x"}),
        serde_json::json!({"role": "read", "extra": 1}),
    ] {
        let (status, body) = send(
            &server,
            reqwest::Method::POST,
            "/api/v1/tokens",
            &admin,
            Some(bad),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    server.stop().await;
}
