//! Routing matches by correlation group, for correlating on several workers: every
//! correlation group — a tenant, a correlation rule and its `group-by` values — belongs to one
//! partition ([`partition_of`]), so the worker that owns a partition sees every match of its
//! groups, whichever front-end received the events.

use super::key::{GroupKey, KeyInput};
use super::{CorrelationHit, Correlator};
use crate::event::{Event, TenantId};

/// The groups a correlator keeps when it correlates one partition: those of `tenant` whose
/// partition ([`Correlator::partition_of_group`]) is `partition`.
#[derive(Debug, Clone)]
pub(super) struct PartitionFilter {
    tenant: TenantId,
    partition: u32,
    partitions: u32,
    /// Per correlation: the chain it belongs to, when it is part of one
    /// ([`Correlator::chain_families`]).
    families: Vec<Option<String>>,
}

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

    /// The partitions, of `partitions`, that a match of the rule at `rule` of `tenant`'s
    /// `event` must be sent to: those of the groups it feeds, each once, in ascending order.
    /// A correlation that is part of a chain (one correlation referring to another) keeps
    /// all its groups in the partition of the chain, so that the hits of one feed the
    /// other where it is correlated.
    pub fn partitions_of(
        &self,
        rule: usize,
        event: &Event,
        tenant: &TenantId,
        partitions: u32,
    ) -> Vec<u32> {
        let families = self.chain_families();
        let source = KeyInput::Event(event, None);
        let mut found: Vec<u32> = self
            .routes
            .get(rule)
            .into_iter()
            .flatten()
            .map(|route| {
                let key: GroupKey = route.group_fields.iter().map(|f| source.field(f)).collect();
                self.partition_in(&families, tenant, route.plan, key, partitions)
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Makes the correlator keep only the groups of `tenant` in `partition` (of
    /// `partitions`): matches for other groups are ignored, so that a worker that owns
    /// one partition raises exactly the hits of its groups.
    pub fn keep_partition(&mut self, tenant: &TenantId, partition: u32, partitions: u32) {
        self.partition = Some(PartitionFilter {
            tenant: tenant.clone(),
            partition,
            partitions,
            families: self.chain_families(),
        });
    }

    /// Whether the group `key` of the correlation at `plan` is one this correlator keeps.
    pub(super) fn owns(&self, plan: usize, key: &GroupKey) -> bool {
        let Some(filter) = &self.partition else {
            return true;
        };
        self.partition_in(
            &filter.families,
            &filter.tenant,
            plan,
            key.clone(),
            filter.partitions,
        ) == filter.partition
    }

    fn partition_in(
        &self,
        families: &[Option<String>],
        tenant: &TenantId,
        plan: usize,
        key: GroupKey,
        partitions: u32,
    ) -> u32 {
        let group = match families.get(plan).cloned().flatten() {
            // A chain's groups all live in one partition (named by the chain).
            Some(chain) => GroupRoute {
                correlation: chain,
                key: Vec::new(),
            },
            None => GroupRoute {
                correlation: self
                    .plans
                    .get(plan)
                    .map(|p| p.reference.clone())
                    .unwrap_or_default(),
                key,
            },
        };
        partition_of(tenant, &group, partitions)
    }

    /// Per correlation: `None` when it stands alone, else the name of its chain (the
    /// smallest reference among the correlations connected to it by references).
    fn chain_families(&self) -> Vec<Option<String>> {
        let mut parent: Vec<usize> = (0..self.plans.len()).collect();
        fn root(parent: &mut [usize], mut at: usize) -> usize {
            while parent[at] != at {
                parent[at] = parent[parent[at]];
                at = parent[at];
            }
            at
        }
        for (index, plan) in self.plans.iter().enumerate() {
            for route in self.routes.get(plan.rule).into_iter().flatten() {
                let (a, b) = (root(&mut parent, index), root(&mut parent, route.plan));
                parent[a] = b;
            }
        }
        let roots: Vec<usize> = (0..self.plans.len())
            .map(|i| root(&mut parent, i))
            .collect();
        let mut names: std::collections::HashMap<usize, (usize, String)> =
            std::collections::HashMap::new();
        for (index, plan) in self.plans.iter().enumerate() {
            let entry = names
                .entry(roots[index])
                .or_insert((0, plan.reference.clone()));
            entry.0 += 1;
            if plan.reference < entry.1 {
                entry.1 = plan.reference.clone();
            }
        }
        roots
            .iter()
            .map(|r| {
                names
                    .get(r)
                    .filter(|(members, _)| *members > 1)
                    .map(|(_, name)| format!("chain:{name}"))
            })
            .collect()
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
