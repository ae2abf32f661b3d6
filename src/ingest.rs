//! What happens to an export request once it is decoded, for every receiver alike: spans are
//! checked and converted, normalized, and handed to the pipeline.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::model::NormalizedSpan;
use crate::normalize::Normalizer;
use crate::otlp::logs::ConvertedLogs;
use crate::otlp::spans_from_request;
use crate::pipeline::{Pipeline, PipelineError};

/// The spans of one request, ready to store, and what was rejected.
#[derive(Debug, Default)]
pub struct PreparedSpans {
    pub spans: Vec<NormalizedSpan>,
    pub rejected: usize,
    /// Readable reason for `partial_success.error_message`; empty when nothing was rejected.
    pub error_message: String,
}

/// Converts and normalizes a request. CPU work only: receivers run it off the async runtime
/// for large requests.
pub fn prepare(request: ExportTraceServiceRequest, normalizer: &Normalizer) -> PreparedSpans {
    let converted = spans_from_request(request);
    let error_message = converted.error_message();
    for rejected in converted.rejected.iter().take(3) {
        tracing::debug!(reason = %rejected.reason, "rejected span");
    }
    let spans = converted
        .spans
        .into_iter()
        .map(|span| NormalizedSpan {
            semantics: normalizer.normalize(&span, &[]),
            span,
        })
        .collect();
    PreparedSpans {
        spans,
        rejected: converted.rejected.len(),
        error_message,
    }
}

/// The outcome of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub rejected: usize,
    pub error_message: String,
}

/// Stores the GenAI content events of a logs request; returns once they are durable.
pub async fn store_content_events(
    pipeline: &Pipeline,
    project_id: &str,
    converted: ConvertedLogs,
) -> Result<(), PipelineError> {
    if converted.ignored > 0 {
        tracing::debug!(
            records = converted.ignored,
            "log records without GenAI content for a span"
        );
    }
    pipeline
        .submit_content_events(project_id, converted.content)
        .await
}

/// Stores prepared spans for a project; returns once they are durable.
pub async fn store_prepared(
    pipeline: &Pipeline,
    project_id: &str,
    prepared: PreparedSpans,
) -> Result<IngestOutcome, PipelineError> {
    let accepted = prepared.spans.len();
    pipeline.submit(project_id, prepared.spans).await?;
    Ok(IngestOutcome {
        accepted,
        rejected: prepared.rejected,
        error_message: prepared.error_message,
    })
}
