//! OTLP/gRPC receivers: `TraceService/Export`, `LogsService/Export` and
//! `MetricsService/Export`, with the same auth and semantics as HTTP.

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
use prost::Message as _;
use tokio::sync::OwnedSemaphorePermit;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::api::{ApiError, AppState, DECODED_SIZE_FACTOR, Reservation};
use crate::auth::Access;
use crate::otlp;

pub struct TraceReceiver {
    state: AppState,
}

/// The gRPC trace service, accepting gzip and limited to the decompressed body limit.
pub fn trace_service(state: AppState) -> TraceServiceServer<TraceReceiver> {
    let max_message = state.limits.max_decompressed_bytes;
    TraceServiceServer::new(TraceReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message)
}

/// Room for a decoded message of `encoded` bytes while it waits for one of the memory
/// budget's decode slots and while it is converted and normalized there, as an OTLP/HTTP body
/// has: its size while it waits, three times more in the slot (an HTTP body's four, less the
/// protobuf structures, which the first share already counts). tonic has decoded the message
/// already, but a call the budget cannot hold is answered `UNAVAILABLE` at once rather than
/// held while it waits: without it, 32 clients sending 3 MB messages as fast as they were
/// answered took the server to 691 MiB.
async fn decoded_room(state: &AppState, encoded: usize) -> Result<DecodedRoom, Status> {
    let waiting = state
        .budget
        .reserve(encoded)
        .map_err(ApiError::into_grpc_status)?;
    let slot = state
        .budget
        .decode_slot()
        .await
        .map_err(ApiError::into_grpc_status)?;
    let decoding = state
        .budget
        .reserve(encoded.saturating_mul(DECODED_SIZE_FACTOR - 1))
        .map_err(ApiError::into_grpc_status)?;
    Ok((waiting, slot, decoding))
}

/// What [`decoded_room`] holds until the message is converted and normalized.
type DecodedRoom = (Reservation, OwnedSemaphorePermit, Reservation);

/// Records a call's latency; the status label is the gRPC code number (0 is OK).
fn observe<T>(
    state: &AppState,
    route: &str,
    result: &Result<T, Status>,
    started: std::time::Instant,
) {
    let code = match result {
        Ok(_) => 0,
        Err(status) => status.code() as u16,
    };
    state
        .metrics
        .observe_request(route, code, started.elapsed());
}

/// Authenticates a call from its `authorization` and project metadata.
fn authenticate(
    state: &AppState,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<std::sync::Arc<crate::auth::Principal>, Status> {
    let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
    let project_header = text("x-project-id").or_else(|| text("x-dbnl-project-id"));
    state
        .auth
        .authenticate(text("authorization"), project_header, Access::Ingest)
        .map_err(|error| ApiError::from(error).into_grpc_status())
}

#[tonic::async_trait]
impl TraceService for TraceReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let started = std::time::Instant::now();
        let result = self.export_traces(request).await;
        observe(&self.state, "grpc TraceService/Export", &result, started);
        result
    }
}

impl TraceReceiver {
    async fn export_traces(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let principal = authenticate(&self.state, request.metadata())?;
        let export = request.into_inner();
        let room = decoded_room(&self.state, export.encoded_len()).await?;
        let ingest = std::sync::Arc::clone(&self.state.ingest);
        let project_id = principal.project.id.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let _room = room;
            ingest.prepare(&project_id, export)
        })
        .await
        .map_err(|error| Status::unavailable(format!("decoder failed: {error}")))?
        .map_err(|error| ApiError::from(error).into_grpc_status())?;
        let outcome = self
            .state
            .ingest
            .store(&principal.project.id, prepared)
            .await
            .map_err(|error| ApiError::from(error).into_grpc_status())?;
        Ok(Response::new(otlp::trace_response(
            outcome.rejected,
            outcome.error_message,
        )))
    }
}

pub struct LogsReceiver {
    state: AppState,
}

/// The gRPC logs service: GenAI content events are attached to their spans.
pub fn logs_service(state: AppState) -> LogsServiceServer<LogsReceiver> {
    let max_message = state.limits.max_decompressed_bytes;
    LogsServiceServer::new(LogsReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message)
}

#[tonic::async_trait]
impl LogsService for LogsReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let started = std::time::Instant::now();
        let result = self.export_logs(request).await;
        observe(&self.state, "grpc LogsService/Export", &result, started);
        result
    }
}

impl LogsReceiver {
    async fn export_logs(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let principal = authenticate(&self.state, request.metadata())?;
        let export = request.into_inner();
        let room = decoded_room(&self.state, export.encoded_len()).await?;
        let converted = tokio::task::spawn_blocking(move || {
            let _room = room;
            otlp::logs::content_events_from_request(export)
        })
        .await
        .map_err(|error| Status::unavailable(format!("decoder failed: {error}")))?;
        self.state
            .ingest
            .store_content_events(&principal.project.id, converted)
            .await
            .map_err(|error| ApiError::from(error).into_grpc_status())?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

pub struct MetricsReceiver {
    state: AppState,
}

/// The gRPC metrics service: data points are counted, not stored (SPEC §3).
pub fn metrics_service(state: AppState) -> MetricsServiceServer<MetricsReceiver> {
    let max_message = state.limits.max_decompressed_bytes;
    MetricsServiceServer::new(MetricsReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message)
}

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let started = std::time::Instant::now();
        let result = authenticate(&self.state, request.metadata()).map(|principal| {
            let points = otlp::metrics::data_points(request.get_ref());
            self.state
                .ingest
                .count_metric_points(&principal.project.id, points);
            Response::new(ExportMetricsServiceResponse::default())
        });
        observe(&self.state, "grpc MetricsService/Export", &result, started);
        result
    }
}
