//! Property tests of the correlator: arbitrary event streams against every correlation
//! type, in one run or split across saved states, within the caps.

use proptest::prelude::*;

use super::*;

const EVERY_TYPE: &str = r#"
title: Count
id: count
correlation: {type: event_count, rules: [failed], group-by: [TargetUserName], timespan: 1m, condition: {gte: 3}}
---
title: Distinct
id: distinct
correlation: {type: value_count, rules: [failed, success], group-by: [IpAddress], timespan: 2m, condition: {gte: 2, lt: 5, field: TargetUserName}}
---
title: Both
id: both
correlation: {type: temporal, rules: [failed, success], group-by: [TargetUserName], timespan: 1m}
---
title: Ordered
id: ordered
correlation: {type: temporal_ordered, rules: [count, success], group-by: [TargetUserName], timespan: 5m, generate: true}
---
title: Sum
id: sum
correlation: {type: value_sum, rules: [sent], group-by: [IpAddress], timespan: 1m, condition: {gt: 10, field: Bytes}}
---
title: Median
id: median
correlation: {type: value_median, rules: [sent], timespan: 1m, condition: {gte: 3, field: Bytes}}
---
title: Percentile
id: percentile
correlation: {type: value_percentile, rules: [sent], timespan: 1m, condition: {lte: 2, field: Bytes, percentile: 10}}
"#;

fn arbitrary_event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![Just(4625i64), Just(4624), Just(5156), Just(4688)],
        prop::option::weighted(0.9, -300i64..600),
        0u8..4,
        0u8..3,
        prop_oneof![
            Just(json!(1)),
            Just(json!("7")),
            Just(json!("0x10")),
            Just(json!("x")),
            Just(json!(null)),
            Just(json!(-1e308)),
        ],
        prop::option::of(0i64..20),
    )
        .prop_map(|(id, time, user, ip, bytes, record)| {
            let mut fields = json!({"EventID": id, "Channel": "Security",
                "TargetUserName": format!("u{user}"), "IpAddress": format!("10.0.0.{ip}"),
                "Bytes": bytes});
            let f = fields.as_object_mut().unwrap();
            if let Some(t) = time {
                f.insert("TimeCreated".into(), json!(at(t).to_rfc3339()));
            }
            if let Some(r) = record {
                f.insert("EventRecordID".into(), json!(r));
            }
            Event::from_fields(f.clone().into_iter().collect(), TenantId::default())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_stays_bounded_and_resumes_from_snapshots(
        events in prop::collection::vec(arbitrary_event(), 0..120),
        split in 0usize..120,
    ) {
        let set = rules(EVERY_TYPE);
        let config = CorrelatorConfig::default()
            .with_lateness(Duration::from_secs(120))
            .with_max_entries(8);
        let mut one = Correlator::with_config(&set, config.clone());
        prop_assert!(one.problems().is_empty());
        let all = run(&set, &mut one, &events);
        prop_assert!(one.states.iter().flat_map(|s| s.groups.values()).all(|g| g.entries.len() <= 8));
        for hit in &all {
            prop_assert!(hit.first_seen <= hit.last_seen);
            prop_assert!(hit.value.is_finite());
        }

        let split = split.min(events.len());
        let mut first = Correlator::with_config(&set, config.clone());
        let mut hits = run(&set, &mut first, &events[..split]);
        let mut second = Correlator::with_config(&set, config.clone());
        second.restore(&first.snapshot()).unwrap();
        hits.extend(run(&set, &mut second, &events[split..]));
        prop_assert_eq!(hits, all);

        // The same with group clocks.
        let config = config.with_group_clock(Duration::from_secs(30));
        let all = run(&set, &mut Correlator::with_config(&set, config.clone()), &events);
        let mut first = Correlator::with_config(&set, config.clone());
        let mut hits = run(&set, &mut first, &events[..split]);
        let mut second = Correlator::with_config(&set, config);
        second.restore(&first.snapshot()).unwrap();
        hits.extend(run(&set, &mut second, &events[split..]));
        prop_assert_eq!(hits, all);

        // Tight caps: still no panic, and bounded.
        let mut tight = Correlator::with_config(
            &set,
            CorrelatorConfig::default().with_max_groups(2).with_max_entries(1),
        );
        run(&set, &mut tight, &events);
        prop_assert!(tight.states.iter().all(|s| s.groups.len() <= 2));
    }

    #[test]
    fn restore_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let set = rules(EVERY_TYPE);
        let mut c = Correlator::new(&set);
        let _ = c.restore(&bytes);
        let mut text = br#"{"format":"siren-correlation-state","version":1,"correlations":[{"reference":"count","fingerprint":""#.to_vec();
        text.extend_from_slice(&bytes);
        let _ = c.restore(&text);
    }
}
