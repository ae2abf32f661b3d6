//! Web UI sessions against the real server: sign-in with a read or admin token, the cookie's
//! flags, the JSON API through the cookie, CSRF on every change, sign-out, revocation.

mod common;

use common::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

struct Signed {
    cookie: String,
    csrf: String,
    body: serde_json::Value,
}

async fn sign_in(server: &TestServer, token: &str) -> Result<Signed, u16> {
    let response = server
        .client
        .post(server.url("/ui/login"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    Ok(Signed {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        body,
    })
}

async fn with_cookie(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    signed: &Signed,
    csrf: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .header(COOKIE, &signed.cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    send_json(request, body).await
}

#[tokio::test]
async fn an_admin_session_reads_and_changes_with_its_csrf_token() {
    let server = TestServer::start().await;
    let signed = sign_in(&server, &server.admin_token).await.unwrap();
    assert_eq!(signed.body["role"], "admin");
    assert_eq!(signed.body["project_name"], "default");
    let get = reqwest::Method::GET;
    let put = reqwest::Method::PUT;

    let (status, _) =
        with_cookie(&server, get.clone(), "/api/v1/traces", &signed, None, None).await;
    assert_eq!(status, 200);
    let foreign = server
        .client
        .get(server.url("/api/v1/traces"))
        .header(COOKIE, &signed.cookie)
        .header("x-project-id", "another-project")
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        403,
        "the project header names another project"
    );
    let (status, session) =
        with_cookie(&server, get.clone(), "/ui/session", &signed, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(session["csrf_token"], signed.csrf.as_str());

    let settings = serde_json::json!({"sample_attribute": "gentrace.sample"});
    let (status, body) = with_cookie(
        &server,
        put.clone(),
        "/api/v1/project/settings",
        &signed,
        None,
        Some(settings.clone()),
    )
    .await;
    assert_eq!(status, 403, "no CSRF token: {body}");
    let (status, _) = with_cookie(
        &server,
        put.clone(),
        "/api/v1/project/settings",
        &signed,
        Some("wrong"),
        Some(settings.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = with_cookie(
        &server,
        put.clone(),
        "/api/v1/project/settings",
        &signed,
        Some(&signed.csrf),
        Some(settings),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bad = serde_json::json!({"filters": ["name =="]});
    let (status, body) = with_cookie(
        &server,
        put,
        "/api/v1/project/settings",
        &signed,
        Some(&signed.csrf),
        Some(bad),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column"),
        "{body}"
    );

    // Sign-out ends the session on the server, not only in the browser.
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::POST,
        "/ui/logout",
        &signed,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "sign-out needs the CSRF token too");
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::POST,
        "/ui/logout",
        &signed,
        Some(&signed.csrf),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = with_cookie(&server, get, "/api/v1/traces", &signed, None, None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn read_sessions_cannot_change_and_ingest_tokens_cannot_sign_in() {
    let server = TestServer::start().await;
    let read = server.create_token("default", "read").await;
    let ingest = server.create_token("default", "ingest").await;
    server.wait_for_token(&read).await;
    server.wait_for_token(&ingest).await;

    assert_eq!(sign_in(&server, &ingest).await.err(), Some(403));
    assert_eq!(sign_in(&server, "sh_unknown").await.err(), Some(401));
    let response = server
        .client
        .post(server.url("/ui/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={read}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "a cross-site form cannot sign in");

    let signed = sign_in(&server, &read).await.unwrap();
    assert_eq!(signed.body["role"], "read");
    let settings = serde_json::json!({"rate_limit": 5});
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::PUT,
        "/api/v1/project/settings",
        &signed,
        Some(&signed.csrf),
        Some(settings),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &signed,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/project/settings",
        &signed,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["rate_limit"].is_null());

    // Revoking the token ends its sessions.
    let admin = sign_in(&server, &server.admin_token).await.unwrap();
    let (_, tokens) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/tokens",
        &admin,
        None,
        None,
    )
    .await;
    let read_id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["role"] == "read")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{read_id}"),
        &admin,
        Some(&admin.csrf),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/traces",
        &signed,
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn the_ui_is_served_from_the_binary_with_its_security_headers() {
    let server = TestServer::start().await;
    let response = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let page = response.text().await.unwrap();
    assert!(page.contains("<script type=\"module\" src=\"/ui/app.js\">"));

    for (path, content_type) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
    }
    let response = server
        .client
        .get(server.url("/ui/secret.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (status, _) = server.get_json("/ui/session", "").await;
    assert_eq!(status, 401, "not signed in");
    server.stop().await;
}
