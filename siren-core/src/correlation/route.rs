//! Routing matches by correlation group, for correlating on several workers: every
//! correlation group — a tenant, a correlation rule and its `group-by` values — belongs to one
//! partition ([`partition_of`]), so the worker that owns a partition sees every match of its
//! groups, whichever front-end received the events.

use super::key::KeyInput;
use super::{CorrelationHit, Correlator};
use crate::event::{Event, TenantId};

/// One correlation group a match feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRoute {
    /// The correlation rule's reference (its `id` or `name`).
    pub correlation: String,
    /// The group's `group-by` values, in the correlation's order (`None`: the field is missing).
    pub key: Vec<Option<String>>,
}

impl Correlator {
    /// The correlation groups that a match of the rule at `rule` (an index in
    /// [`RuleSet::rules`](crate::rules::RuleSet::rules)) of `event` feeds: one per
    /// correlation that uses the rule, none when no correlation does.
    pub fn groups_of(&self, rule: usize, event: &Event) -> Vec<GroupRoute> {
        self.routes_of(rule, &KeyInput::Event(event, None))
    }

    /// The correlation groups that a hit feeds, through the correlations that refer to the
    /// correlation that fired (chains).
    pub fn groups_of_hit(&self, hit: &CorrelationHit) -> Vec<GroupRoute> {
        self.routes_of(hit.rule, &KeyInput::Hit(hit))
    }

    fn routes_of(&self, rule: usize, source: &KeyInput<'_>) -> Vec<GroupRoute> {
        self.routes
            .get(rule)
            .into_iter()
            .flatten()
            .filter_map(|route| {
                let plan = self.plans.get(route.plan)?;
                Some(GroupRoute {
                    correlation: plan.reference.clone(),
                    key: route.group_fields.iter().map(|f| source.field(f)).collect(),
                })
            })
            .collect()
    }
}

/// The partition, of `partitions` (at least 1), that a correlation group of `tenant` belongs
/// to: a BLAKE3 hash of the tenant, the correlation and the group's values, each
/// length-prefixed, so it is the same on every machine, build and platform.
pub fn partition_of(tenant: &TenantId, group: &GroupRoute, partitions: u32) -> u32 {
    let mut hasher = blake3::Hasher::new();
    let mut text = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    text(tenant.as_str().as_bytes());
    text(group.correlation.as_bytes());
    for value in &group.key {
        match value {
            None => text(&[0]),
            Some(value) => {
                text(&[1]);
                text(value.as_bytes());
            }
        }
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(partitions.max(1))) as u32
}
