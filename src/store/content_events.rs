//! GenAI content events as both backends keep them: the attributes as stored JSON and a
//! fingerprint that makes a retried log record a duplicate, and the event read back for the
//! normalizer.

use sha2::{Digest as _, Sha256};

use super::{StoreError, StoreResult};
use crate::model::attributes::{from_stored_json, to_stored_json};
use crate::model::{ContentEvent, Event};

/// A content event ready to store: its attributes as JSON, and the first 16 bytes of a SHA-256
/// over its time, name and attributes (a retried record has the same).
pub struct StoredContent {
    /// The event's attributes, as `model::attributes::to_stored_json` writes them.
    pub attributes: String,
    /// Deduplicates retries: (project, trace, span, fingerprint) is stored once.
    pub fingerprint: [u8; 16],
}

impl StoredContent {
    pub fn of(content: &ContentEvent) -> Self {
        let attributes = to_stored_json(&content.event.attributes);
        let mut hash = Sha256::new();
        hash.update(content.event.time_unix_nano.to_be_bytes());
        hash.update(content.event.name.as_bytes());
        hash.update([0]);
        hash.update(attributes.as_bytes());
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&hash.finalize()[..16]);
        Self {
            attributes,
            fingerprint,
        }
    }
}

/// A stored content event as the normalizer takes it.
pub fn event_from_stored(
    time_unix_nano: u64,
    name: String,
    attributes: &str,
) -> StoreResult<Event> {
    Ok(Event {
        time_unix_nano,
        name,
        attributes: from_stored_json(attributes)
            .map_err(|error| StoreError::Corrupt(format!("content event: {error}")))?,
        dropped_attributes_count: 0,
    })
}
