//! Failed sign-ins limited per client. Tokens are 192-bit random secrets no one can guess, but
//! a sign-in form that answers as fast as it is asked invites trying leaked lists and lets one
//! client keep a server busy. Each server counts on its own, in memory: a client that fails
//! [`MAX_FAILURES`] times within [`WINDOW`] is answered 429 until its oldest failure is that old.
//!
//! The client is the peer address of the connection — never a forwarded-for header, which any
//! client can write. Behind a proxy every client shares the proxy's address and so its limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins a client may make within [`WINDOW`].
pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at once, so that a flood from many addresses cannot grow memory.
const MAX_CLIENTS: usize = 10_000;

/// Who failures are counted against: an IPv4 address, or the /64 of an IPv6 address (one host
/// commonly holds a whole /64). `None` stands for a connection whose peer is unknown.
fn client_key(peer: Option<IpAddr>) -> Option<IpAddr> {
    match peer?.to_canonical() {
        IpAddr::V6(address) => {
            let prefix = u128::from(address) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(prefix.into()))
        }
        v4 => Some(v4),
    }
}

/// The recent failed sign-ins of each client, oldest first.
#[derive(Default)]
pub struct SignInAttempts {
    failures: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
}

fn forget_before(failures: &mut VecDeque<Instant>, now: Instant) {
    while failures
        .front()
        .is_some_and(|failed| now.duration_since(*failed) >= WINDOW)
    {
        failures.pop_front();
    }
}

impl SignInAttempts {
    /// `Err(retry_after)` when the client may not try now: it failed [`MAX_FAILURES`] times
    /// within the window. Checked before the token is, so a limited client learns nothing.
    pub fn check(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut clients = self.lock();
        let Some(failures) = clients.get_mut(&client_key(peer)) else {
            return Ok(());
        };
        forget_before(failures, now);
        match failures.front() {
            Some(oldest) if failures.len() >= MAX_FAILURES => {
                Err(WINDOW.saturating_sub(now.duration_since(*oldest)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in of the client.
    pub fn record_failure(&self, peer: Option<IpAddr>, now: Instant) {
        let key = client_key(peer);
        let mut clients = self.lock();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.retain(|_, failures| {
                forget_before(failures, now);
                !failures.is_empty()
            });
            // Still full: the client that failed least recently goes.
            if clients.len() >= MAX_CLIENTS
                && let Some(stalest) = clients
                    .iter()
                    .min_by_key(|(_, failures)| failures.back().copied())
                    .map(|(key, _)| *key)
            {
                clients.remove(&stalest);
            }
        }
        let failures = clients.entry(key).or_default();
        forget_before(failures, now);
        failures.push_back(now);
        while failures.len() > MAX_FAILURES {
            failures.pop_front();
        }
        if failures.len() == MAX_FAILURES {
            tracing::warn!(
                client = ?key,
                failures = MAX_FAILURES,
                "failed sign-ins limited for this client"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_eleventh_failure_within_a_minute_waits_for_the_first_to_age() {
        let attempts = SignInAttempts::default();
        let start = Instant::now();
        let client = address("192.0.2.1");
        for second in 0..MAX_FAILURES as u64 {
            assert_eq!(
                attempts.check(client, start + Duration::from_secs(second)),
                Ok(())
            );
            attempts.record_failure(client, start + Duration::from_secs(second));
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(attempts.check(client, later), Err(Duration::from_secs(40)));
        assert_eq!(attempts.check(address("192.0.2.2"), later), Ok(()));
        assert_eq!(attempts.check(client, start + WINDOW), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        assert_eq!(
            client_key(address("2001:db8:1:2:aaaa::1")),
            address("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(address("::ffff:192.0.2.1")),
            address("192.0.2.1")
        );
        let attempts = SignInAttempts::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            attempts.record_failure(address("2001:db8:1:2::1"), now);
        }
        assert!(attempts.check(address("2001:db8:1:2::99"), now).is_err());
        assert!(attempts.check(address("2001:db8:1:3::1"), now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let attempts = SignInAttempts::default();
        let now = Instant::now();
        for client in 0..(MAX_CLIENTS as u32 + 100) {
            attempts.record_failure(Some(IpAddr::V4(client.into())), now);
        }
        assert_eq!(attempts.lock().len(), MAX_CLIENTS);
    }
}
