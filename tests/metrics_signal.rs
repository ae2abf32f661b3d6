//! The metrics signal (SPEC §3): acknowledged on every prefix and on gRPC, in both encodings,
//! its data points counted per project and never stored; the same authentication and errors
//! as traces.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data,
};
use prost::Message as _;

/// A request with `gauge_points` gauge points and one sum point.
fn metrics(gauge_points: usize) -> ExportMetricsServiceRequest {
    let metric = |name: &str, data| Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "gen_ai.client.token.usage",
                        Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); gauge_points],
                        }),
                    ),
                    metric(
                        "requests",
                        Data::Sum(Sum {
                            data_points: vec![NumberDataPoint::default()],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn counted(server: &TestServer) -> serde_json::Value {
    let (status, ingestion) = server
        .get_json("/api/v1/ingestion", &server.admin_token)
        .await;
    assert_eq!(status, 200, "{ingestion}");
    ingestion["totals"].clone()
}

#[tokio::test]
async fn metrics_are_acknowledged_on_every_prefix_and_counted() {
    let server = TestServer::start().await;
    for path in [
        "/v1/metrics",
        "/otel/v1/metrics",
        "/api/otel/v1/metrics",
        "/api/public/otel/v1/metrics",
    ] {
        let response = server
            .post_as_admin(path, "application/x-protobuf")
            .body(metrics(2).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/x-protobuf",
            "{path}"
        );
        let body = response.bytes().await.unwrap();
        ExportMetricsServiceRequest::decode(body.as_ref()).expect("an export response");
    }

    // OTLP/JSON as the Node SDK sends it, gzip.
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[]},"scopeMetrics":[{"scope":{"name":"x"},
        "metrics":[{"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[
        {"startTimeUnixNano":"1","timeUnixNano":"2","count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[1]},
        {"count":"1"}]}}]}]}]}"#;
    let response = server
        .post_as_admin("/v1/metrics", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(json))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");

    let totals = counted(&server).await;
    assert_eq!(totals["metric_points"], 4 * 3 + 2, "{totals}");
    assert_eq!(
        totals["received"], 0,
        "metric points are not spans: {totals}"
    );
    let (_, traces) = server.get_json("/api/v1/traces", &server.admin_token).await;
    assert_eq!(traces["traces"], serde_json::json!([]), "nothing is stored");

    let exposition = server.metrics_text().await;
    assert!(
        exposition.contains("spanhouse_metric_points_received_total{"),
        "{exposition}"
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_errors_are_those_of_traces() {
    let server = TestServer::start().await;
    let read_token = server.create_token("default", "read").await;
    server.wait_for_token(&read_token).await;
    let send = |token: &str, content_type: &str, body: Vec<u8>| {
        server
            .client
            .post(server.url("/v1/metrics"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let body = metrics(1).encode_to_vec();
    assert_eq!(
        send("sh_nonsense", "application/x-protobuf", body.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(&read_token, "application/x-protobuf", body.clone())
            .await
            .unwrap()
            .status(),
        403,
        "a read token never writes"
    );
    let admin = server.admin_token.clone();
    assert_eq!(
        send(&admin, "text/plain", body).await.unwrap().status(),
        415
    );
    let response = send(
        &admin,
        "application/json",
        br#"{"resourceMetrics":[{"scopeMetrics":"no"}]}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let message = response.text().await.unwrap();
    assert!(
        message.contains("$.resourceMetrics[0].scopeMetrics"),
        "the error names where: {message}"
    );
    let response = send(&admin, "application/x-protobuf", vec![0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(counted(&server).await["metric_points"], 0);
    server.stop().await;
}

#[tokio::test]
async fn metrics_over_grpc_are_counted() {
    let server = TestServer::start().await;
    let mut client = MetricsServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let error = client
        .export(tonic::Request::new(metrics(1)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);

    let mut request = tonic::Request::new(metrics(4));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_token).parse().unwrap(),
    );
    client.export(request).await.unwrap();
    assert_eq!(counted(&server).await["metric_points"], 5);
    server.stop().await;
}
