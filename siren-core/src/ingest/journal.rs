//! The correlation journal's entries: what one batch fed the correlator, in the order it
//! fed it, so that replaying the entries after a checkpoint rebuilds the state exactly (see
//! [`CorrelationState`](crate::store::CorrelationState)).
//!
//! An entry is compact JSON: `{"v": 1, "rules": [[ref, n], …], "fed": [[rule, key, time,
//! host, record, [value, …]], …]}`. `rules` names each rule the entry uses once: by its `id`
//! (else its `name`, else its title) and which of the loaded rules with that reference it
//! is, so that another process with the same rules finds it whatever order it loaded them
//! in; a fed match names its rule by position in that list. Of each event it keeps only what
//! the correlator reads: its time (RFC 3339, to the nanosecond), host and record number, and
//! the values of the fields the correlations that use the rule read
//! ([`Correlator::fields_read`], in that order; `null` where the event lacks one).
//!
//! The distributed mode sends the same entries over the message bus, one per batch and
//! partition ([`encode_for_bus`]), with two more keys: `tenant`, and `context`, per fed
//! match the event's user, source and destination address, which a correlation hit's alert
//! names when its events arrived together (as in one process).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::correlation::Correlator;
use crate::event::{Event, Fields, TenantId};
use crate::rules::{Rule, RuleSet};

/// The entry format's version.
const VERSION: u32 = 1;

/// One match fed to the correlator, as the writer collects it.
pub(super) struct Fed<'a> {
    rule: usize,
    key: &'a str,
    event: &'a Event,
}

/// A fed match as written: rule position, key, time, host, record, values.
type FedRow<'a> = (
    usize,
    &'a str,
    Option<DateTime<Utc>>,
    Option<&'a str>,
    Option<i64>,
    Vec<Option<&'a Value>>,
);

/// A fed match as read back.
type FedOwned = (
    usize,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<i64>,
    Vec<Option<Value>>,
);

/// A fed event's user, source and destination address (bus entries only).
type Context<T> = (Option<T>, Option<T>, Option<T>);

#[derive(Serialize)]
struct EntryRef<'a> {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    rules: Vec<(&'a str, usize)>,
    fed: Vec<FedRow<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    context: Vec<Context<&'a str>>,
}

#[derive(Deserialize)]
struct Entry {
    v: u32,
    #[serde(default)]
    tenant: Option<String>,
    rules: Vec<(String, usize)>,
    fed: Vec<FedOwned>,
    #[serde(default)]
    context: Vec<Context<String>>,
}

/// An entry read back: its tenant (bus entries) and each fed match (rule index, key, the
/// event as far as the entry keeps it), matches of rules no longer loaded left out.
pub(super) struct Decoded {
    pub tenant: Option<String>,
    pub fed: Vec<(usize, String, Event)>,
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

    /// A match of the rule at `index` of `event`, named `key`, to be journalled.
    pub(super) fn fed<'a>(&self, index: usize, key: &'a str, event: &'a Event) -> Fed<'a> {
        Fed {
            rule: index,
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
pub(super) fn encode(refs: &RuleRefs, fed: &[Fed<'_>]) -> Vec<u8> {
    encode_with(refs, None, fed)
}

/// A bus entry's bytes: the entry of `tenant`'s matches `fed`, with their events' context.
pub(super) fn encode_for_bus(refs: &RuleRefs, tenant: &TenantId, fed: &[Fed<'_>]) -> Vec<u8> {
    encode_with(refs, Some(tenant), fed)
}

fn encode_with(refs: &RuleRefs, tenant: Option<&TenantId>, fed: &[Fed<'_>]) -> Vec<u8> {
    let mut rules: Vec<(&str, usize)> = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    let rows = fed
        .iter()
        .map(|f| {
            let rule = *position.entry(f.rule).or_insert_with(|| {
                let (reference, nth) = &refs.names[f.rule];
                rules.push((reference, *nth));
                rules.len() - 1
            });
            let values = refs.reads[f.rule]
                .iter()
                .map(|name| f.event.get(name))
                .collect();
            (
                rule,
                f.key,
                f.event.timestamp,
                f.event.host.as_deref(),
                f.event.record_id,
                values,
            )
        })
        .collect();
    let context = match tenant {
        Some(_) => fed
            .iter()
            .map(|f| {
                (
                    f.event.user.as_deref(),
                    f.event.src_ip.as_deref(),
                    f.event.dst_ip.as_deref(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    serde_json::to_vec(&EntryRef {
        v: VERSION,
        tenant: tenant.map(TenantId::as_str),
        rules,
        fed: rows,
        context,
    })
    .unwrap_or_default()
}

/// Reads an entry back (matches of rules no longer loaded are left out); an entry that
/// cannot be read is an error.
pub(super) fn decode(refs: &RuleRefs, tenant: &TenantId, bytes: &[u8]) -> Result<Decoded, String> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entry.v != VERSION {
        return Err(format!("format version {} is not {VERSION}", entry.v));
    }
    let owner = match entry.tenant.as_deref() {
        Some(name) => TenantId::parse(name).map_err(|e| e.to_string())?,
        None => tenant.clone(),
    };
    let indices: Vec<Option<usize>> = entry
        .rules
        .into_iter()
        .map(|name| refs.indices.get(&name).copied())
        .collect();
    let mut context = entry.context.into_iter();
    let mut fed = Vec::with_capacity(entry.fed.len());
    for (rule, key, time, host, record, values) in entry.fed {
        let (user, src_ip, dst_ip) = context.next().unwrap_or((None, None, None));
        let Some(index) = indices.get(rule).copied().flatten() else {
            continue;
        };
        let fields: Fields = refs.reads[index]
            .iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name.clone(), value?)))
            .collect();
        let event = Event {
            timestamp: time,
            host,
            record_id: record,
            fields,
            user,
            src_ip,
            dst_ip,
            ..Event::from_fields(Fields::default(), owner.clone())
        };
        fed.push((index, key, event));
    }
    Ok(Decoded {
        tenant: entry.tenant,
        fed,
    })
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
    for (index, key, event) in decode(refs, tenant, bytes)?.fed {
        correlator.observe_keyed(index, &event, Some(&key));
    }
    Ok(())
}
