//! Login rate limiting: failed logins are counted per user and per client address over a
//! sliding window; past the limit, logins for that key are refused (429) until the oldest
//! failure leaves the window. Memory is bounded: at most [`MAX_KEYS`] keys are tracked, the
//! stalest dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked at most.
pub const MAX_KEYS: usize = 100_000;

/// Counts failed logins per key (`user:tenant/name`, `ip:addr`).
pub struct LoginLimiter {
    window: Duration,
    per_user: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// A limiter allowing `per_user` failures per user key and `per_ip` per address key
    /// within `window`.
    pub fn new(window: Duration, per_user: u32, per_ip: u32) -> Self {
        Self {
            window,
            per_user,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &str) -> u32 {
        if key.starts_with("ip:") {
            self.per_ip
        } else {
            self.per_user
        }
    }

    /// `Err(seconds to wait)` when any key is over its limit.
    pub fn check(&self, keys: &[&str]) -> Result<(), u64> {
        self.check_at(keys, Instant::now())
    }

    fn check_at(&self, keys: &[&str], now: Instant) -> Result<(), u64> {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = 0;
        for key in keys {
            if let Some(times) = failures.get_mut(*key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= self.limit(key) as usize {
                    let oldest = times.front().copied().unwrap_or(now);
                    let left = self.window.saturating_sub(now.duration_since(oldest));
                    wait = wait.max(left.as_secs() + 1);
                }
            }
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Records a failed login for every key.
    pub fn failure(&self, keys: &[&str]) {
        self.failure_at(keys, Instant::now());
    }

    fn failure_at(&self, keys: &[&str], now: Instant) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_KEYS {
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if failures.len() >= MAX_KEYS {
                // Still full of recent keys (an attack from many addresses): forget the
                // stalest half rather than grow.
                let mut newest: Vec<(Instant, String)> = failures
                    .iter()
                    .filter_map(|(k, t)| t.back().map(|t| (*t, k.clone())))
                    .collect();
                newest.sort();
                for (_, key) in newest.into_iter().take(MAX_KEYS / 2) {
                    failures.remove(&key);
                }
            }
        }
        for key in keys {
            let limit = self.limit(key) as usize;
            let times = failures.entry((*key).to_owned()).or_default();
            times.push_back(now);
            while times.len() > limit.max(1) {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn success(&self, user_key: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.remove(user_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_slides() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 3, 5);
        let start = Instant::now();
        let keys = ["user:default/bob", "ip:10.0.0.1"];
        for i in 0..3 {
            assert!(limiter.check_at(&keys, start).is_ok(), "attempt {i}");
            limiter.failure_at(&keys, start);
        }
        let wait = limiter.check_at(&keys, start).unwrap_err();
        assert!((59..=61).contains(&wait), "{wait}");
        // Another user from the same address still gets in (the address limit is higher)…
        assert!(
            limiter
                .check_at(&["user:default/eve", "ip:10.0.0.1"], start)
                .is_ok()
        );
        limiter.failure_at(&["user:default/eve", "ip:10.0.0.1"], start);
        limiter.failure_at(&["user:default/eve", "ip:10.0.0.1"], start);
        // …until the address has failed 5 times.
        assert!(
            limiter
                .check_at(&["user:default/zed", "ip:10.0.0.1"], start)
                .is_err()
        );
        // After the window, everyone may try again.
        let later = start + Duration::from_secs(61);
        assert!(limiter.check_at(&keys, later).is_ok());
    }

    #[test]
    fn success_clears_the_user_but_memory_stays_bounded() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 2, 1000);
        let now = Instant::now();
        limiter.failure_at(&["user:t/a"], now);
        limiter.failure_at(&["user:t/a"], now);
        assert!(limiter.check_at(&["user:t/a"], now).is_err());
        limiter.success("user:t/a");
        assert!(limiter.check_at(&["user:t/a"], now).is_ok());
        for i in 0..(MAX_KEYS + 10) {
            limiter.failure_at(&[&format!("ip:{i}")], now);
        }
        let tracked = limiter.failures.lock().map(|f| f.len()).unwrap_or_default();
        assert!(tracked <= MAX_KEYS, "{tracked}");
    }
}
