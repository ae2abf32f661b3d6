//! OTLP/HTTP ingestion against the real server: paths, encodings, compression, limits, auth.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use spanhouse::receiver::http::TRACE_PATHS;

#[tokio::test]
async fn every_path_accepts_protobuf_and_the_spans_are_stored() {
    let server = TestServer::start().await;
    for (index, path) in TRACE_PATHS.iter().enumerate() {
        let trace = index as u8 + 1;
        let mut root = span(trace, 1, None, "root", recent(10));
        root.attributes = vec![
            string_attribute("input.value", "question"),
            string_attribute("output.value", "answer"),
        ];
        let child = span(trace, 2, Some(1), "child", recent(10) + 1000);
        let response = server
            .post_protobuf(
                path,
                &server.admin_token,
                &request("svc", vec![root, child]),
            )
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/x-protobuf",
            "{path}"
        );
        let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(body.partial_success, None);

        let (status, trace_json) = server
            .get_json(
                &format!("/api/v1/traces/{}", hex_trace(trace)),
                &server.admin_token,
            )
            .await;
        assert_eq!(status, 200);
        let record = &trace_json["trace"];
        assert_eq!(record["span_count"], 2);
        assert_eq!(record["root_span_name"], "root");
        assert_eq!(record["service_name"], "svc");
        assert_eq!(record["status"], "ok");
        assert_eq!(record["input"], "question");
        assert_eq!(record["output"], "answer");
        assert_eq!(record["duration_ms"], 250.0);
        assert_eq!(trace_json["spans"][0]["name"], "root");
        assert_eq!(
            trace_json["spans"][1]["parent_span_id"],
            hex::encode([1u8; 8])
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn json_as_node_sends_it_chunked_and_gzip() {
    let server = TestServer::start().await;
    let start = recent(5);
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "node-app"}}]},
            "scopeSpans": [{
                "scope": {"name": "manual"},
                "spans": [{
                    "traceId": hex_trace(0x31), "spanId": "0102030405060708",
                    "name": "chat", "kind": 3,
                    "startTimeUnixNano": start.to_string(), "endTimeUnixNano": start + 1_000_000,
                    "attributes": [
                        {"key": "input.value", "value": {"stringValue": "Say hi"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                        {"key": "ratio", "value": {"doubleValue": 0.5}},
                        {"key": "flags", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}
                    ],
                    "status": {"code": 2, "message": "boom"}
                }]
            }]
        }]
    })
    .to_string();
    // A stream body makes reqwest send Transfer-Encoding: chunked without Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = gzip(body.as_bytes())
        .chunks(7)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let response = server
        .post_as_admin("/v1/traces", "application/json")
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({})
    );

    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x31)),
            &server.admin_token,
        )
        .await;
    let span = &trace["spans"][0];
    assert_eq!(span["kind"], "client");
    assert_eq!(span["status"]["code"], "error");
    assert_eq!(span["status"]["message"], "boom");
    assert_eq!(span["attributes"]["gen_ai.usage.input_tokens"], 12);
    assert_eq!(span["attributes"]["ratio"], 0.5);
    assert_eq!(span["attributes"]["flags"], serde_json::json!([true]));
    assert_eq!(span["resource_attributes"]["service.name"], "node-app");
    assert_eq!(span["scope"]["name"], "manual");
    assert_eq!(trace["trace"]["status"], "error");
    assert_eq!(trace["trace"]["input"], "Say hi");
    server.stop().await;
}

#[tokio::test]
async fn partial_success_counts_invalid_spans_and_keeps_the_valid_ones() {
    let server = TestServer::start().await;
    let good = span(0x41, 1, None, "good", recent(5));
    let mut short_trace = span(0x42, 1, None, "bad-trace-id", recent(5));
    short_trace.trace_id = vec![1, 2, 3];
    let mut backwards = span(0x43, 1, None, "ends-before-start", recent(5));
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;

    let spans = vec![good, short_trace, backwards];
    let response = server
        .post_protobuf(
            "/v1/traces",
            &server.admin_token,
            &request("svc", spans.clone()),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = body.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );

    // The same in JSON: rejectedSpans is an int64, so a string.
    let json_body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz", "spanId": "0102030405060708", "name": "x"}
    ]}]}]});
    let response = server
        .post_as_admin("/v1/traces", "application/json")
        .body(json_body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["partialSuccess"]["rejectedSpans"], "1");

    let (status, _) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x41)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x43)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn undecodable_bodies_get_400_with_a_status_in_the_request_encoding() {
    let server = TestServer::start().await;
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let status = spanhouse::otlp::RpcStatus::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);

    let response = server
        .post_as_admin("/otel/v1/traces", "application/json")
        .body("{\"resourceSpans\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("resourceSpans")
    );

    // A gzip header that lies.
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn unsupported_media_type_and_encoding_get_415() {
    let server = TestServer::start().await;
    let response = server
        .post_as_admin("/v1/traces", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .header("content-encoding", "br")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    server.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limits_get_413_also_when_decompression_would_pass_them() {
    let server = TestServer::start_with(|config| {
        config.limits.max_body_bytes = 64 * 1024;
        config.limits.max_decompressed_bytes = 256 * 1024;
    })
    .await;
    // Too large as sent, with a Content-Length.
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(vec![0u8; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Too large as sent, chunked (no Content-Length).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![0u8; 8 * 1024])).collect();
    let response = server
        .post_as_admin("/v1/traces", "application/x-protobuf")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Small as sent, too large inflated: a decompression bomb.
    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let response = server
        .post_as_admin("/v1/traces", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let status: serde_json::Value = response.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("decompression")
    );
    server.stop().await;
}

#[tokio::test]
async fn credentials_roles_and_project_headers() {
    let server = TestServer::start().await;
    let payload = request("svc", vec![span(0x51, 1, None, "s", recent(5))]);
    let post = |token: Option<String>, project: Option<&'static str>| {
        let mut builder = server
            .client
            .post(server.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(payload.encode_to_vec());
        if let Some(token) = token {
            builder = builder.header("authorization", token);
        }
        if let Some(project) = project {
            builder = builder.header("x-project-id", project);
        }
        builder.send()
    };
    let admin = server.admin_token.clone();
    assert_eq!(post(None, None).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("Bearer sh_nope".into()), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post(Some("Token x".into()), None).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(Some(format!("Bearer {admin}")), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(Some(format!("Bearer {admin}")), Some("default"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(Some(format!("Bearer {admin}")), Some("someone-else"))
            .await
            .unwrap()
            .status(),
        403
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("pk-lf-1:{admin}"));
    assert_eq!(
        post(Some(format!("Basic {basic}")), None)
            .await
            .unwrap()
            .status(),
        200
    );

    // The dbnl alias of the project header.
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&admin)
        .header("x-dbnl-project-id", "elsewhere")
        .header("content-type", "application/x-protobuf")
        .body(payload.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let read_token = server.create_token("default", "read").await;
    server.wait_for_token(&read_token).await;
    assert_eq!(
        post(Some(format!("Bearer {read_token}")), None)
            .await
            .unwrap()
            .status(),
        403
    );
    let ingest_token = server.create_token("default", "ingest").await;
    server.wait_for_token(&ingest_token).await;
    assert_eq!(
        server.get_json("/api/v1/traces", &ingest_token).await.0,
        403,
        "an ingest token cannot read"
    );
    server.stop().await;
}

#[tokio::test]
async fn retries_are_stored_once() {
    let server = TestServer::start().await;
    let payload = request(
        "svc",
        vec![
            span(0x61, 1, None, "root", recent(5)),
            span(0x61, 2, Some(1), "child", recent(5)),
        ],
    );
    for _ in 0..3 {
        let response = server
            .post_protobuf("/v1/traces", &server.admin_token, &payload)
            .await;
        assert_eq!(response.status(), 200);
    }
    let (_, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x61)),
            &server.admin_token,
        )
        .await;
    assert_eq!(trace["trace"]["span_count"], 2);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn wrong_method_and_unknown_paths() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/v1/traces"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let response = server.client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn bodies_in_flight_past_the_memory_budget_get_503_over_http_and_grpc() {
    let server = TestServer::start_with(|config| {
        config.limits.max_inflight_bytes = 64 * 1024;
    })
    .await;
    // A slow client declares 60 KiB and sends only part of it: its room stays reserved.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender.send(Ok(vec![0u8; 1024])).await.unwrap();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let slow = tokio::spawn({
        let request = server
            .post_as_admin("/v1/traces", "application/x-protobuf")
            .header("content-length", (60 * 1024).to_string())
            .body(reqwest::Body::wrap_stream(stream));
        async move { request.send().await }
    });
    let payload = request("svc", vec![span(0xb1, 1, None, "s", recent(5))]).encode_to_vec();
    let mut status = 0;
    for _ in 0..100 {
        let response = server
            .post_as_admin("/v1/traces", "application/x-protobuf")
            .header("content-length", (8 * 1024).to_string())
            .body(
                payload
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0u8, 8 * 1024 - payload.len()))
                    .collect::<Vec<u8>>(),
            )
            .send()
            .await
            .unwrap();
        status = response.status().as_u16();
        if status == 503 {
            assert_eq!(response.headers()["retry-after"], "1");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 503, "the budget was not enforced");
    // A gRPC message the budget cannot hold meanwhile is refused too, before it is normalized.
    let mut large = span(0xb3, 1, None, "s", recent(5));
    large.attributes = vec![string_attribute("input.value", &"x".repeat(8 * 1024))];
    let mut grpc = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let mut call = tonic::Request::new(request("svc", vec![large]));
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_token).parse().unwrap(),
    );
    let error = grpc.export(call).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error}");
    drop(sender);
    let _ = slow.await;
    // With the slow body gone, room is back.
    let response = server
        .post_protobuf(
            "/v1/traces",
            &server.admin_token,
            &request("svc", vec![span(0xb2, 1, None, "s", recent(5))]),
        )
        .await;
    assert_eq!(response.status(), 200);
    server.stop().await;
}
