//! OTLP/gRPC receiver: `TraceService/Export`, with the same auth and semantics as HTTP.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::api::{ApiError, AppState};
use crate::auth::Access;
use crate::ingest;
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

fn metadata_text<'a>(
    request: &'a Request<ExportTraceServiceRequest>,
    key: &str,
) -> Option<&'a str> {
    request
        .metadata()
        .get(key)
        .and_then(|value| value.to_str().ok())
}

#[tonic::async_trait]
impl TraceService for TraceReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let project_header = metadata_text(&request, "x-project-id")
            .or_else(|| metadata_text(&request, "x-dbnl-project-id"));
        let principal = self
            .state
            .auth
            .authenticate(
                metadata_text(&request, "authorization"),
                project_header,
                Access::Ingest,
            )
            .map_err(|error| ApiError::from(error).into_grpc_status())?;
        let export = request.into_inner();
        let normalizer = std::sync::Arc::clone(&self.state.normalizer);
        let prepared = tokio::task::spawn_blocking(move || ingest::prepare(export, &normalizer))
            .await
            .map_err(|error| Status::unavailable(format!("decoder failed: {error}")))?;
        let outcome = ingest::store_prepared(&self.state.pipeline, &principal.project.id, prepared)
            .await
            .map_err(|error| ApiError::from(error).into_grpc_status())?;
        Ok(Response::new(otlp::trace_response(
            outcome.rejected,
            outcome.error_message,
        )))
    }
}
