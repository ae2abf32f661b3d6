//! Admission: a memory budget for request bodies in flight, and the slots bodies are decoded
//! in. Every OTLP request reserves room for its body before reading it, and for its decoded
//! form while it inflates and decodes. When the budget is spent the request is answered 503
//! with `Retry-After` at once, so a flood of large requests cannot grow memory past the budget
//! (plus the bounded ingest queue).
//!
//! No project may hold more than its share of the budget ([`Admission::new`]): a client
//! trickling bodies, or a project sending more than it should, is refused its next body while
//! every other project's requests are still admitted.
//!
//! Bodies are decoded and prepared a few at a time ([`Admission::decode_slot`]): each takes
//! several times its size while it is decoded, normalized and compressed, and on busy cores
//! more of them at once only hold more memory, not finish sooner. The others wait with their
//! bodies alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Memory a decoded body takes, as a multiple of its decompressed size: the decompressed
/// bytes, the protobuf structures, and spanhouse's spans with their normalized copies. An
/// estimate that errs high; BENCHMARKS.md's overload step checks it against resident memory.
pub const DECODED_SIZE_FACTOR: usize = 4;

/// Permits count kibibytes.
const UNIT: usize = 1024;

/// The memory budget, its per-project shares and the decode slots; cheap to clone.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    /// The most one project may hold at once.
    project_units: usize,
    /// What each project holds now.
    held: Mutex<HashMap<String, usize>>,
    decoders: Arc<Semaphore>,
}

/// Room reserved in the budget for one project, given back when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
    project: String,
    inner: Arc<Inner>,
}

impl Admission {
    /// A budget of `total_bytes`, of which one project may hold `project_share` (0 < share ≤ 1).
    pub fn new(total_bytes: usize, project_share: f64) -> Self {
        let total_units = total_bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        let share = if project_share.is_finite() {
            project_share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let project_units = ((total_units as f64 * share) as usize).clamp(1, total_units);
        // One more than the cores: a core never waits for a body to decode while the
        // writer takes one.
        let decoders = std::thread::available_parallelism().map_or(1, usize::from) + 1;
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(total_units)),
                project_units,
                held: Mutex::default(),
                decoders: Arc::new(Semaphore::new(decoders)),
            }),
        }
    }

    /// Waits for a slot to decode and prepare a body in; held until that is done.
    pub async fn decode_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.inner.decoders)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))
    }

    /// Reserves `bytes` for a project, or answers 503 when the budget, or the project's share
    /// of it, cannot hold them now. More than a share reserves the whole share, so that one
    /// large body still gets through when nothing else is in flight.
    pub fn reserve(&self, project_id: &str, bytes: usize) -> Result<Reservation, ApiError> {
        let mut reservation = Reservation {
            permit: None,
            units: 0,
            project: project_id.to_owned(),
            inner: Arc::clone(&self.inner),
        };
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }
}

impl Reservation {
    /// Grows the reservation to hold `bytes` in all (it never shrinks), or answers 503 as
    /// [`Admission::reserve`] does; what it held stays held.
    pub fn grow_to(&mut self, bytes: usize) -> Result<(), ApiError> {
        let inner = &self.inner;
        let wanted = bytes.div_ceil(UNIT).min(inner.project_units);
        if wanted <= self.units {
            return Ok(());
        }
        let more = wanted - self.units;
        let mut held = inner.held.lock().unwrap_or_else(PoisonError::into_inner);
        let holding = held.get(&self.project).copied().unwrap_or(0);
        if holding + more > inner.project_units {
            return Err(ApiError::unavailable(
                "this project's request bodies in flight hold its share of the server's memory; \
                 retry later",
            ));
        }
        let permit = Arc::clone(&inner.permits)
            .try_acquire_many_owned(more as u32)
            .map_err(|_| ApiError::unavailable("too many request bodies in flight; retry later"))?;
        *held.entry(self.project.clone()).or_default() += more;
        drop(held);
        match &mut self.permit {
            Some(existing) => existing.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.units == 0 {
            return;
        }
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(holding) = held.get_mut(&self.project) {
            *holding = holding.saturating_sub(self.units);
            if *holding == 0 {
                held.remove(&self.project);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_decoded_a_few_at_a_time() {
        let admission = Admission::new(1024, 1.0);
        let slots = std::thread::available_parallelism().map_or(1, usize::from) + 1;
        let mut held = Vec::new();
        for _ in 0..slots {
            held.push(admission.decode_slot().await.unwrap());
        }
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.decode_slot().await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a slot past the cores was given");
        held.pop();
        waiting.await.unwrap().unwrap();
    }

    #[test]
    fn reservations_are_given_back() {
        let admission = Admission::new(10 * 1024, 1.0);
        let first = admission.reserve("p", 8 * 1024).unwrap();
        assert!(admission.reserve("p", 4 * 1024).is_err());
        drop(first);
        assert!(admission.reserve("p", 4 * 1024).is_ok());
        assert!(admission.reserve("p", 0).is_ok());
        // More than the whole budget reserves all of it rather than failing forever.
        assert!(admission.reserve("p", 1024 * 1024).is_ok());
    }

    #[test]
    fn one_project_holds_at_most_its_share() {
        let admission = Admission::new(100 * 1024, 0.5);
        let greedy = admission.reserve("greedy", 40 * 1024).unwrap();
        let refused = admission.reserve("greedy", 20 * 1024).err().unwrap();
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("share"), "{}", refused.message);
        // Another project still gets in while the first holds its share.
        let other = admission.reserve("other", 40 * 1024).unwrap();
        drop(greedy);
        assert!(admission.reserve("greedy", 20 * 1024).is_ok());
        drop(other);
    }

    #[test]
    fn a_reservation_grows_within_the_share_and_keeps_what_it_held() {
        let admission = Admission::new(100 * 1024, 0.5);
        let mut growing = admission.reserve("p", 10 * 1024).unwrap();
        growing.grow_to(50 * 1024).unwrap();
        // Past the share, one body holds the whole share rather than failing forever.
        assert!(growing.grow_to(60 * 1024).is_ok());
        let _other = admission.reserve("q", 50 * 1024).unwrap();
        assert!(admission.reserve("r", 1024).is_err(), "the budget is spent");
        drop(growing);
        assert!(admission.reserve("r", 1024).is_ok());
    }
}
