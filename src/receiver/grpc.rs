//! OTLP/gRPC: `TraceService/Export`, `LogsService/Export` and `MetricsService/Export`, with the
//! semantics of OTLP/HTTP.
//!
//! The token is checked by an interceptor, from the call's metadata, before tonic reads the
//! message: a call without a valid token is refused `UNAUTHENTICATED` without its message being
//! buffered, decompressed or decoded. The server (`server.rs`) bounds the streams of a
//! connection ([`MAX_STREAMS`]) and the time of a call ([`DeadlineLayer`]), and turns a
//! handler's panic into `INTERNAL` ([`panic_status`]).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Interceptor, Routes};
use tonic::{Request, Response, Status};

use super::{DECODED_SIZE_FACTOR, Receivers};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::otlp;

/// The three services, each behind the token check, accepting gzip and limited to the
/// decompressed body limit.
pub fn routes(receivers: Receivers) -> Routes {
    let max_message = receivers.limits.max_decompressed_bytes;
    let receiver = Receiver { receivers };
    macro_rules! service {
        ($server:ident, $route:ident) => {
            InterceptedService::new(
                $server::new(receiver.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .send_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(max_message),
                Authenticate {
                    receivers: receiver.receivers.clone(),
                    route: $route,
                },
            )
        };
    }
    Routes::new(service!(TraceServiceServer, TRACES))
        .add_service(service!(LogsServiceServer, LOGS))
        .add_service(service!(MetricsServiceServer, METRICS))
}

/// The routes' names in `spanhouse_request_duration_seconds`.
const TRACES: &str = "grpc TraceService/Export";
const LOGS: &str = "grpc LogsService/Export";
const METRICS: &str = "grpc MetricsService/Export";

/// Most calls one connection may have open at once.
pub const MAX_STREAMS: u32 = 64;

/// A handler's panic as a call's answer: `INTERNAL`, which clients do not retry, and the server
/// goes on. The panic is logged; its message is not sent.
pub fn panic_status(panic: Box<dyn std::any::Any + Send + 'static>) -> http::Response<String> {
    crate::error::log_panic(panic.as_ref());
    let status = Status::internal("the server failed on this call");
    let (parts, ()) = status.into_http::<()>().into_parts();
    http::Response::from_parts(parts, String::new())
}

/// Checks a call's token from its metadata and hands its principal to the service; a refused
/// call is measured under its route here, as the service never sees it.
#[derive(Clone)]
pub struct Authenticate {
    receivers: Receivers,
    route: &'static str,
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let started = std::time::Instant::now();
        let metadata = request.metadata();
        let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
        let project_header = text("x-project-id").or_else(|| text("x-dbnl-project-id"));
        let checked = self
            .receivers
            .auth
            .authenticate(text("authorization"), project_header, Access::Ingest)
            .map_err(|error| ApiError::from(error).into_grpc_status());
        let principal = match checked {
            Ok(principal) => principal,
            Err(status) => {
                let code = status.code() as u16;
                let metrics = &self.receivers.metrics;
                metrics.observe_request(self.route, code, started.elapsed());
                return Err(status);
            }
        };
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// Records a call's latency; the status label is the gRPC code number (0 is OK).
fn observe<T>(
    receivers: &Receivers,
    route: &str,
    result: &Result<T, Status>,
    started: std::time::Instant,
) {
    let code = match result {
        Ok(_) => 0,
        Err(status) => status.code() as u16,
    };
    receivers
        .metrics
        .observe_request(route, code, started.elapsed());
}

#[derive(Clone)]
pub struct Receiver {
    receivers: Receivers,
}

impl Receiver {
    /// The shared path after the interceptor: room for the decoded message in the project's
    /// share of the memory budget (it waits for a decode slot with its encoded size, and holds
    /// three times more in it, as an HTTP body does), then `convert` on the blocking pool.
    /// A call the budget cannot hold is answered `UNAVAILABLE` at once.
    async fn convert<T, R>(
        &self,
        request: Request<T>,
        convert: impl FnOnce(&str, T) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<(Arc<Principal>, R), ApiError>
    where
        T: prost::Message + Send + 'static,
        R: Send + 'static,
    {
        let principal = request
            .extensions()
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the call passed no token check"))?;
        let message = request.into_inner();
        let encoded = message.encoded_len();
        let admission = &self.receivers.admission;
        let mut room = admission.reserve(&principal.project.id, encoded)?;
        let slot = admission.decode_slot().await?;
        room.grow_to(encoded.saturating_mul(DECODED_SIZE_FACTOR))?;
        let project_id = principal.project.id.clone();
        let converted = tokio::task::spawn_blocking(move || {
            let _held = (room, slot);
            convert(&project_id, message)
        })
        .await
        .map_err(|error| ApiError::internal(format!("decoding the request failed: {error}")))??;
        Ok((principal, converted))
    }

    async fn export_traces(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<ExportTraceServiceResponse, ApiError> {
        let ingest = Arc::clone(&self.receivers.ingest);
        let (principal, prepared) = self
            .convert(request, move |project_id, export| {
                Ok(ingest.prepare(project_id, otlp::spans_from_request(export))?)
            })
            .await?;
        let ingest = &self.receivers.ingest;
        let outcome = ingest.store(&principal.project.id, prepared).await?;
        Ok(otlp::trace_response(
            outcome.rejected,
            outcome.error_message,
        ))
    }

    async fn export_logs(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<ExportLogsServiceResponse, ApiError> {
        let (principal, converted) = self
            .convert(request, |_, export| {
                Ok(otlp::logs::content_events_from_request(export))
            })
            .await?;
        self.receivers
            .ingest
            .store_content_events(&principal.project.id, converted)
            .await?;
        Ok(ExportLogsServiceResponse::default())
    }

    async fn export_metrics(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<ExportMetricsServiceResponse, ApiError> {
        let (principal, points) = self
            .convert(request, |_, export| Ok(otlp::metrics::data_points(&export)))
            .await?;
        self.receivers
            .ingest
            .accept_metric_points(&principal.project.id, points)?;
        Ok(ExportMetricsServiceResponse::default())
    }
}

/// One service method: runs the export, maps its error, records its latency.
macro_rules! export {
    ($self:ident, $request:ident, $method:ident, $route:ident) => {{
        let started = std::time::Instant::now();
        let result = $self
            .$method($request)
            .await
            .map(Response::new)
            .map_err(ApiError::into_grpc_status);
        observe(&$self.receivers, $route, &result, started);
        result
    }};
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        export!(self, request, export_traces, TRACES)
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        export!(self, request, export_logs, LOGS)
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        export!(self, request, export_metrics, METRICS)
    }
}

/// Ends a call that takes longer than its time with `DEADLINE_EXCEEDED`, dropping what it held
/// (tonic's own server timeout answers `CANCELLED`, which says nothing of why).
#[derive(Clone, Copy)]
pub struct DeadlineLayer(pub Duration);

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            timeout: self.0,
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timeout = self.timeout;
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than {} s",
                    timeout.as_secs_f64()
                ))
                .into_http()),
            }
        })
    }
}
