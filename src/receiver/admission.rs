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
    /// The whole budget.
    total_units: usize,
    /// A project's share of it.
    project_units: usize,
    /// What each project holds now.
    held: Mutex<HashMap<String, Held>>,
    decoders: Arc<Semaphore>,
}

/// A project's room: promised (declared lengths of bodies not yet arrived) and received.
#[derive(Default, Clone, Copy)]
struct Held {
    promised: usize,
    received: usize,
}

/// Room reserved in the budget for one project, given back when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    promised: usize,
    received: usize,
    project: String,
    inner: Arc<Inner>,
}

/// Why a reservation is refused.
fn refused(project_share: bool) -> ApiError {
    if project_share {
        ApiError::unavailable(
            "this project's request bodies in flight hold its share of the server's memory; \
             retry later",
        )
    } else {
        ApiError::unavailable("too many request bodies in flight; retry later")
    }
}

impl Admission {
    /// A budget of `total_bytes`, of which one project may hold `project_share` (0 < share ≤ 1)
    /// in bodies announced and not yet arrived, and while other projects hold room too.
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
                total_units,
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

    /// Room for a body announced (its declared length) and not yet arrived: promised bytes a
    /// client may never send. A project's promises never pass its share, so clients that
    /// trickle bodies cannot take the room of other projects. More than a share promises the
    /// whole share, so that one large body still gets through.
    pub fn promise(&self, project_id: &str, bytes: usize) -> Result<Reservation, ApiError> {
        let mut reservation = self.empty(project_id);
        let units = bytes.div_ceil(UNIT).min(self.inner.project_units);
        if units > 0 {
            let mut held = lock(&self.inner.held);
            let holding = held.get(project_id).copied().unwrap_or_default();
            if holding.promised + units > self.inner.project_units {
                return Err(refused(true));
            }
            reservation.permit = Some(acquire(&self.inner, units)?);
            held.entry(project_id.to_owned()).or_default().promised += units;
            reservation.promised = units;
        }
        Ok(reservation)
    }

    /// Room for `bytes` that are here (a body read, a message decoded), or 503 as
    /// [`Reservation::grow_to`] says.
    pub fn reserve(&self, project_id: &str, bytes: usize) -> Result<Reservation, ApiError> {
        let mut reservation = self.empty(project_id);
        reservation.grow_to(bytes)?;
        Ok(reservation)
    }

    fn empty(&self, project_id: &str) -> Reservation {
        Reservation {
            permit: None,
            promised: 0,
            received: 0,
            project: project_id.to_owned(),
            inner: Arc::clone(&self.inner),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn acquire(inner: &Inner, units: usize) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&inner.permits)
        .try_acquire_many_owned(units as u32)
        .map_err(|_| refused(false))
}

impl Reservation {
    /// The announced body has arrived: what was promised is now received.
    pub fn arrived(&mut self) {
        if self.promised == 0 {
            return;
        }
        let mut held = lock(&self.inner.held);
        if let Some(holding) = held.get_mut(&self.project) {
            holding.promised = holding.promised.saturating_sub(self.promised);
            holding.received += self.promised;
        }
        self.received += self.promised;
        self.promised = 0;
    }

    /// Grows the reservation to hold `bytes` in all (it never shrinks), or answers 503; what it
    /// held stays held. Alone, a project may use the whole budget; while another project holds
    /// room too, it grows only within its share (a body larger than the share holds the share).
    pub fn grow_to(&mut self, bytes: usize) -> Result<(), ApiError> {
        let inner = Arc::clone(&self.inner);
        let mut held = lock(&inner.held);
        let others = held
            .iter()
            .any(|(project, room)| *project != self.project && room.promised + room.received > 0);
        let limit = if others {
            inner.project_units
        } else {
            inner.total_units
        };
        let current = self.promised + self.received;
        let wanted = bytes.div_ceil(UNIT).min(limit);
        if wanted <= current {
            return Ok(());
        }
        let more = wanted - current;
        let holding = held.get(&self.project).copied().unwrap_or_default();
        if others && holding.promised + holding.received + more > inner.project_units {
            return Err(refused(true));
        }
        let permit = acquire(&inner, more)?;
        held.entry(self.project.clone()).or_default().received += more;
        drop(held);
        match &mut self.permit {
            Some(existing) => existing.merge(permit),
            None => self.permit = Some(permit),
        }
        self.received += more;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.promised + self.received == 0 {
            return;
        }
        let mut held = lock(&self.inner.held);
        if let Some(holding) = held.get_mut(&self.project) {
            holding.promised = holding.promised.saturating_sub(self.promised);
            holding.received = holding.received.saturating_sub(self.received);
            if holding.promised + holding.received == 0 {
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
    fn promises_of_one_project_stay_within_its_share() {
        let admission = Admission::new(100 * 1024, 0.5);
        let stalled = admission.promise("greedy", 40 * 1024).unwrap();
        let refused = admission.promise("greedy", 20 * 1024).err().unwrap();
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("share"), "{}", refused.message);
        // Another project still gets in while the first holds its share.
        let other = admission.promise("other", 40 * 1024).unwrap();
        drop(stalled);
        assert!(admission.promise("greedy", 20 * 1024).is_ok());
        drop(other);
    }

    #[test]
    fn alone_a_project_uses_the_whole_budget_beside_others_its_share() {
        let admission = Admission::new(100 * 1024, 0.5);
        let mut alone = admission.promise("p", 10 * 1024).unwrap();
        alone.arrived();
        alone.grow_to(80 * 1024).unwrap();
        drop(alone);

        let _other = admission.reserve("q", 10 * 1024).unwrap();
        let mut beside = admission.promise("p", 10 * 1024).unwrap();
        beside.arrived();
        // Beside another project, a body larger than the share holds the share.
        beside.grow_to(80 * 1024).unwrap();
        assert!(admission.reserve("p", 1024).is_err(), "its share is held");
        assert!(
            admission.reserve("r", 30 * 1024).is_ok(),
            "others still get room"
        );
    }
}
