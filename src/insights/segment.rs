//! The segments insights compare: the whole project, and each value of a trace field, a
//! metadata key or the tags; each with the filter-language condition that selects its traces.

use std::fmt;

use crate::store::insight_traces::InsightTrace;

/// What a segment groups traces by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Every trace: the whole project.
    Project,
    /// A model of the trace's LLM calls.
    Model,
    /// `pipeline_id`.
    PipelineId,
    /// `service_name`.
    ServiceName,
    /// `root_span_name`.
    RootSpanName,
    /// A value of the trace metadata key.
    Metadata(String),
    /// A tag.
    Tag,
}

impl fmt::Display for Field {
    /// The field as the filter language names it (`project` for the whole project).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Project => formatter.write_str("project"),
            Field::Model => formatter.write_str("model"),
            Field::PipelineId => formatter.write_str("pipeline_id"),
            Field::ServiceName => formatter.write_str("service_name"),
            Field::RootSpanName => formatter.write_str("root_span_name"),
            Field::Metadata(key) => write!(formatter, "metadata[{}]", quote(key)),
            Field::Tag => formatter.write_str("tags"),
        }
    }
}

/// A set of traces: those whose `field` has `value` (every trace for [`Field::Project`], whose
/// value is empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    /// What it groups by.
    pub field: Field,
    /// The value its traces have.
    pub value: String,
}

impl Segment {
    /// The whole project.
    pub fn project() -> Self {
        Self {
            field: Field::Project,
            value: String::new(),
        }
    }

    /// The filter-language condition that selects the segment's traces; `None` for the
    /// whole project.
    pub fn condition(&self) -> Option<String> {
        match self.field {
            Field::Project => None,
            _ => Some(format!("{} == {}", self.field, quote(&self.value))),
        }
    }

    /// Whether `trace` belongs to the segment, as [`Self::condition`] decides it.
    pub fn contains(&self, trace: &InsightTrace) -> bool {
        let is = |value: &Option<String>| value.as_deref() == Some(self.value.as_str());
        match &self.field {
            Field::Project => true,
            Field::Model => trace.models.contains(&self.value),
            Field::PipelineId => is(&trace.pipeline_id),
            Field::ServiceName => is(&trace.service_name),
            Field::RootSpanName => is(&trace.root_span_name),
            Field::Metadata(key) => trace
                .metadata
                .iter()
                .any(|(k, v)| k == key && *v == self.value),
            Field::Tag => trace.tags.contains(&self.value),
        }
    }

    /// Every segment `trace` belongs to, each once, the whole project first.
    pub fn all_of(trace: &InsightTrace) -> Vec<Segment> {
        let mut segments = vec![Segment::project()];
        let mut add = |field: Field, value: &str| {
            let segment = Segment {
                field,
                value: value.to_owned(),
            };
            if !segments.contains(&segment) {
                segments.push(segment);
            }
        };
        for model in &trace.models {
            add(Field::Model, model);
        }
        for (field, value) in [
            (Field::PipelineId, &trace.pipeline_id),
            (Field::ServiceName, &trace.service_name),
            (Field::RootSpanName, &trace.root_span_name),
        ] {
            if let Some(value) = value {
                add(field, value);
            }
        }
        for (key, value) in &trace.metadata {
            add(Field::Metadata(key.clone()), value);
        }
        for tag in &trace.tags {
            add(Field::Tag, tag);
        }
        segments
    }
}

/// A string literal of the filter language: double-quoted, with `\\`, `\"`, `\n` and `\t`
/// escaped.
pub fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The conditions joined with `and`, each in parentheses when there are several; `None` when
/// there are none (empty ones are left out).
pub fn conjunction(parts: impl IntoIterator<Item = String>) -> Option<String> {
    let parts: Vec<String> = parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .collect();
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(
            parts
                .iter()
                .map(|part| format!("({part})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::query::parse_trace_filter;

    #[test]
    fn conditions_parse_and_quote_what_needs_it() {
        let segment = Segment {
            field: Field::Metadata("team \"a\"".into()),
            value: "back\\slash\nline".into(),
        };
        let condition = segment.condition().unwrap();
        assert_eq!(
            condition,
            r#"metadata["team \"a\""] == "back\\slash\nline""#
        );
        parse_trace_filter(&condition).unwrap();
        for field in [
            Field::Model,
            Field::PipelineId,
            Field::ServiceName,
            Field::RootSpanName,
            Field::Tag,
        ] {
            let condition = Segment {
                field,
                value: "x".into(),
            }
            .condition()
            .unwrap();
            parse_trace_filter(&condition).unwrap();
        }
        assert_eq!(Segment::project().condition(), None);
        let both = conjunction(["status == \"ok\"".into(), String::new(), condition]).unwrap();
        parse_trace_filter(&format!("{both} and not (model == \"m\")")).unwrap();
    }

    #[test]
    fn a_trace_is_in_each_of_its_segments_once() {
        let trace = InsightTrace {
            models: vec!["a".into(), "a".into(), "b".into()],
            pipeline_id: Some("p".into()),
            metadata: vec![("k".into(), "v".into())],
            tags: vec!["t".into()],
            ..Default::default()
        };
        let segments = Segment::all_of(&trace);
        assert_eq!(segments.len(), 6);
        assert!(segments.iter().all(|segment| segment.contains(&trace)));
        let other = Segment {
            field: Field::Metadata("k".into()),
            value: "w".into(),
        };
        assert!(!other.contains(&trace));
    }
}
