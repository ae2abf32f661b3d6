//! Scores (SPEC §8): a judgement of a trace or one of its spans — a number, a boolean or a
//! category — with who gave it and why. Parsed and checked here; stored by the store.

use serde_json::Value;

use super::ids::{SpanId, TraceId};

/// The most scores one request may carry.
pub const MAX_SCORES_PER_REQUEST: usize = 1000;
/// The longest name, id, source and categorical value, in bytes.
const MAX_SHORT_TEXT: usize = 256;
/// The longest comment, in bytes.
const MAX_COMMENT: usize = 16 * 1024;

/// A score's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreValue {
    /// A finite number.
    Numeric(f64),
    /// `true` or `false` (counted as 1 and 0 in means).
    Boolean(bool),
    /// A label.
    Categorical(String),
}

impl ScoreValue {
    /// `numeric`, `boolean` or `categorical`.
    pub fn data_type(&self) -> &'static str {
        match self {
            Self::Numeric(_) => "numeric",
            Self::Boolean(_) => "boolean",
            Self::Categorical(_) => "categorical",
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Numeric(number) => serde_json::json!(number),
            Self::Boolean(flag) => Value::Bool(*flag),
            Self::Categorical(label) => Value::String(label.clone()),
        }
    }

    /// The value as the stores keep it: a number (booleans as 1 and 0) or a label.
    pub fn to_columns(&self) -> (Option<f64>, Option<&str>) {
        match self {
            Self::Numeric(number) => (Some(*number), None),
            Self::Boolean(flag) => (Some(f64::from(u8::from(*flag))), None),
            Self::Categorical(label) => (None, Some(label)),
        }
    }

    /// The value of a stored `data_type`, number and label; `None` when they do not fit.
    pub fn from_columns(
        data_type: &str,
        number: Option<f64>,
        label: Option<String>,
    ) -> Option<Self> {
        match data_type {
            "numeric" => number.map(Self::Numeric),
            "boolean" => number.map(|number| Self::Boolean(number != 0.0)),
            "categorical" => Some(Self::Categorical(label.unwrap_or_default())),
            _ => None,
        }
    }

    /// The value a mean counts: numbers as they are, booleans as 1 and 0, labels not at all.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Numeric(number) => Some(*number),
            Self::Boolean(flag) => Some(f64::from(u8::from(*flag))),
            Self::Categorical(_) => None,
        }
    }
}

/// One score as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The client's id, or one the server made; sending it again replaces the score.
    pub id: String,
    /// The trace judged (it may not have arrived yet).
    pub trace_id: TraceId,
    /// The span judged, when the score is about one span.
    pub span_id: Option<SpanId>,
    /// What is judged (`helpfulness`, `user_feedback` …).
    pub name: String,
    /// The judgement.
    pub value: ScoreValue,
    /// Why, in the reviewer's words.
    pub comment: Option<String>,
    /// Who gave it: `api` unless the client says (`ui` from the web UI).
    pub source: String,
    /// When the server took it, in nanoseconds since the Unix epoch.
    pub created_at_unix_nano: u64,
}

/// Why a score of a request was refused: which score (its index) and which field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("score {index}: {field}: {reason}")]
pub struct ScoreError {
    /// The score's position in the request (0 for a request of one score).
    pub index: usize,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn short_text(
    index: usize,
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, ScoreError> {
    let error = |reason: &str| ScoreError {
        index,
        field,
        reason: reason.to_owned(),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Err(error("must not be empty")),
        Some(Value::String(text)) if text.len() > MAX_SHORT_TEXT => {
            Err(error("longer than 256 bytes"))
        }
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(error("must be a string")),
    }
}

/// Reads one score of a request. `make_id` gives the id of a score that has none.
pub fn parse_score(
    index: usize,
    value: &Value,
    now_unix_nano: u64,
    make_id: &mut dyn FnMut() -> String,
) -> Result<Score, ScoreError> {
    let error = |field: &'static str, reason: &str| ScoreError {
        index,
        field,
        reason: reason.to_owned(),
    };
    let Value::Object(fields) = value else {
        return Err(error("score", "must be an object"));
    };
    for key in fields.keys() {
        if !matches!(
            key.as_str(),
            "id" | "trace_id" | "span_id" | "name" | "value" | "comment" | "source"
        ) {
            return Err(ScoreError {
                index,
                field: "score",
                reason: format!("unknown field {key:?}"),
            });
        }
    }
    let trace_id = match fields.get("trace_id") {
        Some(Value::String(text)) => TraceId::parse_hex(text)
            .map_err(|_| error("trace_id", "must be 32 hexadecimal digits, not all zero"))?,
        Some(_) => return Err(error("trace_id", "must be a string")),
        None => return Err(error("trace_id", "is required")),
    };
    let span_id = match fields.get("span_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            SpanId::parse_hex(text)
                .map_err(|_| error("span_id", "must be 16 hexadecimal digits, not all zero"))?,
        ),
        Some(_) => return Err(error("span_id", "must be a string")),
    };
    let name = short_text(index, "name", fields.get("name"))?
        .ok_or_else(|| error("name", "is required"))?;
    let value = match fields.get("value") {
        Some(Value::Bool(flag)) => ScoreValue::Boolean(*flag),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(number) if number.is_finite() => ScoreValue::Numeric(number),
            _ => return Err(error("value", "must be a finite number")),
        },
        Some(Value::String(_)) => ScoreValue::Categorical(
            short_text(index, "value", fields.get("value"))?.unwrap_or_default(),
        ),
        Some(_) => return Err(error("value", "must be a number, a boolean or a string")),
        None => return Err(error("value", "is required")),
    };
    let comment = match fields.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.len() > MAX_COMMENT => {
            return Err(error("comment", "longer than 16 KiB"));
        }
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(error("comment", "must be a string")),
    };
    let id = match short_text(index, "id", fields.get("id"))? {
        Some(id) => id,
        None => make_id(),
    };
    let source = short_text(index, "source", fields.get("source"))?.unwrap_or_else(|| "api".into());
    Ok(Score {
        id,
        trace_id,
        span_id,
        name,
        value,
        comment,
        source,
        created_at_unix_nano: now_unix_nano,
    })
}

/// Reads the body of `POST /api/v1/scores`: one score, or `{"scores": [...]}`. Any invalid
/// score refuses the whole request; two scores with one id keep the last.
pub fn parse_scores(
    body: &Value,
    now_unix_nano: u64,
    make_id: &mut dyn FnMut() -> String,
) -> Result<Vec<Score>, ScoreError> {
    let items: Vec<&Value> = match body.get("scores") {
        Some(Value::Array(items)) if body.as_object().is_some_and(|fields| fields.len() == 1) => {
            items.iter().collect()
        }
        Some(_) if body.as_object().is_some_and(|fields| fields.len() == 1) => {
            return Err(ScoreError {
                index: 0,
                field: "scores",
                reason: "must be an array".into(),
            });
        }
        _ => vec![body],
    };
    if items.is_empty() || items.len() > MAX_SCORES_PER_REQUEST {
        return Err(ScoreError {
            index: 0,
            field: "scores",
            reason: "must hold 1 to 1000 scores".into(),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_score(index, item, now_unix_nano, make_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ids() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("made-{next}")
        }
    }

    #[test]
    fn one_score_or_a_batch() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let one = json!({"trace_id": trace, "name": "thumbs", "value": true});
        let scores = parse_scores(&one, 7, &mut ids()).unwrap();
        assert_eq!(scores.len(), 1);
        assert_eq!(scores[0].id, "made-1");
        assert_eq!(scores[0].source, "api");
        assert_eq!(scores[0].value, ScoreValue::Boolean(true));
        let batch = json!({"scores": [
            {"id": "a", "trace_id": trace, "name": "quality", "value": 0.5, "source": "ui"},
            {"trace_id": trace, "span_id": "b7ad6b7169203331", "name": "label", "value": "good",
             "comment": "fine"},
        ]});
        let scores = parse_scores(&batch, 7, &mut ids()).unwrap();
        assert_eq!(scores[0].id, "a");
        assert_eq!(scores[0].value.data_type(), "numeric");
        assert_eq!(scores[1].value.data_type(), "categorical");
        assert_eq!(scores[1].comment.as_deref(), Some("fine"));
    }

    #[test]
    fn a_bad_score_names_itself_and_its_field() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let cases = [
            (
                json!({"scores": [{"trace_id": trace, "name": "a", "value": 1},
                               {"trace_id": "xyz", "name": "a", "value": 1}]}),
                1,
                "trace_id",
            ),
            (json!({"trace_id": trace, "value": 1}), 0, "name"),
            (json!({"trace_id": trace, "name": "a"}), 0, "value"),
            (
                json!({"trace_id": trace, "name": "a", "value": [1]}),
                0,
                "value",
            ),
            (
                json!({"trace_id": trace, "name": "a", "value": 1, "span_id": "00"}),
                0,
                "span_id",
            ),
            (
                json!({"trace_id": trace, "name": "a", "value": 1, "extra": 1}),
                0,
                "score",
            ),
            (json!({"scores": []}), 0, "scores"),
            (json!({"scores": {}}), 0, "scores"),
            (json!([1]), 0, "score"),
        ];
        for (body, index, field) in cases {
            let error = parse_scores(&body, 0, &mut ids()).unwrap_err();
            assert_eq!(
                (error.index, error.field),
                (index, field),
                "{body}: {error}"
            );
        }
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        #[test]
        fn arbitrary_json_is_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
                let _ = parse_scores(&body, 0, &mut ids());
            }
        }
    }
}
