//! Feeding the correlator: each match routed to the groups of the correlations that refer
//! to its rule, their windows evaluated, hits chained, and old matches and idle groups
//! expired.

use chrono::{DateTime, TimeDelta, Utc};

use super::correlator::{Plan, PlanState};
use super::key::{GroupKey, KeyInput};
use super::window::{self, Entry, minus, plus};
use super::{CorrelationHit, Correlator, EventRef};
use crate::event::Event;
use crate::rules::CorrelationType;

impl Correlator {
    /// Feeds one detection: the rule at index `rule` matched `event`. Returns the hits it
    /// completes (usually none), chained correlations' included.
    pub fn observe(&mut self, rule: usize, event: &Event) -> Vec<CorrelationHit> {
        self.observe_keyed(rule, event, None)
    }

    /// Like [`Correlator::observe`], with the caller's key for the event (e.g. its id in the
    /// store), which hits carry in their [`EventRef`]s.
    pub fn observe_keyed(
        &mut self,
        rule: usize,
        event: &Event,
        key: Option<&str>,
    ) -> Vec<CorrelationHit> {
        let mut hits = Vec::new();
        if self.routes.get(rule).is_none_or(|r| r.is_empty()) {
            return hits;
        }
        let time = match event.timestamp.or(self.watermark) {
            Some(t) => t,
            None => {
                self.stats.untimed += 1;
                return hits;
            }
        };
        self.feed(rule, time, &KeyInput::Event(event, key), &mut hits);
        // Chains: each hit is a match of its correlation rule for the correlations that
        // refer to it.
        let mut next = 0;
        let mut depth_of: Vec<usize> = vec![1; hits.len()];
        while next < hits.len() {
            let depth = depth_of[next];
            let hit = hits[next].clone();
            next += 1;
            if !self.is_referenced(hit.rule) {
                continue;
            }
            if depth >= self.config.max_chain_depth {
                self.stats.chain_depth_exceeded += 1;
                continue;
            }
            self.feed(hit.rule, hit.last_seen, &KeyInput::Hit(&hit), &mut hits);
            depth_of.resize(hits.len(), depth + 1);
        }
        hits
    }

    /// Feeds a batch of detections after sorting it by event time (stable, so matches of one
    /// event keep their order). Returns the hits, in order.
    pub fn observe_sorted<'e>(
        &mut self,
        batch: impl IntoIterator<Item = (usize, &'e Event)>,
    ) -> Vec<CorrelationHit> {
        let mut batch: Vec<(usize, &Event)> = batch.into_iter().collect();
        batch.sort_by_key(|(_, e)| e.timestamp);
        let mut hits = Vec::new();
        for (rule, event) in batch {
            hits.extend(self.observe(rule, event));
        }
        hits
    }

    /// Like [`Correlator::observe_sorted`], with the caller's key for each event.
    pub fn observe_sorted_keyed<'e>(
        &mut self,
        batch: impl IntoIterator<Item = (usize, &'e Event, Option<&'e str>)>,
    ) -> Vec<CorrelationHit> {
        let mut batch: Vec<(usize, &Event, Option<&str>)> = batch.into_iter().collect();
        batch.sort_by_key(|(_, e, _)| e.timestamp);
        let mut hits = Vec::new();
        for (rule, event, key) in batch {
            hits.extend(self.observe_keyed(rule, event, key));
        }
        hits
    }

    /// Advances the correlator's clock to `time` (if later), expiring what falls out of every
    /// window — e.g. the wall-clock time at the end of a run, when logs are known to be
    /// complete up to it.
    pub fn advance_to(&mut self, time: DateTime<Utc>) {
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        for plan in 0..self.plans.len() {
            self.sweep(plan);
        }
    }

    /// Routes one match of rule `rule` at `time` to every correlation that refers to it.
    fn feed(
        &mut self,
        rule: usize,
        time: DateTime<Utc>,
        source: &KeyInput<'_>,
        hits: &mut Vec<CorrelationHit>,
    ) {
        let lateness = TimeDelta::from_std(self.config.lateness).unwrap_or(TimeDelta::MAX);
        if let Some(w) = self.watermark
            && time < minus(w, lateness)
        {
            self.stats.late += 1;
            return;
        }
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        let refs: Vec<EventRef> = match source {
            KeyInput::Event(event, key) => vec![EventRef {
                time,
                host: event.host.clone(),
                record_id: event.record_id,
                key: key.map(str::to_owned),
            }],
            KeyInput::Hit(hit) => hit.events.clone(),
        };
        let routes = self.routes.get(rule).cloned().unwrap_or_default();
        for route in routes {
            let key: GroupKey = route.group_fields.iter().map(|f| source.field(f)).collect();
            if !self.owns(route.plan, &key) {
                continue;
            }
            self.stats.observed += 1;
            let mut value = route.value_field.as_deref().and_then(|f| source.field(f));
            let numeric = self.plans.get(route.plan).is_some_and(|p| {
                !matches!(
                    p.aggregate.kind,
                    CorrelationType::ValueCount
                        | CorrelationType::EventCount
                        | CorrelationType::Temporal
                        | CorrelationType::TemporalOrdered
                )
            });
            let number = if numeric {
                value.take().as_deref().and_then(window::parse_number)
            } else {
                None
            };
            let entry = Entry {
                time,
                slot: route.slot,
                value,
                number,
                events: refs.clone(),
            };
            if let Some(hit) = self.insert(route.plan, key, entry) {
                hits.push(hit);
            }
            self.maybe_sweep(route.plan);
        }
    }

    /// The earliest time a window may still start at: older matches are expired.
    fn horizon(&self, plan: &Plan) -> Option<DateTime<Utc>> {
        let lateness = TimeDelta::from_std(self.config.lateness).unwrap_or(TimeDelta::MAX);
        self.watermark.map(|w| minus(minus(w, lateness), plan.span))
    }

    /// Inserts `entry` into its group, evaluates, and returns a hit if the group fires.
    fn insert(&mut self, plan_index: usize, key: GroupKey, entry: Entry) -> Option<CorrelationHit> {
        let plan = self.plans.get(plan_index)?;
        let horizon = self.horizon(plan);
        let time = entry.time;
        let max_groups = self.config.max_groups.max(1);
        let state = self.states.get_mut(plan_index)?;
        if !state.groups.contains_key(&key) && state.groups.len() >= max_groups {
            self.stats.expired += sweep_groups(state, horizon, plan.span);
            if state.groups.len() >= max_groups {
                self.stats.groups_evicted += evict_stalest(state, max_groups);
            }
        }
        let group = state.groups.entry(key.clone()).or_default();
        let group_lateness = self
            .config
            .group_lateness
            .map(|l| TimeDelta::from_std(l).unwrap_or(TimeDelta::MAX));
        if let (Some(lateness), Some(clock)) = (group_lateness, group.clock)
            && time < minus(clock, lateness)
        {
            self.stats.late += 1;
            return None;
        }
        group.touched = self.stats.observed;
        if !group.insert(entry) {
            self.stats.replays += 1;
            return None;
        }
        group.clock = Some(group.clock.map_or(time, |c| c.max(time)));
        if let Some(h) = horizon {
            self.stats.expired += group.expire(h) as u64;
        }
        if let (Some(lateness), Some(clock)) = (group_lateness, group.clock) {
            self.stats.expired += group.expire(minus(minus(clock, lateness), plan.span)) as u64;
        }
        while group.entries.len() > self.config.max_entries.max(1) {
            group.entries.pop_front();
            self.stats.entries_dropped += 1;
        }
        // Windows ending at this match, and at the newest one when this match came late.
        let mut ends = vec![time];
        if let Some(newest) = group.newest()
            && newest > time
            && newest <= plus(time, plan.span)
        {
            ends.push(newest);
        }
        for end in ends {
            let range = group.window(end, plan.span);
            if range.is_empty() {
                continue;
            }
            let in_episode = group
                .last_held
                .is_some_and(|h| end <= plus(h, plan.span) && end >= minus(h, plan.span));
            if in_episode {
                // Only whether it still holds matters: the episode goes on.
                if plan.aggregate.holds_over(&group.entries, range) {
                    group.last_held = group.last_held.map(|h| h.max(end));
                    self.stats.suppressed += 1;
                }
                continue;
            }
            let Some(value) = plan.aggregate.compute(group.entries.range(range.clone())) else {
                continue;
            };
            if !plan.aggregate.holds(value) {
                continue;
            }
            group.last_held = Some(group.last_held.map_or(end, |h| h.max(end)));
            self.stats.hits += 1;
            let window: Vec<&Entry> = group.entries.range(range).collect();
            let mut events: Vec<EventRef> = Vec::new();
            let mut total = 0usize;
            for e in &window {
                for r in &e.events {
                    total += 1;
                    if events.len() < self.config.max_hit_events {
                        events.push(r.clone());
                    }
                }
            }
            return Some(CorrelationHit {
                rule: plan.rule,
                reference: plan.reference.clone(),
                title: plan.title.clone(),
                kind: plan.aggregate.kind,
                group: plan.group_by.iter().cloned().zip(key).collect(),
                first_seen: window.first().map_or(end, |e| e.time),
                last_seen: end,
                value,
                matches: window.len(),
                events_omitted: total - events.len(),
                events,
                reported: self.reported.get(plan.rule).copied().unwrap_or(true),
            });
        }
        None
    }

    fn maybe_sweep(&mut self, plan: usize) {
        let (Some(w), Some(state)) = (self.watermark, self.states.get(plan)) else {
            return;
        };
        if state.next_sweep.is_none_or(|next| w >= next) {
            self.sweep(plan);
        }
    }

    /// Expires old matches and idle groups of one correlation.
    pub(super) fn sweep(&mut self, plan_index: usize) {
        let Some(plan) = self.plans.get(plan_index) else {
            return;
        };
        let horizon = self.horizon(plan);
        let span = plan.span;
        let Some(state) = self.states.get_mut(plan_index) else {
            return;
        };
        self.stats.expired += sweep_groups(state, horizon, span);
        let step = span.max(TimeDelta::seconds(60));
        state.next_sweep = self.watermark.map(|w| plus(w, step));
    }
}

/// Expires matches older than `horizon` in every group and removes groups that are empty
/// and past their episode. Returns the matches expired.
fn sweep_groups(state: &mut PlanState, horizon: Option<DateTime<Utc>>, span: TimeDelta) -> u64 {
    let Some(horizon) = horizon else {
        return 0;
    };
    let mut expired = 0u64;
    state.groups.retain(|_, g| {
        expired += g.expire(horizon) as u64;
        !g.entries.is_empty() || g.last_held.is_some_and(|h| plus(h, span) >= horizon)
    });
    expired
}

/// Evicts the least recently fed groups (then those with the oldest matches) until a
/// sixteenth of the cap is free. Returns how many.
fn evict_stalest(state: &mut PlanState, max_groups: usize) -> u64 {
    let target = max_groups - (max_groups / 16).max(1).min(max_groups);
    if state.groups.len() <= target {
        return 0;
    }
    let mut ages: Vec<(u64, Option<DateTime<Utc>>, GroupKey)> = state
        .groups
        .iter()
        .map(|(k, g)| (g.touched, g.newest().or(g.last_held), k.clone()))
        .collect();
    ages.sort();
    let evict = state.groups.len() - target;
    for (_, _, key) in ages.into_iter().take(evict) {
        state.groups.remove(&key);
    }
    evict as u64
}
