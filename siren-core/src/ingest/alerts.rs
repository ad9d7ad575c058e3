//! The detection stage both ingest paths share: a batch's new events that rules matched
//! become alerts, and feed the correlator, whose hits become alerts too.

use std::collections::HashMap;

use crate::correlation::{CorrelationHit, Correlator};
use crate::event::Event;
use crate::incident::Alert;
use crate::rules::RuleSet;

use super::IngestSummary;
use super::journal::{self, RuleRefs};

/// The name correlation state is saved under.
pub(super) const CORRELATION_STATE: &str = "correlation";

/// An event that rules matched, kept until the writer knows whether it is new.
pub(super) struct Matched {
    /// Its row in the batch.
    pub row: usize,
    /// The rules that matched it.
    pub rules: Vec<usize>,
    pub event: Event,
}

impl Matched {
    /// The detect stage: the rules `event` (the batch's row `row`) matches, or `None` when
    /// it matches none.
    pub fn detect(rules: &RuleSet, event: Event, row: usize) -> Option<Self> {
        let mut matched = Vec::new();
        rules.for_each_match(&event, |rule| matched.push(rule));
        (!matched.is_empty()).then_some(Self {
            row,
            rules: matched,
            event,
        })
    }
}

/// A batch's alerts and its correlation journal entry.
pub(super) struct BatchAlerts {
    pub alerts: Vec<Alert>,
    /// What the batch fed the correlator, as a journal entry; empty when nothing.
    pub journal: Vec<u8>,
}

/// Turns a batch's new matches (each with its event's de-duplication key) into alerts:
/// detections of the rules that report on their own, and the hits of correlations they
/// complete (fed in event-time order), and records what was fed to the correlator.
///
/// The correlator names an event by the text of its key (its state is kept as JSON): the
/// key of an event of this batch behind a hit is taken from the batch; only one of an
/// earlier batch, known to the correlator alone, is read back from that text.
pub(super) fn alerts_for(
    rules: &RuleSet,
    refs: &RuleRefs,
    correlator: &mut Correlator,
    mut fresh: Vec<(&Matched, [u8; 16])>,
    summary: &mut IngestSummary,
) -> BatchAlerts {
    fresh.sort_by_key(|(m, _)| m.event.timestamp);
    // The batch's events by the correlator's name for them, so that a correlation hit can
    // name the users and addresses of the events behind it (those of earlier batches are in
    // the store, linked by key).
    let named: Vec<(String, &Event, [u8; 16])> = fresh
        .iter()
        .map(|(m, key)| (key_text(key), &m.event, *key))
        .collect();
    let by_name: HashMap<&str, (&Event, [u8; 16])> = named
        .iter()
        .map(|(name, event, key)| (name.as_str(), (*event, *key)))
        .collect();
    let mut alerts = Vec::new();
    let mut fed = Vec::new();
    for (matched, (name, _, key)) in fresh.iter().map(|(m, _)| m).zip(&named) {
        for &index in &matched.rules {
            let rule = &rules.rules()[index];
            if correlator.is_reported(index) {
                alerts.push(Alert::of_detection(rule, &matched.event, *key));
            }
            if correlator.is_referenced(index) {
                fed.push(refs.fed(index, name, &matched.event));
            }
            for hit in correlator.observe_keyed(index, &matched.event, Some(name)) {
                if !hit.reported {
                    continue;
                }
                summary.correlation_hits += 1;
                alerts.push(correlation_alert(rules, &hit, |name| {
                    by_name.get(name).copied()
                }));
            }
        }
    }
    let journal = if fed.is_empty() {
        Vec::new()
    } else {
        journal::encode(refs, &fed)
    };
    BatchAlerts { alerts, journal }
}

/// A correlation hit's alert. `batch` finds, by the correlator's name for it, an event that
/// arrived with the one that completed the hit (its user and addresses are named too), and
/// its key; the key of an earlier event is read back from its name.
pub(super) fn correlation_alert<'e>(
    rules: &RuleSet,
    hit: &CorrelationHit,
    batch: impl Fn(&str) -> Option<(&'e Event, [u8; 16])>,
) -> Alert {
    let first_key = hit.events.iter().find_map(|e| e.key.as_deref());
    let event_key = first_key.and_then(|name| match batch(name) {
        Some((_, key)) => Some(key),
        None => key_from_text(name),
    });
    let mut alert = Alert::of_correlation(&rules.rules()[hit.rule], hit, event_key);
    for (event, _) in hit
        .events
        .iter()
        .filter_map(|e| e.key.as_deref())
        .filter_map(&batch)
    {
        alert.add_event_context(event);
    }
    alert
}

/// Turns a batch's new matches into the alerts of the rules that report on their own and,
/// for the distributed mode, the bus entries of the matches that feed correlations: one per
/// partition (of `partitions`) that owns a group they feed, in event-time order. Nothing
/// is correlated here: the worker that owns each partition does that.
pub(super) fn detections_for_bus(
    rules: &RuleSet,
    refs: &RuleRefs,
    router: &Correlator,
    tenant: &crate::event::TenantId,
    partitions: u32,
    mut fresh: Vec<(&Matched, [u8; 16])>,
) -> (Vec<Alert>, Vec<(u32, Vec<u8>)>) {
    fresh.sort_by_key(|(m, _)| m.event.timestamp);
    let names: Vec<String> = fresh.iter().map(|(_, key)| key_text(key)).collect();
    let mut alerts = Vec::new();
    let mut by_partition: std::collections::BTreeMap<u32, Vec<journal::Fed<'_>>> =
        std::collections::BTreeMap::new();
    for ((matched, key), name) in fresh.iter().zip(&names) {
        for &index in &matched.rules {
            if router.is_reported(index) {
                alerts.push(Alert::of_detection(
                    &rules.rules()[index],
                    &matched.event,
                    *key,
                ));
            }
            if router.is_referenced(index) {
                for partition in router.partitions_of(index, &matched.event, tenant, partitions) {
                    by_partition.entry(partition).or_default().push(refs.fed(
                        index,
                        name,
                        &matched.event,
                    ));
                }
            }
        }
    }
    let entries = by_partition
        .into_iter()
        .map(|(partition, fed)| (partition, journal::encode_for_bus(refs, tenant, &fed)))
        .collect();
    (alerts, entries)
}

/// The correlator's name for an event: its key in lower-case hexadecimal (the form alert
/// details list them in).
fn key_text(key: &[u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for byte in key {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The key the correlator names by `text`, when it is one ([`key_text`]).
pub(super) fn key_from_text(text: &str) -> Option<[u8; 16]> {
    let mut key = [0u8; 16];
    if text.len() != 32 {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_in_hexadecimal_and_read_back() {
        let key: [u8; 16] = std::array::from_fn(|i| (i as u8) * 17);
        let text = key_text(&key);
        assert_eq!(text, "00112233445566778899aabbccddeeff");
        assert_eq!(key_from_text(&text), Some(key));
        assert_eq!(key_from_text("line 1"), None);
        assert_eq!(key_from_text(&text[..30]), None);
    }
}
