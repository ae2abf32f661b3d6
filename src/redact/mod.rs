//! Redaction of personal data and secrets at ingest (SPEC §9, project setting `redact`).
//!
//! A project's rules — built-in detectors (`email`, `phone`, `credit_card`, `ip_address`,
//! `secret`) and custom regular expressions — compile once per settings version into a
//! [`Redactor`], which rewrites every string value of the spans and content events of a request
//! before anything else sees them: sampling and filters, normalization, storage, the spool, the
//! search index and the logs. A match is replaced by `[REDACTED:<detector>]` (a custom rule's
//! replacement, `[REDACTED]` by default).
//!
//! Most values hold nothing to redact, so that path is the cheap one: one pass over a value's
//! bytes counts what the detectors need (an `@`, enough digits, dots or colons) and a regular
//! expression only runs on a value that could match it. Attribute keys, scope names and
//! versions, schema URLs and trace states are never rewritten.
//!
//! Pure: imports only `model`.

mod detectors;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use crate::model::project::RedactRule;
use crate::model::{AttrValue, Event, KeyValue, Resource, Scope, Span};
use detectors::{Detector, Profile};

pub use detectors::DETECTORS;

/// Most custom rules a project may have.
pub const MAX_CUSTOM_RULES: usize = 50;
/// Longest custom pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1000;
/// Most memory one compiled custom pattern may take (`RegexBuilder::size_limit`).
const CUSTOM_SIZE_LIMIT: usize = 1 << 20;
/// Most rounds of built-in detection over a value: a replacement can, rarely, join two pieces
/// of text into a new match; the rounds stop as soon as one changes nothing.
const MAX_ROUNDS: usize = 8;

/// Why rules cannot be compiled; names the rule by its index in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("redact[{index}]: unknown detector {name:?}; one of {}", DETECTORS.join(", "))]
    UnknownDetector { index: usize, name: String },
    #[error("redact[{index}]: pattern {pattern:?} is not a valid regular expression: {message}")]
    Pattern {
        index: usize,
        pattern: String,
        message: String,
    },
    #[error("redact[{index}]: {message}")]
    Invalid { index: usize, message: String },
    #[error("at most {MAX_CUSTOM_RULES} custom redaction patterns")]
    TooManyPatterns,
}

/// A custom rule, compiled.
#[derive(Debug)]
struct CustomRule {
    regex: Regex,
    replacement: String,
}

/// A project's redaction rules, compiled once per settings version; shared by the threads of
/// the ingest path.
#[derive(Debug)]
pub struct Redactor {
    /// The built-in detectors, in order of precedence where matches overlap.
    detectors: Vec<Detector>,
    customs: Vec<CustomRule>,
}

/// A match to replace.
struct Replacement<'a> {
    range: Range<usize>,
    text: &'a str,
}

impl Redactor {
    /// Compiles rules; `Ok(None)` when there are none.
    pub fn new(rules: &[RedactRule]) -> Result<Option<Redactor>, RedactError> {
        let mut detectors = Vec::new();
        let mut customs = Vec::new();
        let mut names = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            match rule {
                RedactRule::Detector(name) => {
                    if names.contains(&name.as_str()) {
                        continue;
                    }
                    let Some(compiled) = Detector::named(name) else {
                        return Err(RedactError::UnknownDetector {
                            index,
                            name: name.clone(),
                        });
                    };
                    names.push(name.as_str());
                    detectors.extend(compiled);
                }
                RedactRule::Custom(custom) => {
                    customs.push(compile_custom(index, &custom.pattern, &custom.replacement)?);
                }
            }
        }
        if customs.len() > MAX_CUSTOM_RULES {
            return Err(RedactError::TooManyPatterns);
        }
        // Secrets first: a key or token may hold what looks like an email or a number.
        detectors.sort_by_key(|detector| {
            DETECTORS
                .iter()
                .position(|name| *name == detector.name)
                .map_or(0, |position| {
                    usize::from(detector.name != "secret") * (position + 1)
                })
        });
        if detectors.is_empty() && customs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Redactor { detectors, customs }))
    }

    /// Redacts a text in place; whether it changed.
    pub fn redact_text(&self, text: &mut String) -> bool {
        let Some(redacted) = self.redacted(text) else {
            return false;
        };
        *text = redacted;
        true
    }

    /// The redacted text, or `None` when nothing in it matches.
    fn redacted(&self, text: &str) -> Option<String> {
        let mut current = self.round(text, true)?;
        for _ in 1..MAX_ROUNDS {
            match self.round(&current, false) {
                Some(next) => current = next,
                None => break,
            }
        }
        Some(current)
    }

    /// One pass of every detector (and, in the first round, every custom rule) over a text.
    fn round(&self, text: &str, with_customs: bool) -> Option<String> {
        let mut found: Vec<Replacement> = Vec::new();
        let mut ranges = Vec::new();
        if !self.detectors.is_empty() {
            let mut profile = Profile::of(text);
            for detector in &self.detectors {
                if !detector.may_match(&mut profile) {
                    continue;
                }
                detector.find(text, &mut ranges);
                let replacement = replacement_of(detector.name);
                found.extend(ranges.drain(..).map(|range| Replacement {
                    range,
                    text: replacement,
                }));
            }
        }
        if with_customs {
            for custom in &self.customs {
                found.extend(
                    custom
                        .regex
                        .find_iter(text)
                        .filter(|found| !found.is_empty())
                        .map(|found| Replacement {
                            range: found.range(),
                            text: &custom.replacement,
                        }),
                );
            }
        }
        if found.is_empty() {
            return None;
        }
        // Earliest first; at one start, the longest; at equal length, the first rule (stable).
        found.sort_by(|a, b| {
            a.range
                .start
                .cmp(&b.range.start)
                .then(b.range.end.cmp(&a.range.end))
        });
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for replacement in found {
            if replacement.range.start < copied {
                continue;
            }
            out.push_str(&text[copied..replacement.range.start]);
            out.push_str(replacement.text);
            copied = replacement.range.end;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    /// Redacts every string value of an attribute value, nested ones included; how many
    /// string values changed.
    pub fn redact_value(&self, value: &mut AttrValue) -> usize {
        match value {
            AttrValue::String(text) => usize::from(self.redact_text(text)),
            AttrValue::Array(items) => items.iter_mut().map(|item| self.redact_value(item)).sum(),
            AttrValue::Map(entries) => self.redact_attributes(entries),
            AttrValue::Empty
            | AttrValue::Bool(_)
            | AttrValue::Int(_)
            | AttrValue::Double(_)
            | AttrValue::Bytes(_) => 0,
        }
    }

    /// Redacts the values (never the keys) of attributes; how many string values changed.
    pub fn redact_attributes(&self, attributes: &mut [KeyValue]) -> usize {
        attributes
            .iter_mut()
            .map(|entry| self.redact_value(&mut entry.value))
            .sum()
    }

    /// Redacts an event's name and attributes (a log record's body among them); how many
    /// values changed.
    pub fn redact_event(&self, event: &mut Event) -> usize {
        usize::from(self.redact_text(&mut event.name))
            + self.redact_attributes(&mut event.attributes)
    }

    /// Redacts what belongs to the span alone: its name, status message, attributes, events
    /// and links' attributes; its resource and scope are shared with other spans and done by
    /// [`Redactor::redact_shared`]. How many values changed.
    pub fn redact_span(&self, span: &mut Span) -> usize {
        let mut changed = usize::from(self.redact_text(&mut span.name));
        changed += usize::from(self.redact_text(&mut span.status.message));
        changed += self.redact_attributes(&mut span.attributes);
        for event in &mut span.events {
            changed += self.redact_event(event);
        }
        for link in &mut span.links {
            changed += self.redact_attributes(&mut link.attributes);
        }
        changed
    }

    /// Redacts the resources' and scopes' attributes of spans, each shared resource or scope
    /// once (spans of one `ResourceSpans` hold the same one); how many values changed.
    pub fn redact_shared(&self, spans: &mut [Span]) -> usize {
        let mut changed = 0;
        let mut resources: Vec<(*const Resource, Arc<Resource>)> = Vec::new();
        let mut scopes: Vec<(*const Scope, Arc<Scope>)> = Vec::new();
        for span in spans {
            let resource_key = Arc::as_ptr(&span.resource);
            match resources.iter().find(|(key, _)| *key == resource_key) {
                Some((_, done)) => span.resource = Arc::clone(done),
                None => {
                    let mut resource = Resource::clone(&span.resource);
                    let resource_changed = self.redact_attributes(&mut resource.attributes);
                    if resource_changed > 0 {
                        changed += resource_changed;
                        span.resource = Arc::new(resource);
                    }
                    resources.push((resource_key, Arc::clone(&span.resource)));
                }
            }
            let scope_key = Arc::as_ptr(&span.scope);
            match scopes.iter().find(|(key, _)| *key == scope_key) {
                Some((_, done)) => span.scope = Arc::clone(done),
                None => {
                    let mut scope = Scope::clone(&span.scope);
                    let scope_changed = self.redact_attributes(&mut scope.attributes);
                    if scope_changed > 0 {
                        changed += scope_changed;
                        span.scope = Arc::new(scope);
                    }
                    scopes.push((scope_key, Arc::clone(&span.scope)));
                }
            }
        }
        changed
    }
}

/// The replacement of a built-in detector.
fn replacement_of(name: &str) -> &'static str {
    match name {
        "email" => "[REDACTED:email]",
        "phone" => "[REDACTED:phone]",
        "credit_card" => "[REDACTED:credit_card]",
        "ip_address" => "[REDACTED:ip_address]",
        _ => "[REDACTED:secret]",
    }
}

fn compile_custom(
    index: usize,
    pattern: &str,
    replacement: &Option<String>,
) -> Result<CustomRule, RedactError> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return Err(RedactError::Invalid {
            index,
            message: format!("a pattern must have 1 to {MAX_PATTERN_LEN} bytes"),
        });
    }
    if replacement
        .as_ref()
        .is_some_and(|replacement| replacement.len() > MAX_PATTERN_LEN)
    {
        return Err(RedactError::Invalid {
            index,
            message: format!("a replacement must have at most {MAX_PATTERN_LEN} bytes"),
        });
    }
    let regex = RegexBuilder::new(pattern)
        .size_limit(CUSTOM_SIZE_LIMIT)
        .dfa_size_limit(CUSTOM_SIZE_LIMIT)
        .build()
        .map_err(|error| RedactError::Pattern {
            index,
            pattern: pattern.to_owned(),
            message: error.to_string(),
        })?;
    Ok(CustomRule {
        regex,
        replacement: replacement
            .clone()
            .unwrap_or_else(|| "[REDACTED]".to_owned()),
    })
}
