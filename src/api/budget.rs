//! A memory budget for request bodies in flight: every OTLP/HTTP request reserves room for its
//! body before reading it, and for its decompressed body before decoding it. When the budget is
//! spent the request is answered 503 with `Retry-After` at once, so a flood of large requests
//! cannot grow memory past the budget (plus the bounded ingest queue).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Permits count kibibytes.
const UNIT: usize = 1024;

#[derive(Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
}

/// Room reserved in the budget, given back when dropped.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    pub fn new(total_bytes: usize) -> Self {
        let total_units = total_bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
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
