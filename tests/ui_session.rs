//! Web UI sessions against the real server: sign-in with a read or admin token, the cookie's
//! flags, the JSON API through the cookie, CSRF on every change, sign-out, revocation; sessions
//! that outlive a restart and work on every server of the store, refused forgeries, the limit on
//! failed sign-ins, and `no-store` on answers that carry secrets.

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
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
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

    // Sign-out clears the cookie in the browser (it needs the CSRF token like every change).
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
    let response = server
        .client
        .post(server.url("/ui/logout"))
        .header(COOKIE, &signed.cookie)
        .header("x-csrf-token", &signed.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("spanhouse_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let signed_out = Signed {
        cookie: cleared.split(';').next().unwrap().to_owned(),
        ..signed
    };
    let (status, _) = with_cookie(&server, get, "/api/v1/traces", &signed_out, None, None).await;
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

/// The claims inside a signed session cookie (`spanhouse_session=v1.<claims>.<mac>`).
fn cookie_claims(cookie: &str) -> serde_json::Value {
    use base64::Engine as _;
    let value = cookie.strip_prefix("spanhouse_session=v1.").unwrap();
    let claims = value.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

async fn cookie_status(server: &TestServer, path: &str, cookie: &str) -> u16 {
    let response = server
        .client
        .get(server.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn a_session_outlives_a_restart_and_ends_when_its_token_is_revoked() {
    let server = TestServer::start().await;
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let signed = sign_in(&server, &read).await.unwrap();
    let admin = sign_in(&server, &server.admin_token).await.unwrap();
    let claims = cookie_claims(&signed.cookie);
    assert_eq!(claims["rol"], "read");
    assert_eq!(claims["prj"], signed.body["project_id"]);

    let server = server.restart().await;
    assert_eq!(
        cookie_status(&server, "/api/v1/traces", &signed.cookie).await,
        200
    );
    let (status, session) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/ui/session",
        &signed,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session["csrf_token"], signed.csrf.as_str());
    let settings = serde_json::json!({"sample_attribute": "gentrace.sample"});
    let (status, body) = with_cookie(
        &server,
        reqwest::Method::PUT,
        "/api/v1/project/settings",
        &admin,
        Some(&admin.csrf),
        Some(settings),
    )
    .await;
    assert_eq!(
        status, 200,
        "the CSRF token also outlives the restart: {body}"
    );

    // Revoked through the store, as `spanhouse token revoke` (or another server) does: this
    // server learns it at its next token reload.
    let store =
        spanhouse::server::open_store(&server.config(), spanhouse::server::StoreUser::Command)
            .await
            .unwrap();
    let project = signed.body["project_id"].as_str().unwrap();
    let tokens = store.list_tokens(project).await.unwrap();
    let read_token = tokens.iter().find(|token| token.role.as_str() == "read");
    assert!(store.revoke_token(&read_token.unwrap().id).await.unwrap());
    let mut refused = false;
    for _ in 0..50 {
        if cookie_status(&server, "/api/v1/traces", &signed.cookie).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "a revoked token's session still works after 5 s");
    assert_eq!(
        cookie_status(&server, "/ui/session", &signed.cookie).await,
        401
    );
    assert_eq!(
        cookie_status(&server, "/api/v1/traces", &admin.cookie).await,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_clickhouse_accepts_the_session() {
    if !on_clickhouse() {
        eprintln!(
            "SKIPPED: two servers share a store on ClickHouse only; run with SPANHOUSE_TEST_STORAGE=clickhouse"
        );
        return;
    }
    let first = TestServer::start().await;
    let signed = sign_in(&first, &first.admin_token).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = spanhouse::config::Config::for_data_dir(data_dir.path());
    use_clickhouse(&mut config, &first.started_with.clickhouse.database);
    let second = spanhouse::server::start(&config).await.unwrap();
    let second_url = |path: &str| format!("http://{}{path}", second.http_addr);

    let response = first
        .client
        .get(second_url("/ui/session"))
        .header(COOKIE, &signed.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session: serde_json::Value = response.json().await.unwrap();
    assert_eq!(session["csrf_token"], signed.csrf.as_str());
    let response = first
        .client
        .put(second_url("/api/v1/project/settings"))
        .header(COOKIE, &signed.cookie)
        .header("x-csrf-token", &signed.csrf)
        .json(&serde_json::json!({"rate_limit": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    second.shutdown().await.unwrap();
    first.stop().await;
}

#[tokio::test]
async fn two_servers_making_the_first_key_at_once_end_with_one() {
    let server = TestServer::start().await;
    let open = || async {
        spanhouse::server::open_store(&server.config(), spanhouse::server::StoreUser::Command)
            .await
            .unwrap()
    };
    let (first, second) = (open().await, open().await);
    let (a, b) = tokio::join!(
        first.deployment_secret("race-test", &[1; 32]),
        second.deployment_secret("race-test", &[2; 32]),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    if !on_clickhouse() {
        assert_eq!(a, b, "SQLite keeps the first insert");
    }
    // Asked again (as each server does at its token reload), both answer the same one.
    let again_first = first
        .deployment_secret("race-test", &[3; 32])
        .await
        .unwrap();
    let again_second = second
        .deployment_secret("race-test", &[4; 32])
        .await
        .unwrap();
    assert_eq!(again_first, again_second);
    assert!(again_first == vec![1; 32] || again_first == vec![2; 32]);
    server.stop().await;
}

#[tokio::test]
async fn forged_and_tampered_cookies_are_refused() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let read = server.create_token("default", "read").await;
    server.wait_for_token(&read).await;
    let signed = sign_in(&server, &read).await.unwrap();
    assert_eq!(
        cookie_status(&server, "/api/v1/traces", &signed.cookie).await,
        200
    );

    // The read session made admin, its MAC kept.
    let mut claims = cookie_claims(&signed.cookie);
    claims["rol"] = "admin".into();
    let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let mac = signed.cookie.rsplit('.').next().unwrap();
    let promoted = format!("spanhouse_session=v1.{forged_claims}.{mac}");
    // One character of the MAC changed.
    let mut flipped = signed.cookie.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    for cookie in [
        promoted.as_str(),
        flipped.as_str(),
        "spanhouse_session=v1.e30.AAAA",
    ] {
        assert_eq!(
            cookie_status(&server, "/api/v1/traces", cookie).await,
            401,
            "{cookie}"
        );
        assert_eq!(
            cookie_status(&server, "/api/v1/tokens", cookie).await,
            401,
            "{cookie}"
        );
        assert_eq!(
            cookie_status(&server, "/ui/session", cookie).await,
            401,
            "{cookie}"
        );
    }

    // A cookie another deployment signed (its own key) for a token of the same id is no use.
    let other = TestServer::start().await;
    let elsewhere = sign_in(&other, &other.admin_token).await.unwrap();
    assert_eq!(
        cookie_status(&server, "/api/v1/traces", &elsewhere.cookie).await,
        401
    );
    other.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn the_eleventh_failed_sign_in_within_a_minute_gets_429() {
    let server = TestServer::start().await;
    // Successful sign-ins are not counted.
    for _ in 0..12 {
        assert!(sign_in(&server, &server.admin_token).await.is_ok());
    }
    for attempt in 1..=10 {
        assert_eq!(
            sign_in(&server, "sh_wrong").await.err(),
            Some(401),
            "attempt {attempt}"
        );
    }
    let response = server
        .client
        .post(server.url("/ui/login"))
        .json(&serde_json::json!({ "token": server.admin_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "even the right token waits");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // Another client address (loopback is a /8) is not affected, nor is the API by token.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = elsewhere
        .post(server.url("/ui/login"))
        .json(&serde_json::json!({ "token": server.admin_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = server.get_json("/api/v1/traces", &server.admin_token).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn answers_that_carry_secrets_are_no_store_and_https_cookies_secure() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .json(&serde_json::json!({ "token": server.admin_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let signed = sign_in(&server, &server.admin_token).await.unwrap();

    let response = server
        .client
        .get(server.url("/ui/session"))
        .header(COOKIE, &signed.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");

    let response = server
        .post_as_admin("/api/v1/tokens", "application/json")
        .body(r#"{"role": "read"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    server.stop().await;
}
