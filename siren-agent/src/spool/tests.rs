//! The spool's unit tests: appending, acknowledging, segments, the size bound and crashes.

use super::*;

fn record(i: u64) -> SpoolRecord {
    SpoolRecord {
        key: "k".into(),
        position: Value::from(i),
        event: Some(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100))),
    }
}

fn open(dir: &Path, max: u64, when_full: WhenFull) -> (Spool, Recovered) {
    Spool::open(dir, max, max / 4, when_full).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn survives_reopen_and_resumes_after_the_newest_spooled_position() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (spool, _) = open(dir.path(), 1 << 20, WhenFull::Block);
    let records: Vec<_> = (0..10).map(record).collect();
    spool.append(&records).unwrap_or_else(|e| panic!("{e}"));
    let batch = spool.read(4, u64::MAX, Duration::ZERO).unwrap_or_default();
    assert_eq!(batch.len(), 4);
    spool
        .ack(4, &[("k".to_owned(), Value::from(3))].into())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(spool);
    let (spool, recovered) = open(dir.path(), 1 << 20, WhenFull::Block);
    assert_eq!(recovered.resume["k"], Value::from(9));
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(spool.stats().bytes, on_disk, "the size survives a reopen");
    assert_eq!(spool.stats().depth, 6);
    let rest = spool
        .read(100, u64::MAX, Duration::ZERO)
        .unwrap_or_default();
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[0].1, record(4));
}

#[test]
fn torn_tail_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (spool, _) = open(dir.path(), 1 << 20, WhenFull::Block);
    spool
        .append(&(0..5).map(record).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(spool);
    let seg = dir.path().join(format!("{:020}.seg", 0));
    let mut f = OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5])
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let (spool, _) = open(dir.path(), 1 << 20, WhenFull::Block);
    assert_eq!(spool.stats().depth, 5);
    spool.append(&[record(5)]).unwrap_or_else(|e| panic!("{e}"));
    let all = spool
        .read(100, u64::MAX, Duration::ZERO)
        .unwrap_or_default();
    assert_eq!(
        all.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        (0..6).map(record).collect::<Vec<_>>()
    );
}

#[test]
fn drop_oldest_stays_within_the_bound_and_counts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let max = 64 << 10;
    let (spool, _) = open(dir.path(), max, WhenFull::DropOldest);
    let mut dropped = 0;
    for i in 0..2000 {
        dropped += spool.append(&[record(i)]).unwrap_or_else(|e| panic!("{e}"));
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(on_disk <= max, "{on_disk} > {max}");
    }
    let stats = spool.stats();
    assert!(dropped > 0);
    assert_eq!(stats.dropped, dropped);
    assert_eq!(stats.depth + dropped, 2000);
    let rest = spool
        .read(usize::MAX, u64::MAX, Duration::ZERO)
        .unwrap_or_default();
    assert_eq!(rest.len() as u64, stats.depth);
    assert_eq!(rest.last().map(|r| r.1.clone()), Some(record(1999)));
}
