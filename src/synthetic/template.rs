//! Requests encoded once and sent many times by the load generator, each copy with ids and
//! times of its own.

use std::ops::Range;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::scramble;

/// A request encoded once and sent many times, each time with ids of its own and its times
/// moved to the moment it is sent: what the load generator sends, so that its own CPU (making
/// 2,000 texts and encoding them for every request took a third of a core at full load) is
/// not taken from the server it measures on the same machine. Each copy's ids are the
/// request's XORed with masks drawn from the copy's key, so a trace's spans keep their trace
/// id and their parent, and copies share no id.
pub struct Template {
    bytes: Vec<u8>,
    /// Where each span's trace id (16 bytes) lies in `bytes`.
    trace_ids: Vec<usize>,
    /// Where each span id and parent span id (8 bytes each) lies.
    span_ids: Vec<usize>,
    /// Where each span's start and end time (fixed64) lies.
    times: Vec<usize>,
    /// The traces the request completes.
    completed: Vec<[u8; 16]>,
    /// The earliest start of a span: a copy's earliest start is the time it is made.
    first_start_ns: u64,
}

/// Why an encoded request cannot be a [`Template`].
#[derive(Debug, thiserror::Error)]
#[error("not an OTLP trace request a template can be made of: {0}")]
pub struct TemplateError(&'static str);

impl Template {
    /// The template of `request`, which completes the traces `completed`. Spans carry no
    /// events or links (their times and ids would not be moved).
    pub fn new(
        request: &ExportTraceServiceRequest,
        completed: Vec<[u8; 16]>,
    ) -> Result<Self, TemplateError> {
        use prost::Message as _;
        let bytes = request.encode_to_vec();
        let mut template = Self {
            bytes: Vec::new(),
            trace_ids: Vec::new(),
            span_ids: Vec::new(),
            times: Vec::new(),
            completed,
            first_start_ns: u64::MAX,
        };
        // ExportTraceServiceRequest.resource_spans (1) > ResourceSpans.scope_spans (2) >
        // ScopeSpans.spans (2) > Span.
        for (field, resource) in wire_fields(&bytes, 0..bytes.len())? {
            if field != (1, WireValue::Len) {
                continue;
            }
            for (field, scope) in wire_fields(&bytes, resource)? {
                if field != (2, WireValue::Len) {
                    continue;
                }
                for (field, span) in wire_fields(&bytes, scope)? {
                    if field == (2, WireValue::Len) {
                        template.locate_span(&bytes, span)?;
                    }
                }
            }
        }
        template.bytes = bytes;
        Ok(template)
    }

    fn locate_span(&mut self, bytes: &[u8], span: Range<usize>) -> Result<(), TemplateError> {
        for (field, value) in wire_fields(bytes, span)? {
            match (field, value.len()) {
                ((1, WireValue::Len), 16) => self.trace_ids.push(value.start),
                ((2 | 4, WireValue::Len), 8) => self.span_ids.push(value.start),
                ((2 | 4, WireValue::Len), 0) => {}
                ((1, WireValue::Len), _) | ((2 | 4, WireValue::Len), _) => {
                    return Err(TemplateError("an id of an unexpected length"));
                }
                ((7 | 8, WireValue::Fixed64), 8) => {
                    if field.0 == 7 {
                        let start = u64::from_le_bytes(
                            bytes[value.clone()].try_into().expect("eight bytes"),
                        );
                        self.first_start_ns = self.first_start_ns.min(start);
                    }
                    self.times.push(value.start);
                }
                ((11 | 13, _), _) => return Err(TemplateError("a span with events or links")),
                _ => {}
            }
        }
        Ok(())
    }

    /// Spans in the request.
    pub fn spans(&self) -> usize {
        self.trace_ids.len()
    }

    /// The encoded request as copy `key` (unique per copy sent), into `out`, its times moved
    /// forward so that its first span starts at `now_ns`; returns the traces it completes,
    /// with the copy's ids.
    pub fn stamp(&self, key: u64, now_ns: u64, out: &mut Vec<u8>) -> Vec<[u8; 16]> {
        let first = scramble(key ^ 0x5bd1_e995_9e37_79b9);
        let mut trace_mask = [0u8; 16];
        trace_mask[..8].copy_from_slice(&first.to_le_bytes());
        trace_mask[8..].copy_from_slice(&scramble(first).to_le_bytes());
        let span_mask = scramble(first ^ scramble(first)).to_le_bytes();
        let shift = now_ns.saturating_sub(self.first_start_ns);
        out.clear();
        out.extend_from_slice(&self.bytes);
        for &at in &self.trace_ids {
            xor_into(&mut out[at..at + 16], &trace_mask);
        }
        for &at in &self.span_ids {
            xor_into(&mut out[at..at + 8], &span_mask);
        }
        for &at in &self.times {
            let field: &mut [u8; 8] = (&mut out[at..at + 8]).try_into().expect("eight bytes");
            *field = u64::from_le_bytes(*field).wrapping_add(shift).to_le_bytes();
        }
        self.completed
            .iter()
            .map(|id| {
                let mut id = *id;
                xor_into(&mut id, &trace_mask);
                id
            })
            .collect()
    }
}

fn xor_into(bytes: &mut [u8], mask: &[u8]) {
    for (byte, mask) in bytes.iter_mut().zip(mask) {
        *byte ^= mask;
    }
}

/// How a protobuf field's value is laid out, of the kinds a trace request holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireValue {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A field's number and kind, and where its value lies.
type WireField = ((u64, WireValue), Range<usize>);

/// The fields of the protobuf message in `bytes[range]`: each field's number and kind, and
/// where its value lies (a varint's value is not read).
fn wire_fields(bytes: &[u8], range: Range<usize>) -> Result<Vec<WireField>, TemplateError> {
    fn varint(bytes: &[u8], at: &mut usize, end: usize) -> Result<u64, TemplateError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes[..end]
                .get(*at)
                .ok_or(TemplateError("a varint past the end"))?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(TemplateError("a varint of more than ten bytes"))
    }
    let mut fields = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let key = varint(bytes, &mut at, range.end)?;
        let (kind, len) = match key & 7 {
            0 => {
                let start = at;
                varint(bytes, &mut at, range.end)?;
                fields.push(((key >> 3, WireValue::Varint), start..at));
                continue;
            }
            1 => (WireValue::Fixed64, 8),
            2 => (
                WireValue::Len,
                usize::try_from(varint(bytes, &mut at, range.end)?)
                    .map_err(|_| TemplateError("a length too large"))?,
            ),
            5 => (WireValue::Fixed32, 4),
            _ => return Err(TemplateError("a group or an unknown wire type")),
        };
        let end = at
            .checked_add(len)
            .filter(|&end| end <= range.end)
            .ok_or(TemplateError("a field past the end of its message"))?;
        fields.push(((key >> 3, kind), at..end));
        at = end;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use opentelemetry_proto::tonic::trace::v1::Span;

    use super::*;
    use crate::synthetic::{Convention, Shape, make_request};

    /// A copy of a template is the request it was made of, but for its ids, which are its
    /// own and keep each trace's spans together under their root, and its times, which start
    /// when the copy is made.
    #[test]
    fn a_template_copy_is_its_request_with_ids_and_times_of_its_own() {
        use prost::Message as _;
        let shape = Shape {
            spans_per_request: 20,
            spans_per_trace: 5,
            text_bytes: 64,
            convention: Convention::Mix,
            late_roots: false,
        };
        let (request, completed) = make_request(&shape, 9, 2, 4);
        let template = Template::new(&request, completed.clone()).unwrap();
        assert_eq!(template.spans(), 20);
        let original = &request.resource_spans[0].scope_spans[0].spans;
        let first_start = original
            .iter()
            .map(|span| span.start_time_unix_nano)
            .min()
            .unwrap();
        let later = first_start + 5_000_000_000;
        let mut bytes = Vec::new();
        let copies: Vec<(Vec<Span>, Vec<[u8; 16]>)> = [1, 2]
            .into_iter()
            .map(|key| {
                let traces = template.stamp(key, later, &mut bytes);
                let copy = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
                assert_eq!(
                    copy.resource_spans[0].resource,
                    request.resource_spans[0].resource
                );
                (copy.resource_spans[0].scope_spans[0].spans.clone(), traces)
            })
            .collect();
        for (spans, traces) in &copies {
            assert_eq!(spans.len(), original.len());
            let mut trace_of = std::collections::HashMap::new();
            let mut span_of = std::collections::HashMap::new();
            for (copy, span) in spans.iter().zip(original) {
                assert_ne!(copy.trace_id, span.trace_id);
                assert_ne!(copy.span_id, span.span_id);
                // One copy's trace for each original trace, one span id for each original one.
                assert_eq!(
                    trace_of
                        .entry(span.trace_id.clone())
                        .or_insert(copy.trace_id.clone()),
                    &copy.trace_id
                );
                span_of.insert(span.span_id.clone(), copy.span_id.clone());
                assert_eq!(
                    copy.start_time_unix_nano,
                    span.start_time_unix_nano + 5_000_000_000
                );
                assert_eq!(
                    copy.end_time_unix_nano,
                    span.end_time_unix_nano + 5_000_000_000
                );
                assert_eq!(copy.attributes, span.attributes);
                assert_eq!((&copy.name, copy.kind), (&span.name, span.kind));
            }
            for (copy, span) in spans.iter().zip(original) {
                if span.parent_span_id.is_empty() {
                    assert!(copy.parent_span_id.is_empty());
                } else {
                    assert_eq!(copy.parent_span_id, span_of[&span.parent_span_id]);
                }
            }
            let expected: Vec<[u8; 16]> = completed
                .iter()
                .map(|id| trace_of[&id.to_vec()].as_slice().try_into().unwrap())
                .collect();
            assert_eq!(traces, &expected);
        }
        let ids = |spans: &[Span]| -> HashSet<Vec<u8>> {
            spans
                .iter()
                .flat_map(|span| [span.trace_id.clone(), span.span_id.clone()])
                .collect()
        };
        assert!(ids(&copies[0].0).is_disjoint(&ids(&copies[1].0)));
    }

    #[test]
    fn a_template_refuses_spans_whose_events_it_would_not_move() {
        let shape = Shape {
            spans_per_request: 2,
            spans_per_trace: 2,
            text_bytes: 8,
            convention: Convention::Genai,
            late_roots: false,
        };
        let (mut request, completed) = make_request(&shape, 1, 0, 0);
        request.resource_spans[0].scope_spans[0].spans[1]
            .events
            .push(Default::default());
        let error = Template::new(&request, completed).err().unwrap();
        assert!(error.to_string().contains("events or links"), "{error}");
    }
}
