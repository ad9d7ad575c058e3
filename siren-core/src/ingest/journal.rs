//! The correlation journal's entries: what one batch fed the correlator, in the order it
//! fed it, so that replaying the entries after a checkpoint rebuilds the state exactly (see
//! [`CorrelationState`](crate::store::CorrelationState)).
//!
//! An entry is JSON: `{"v": 1, "fed": [{"rule": ref, "nth": n, "key": name, "event": …}]}`.
//! A rule is named by its `id` (else its `name`, else its title) and which of the loaded
//! rules with that reference it is, so that another process with the same rules finds it
//! whatever order it loaded them in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::correlation::Correlator;
use crate::event::Event;
use crate::rules::{Rule, RuleSet};

/// The entry format's version.
const VERSION: u32 = 1;

/// One match fed to the correlator, as written.
#[derive(Serialize)]
pub(super) struct Fed<'a> {
    rule: &'a str,
    nth: usize,
    key: &'a str,
    event: &'a Event,
}

/// One match fed to the correlator, as read back.
#[derive(Deserialize)]
struct FedOwned {
    rule: String,
    nth: usize,
    key: String,
    event: Event,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    v: u32,
    fed: &'a [Fed<'a>],
}

#[derive(Deserialize)]
struct Entry {
    v: u32,
    fed: Vec<FedOwned>,
}

/// How the journal names the loaded rules, both ways.
pub(super) struct RuleRefs {
    /// By index in [`RuleSet::rules`]: the reference and which of its rules.
    names: Vec<(String, usize)>,
    /// Back to the index.
    indices: HashMap<(String, usize), usize>,
}

impl RuleRefs {
    pub(super) fn new(rules: &RuleSet) -> Self {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut names = Vec::with_capacity(rules.rules().len());
        let mut indices = HashMap::with_capacity(rules.rules().len());
        for (index, rule) in rules.rules().iter().enumerate() {
            let reference = reference(rule);
            let nth = seen.entry(reference.clone()).or_default();
            indices.insert((reference.clone(), *nth), index);
            names.push((reference, *nth));
            *nth += 1;
        }
        Self { names, indices }
    }

    /// A match of the rule at `index` of `event`, named `key`, as the journal keeps it.
    pub(super) fn fed<'a>(&'a self, index: usize, key: &'a str, event: &'a Event) -> Fed<'a> {
        let (rule, nth) = &self.names[index];
        Fed {
            rule,
            nth: *nth,
            key,
            event,
        }
    }
}

fn reference(rule: &Rule) -> String {
    match (&rule.id, &rule.name) {
        (Some(id), _) => id.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => rule.title.clone(),
    }
}

/// An entry's bytes.
pub(super) fn encode(fed: &[Fed<'_>]) -> Vec<u8> {
    serde_json::to_vec(&EntryRef { v: VERSION, fed }).unwrap_or_default()
}

/// Feeds an entry's matches to `correlator` again, discarding the hits (their alerts were
/// stored with the batch that wrote the entry). A match of a rule no longer loaded is
/// skipped; an entry that cannot be read is an error.
pub(super) fn replay(
    refs: &RuleRefs,
    correlator: &mut Correlator,
    bytes: &[u8],
) -> Result<(), String> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entry.v != VERSION {
        return Err(format!("format version {} is not {VERSION}", entry.v));
    }
    for fed in entry.fed {
        if let Some(&index) = refs.indices.get(&(fed.rule, fed.nth)) {
            correlator.observe_keyed(index, &fed.event, Some(&fed.key));
        }
    }
    Ok(())
}
