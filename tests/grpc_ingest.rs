//! OTLP/gRPC against the real server with tonic's own client.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;

async fn client(server: &TestServer) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(server.grpc_url())
        .await
        .unwrap()
}

fn with_auth<T>(message: T, authorization: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(authorization).unwrap(),
    );
    request
}

#[tokio::test]
async fn export_with_gzip_and_bearer_metadata_stores_spans() {
    let server = TestServer::start().await;
    let mut client = client(&server)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let mut root = span(0x91, 1, None, "grpc-root", recent(5));
    root.attributes = vec![string_attribute("output.value", "over grpc")];
    let mut bad = span(0x92, 1, None, "bad", recent(5));
    bad.span_id = vec![7; 3];
    let response = client
        .export(with_auth(
            request("grpc-svc", vec![root, bad]),
            &format!("Bearer {}", server.admin_token),
        ))
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.expect("one span was invalid");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("span_id"));

    let (status, trace) = server
        .get_json(
            &format!("/api/v1/traces/{}", hex_trace(0x91)),
            &server.admin_token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(trace["trace"]["output"], "over grpc");
    assert_eq!(trace["trace"]["service_name"], "grpc-svc");
    server.stop().await;
}

#[tokio::test]
async fn grpc_status_codes_for_auth() {
    let server = TestServer::start().await;
    let mut client = client(&server).await;
    let payload = request("svc", vec![span(0x93, 1, None, "s", recent(5))]);

    let error = client
        .export(tonic::Request::new(payload.clone()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    let error = client
        .export(with_auth(payload.clone(), "Bearer sh_unknown"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);

    let mut wrong_project = with_auth(payload.clone(), &format!("Bearer {}", server.admin_token));
    wrong_project
        .metadata_mut()
        .insert("x-project-id", MetadataValue::from_static("not-mine"));
    let error = client.export(wrong_project).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);

    let read_token = server.create_token("default", "read").await;
    server.wait_for_token(&read_token).await;
    let error = client
        .export(with_auth(payload.clone(), &format!("Bearer {read_token}")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);

    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("user:{}", server.admin_token));
    client
        .export(with_auth(payload, &format!("Basic {basic}")))
        .await
        .unwrap();

    let metrics = server.metrics_text().await;
    assert!(metrics.contains(
        "spanhouse_request_duration_seconds_count{route=\"grpc TraceService/Export\",status=\"0\"} 1"
    ), "{metrics}");
    assert!(metrics.contains(
        "spanhouse_request_duration_seconds_count{route=\"grpc TraceService/Export\",status=\"16\"} 2"
    ));
    server.stop().await;
}
