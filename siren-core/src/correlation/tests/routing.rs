//! Routing matches by correlation group to partitions.

use super::*;

const TWO_GROUPINGS: &str = "title: Brute force\nid: bf\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [TargetUserName, Computer]\n  timespan: 2m\n  condition: {gte: 5}\n---\ntitle: Spray\nid: spray\ncorrelation:\n  type: value_count\n  rules: [failed]\n  group-by: [IpAddress]\n  timespan: 5m\n  condition: {gte: 3, field: TargetUserName}\n";

fn failed_index(set: &RuleSet) -> usize {
    set.rules()
        .iter()
        .position(|r| r.name.as_deref() == Some("failed"))
        .unwrap()
}

#[test]
fn a_match_feeds_one_group_per_correlation_that_uses_its_rule() {
    let set = rules(TWO_GROUPINGS);
    let correlator = Correlator::new(&set);
    let failed = failed_index(&set);
    let e = event(
        4625,
        0,
        json!({"TargetUserName": "alice", "IpAddress": "10.0.0.9"}),
    );
    let groups = correlator.groups_of(failed, &e);
    assert_eq!(
        groups,
        [
            GroupRoute {
                correlation: "bf".into(),
                key: vec![Some("alice".into()), Some("dc01".into())],
            },
            GroupRoute {
                correlation: "spray".into(),
                key: vec![Some("10.0.0.9".into())],
            },
        ]
    );
    // A field the event lacks is a value of its own; a rule no correlation uses feeds none.
    let bare = event(4625, 1, json!({"TargetUserName": "bob"}));
    assert_eq!(correlator.groups_of(failed, &bare)[1].key, [None]);
    let success = set
        .rules()
        .iter()
        .position(|r| r.name.as_deref() == Some("success"))
        .unwrap();
    assert!(correlator.groups_of(success, &e).is_empty());
}

#[test]
fn a_hit_feeds_the_groups_of_the_correlations_that_chain_on_it() {
    let chain = "title: Brute force\nid: bf\nname: bf\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [TargetUserName]\n  timespan: 2m\n  condition: {gte: 2}\n---\ntitle: Repeated brute force\nid: again\ncorrelation:\n  type: event_count\n  rules: [bf]\n  group-by: [TargetUserName]\n  timespan: 1h\n  condition: {gte: 2}\n";
    let set = rules(chain);
    let mut correlator = Correlator::new(&set);
    let failed = failed_index(&set);
    let events: Vec<Event> = (0..2)
        .map(|i| event(4625, i, json!({"TargetUserName": "carol"})))
        .collect();
    let hits = run(&set, &mut correlator, &events);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        correlator.groups_of_hit(&hits[0]),
        [GroupRoute {
            correlation: "again".into(),
            key: vec![Some("carol".into())],
        }]
    );
    assert_eq!(
        correlator.groups_of(failed, &events[0])[0].correlation,
        "bf"
    );
}

#[test]
fn partitions_are_stable_in_range_and_spread() {
    let tenant = TenantId::default();
    let group = |user: &str| GroupRoute {
        correlation: "bf".into(),
        key: vec![Some(user.to_owned()), None],
    };
    // Pinned: the partition of a group must not change between builds, or a rolling upgrade
    // would send one group's matches to two workers.
    assert_eq!(
        partition_of(&tenant, &group("alice"), 16),
        partition_of(&tenant, &group("alice"), 16)
    );
    let pinned: Vec<u32> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| partition_of(&tenant, &group(u), 1024))
        .collect();
    assert_eq!(pinned, PINNED);
    // `None` and the text "" are different groups, as are the same values under another
    // tenant or correlation (almost always in another partition at 2^32 partitions).
    let empty = GroupRoute {
        correlation: "bf".into(),
        key: vec![Some(String::new()), None],
    };
    let none = GroupRoute {
        correlation: "bf".into(),
        key: vec![None, None],
    };
    assert_ne!(
        partition_of(&tenant, &empty, u32::MAX),
        partition_of(&tenant, &none, u32::MAX)
    );
    let other = TenantId::parse("other").unwrap();
    assert_ne!(
        partition_of(&tenant, &group("alice"), u32::MAX),
        partition_of(&other, &group("alice"), u32::MAX)
    );
    let mut counts = [0u32; 8];
    for i in 0..8000 {
        let p = partition_of(&tenant, &group(&format!("user{i}")), 8);
        counts[p as usize] += 1;
    }
    assert!(
        counts.iter().all(|&n| (800..1200).contains(&n)),
        "{counts:?}"
    );
    assert_eq!(partition_of(&tenant, &group("alice"), 0), 0);
}

#[test]
fn partitioned_correlators_together_raise_exactly_the_hits_of_one() {
    // Two groupings of one rule, plus a chain (a correlation of the brute-force hits).
    let chained = format!(
        "{TWO_GROUPINGS}---\ntitle: Repeated\nid: again\ncorrelation:\n  type: event_count\n  rules: [bf]\n  group-by: [TargetUserName]\n  timespan: 1h\n  condition: {{gte: 2}}\n"
    );
    let set = rules(&chained);
    let tenant = TenantId::default();
    let mut events = Vec::new();
    for round in 0..3 {
        for (u, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
            for i in 0..6 {
                let second = round * 600 + (u as i64) * 7 + i;
                let ip = format!("10.0.0.{}", (i + u as i64) % 3);
                events.push(event(
                    4625,
                    second,
                    json!({"TargetUserName": user, "IpAddress": ip}),
                ));
            }
        }
    }
    events.sort_by_key(|e| e.timestamp);
    let describe = |hits: Vec<CorrelationHit>| {
        let mut out: Vec<String> = hits
            .iter()
            .map(|h| format!("{} {:?} {}", h.reference, h.group, h.last_seen))
            .collect();
        out.sort();
        out
    };
    let mut one = Correlator::new(&set);
    let whole = describe(run(&set, &mut one, &events));
    assert!(whole.iter().any(|h| h.starts_with("again")), "{whole:#?}");
    assert!(whole.iter().any(|h| h.starts_with("spray")), "{whole:#?}");
    const PARTITIONS: u32 = 4;
    let mut workers: Vec<Correlator> = (0..PARTITIONS)
        .map(|p| {
            let mut c = Correlator::new(&set);
            c.keep_partition(&tenant, p, PARTITIONS);
            c
        })
        .collect();
    let router = Correlator::new(&set);
    let mut hits = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for e in &events {
        set.for_each_match(e, |rule| {
            for p in router.partitions_of(rule, e, &tenant, PARTITIONS) {
                used.insert(p);
                hits.extend(workers[p as usize].observe(rule, e));
            }
        });
    }
    assert!(
        used.len() > 1,
        "the groups all fell in one partition: {used:?}"
    );
    assert_eq!(describe(hits), whole);
}

/// The partitions of alice, bob and carol's `bf` groups at 1,024 partitions, as this build computes
/// them: a change of the hash shows here.
const PINNED: [u32; 3] = [855, 762, 73];
