//! Export requests read from files, regrouped into requests of a bounded size: small documents
//! (a Collector line may hold one span) are merged, large ones split between spans, so each
//! request stays under the server's limits and requests are few.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message as _;

/// A request ready to send: its protobuf body and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// An `ExportTraceServiceRequest` of `spans` spans.
    Traces { body: Vec<u8>, spans: u64 },
    /// An `ExportLogsServiceRequest` of `records` log records.
    Logs { body: Vec<u8>, records: u64 },
}

/// How large a request may grow.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most spans per request.
    pub spans: usize,
    /// Most encoded bytes of spans per request (a single larger span goes alone).
    pub bytes: usize,
}

/// Gathers spans into requests of at most [`BatchLimits`].
pub struct Batcher {
    limits: BatchLimits,
    pending: ExportTraceServiceRequest,
    spans: usize,
    bytes: usize,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits: BatchLimits {
                spans: limits.spans.max(1),
                bytes: limits.bytes.max(1),
            },
            pending: ExportTraceServiceRequest::default(),
            spans: 0,
            bytes: 0,
        }
    }

    /// Adds a request's spans; hands every request that fills up to `ready`.
    pub fn push(&mut self, request: ExportTraceServiceRequest, ready: &mut dyn FnMut(Batch)) {
        for resource_spans in request.resource_spans {
            let ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            } = resource_spans;
            for scope_spans in scope_spans {
                let ScopeSpans {
                    scope,
                    spans,
                    schema_url: scope_schema_url,
                } = scope_spans;
                for span in spans {
                    let size = span.encoded_len();
                    if self.spans > 0
                        && (self.spans >= self.limits.spans
                            || self.bytes + size > self.limits.bytes)
                    {
                        ready(self.take());
                    }
                    // The span joins the last resource and scope of the pending request when
                    // they are its own, else opens new ones.
                    let same_resource = self.pending.resource_spans.last().is_some_and(|last| {
                        last.resource == resource && last.schema_url == schema_url
                    });
                    if !same_resource {
                        self.pending.resource_spans.push(ResourceSpans {
                            resource: resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: schema_url.clone(),
                        });
                    }
                    if let Some(last) = self.pending.resource_spans.last_mut()
                        && !last.scope_spans.last().is_some_and(|group| {
                            group.scope == scope && group.schema_url == scope_schema_url
                        })
                    {
                        last.scope_spans.push(ScopeSpans {
                            scope: scope.clone(),
                            spans: Vec::new(),
                            schema_url: scope_schema_url.clone(),
                        });
                    }
                    if let Some(group) = self
                        .pending
                        .resource_spans
                        .last_mut()
                        .and_then(|last| last.scope_spans.last_mut())
                    {
                        group.spans.push(span);
                    }
                    self.spans += 1;
                    self.bytes += size;
                }
            }
        }
    }

    /// The request being gathered, if it holds a span.
    pub fn finish(&mut self) -> Option<Batch> {
        (self.spans > 0).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let request = std::mem::take(&mut self.pending);
        let spans = std::mem::take(&mut self.spans) as u64;
        self.bytes = 0;
        Batch::Traces {
            body: request.encode_to_vec(),
            spans,
        }
    }
}

/// A logs request as one batch (GenAI content events are few; a file's documents go as read).
pub fn logs_batch(request: &ExportLogsServiceRequest) -> Option<Batch> {
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .map(|scope| scope.log_records.len())
        .sum();
    (records > 0).then(|| Batch::Logs {
        body: request.encode_to_vec(),
        records: records as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn request(scopes: &[(&str, usize)]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: scopes
                    .iter()
                    .map(|(name, spans)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: (*name).into(),
                            ..Default::default()
                        }),
                        spans: (0..*spans)
                            .map(|index| Span {
                                name: format!("{name}-{index}"),
                                span_id: vec![index as u8; 8],
                                ..Default::default()
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            }],
        }
    }

    fn decoded(batch: &Batch) -> (ExportTraceServiceRequest, u64) {
        match batch {
            Batch::Traces { body, spans } => (
                ExportTraceServiceRequest::decode(body.as_slice()).unwrap(),
                *spans,
            ),
            Batch::Logs { .. } => panic!("not traces"),
        }
    }

    fn names(request: &ExportTraceServiceRequest) -> Vec<(String, String)> {
        request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| {
                let scope_name = scope
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                scope
                    .spans
                    .iter()
                    .map(move |span| (scope_name.clone(), span.name.clone()))
            })
            .collect()
    }

    #[test]
    fn requests_are_split_and_merged_keeping_every_span_with_its_scope() {
        let mut batcher = Batcher::new(BatchLimits {
            spans: 4,
            bytes: usize::MAX,
        });
        let mut batches = Vec::new();
        batcher.push(request(&[("a", 3), ("b", 2)]), &mut |batch| {
            batches.push(batch)
        });
        batcher.push(request(&[("b", 1)]), &mut |batch| batches.push(batch));
        batcher.push(request(&[("c", 5)]), &mut |batch| batches.push(batch));
        batches.extend(batcher.finish());
        let decoded: Vec<_> = batches.iter().map(decoded).collect();
        assert_eq!(
            decoded.iter().map(|(_, spans)| *spans).collect::<Vec<_>>(),
            vec![4, 4, 3]
        );
        let all: Vec<_> = decoded
            .iter()
            .flat_map(|(request, _)| names(request))
            .collect();
        let expected: Vec<_> = [("a", 3), ("b", 2), ("b", 1), ("c", 5)]
            .iter()
            .flat_map(|(scope, count)| {
                (0..*count).map(move |index| (scope.to_string(), format!("{scope}-{index}")))
            })
            .collect();
        assert_eq!(all, expected);
        // One resource throughout; b's span of the first request and its one of the second
        // share a scope group, c opens another.
        assert_eq!(decoded[1].0.resource_spans.len(), 1);
        assert_eq!(decoded[1].0.resource_spans[0].scope_spans.len(), 2);
        assert_eq!(decoded[1].0.resource_spans[0].scope_spans[0].spans.len(), 2);
        assert!(batcher.finish().is_none());
    }

    #[test]
    fn a_request_is_cut_at_the_byte_limit_and_a_large_span_goes_alone() {
        let mut batcher = Batcher::new(BatchLimits {
            spans: 100,
            bytes: 40,
        });
        let mut batches = Vec::new();
        batcher.push(request(&[("a", 6)]), &mut |batch| batches.push(batch));
        batches.extend(batcher.finish());
        assert!(batches.len() > 1);
        let total: u64 = batches.iter().map(|batch| decoded(batch).1).sum();
        assert_eq!(total, 6);
        let mut alone = Batcher::new(BatchLimits {
            spans: 100,
            bytes: 1,
        });
        let mut batches = Vec::new();
        alone.push(request(&[("a", 2)]), &mut |batch| batches.push(batch));
        batches.extend(alone.finish());
        assert_eq!(batches.len(), 2);
    }
}
