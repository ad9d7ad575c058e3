//! [`Reach`]: which Windows events a rule set can match at all, and which of their fields
//! its rules read, known from the events' channel and event ID alone, so that a reader can
//! leave the rest unbuilt.

use std::sync::Arc;

use super::parse::{Detection, Item};
use super::prefilter::Candidates;
use super::set::{Compiled, RuleSet};
use super::value::ValueTest;
use crate::normalize::{FieldNames, RecordFilter, Wanted};

/// What some of a rule set's rules need of a Windows event, by its channel and event ID:
/// nothing when no rule is compiled for them, else the fields the rules that may meet it
/// read (every field when one of them searches keywords).
///
/// Built by [`RuleSet::reach`] for the rules a caller still has a use for (those that report,
/// or feed a correlation); as a [`RecordFilter`] it lets the EVTX reader leave such events
/// unbuilt, or build only those fields.
#[derive(Debug)]
pub struct Reach {
    /// For a channel no rule names: what the rules for every channel read.
    other_channels: Wanted,
    /// Keyed by lower-case channel.
    channels: foldhash::HashMap<String, ChannelReach>,
}

/// What the rules of one channel need.
#[derive(Debug)]
struct ChannelReach {
    /// For an event ID no rule names: what the rules for every event of the channel read.
    other_event_ids: Wanted,
    by_event_id: foldhash::HashMap<i64, Wanted>,
}

impl Reach {
    /// What the rules need of an event with this channel and event ID.
    pub fn wanted(&self, channel: &str, event_id: i64) -> &Wanted {
        let mut buf = [0u8; 128];
        let key = super::set::channel_key(channel, &mut buf);
        match self.channels.get(&*key) {
            Some(reach) => reach
                .by_event_id
                .get(&event_id)
                .unwrap_or(&reach.other_event_ids),
            None => &self.other_channels,
        }
    }
}

impl RecordFilter for Reach {
    fn wants(&self, channel: &str, event_id: i64) -> Wanted {
        self.wanted(channel, event_id).clone()
    }
}

/// The fields some rules read, or all of them.
#[derive(Default, Clone)]
struct Reads {
    any: bool,
    all: bool,
    names: FieldNames,
}

impl Reads {
    fn add(&mut self, other: &Reads) {
        self.any |= other.any;
        self.all |= other.all;
        if !self.all {
            for name in other.names.iter() {
                self.names.insert(name);
            }
        }
    }

    fn wanted(self) -> Wanted {
        match (self.any, self.all) {
            (false, _) => Wanted::Nothing,
            (true, true) => Wanted::Whole,
            (true, false) => Wanted::Fields(Arc::new(self.names)),
        }
    }
}

impl RuleSet {
    /// What the rules for which `useful(rule index)` holds need of Windows events, by
    /// channel and event ID (see [`Reach`]).
    pub fn reach(&self, useful: impl Fn(usize) -> bool) -> Reach {
        let reads = |list: &Candidates| {
            let mut reads = Reads::default();
            for &at in list.members() {
                let compiled = &self.compiled[at as usize];
                if useful(compiled.rule) {
                    reads.any = true;
                    reads.all |= !compiled_reads(compiled, &mut reads.names);
                }
            }
            reads
        };
        let everywhere = reads(&self.windows_any);
        let mut channels = foldhash::HashMap::default();
        for (channel, bucket) in &self.by_channel {
            let mut every_event = reads(&bucket.any_event_id);
            every_event.add(&everywhere);
            let mut by_event_id = foldhash::HashMap::default();
            for (&id, list) in &bucket.by_event_id {
                let mut these = reads(list);
                these.add(&every_event);
                by_event_id.insert(id, these.wanted());
            }
            channels.insert(
                channel.clone(),
                ChannelReach {
                    other_event_ids: every_event.wanted(),
                    by_event_id,
                },
            );
        }
        Reach {
            other_channels: everywhere.wanted(),
            channels,
        }
    }
}

/// Adds the fields a compiled rule reads to `names`; false when it reads every field (a
/// keyword search).
fn compiled_reads(compiled: &Compiled, names: &mut FieldNames) -> bool {
    compiled.guard.iter().all(|item| item_reads(item, names))
        && detection_reads(&compiled.detection, names)
        && compiled.filters.iter().all(|f| detection_reads(f, names))
}

fn detection_reads(detection: &Detection, names: &mut FieldNames) -> bool {
    detection
        .searches
        .iter()
        .flat_map(|search| search.alternatives.iter().flatten())
        .all(|item| item_reads(item, names))
}

fn item_reads(item: &Item, names: &mut FieldNames) -> bool {
    match &item.field {
        Some(field) => {
            names.insert(field);
            test_reads(&item.test, names);
            true
        }
        None => false,
    }
}

/// The other fields a value test reads (`fieldref`).
fn test_reads(test: &ValueTest, names: &mut FieldNames) {
    match test {
        ValueTest::Or(tests) | ValueTest::And(tests) => {
            for test in tests {
                test_reads(test, names);
            }
        }
        ValueTest::Not(test) => test_reads(test, names),
        ValueTest::FieldRef { other, .. } => names.insert(other),
        _ => {}
    }
}
