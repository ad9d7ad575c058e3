//! Matchers built once for identical patterns.
//!
//! A rule whose log source maps to two sources (process creation: Sysmon 1 and Security
//! 4688, with renamed fields) is compiled once per source, and both copies, like two buckets
//! with the same literals, would build the same automaton or regex. A [`Memo`] hands the
//! second one the first one's build. It holds its builds weakly: dropping the rule sets that
//! use them frees them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Aho-Corasick automata (default options, for overlapping searches), keyed by their
/// patterns.
pub(crate) static AUTOMATA: Memo<Vec<Box<str>>, aho_corasick::AhoCorasick> = Memo::new();

/// Aho-Corasick automata that only tell whether a pattern occurs, keyed by their patterns:
/// leftmost-first, which lets the crate search with its SIMD (Teddy) prefilter, several
/// times faster than the default kind's over texts where no pattern occurs.
static MATCHERS: Memo<Vec<Box<str>>, aho_corasick::AhoCorasick> = Memo::new();

/// The automaton of [`MATCHERS`] for `patterns` (`None` if it cannot be built).
pub(crate) fn matcher(patterns: Vec<Box<str>>) -> Option<Arc<aho_corasick::AhoCorasick>> {
    MATCHERS.get_or_build(patterns, |patterns| {
        aho_corasick::AhoCorasickBuilder::new()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(patterns.iter().map(|p| p.as_bytes()))
            .ok()
    })
}

/// Builds keyed by what they were built from.
pub(crate) struct Memo<K, V> {
    built: LazyLock<Mutex<HashMap<K, Weak<V>>>>,
}

impl<K: Hash + Eq, V> Memo<K, V> {
    pub(crate) const fn new() -> Self {
        Self {
            built: LazyLock::new(|| Mutex::new(HashMap::new())),
        }
    }

    /// The live build for `key`, or `build(&key)`'s (`None` when it fails, which is not
    /// remembered). The lock is not held while building, so different keys build in
    /// parallel; two threads building the same key at once both build, and both builds work.
    pub(crate) fn get_or_build(
        &self,
        key: K,
        build: impl FnOnce(&K) -> Option<V>,
    ) -> Option<Arc<V>> {
        if let Ok(built) = self.built.lock()
            && let Some(live) = built.get(&key).and_then(Weak::upgrade)
        {
            return Some(live);
        }
        let value = Arc::new(build(&key)?);
        // A poisoned lock only loses the sharing, never the build.
        if let Ok(mut built) = self.built.lock() {
            // Forget dead builds now and then, so keys do not pile up across rule reloads.
            if built.len() >= 64 && built.len().is_power_of_two() {
                built.retain(|_, weak| weak.strong_count() > 0);
            }
            built.insert(key, Arc::downgrade(&value));
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_keys_share_one_live_build_and_dropped_builds_are_rebuilt() {
        static MEMO: Memo<&'static str, String> = Memo::new();
        let mut builds = 0;
        let a = MEMO.get_or_build("k", |k| {
            builds += 1;
            Some(k.to_uppercase())
        });
        let b = MEMO.get_or_build("k", |_| unreachable!("shared"));
        assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        assert_eq!(builds, 1);
        drop((a, b));
        let c = MEMO.get_or_build("k", |k| Some(format!("{k} again")));
        assert_eq!(c.as_deref().map(String::as_str), Some("k again"));
        // A failed build is not remembered.
        assert!(MEMO.get_or_build("bad", |_| None).is_none());
        assert_eq!(
            MEMO.get_or_build("bad", |_| Some("fine".to_owned()))
                .as_deref()
                .map(String::as_str),
            Some("fine")
        );
    }
}
