//! [`Correlator`]: the correlation rules of a rule set prepared (referenced rules resolved
//! to slots, aliases to fields, conditions to aggregates), and its state per correlation.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::key::GroupKey;
use super::window::{Aggregate, Group};
use super::{CorrelationError, CorrelatorConfig, CorrelatorStats};
use crate::rules::{Correlation, CorrelationType, Rule, RuleKind, RuleSet};

/// Where one referenced rule's matches go in one correlation.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// The correlation's index in `Correlator::plans`.
    pub(super) plan: usize,
    /// The slot: first position of the rule in the correlation's `rules`.
    pub(super) slot: u32,
    /// Fields to read for the group key, in `group_by` order (aliases resolved).
    pub(super) group_fields: Vec<String>,
    /// The aggregated field (aliases resolved), for value aggregations.
    pub(super) value_field: Option<String>,
}

/// A correlation rule, prepared.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) rule: usize,
    pub(super) reference: String,
    pub(super) title: String,
    pub(super) fingerprint: String,
    pub(super) group_by: Vec<String>,
    pub(super) span: TimeDelta,
    pub(super) aggregate: Aggregate,
}

/// Per-correlation state.
#[derive(Debug, Clone, Default)]
pub(super) struct PlanState {
    pub(super) groups: HashMap<GroupKey, Group>,
    /// When (in event time) the groups are next swept for expired entries.
    pub(super) next_sweep: Option<DateTime<Utc>>,
}

/// Evaluates a rule set's correlation rules over the detections it is fed. See the
/// [module documentation](crate::correlation) for the semantics.
#[derive(Debug, Clone)]
pub struct Correlator {
    pub(super) config: CorrelatorConfig,
    pub(super) plans: Vec<Plan>,
    /// Per rule index: where its matches go.
    pub(super) routes: Vec<Vec<Route>>,
    /// Per rule index: whether its own matches or hits are alerts.
    pub(super) reported: Vec<bool>,
    pub(super) problems: Vec<CorrelationError>,
    pub(super) states: Vec<PlanState>,
    pub(super) watermark: Option<DateTime<Utc>>,
    pub(super) stats: CorrelatorStats,
    /// When set, the only groups it keeps: those of one partition
    /// ([`Correlator::keep_partition`]).
    pub(super) partition: Option<super::route::PartitionFilter>,
}

fn fingerprint(correlation: &Correlation) -> String {
    let bytes = serde_json::to_vec(correlation).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..16].to_owned()
}

impl Correlator {
    /// A correlator for the correlation rules of `rules`, with the default configuration.
    pub fn new(rules: &RuleSet) -> Self {
        Self::with_config(rules, CorrelatorConfig::default())
    }

    /// A correlator for the correlation rules of `rules`.
    ///
    /// Correlations that refer to rules that are not loaded are left out and listed by
    /// [`Correlator::problems`].
    pub fn with_config(rules: &RuleSet, config: CorrelatorConfig) -> Self {
        let all = rules.rules();
        let mut plans = Vec::new();
        let mut routes: Vec<Vec<Route>> = vec![Vec::new(); all.len()];
        let mut referenced = vec![false; all.len()];
        let mut generated = vec![false; all.len()];
        let mut problems = Vec::new();
        for (index, rule) in all.iter().enumerate() {
            let RuleKind::Correlation(correlation) = &rule.kind else {
                continue;
            };
            let reference = rule.key();
            // Resolve the referenced rules; positions of the same rule share a slot.
            let mut targets: Vec<usize> = Vec::new();
            let mut sequence = Vec::new();
            let mut ok = true;
            for name in &correlation.rules {
                match rules.find(name) {
                    Some(t) if matches!(all[t].kind, RuleKind::Filter(_)) => {
                        problems.push(CorrelationError::NotMatchable {
                            correlation: reference.clone(),
                            reference: name.clone(),
                        });
                        ok = false;
                    }
                    Some(t) => {
                        let slot = match targets.iter().position(|&x| x == t) {
                            Some(s) => s,
                            None => {
                                targets.push(t);
                                targets.len() - 1
                            }
                        };
                        sequence.push(slot as u32);
                    }
                    None => {
                        problems.push(CorrelationError::UnknownRule {
                            correlation: reference.clone(),
                            reference: name.clone(),
                        });
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            let plan = plans.len();
            let condition = correlation.condition.clone().unwrap_or_default();
            let mut comparisons = condition.comparisons.clone();
            if comparisons.is_empty() {
                // Only the temporal types may omit the condition: every rule is needed.
                let needed = match correlation.kind {
                    CorrelationType::TemporalOrdered => sequence.len(),
                    _ => targets.len(),
                };
                comparisons.push((crate::rules::CompareOp::Gte, needed as f64));
            }
            let aggregate = Aggregate {
                kind: correlation.kind,
                sequence,
                distinct_slots: targets.len(),
                comparisons,
                percentile: match correlation.kind {
                    CorrelationType::ValueMedian => 50.0,
                    _ => condition.percentile.unwrap_or(50.0),
                },
            };
            // The field a group-by (or condition) name stands for in one referenced rule.
            let resolve = |name: &str, target: &Rule| -> String {
                correlation
                    .aliases
                    .iter()
                    .find(|(alias, _)| alias == name)
                    .and_then(|(_, per_rule)| {
                        per_rule
                            .iter()
                            .find(|(r, _)| target.is_called(r))
                            .map(|(_, f)| f.clone())
                    })
                    .unwrap_or_else(|| name.to_owned())
            };
            for (slot, &target) in targets.iter().enumerate() {
                let target_rule = &all[target];
                referenced[target] = true;
                generated[target] |= correlation.generate;
                routes[target].push(Route {
                    plan,
                    slot: slot as u32,
                    group_fields: correlation
                        .group_by
                        .iter()
                        .map(|g| resolve(g, target_rule))
                        .collect(),
                    value_field: condition
                        .field
                        .as_deref()
                        .filter(|_| correlation.kind.needs_field())
                        .map(|f| resolve(f, target_rule)),
                });
            }
            plans.push(Plan {
                rule: index,
                reference,
                title: rule.title.clone(),
                fingerprint: fingerprint(correlation),
                group_by: correlation.group_by.clone(),
                span: TimeDelta::from_std(correlation.timespan).unwrap_or(TimeDelta::MAX),
                aggregate,
            });
        }
        let reported = referenced
            .iter()
            .zip(&generated)
            .map(|(&r, &g)| !r || g)
            .collect();
        let states = vec![PlanState::default(); plans.len()];
        Self {
            config,
            plans,
            routes,
            reported,
            problems,
            states,
            watermark: None,
            stats: CorrelatorStats::default(),
            partition: None,
        }
    }

    /// Correlation rules that could not be prepared (and are not evaluated).
    pub fn problems(&self) -> &[CorrelationError] {
        &self.problems
    }

    /// The number of correlation rules evaluated.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// Whether no correlation rule is evaluated (feeding matches is then a no-op).
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// Whether the rule at `rule` (an index in [`RuleSet::rules`]) is an alert in its own
    /// right: `false` only when correlations refer to it and none of them says `generate:
    /// true`. Unknown indices are reported.
    pub fn is_reported(&self, rule: usize) -> bool {
        self.reported.get(rule).copied().unwrap_or(true)
    }

    /// Whether any correlation uses the matches of the rule at `rule`.
    pub fn is_referenced(&self, rule: usize) -> bool {
        self.routes.get(rule).is_some_and(|r| !r.is_empty())
    }

    /// The fields of an event that the correlations referring to the rule at `rule` read
    /// from its matches (their `group-by` fields and aggregated fields, aliases resolved),
    /// each once: a caller that keeps matches for later may keep only these.
    pub fn fields_read(&self, rule: usize) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::new();
        for route in self.routes.get(rule).into_iter().flatten() {
            let read = route.group_fields.iter().chain(&route.value_field);
            for field in read {
                if !fields.contains(&field.as_str()) {
                    fields.push(field);
                }
            }
        }
        fields
    }

    /// The counters.
    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    /// The latest event time seen (the correlator's clock).
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    /// The number of groups currently held, over all correlations.
    pub fn group_count(&self) -> usize {
        self.states.iter().map(|s| s.groups.len()).sum()
    }

    /// The number of matches currently held in windows, over all correlations.
    pub fn entry_count(&self) -> usize {
        self.states
            .iter()
            .flat_map(|s| s.groups.values())
            .map(|g| g.entries.len())
            .sum()
    }
}
