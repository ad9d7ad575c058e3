//! Saved state: a snapshot restored by a later correlator, changed rules and bad bytes.

use super::*;

#[test]
fn snapshot_restores_across_runs() {
    let set = rules(BRUTE_FORCE);
    let events = failures("bob", 0, 50, 1);
    let mut one = Correlator::new(&set);
    let all = run(&set, &mut one, &events);

    let mut first = Correlator::new(&set);
    let mut split = run(&set, &mut first, &events[..3]);
    let saved = first.snapshot();
    let mut second = Correlator::new(&set);
    let report = second.restore(&saved).unwrap();
    assert_eq!((report.restored, report.groups), (1, 1));
    split.extend(run(&set, &mut second, &events[3..]));
    assert_eq!(split, all);
    assert_eq!(second.stats(), one.stats());
    // And the episode is remembered: after the hit, a restart does not fire again.
    let mut third = Correlator::new(&set);
    third.restore(&second.snapshot()).unwrap();
    assert!(run(&set, &mut third, &failures("bob", 50, 20, 1)).is_empty());
}

#[test]
fn restore_drops_changed_rules_and_refuses_bad_bytes() {
    let set = rules(BRUTE_FORCE);
    let mut c = Correlator::new(&set);
    run(&set, &mut c, &failures("bob", 0, 3, 1));
    let saved = c.snapshot();
    let changed = rules(&BRUTE_FORCE.replace("gte: 5", "gte: 6"));
    let mut d = Correlator::new(&changed);
    let report = d.restore(&saved).unwrap();
    assert_eq!(report.dropped, vec!["bf".to_owned()]);
    assert_eq!(d.group_count(), 0);

    assert!(matches!(
        c.restore(b"not json"),
        Err(StateError::Malformed(_))
    ));
    assert!(matches!(
        c.restore(br#"{"format":"other","version":1}"#),
        Err(StateError::WrongFormat { .. })
    ));
    assert!(matches!(
        c.restore(br#"{"format":"siren-correlation-state","version":99}"#),
        Err(StateError::UnsupportedVersion { found: 99 })
    ));
    // A failed restore leaves the state alone.
    assert_eq!(c.entry_count(), 3);
}
