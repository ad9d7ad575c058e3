//! The correlation journal's entries: what one batch fed the correlator, in the order it
//! fed it, so that replaying the entries after a checkpoint rebuilds the state exactly (see
//! [`CorrelationState`](crate::store::CorrelationState)).
//!
//! An entry is JSON: `{"v": 1, "fed": [{"rule": ref, "nth": n, "key": name, "time": …,
//! "host": …, "record": …, "fields": {…}}]}`: of each event, only what the correlator reads —
//! its time, host and record number, and the fields the correlations that use the rule read
//! ([`Correlator::fields_read`]). A rule is named by its `id` (else its `name`, else its
//! title) and which of the loaded rules with that reference it is, so that another process
//! with the same rules finds it whatever order it loaded them in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::correlation::Correlator;
use crate::event::{Event, Fields, TenantId};
use crate::rules::{Rule, RuleSet};

/// The entry format's version.
const VERSION: u32 = 1;

/// One match fed to the correlator, as written.
#[derive(Serialize)]
pub(super) struct Fed<'a> {
    rule: &'a str,
    nth: usize,
    key: &'a str,
    time: Option<DateTime<Utc>>,
    host: Option<&'a str>,
    record: Option<i64>,
    fields: Vec<(&'a str, &'a Value)>,
}

/// One match fed to the correlator, as read back.
#[derive(Deserialize)]
struct FedOwned {
    rule: String,
    nth: usize,
    key: String,
    time: Option<DateTime<Utc>>,
    host: Option<String>,
    record: Option<i64>,
    fields: Vec<(String, Value)>,
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

/// How the journal names the loaded rules, both ways, and what it keeps of their matches.
pub(super) struct RuleRefs {
    /// By index in [`RuleSet::rules`]: the reference and which of its rules.
    names: Vec<(String, usize)>,
    /// Back to the index.
    indices: HashMap<(String, usize), usize>,
    /// By index: the fields the correlator reads from the rule's matches.
    reads: Vec<Vec<String>>,
}

impl RuleRefs {
    pub(super) fn new(rules: &RuleSet, correlator: &Correlator) -> Self {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut names = Vec::with_capacity(rules.rules().len());
        let mut indices = HashMap::with_capacity(rules.rules().len());
        let mut reads = Vec::with_capacity(rules.rules().len());
        for (index, rule) in rules.rules().iter().enumerate() {
            let reference = reference(rule);
            let nth = seen.entry(reference.clone()).or_default();
            indices.insert((reference.clone(), *nth), index);
            names.push((reference, *nth));
            *nth += 1;
            reads.push(
                correlator
                    .fields_read(index)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Self {
            names,
            indices,
            reads,
        }
    }

    /// A match of the rule at `index` of `event`, named `key`, as the journal keeps it.
    pub(super) fn fed<'a>(&'a self, index: usize, key: &'a str, event: &'a Event) -> Fed<'a> {
        let (rule, nth) = &self.names[index];
        Fed {
            rule,
            nth: *nth,
            key,
            time: event.timestamp,
            host: event.host.as_deref(),
            record: event.record_id,
            fields: self.reads[index]
                .iter()
                .filter_map(|name| Some((name.as_str(), event.get(name)?)))
                .collect(),
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
    tenant: &TenantId,
    bytes: &[u8],
) -> Result<(), String> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entry.v != VERSION {
        return Err(format!("format version {} is not {VERSION}", entry.v));
    }
    for fed in entry.fed {
        let Some(&index) = refs.indices.get(&(fed.rule, fed.nth)) else {
            continue;
        };
        let event = Event {
            timestamp: fed.time,
            host: fed.host,
            record_id: fed.record,
            fields: fed.fields.into_iter().collect(),
            ..Event::from_fields(Fields::default(), tenant.clone())
        };
        correlator.observe_keyed(index, &event, Some(&fed.key));
    }
    Ok(())
}
