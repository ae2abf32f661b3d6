//! A memory budget for request bodies in flight: every OTLP/HTTP request reserves room for its
//! body before reading it, and for its decompressed body before decoding it. When the budget is
//! spent the request is answered 503 with `Retry-After` at once, so a flood of large requests
//! cannot grow memory past the budget (plus the bounded ingest queue).
//!
//! Large bodies are decoded and prepared a few at a time ([`MemoryBudget::decode_slot`]): each
//! takes several times its size while it is decoded, normalized and compressed, and on busy
//! cores more of them at once only hold more memory, not finish sooner. The others wait with
//! their bodies alone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Memory a decoded body takes, as a multiple of its encoded size: the decompressed bytes, the
/// protobuf structures, and spanhouse's spans with their normalized copies. An estimate that
/// errs high; the flood measurement in the issue notes checks it against resident memory.
pub const DECODED_SIZE_FACTOR: usize = 4;

/// Permits count kibibytes.
const UNIT: usize = 1024;

#[derive(Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
    decoders: Arc<Semaphore>,
}

/// Room reserved in the budget, given back when dropped.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    pub fn new(total_bytes: usize) -> Self {
        let total_units = total_bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        // One more than the cores: a core never waits for a body to decode while the
        // writer takes one.
        let decoders = std::thread::available_parallelism().map_or(1, usize::from) + 1;
        Self {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
            decoders: Arc::new(Semaphore::new(decoders)),
        }
    }

    /// Waits for a slot to decode and prepare a large body in; held until that is done.
    pub async fn decode_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.decoders)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))
    }

    /// Reserves `bytes`, or answers 503 when the budget cannot hold them now.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, ApiError> {
        let units = bytes.div_ceil(UNIT).min(self.total_units);
        if units == 0 {
            return Ok(Reservation { _permit: None });
        }
        let permit = Arc::clone(&self.permits)
            .try_acquire_many_owned(units as u32)
            .map_err(|_| ApiError::unavailable("too many request bodies in flight; retry later"))?;
        Ok(Reservation {
            _permit: Some(permit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_bodies_are_decoded_a_few_at_a_time() {
        let budget = MemoryBudget::new(1024);
        let slots = std::thread::available_parallelism().map_or(1, usize::from) + 1;
        let mut held = Vec::new();
        for _ in 0..slots {
            held.push(budget.decode_slot().await.unwrap());
        }
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.decode_slot().await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a slot past the cores was given");
        held.pop();
        waiting.await.unwrap().unwrap();
    }

    #[test]
    fn reservations_are_given_back() {
        let budget = MemoryBudget::new(10 * 1024);
        let first = budget.reserve(8 * 1024).unwrap();
        assert!(budget.reserve(4 * 1024).is_err());
        drop(first);
        assert!(budget.reserve(4 * 1024).is_ok());
        assert!(budget.reserve(0).is_ok());
        // More than the whole budget reserves all of it rather than failing forever.
        assert!(budget.reserve(1024 * 1024).is_ok());
    }
}
