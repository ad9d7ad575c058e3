//! Login rate limiting that stops guessing without locking the owner out.
//!
//! Failed logins are counted over a sliding window, in three ways:
//! - per user **and** client address: past `per_user` failures, that address may not try that
//!   user again (429) until the oldest failure leaves the window — the owner, elsewhere, may;
//! - per client address: past `per_ip` failures, the address may not try anyone (429);
//! - per user, from every address: past `per_user` failures, logins of that user from
//!   addresses it never logged in from are only *slowed*: they take turns, one every
//!   [`BASE_DELAY`] doubling with each further failure up to [`MAX_DELAY`], and only when the
//!   queue is longer than [`MAX_QUEUE`] is the attempt refused (429). Addresses the user logged
//!   in from before (since the server started) are never slowed by others' failures.
//!
//! [`LoginLimiter::failure`] says when a lockout or slowdown begins, so it can be audited.
//! Memory is bounded: at most [`MAX_KEYS`] keys of each kind are tracked, the stalest
//! dropped first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked at most (failure counters, and users with known addresses).
pub const MAX_KEYS: usize = 100_000;
/// Known addresses kept per user at most.
pub const MAX_KNOWN_PER_USER: usize = 32;
/// The wait between slowed attempts once a user's failures reach the ceiling.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between slowed attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// The longest a slowed attempt waits for its turn; beyond it the attempt is refused.
pub const MAX_QUEUE: Duration = Duration::from_secs(60);

/// A limit that a failed login has just reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    /// This address may not try this user again for a while.
    UserFromAddress,
    /// This address may not try anyone for a while.
    Address,
    /// This user's logins from new addresses are slowed for a while.
    UserSlowed,
}

#[derive(Default)]
struct Counters {
    failures: HashMap<String, VecDeque<Instant>>,
    /// By user: when the next slowed attempt may go.
    next_turn: HashMap<String, Instant>,
    /// By user: addresses it logged in from.
    known: HashMap<String, HashSet<String>>,
}

/// Counts failed logins per (user, address), per address and per user.
pub struct LoginLimiter {
    window: Duration,
    per_user: u32,
    per_ip: u32,
    counters: Mutex<Counters>,
}

fn pair_key(user: &str, ip: &str) -> String {
    format!("pair:{user}|{ip}")
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

fn user_key(user: &str) -> String {
    format!("user:{user}")
}

impl LoginLimiter {
    /// A limiter allowing `per_user` failures per user and address (and before a user's
    /// logins from new addresses slow down) and `per_ip` per address within `window`.
    pub fn new(window: Duration, per_user: u32, per_ip: u32) -> Self {
        Self {
            window,
            per_user: per_user.max(1),
            per_ip: per_ip.max(1),
            counters: Mutex::new(Counters::default()),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The failures of `key` within the window at `now` (older ones are dropped).
    fn recent(&self, counters: &mut Counters, key: &str, now: Instant) -> usize {
        let Some(times) = counters.failures.get_mut(key) else {
            return 0;
        };
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        times.len()
    }

    /// Seconds until the oldest failure of `key` leaves the window.
    fn seconds_left(&self, counters: &Counters, key: &str, now: Instant) -> u64 {
        let oldest = counters
            .failures
            .get(key)
            .and_then(|t| t.front().copied())
            .unwrap_or(now);
        self.window
            .saturating_sub(now.saturating_duration_since(oldest))
            .as_secs()
            + 1
    }

    /// Whether `user` (tenant/name) may try to log in from `ip` now: `Ok(wait)` to try after
    /// waiting `wait` (zero unless slowed), `Err(seconds)` refused for that long.
    pub fn admit(&self, user: &str, ip: &str) -> Result<Duration, u64> {
        self.admit_at(user, ip, Instant::now())
    }

    fn admit_at(&self, user: &str, ip: &str, now: Instant) -> Result<Duration, u64> {
        let mut counters = self.counters();
        let counters = &mut *counters;
        let mut refused = 0;
        for (key, limit) in [
            (pair_key(user, ip), self.per_user),
            (ip_key(ip), self.per_ip),
        ] {
            if self.recent(counters, &key, now) >= limit as usize {
                refused = refused.max(self.seconds_left(counters, &key, now));
            }
        }
        if refused > 0 {
            return Err(refused);
        }
        if counters.known.get(user).is_some_and(|ips| ips.contains(ip)) {
            return Ok(Duration::ZERO);
        }
        let key = user_key(user);
        let failures = self.recent(counters, &key, now);
        let Some(over) = failures.checked_sub(self.per_user as usize) else {
            return Ok(Duration::ZERO);
        };
        let delay = BASE_DELAY
            .checked_mul(1 << over.min(16))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY);
        let turn = counters
            .next_turn
            .get(&key)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        let wait = turn - now;
        if wait > MAX_QUEUE {
            return Err(wait.as_secs() + 1);
        }
        if counters.next_turn.len() >= MAX_KEYS {
            counters.next_turn.retain(|_, t| *t > now);
        }
        counters.next_turn.insert(key, turn + delay);
        Ok(wait)
    }

    /// Records a failed login of `user` from `ip`; returns the limits it has just reached.
    pub fn failure(&self, user: &str, ip: &str) -> Vec<Lockout> {
        self.failure_at(user, ip, Instant::now())
    }

    fn failure_at(&self, user: &str, ip: &str, now: Instant) -> Vec<Lockout> {
        let mut counters = self.counters();
        let counters = &mut *counters;
        if counters.failures.len() >= MAX_KEYS {
            self.forget_stale(counters, now);
        }
        let mut reached = Vec::new();
        for (key, limit, lockout) in [
            (pair_key(user, ip), self.per_user, Lockout::UserFromAddress),
            (ip_key(ip), self.per_ip, Lockout::Address),
            (user_key(user), self.per_user, Lockout::UserSlowed),
        ] {
            let before = self.recent(counters, &key, now);
            let times = counters.failures.entry(key).or_default();
            times.push_back(now);
            // The per-user count goes past its ceiling (the delay grows with it); the others
            // only need to know they are at their limit.
            let keep = if lockout == Lockout::UserSlowed {
                limit as usize + 16
            } else {
                limit as usize
            };
            while times.len() > keep {
                times.pop_front();
            }
            if before < limit as usize && times.len() >= limit as usize {
                reached.push(lockout);
            }
        }
        reached
    }

    fn forget_stale(&self, counters: &mut Counters, now: Instant) {
        let window = self.window;
        counters.failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        if counters.failures.len() >= MAX_KEYS {
            // Still full of recent keys (an attack from many addresses): forget the
            // stalest half rather than grow.
            let mut newest: Vec<(Instant, String)> = counters
                .failures
                .iter()
                .filter_map(|(k, t)| t.back().map(|t| (*t, k.clone())))
                .collect();
            newest.sort();
            for (_, key) in newest.into_iter().take(MAX_KEYS / 2) {
                counters.failures.remove(&key);
            }
        }
    }

    /// A successful login of `user` from `ip`: that address's failures for the user are
    /// forgotten, and the address is known to the user from now on.
    pub fn success(&self, user: &str, ip: &str) {
        let mut counters = self.counters();
        counters.failures.remove(&pair_key(user, ip));
        if counters.known.len() >= MAX_KEYS && !counters.known.contains_key(user) {
            // Forget another user's addresses rather than grow (they are only a convenience).
            if let Some(other) = counters.known.keys().next().cloned() {
                counters.known.remove(&other);
            }
        }
        let ips = counters.known.entry(user.to_owned()).or_default();
        if ips.len() >= MAX_KNOWN_PER_USER && !ips.contains(ip) {
            if let Some(other) = ips.iter().next().cloned() {
                ips.remove(&other);
            }
        }
        ips.insert(ip.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_for_a_user_but_the_owner_elsewhere_is_not() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 3, 5);
        let start = Instant::now();
        let (bob, attacker, owner) = ("default/bob", "10.0.0.1", "10.0.0.2");
        for i in 0..3 {
            assert_eq!(
                limiter.admit_at(bob, attacker, start),
                Ok(Duration::ZERO),
                "{i}"
            );
            let reached = limiter.failure_at(bob, attacker, start);
            assert_eq!(
                reached,
                if i == 2 {
                    vec![Lockout::UserFromAddress, Lockout::UserSlowed]
                } else {
                    vec![]
                }
            );
        }
        let wait = limiter.admit_at(bob, attacker, start).unwrap_err();
        assert!((59..=61).contains(&wait), "{wait}");
        // The owner from another address is let through, slowed at most.
        assert!(limiter.admit_at(bob, owner, start).is_ok());
        // Another user from the attacker's address still gets in (the address limit is higher)…
        assert!(limiter.admit_at("default/eve", attacker, start).is_ok());
        limiter.failure_at("default/eve", attacker, start);
        let reached = limiter.failure_at("default/eve", attacker, start);
        assert_eq!(reached, vec![Lockout::Address]);
        // …until the address has failed 5 times.
        assert!(limiter.admit_at("default/zed", attacker, start).is_err());
        // After the window, everyone may try again.
        let later = start + Duration::from_secs(61);
        assert_eq!(limiter.admit_at(bob, attacker, later), Ok(Duration::ZERO));
    }

    #[test]
    fn failures_from_many_addresses_slow_new_addresses_but_not_known_ones() {
        let limiter = LoginLimiter::new(Duration::from_secs(300), 2, 100);
        let now = Instant::now();
        let root = "default/root";
        limiter.success(root, "10.9.9.9");
        for n in 0..4 {
            limiter.failure_at(root, &format!("10.0.0.{n}"), now);
        }
        // 4 failures, ceiling 2: a new address waits its turn, one every 4 s (1 s doubled
        // twice), and the turns queue up.
        assert_eq!(limiter.admit_at(root, "10.1.0.1", now), Ok(Duration::ZERO));
        assert_eq!(
            limiter.admit_at(root, "10.1.0.2", now),
            Ok(Duration::from_secs(4))
        );
        assert_eq!(
            limiter.admit_at(root, "10.1.0.3", now),
            Ok(Duration::from_secs(8))
        );
        // The address root logged in from before is not slowed.
        assert_eq!(limiter.admit_at(root, "10.9.9.9", now), Ok(Duration::ZERO));
        // A queue longer than MAX_QUEUE is refused rather than grown.
        let mut refused = false;
        for n in 0..40 {
            if limiter.admit_at(root, &format!("10.2.0.{n}"), now).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
        // The delay is bounded however many failures there are.
        for n in 0..100 {
            limiter.failure_at(root, &format!("10.3.0.{n}"), now);
        }
        let later = now + Duration::from_secs(120);
        assert_eq!(
            limiter.admit_at(root, "10.4.0.1", later),
            Ok(Duration::ZERO)
        );
        assert_eq!(limiter.admit_at(root, "10.4.0.2", later), Ok(MAX_DELAY));
    }

    #[test]
    fn success_clears_the_address_and_memory_stays_bounded() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 2, 1000);
        let now = Instant::now();
        limiter.failure_at("t/a", "1.1.1.1", now);
        limiter.failure_at("t/a", "1.1.1.1", now);
        assert!(limiter.admit_at("t/a", "1.1.1.1", now).is_err());
        limiter.success("t/a", "1.1.1.1");
        assert!(limiter.admit_at("t/a", "1.1.1.1", now).is_ok());
        for i in 0..(MAX_KEYS / 2 + 10) {
            limiter.failure_at("t/b", &format!("{i}"), now);
        }
        let tracked = limiter.counters().failures.len();
        assert!(tracked <= MAX_KEYS, "{tracked}");
        for i in 0..(MAX_KNOWN_PER_USER + 5) {
            limiter.success("t/c", &format!("{i}"));
        }
        assert_eq!(limiter.counters().known["t/c"].len(), MAX_KNOWN_PER_USER);
    }
}
