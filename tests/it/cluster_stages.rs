//! The distributed mode's stages without the bus: front-end pipelines publish into a log
//! kept here (de-duplicated by message id, as JetStream does), and partition workers apply
//! it. Their alerts and incidents equal those of one in-process pipeline fed the same
//! batches, also when each worker is replaced part-way (a takeover from its checkpoint) and
//! when a message is delivered twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use siren_core::TenantId;
use siren_core::ingest::bus::{BusMessage, Publisher};
use siren_core::ingest::{PartitionWorker, Pipeline, PipelineOptions};
use siren_core::rules::LoadOptions;
use siren_core::store::Store;

use crate::ingest_crash::{assert_same, read_outcome};

/// The bus's stand-in: an ordered log of (partition, bytes), its sequence numbers starting
/// at 1, with JetStream's de-duplication by message id.
#[derive(Default)]
struct Log {
    messages: Mutex<Published>,
}

/// The messages kept, in order, and the ids seen.
type Published = (Vec<(u32, Vec<u8>)>, HashSet<String>);

#[async_trait::async_trait]
impl Publisher for Log {
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), String> {
        let mut log = self.messages.lock().unwrap();
        for (partition, id, bytes) in messages {
            if log.1.insert(id) {
                log.0.push((partition, bytes));
            }
        }
        Ok(())
    }
}

impl Log {
    /// The partition's messages with their sequence numbers.
    fn of(&self, partition: u32) -> Vec<(u64, Vec<u8>)> {
        let log = self.messages.lock().unwrap();
        log.0
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p == partition)
            .map(|(i, (_, bytes))| (i as u64 + 1, bytes.clone()))
            .collect()
    }
}

/// Refused logons of five users on three hosts, a second apart, in `count` batches of
/// 20, with a successful logon and now and then a cleared log. Every eighth batch starts an
/// hour later, so that the correlations re-arm and fire again all along the input.
fn batches(count: usize) -> Vec<Vec<Value>> {
    let base = chrono::Utc::now() - chrono::Duration::hours(12);
    (0..count)
        .map(|b| {
            let start = base + chrono::Duration::hours((b / 8) as i64);
            let mut batch: Vec<Value> = (0..20)
                .map(|i| {
                    let n = b * 20 + i;
                    let at = start + chrono::Duration::seconds(n as i64);
                    json!({"EventID": 4625, "Channel": "Security",
                        "Provider_Name": "Microsoft-Windows-Security-Auditing",
                        "Computer": format!("ws{:02}", n % 3), "EventRecordID": n,
                        "TargetUserName": format!("user{}", n % 5), "TargetDomainName": "CORP",
                        "IpAddress": format!("10.0.0.{}", n % 7), "LogonType": 3,
                        "Status": "0xc000006d", "SubStatus": "0xc000006a",
                        "TimeCreated": at.to_rfc3339()})
                })
                .collect();
            let at = start + chrono::Duration::seconds(b as i64 * 20 + 19);
            batch.push(json!({"EventID": 4624, "Channel": "Security",
                "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": "ws01",
                "EventRecordID": 100_000 + b, "TargetUserName": format!("user{}", b % 5),
                "LogonType": 3, "IpAddress": "10.0.0.3", "TimeCreated": at.to_rfc3339()}));
            if b % 10 == 9 {
                batch.push(json!({"EventID": 1102, "Channel": "Security",
                    "Provider_Name": "Microsoft-Windows-Eventlog", "Computer": "ws02",
                    "EventRecordID": 200_000 + b, "SubjectUserName": "user4",
                    "TimeCreated": at.to_rfc3339()}));
            }
            batch
        })
        .collect()
}

async fn sqlite(dir: &std::path::Path, name: &str) -> (Arc<dyn Store>, std::path::PathBuf) {
    let path = dir.join(name);
    let store = siren_core::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (store, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_workers_raise_exactly_what_one_pipeline_raises() {
    let (rules, problems) = siren_core::rules::builtin(&LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    let rules = Arc::new(rules);
    let tenant = TenantId::default();
    let dir = tempfile::tempdir().unwrap();
    let input = batches(40);

    // One node.
    let (single, single_db) = sqlite(dir.path(), "single.db").await;
    let pipeline = Pipeline::new(
        single.clone(),
        Some(rules.clone()),
        PipelineOptions::default(),
    );
    for batch in &input {
        let items = batch.iter().cloned().map(Ok).collect();
        pipeline.ingest_json(&tenant, items).await.unwrap();
    }
    pipeline.checkpoint().await.unwrap();

    // Two front-ends sharing one store and log, batches alternating between them; every
    // fifth batch is sent twice (a client's retry), which stores and publishes nothing new.
    const PARTITIONS: u32 = 4;
    let (cluster, cluster_db) = sqlite(dir.path(), "cluster.db").await;
    let log = Arc::new(Log::default());
    let front_ends: Vec<Pipeline> = (0..2)
        .map(|_| {
            Pipeline::new(
                cluster.clone(),
                Some(rules.clone()),
                PipelineOptions::default(),
            )
            .with_bus(log.clone(), PARTITIONS)
        })
        .collect();
    for (i, batch) in input.iter().enumerate() {
        let front_end = &front_ends[i % 2];
        let items: Vec<_> = batch.iter().cloned().map(Ok).collect();
        front_end.ingest_json(&tenant, items.clone()).await.unwrap();
        if i % 5 == 0 {
            let again = front_end.ingest_json(&tenant, items).await.unwrap();
            assert_eq!(again.stored, 0);
        }
    }

    // One worker per partition. Each checkpoints after a quarter of its messages and is
    // replaced at half-way by a new owner, which resumes after the checkpoint and replays up
    // to there (their hits were stored by the first owner: storing them again would double
    // them); one message is delivered twice.
    let options = PipelineOptions::default();
    let mut used = 0;
    let mut replayed_hits = 0;
    for partition in 0..PARTITIONS {
        let messages = log.of(partition);
        used += usize::from(!messages.is_empty());
        let open = || {
            PartitionWorker::open(
                cluster.clone(),
                rules.clone(),
                options.clone(),
                partition,
                PARTITIONS,
            )
        };
        let mut worker = open().await.unwrap();
        let (quarter, half) = (messages.len() / 4, messages.len() / 2);
        for (n, (seq, bytes)) in messages.iter().enumerate() {
            if n == quarter {
                worker
                    .checkpoint(std::time::Duration::ZERO, true)
                    .await
                    .unwrap();
            }
            if n == half {
                worker = open().await.unwrap();
                let resumed = worker.applied();
                assert!(resumed < *seq, "resumes before message {n}");
                for (seq, bytes) in messages.iter().filter(|(s, _)| *s > resumed) {
                    if *seq >= messages[half].0 {
                        break;
                    }
                    let replay = worker.apply(*seq, bytes).await.unwrap();
                    replayed_hits += replay.hits;
                    assert_eq!(replay.alerts.alerts, 0, "a replay stores nothing");
                }
            }
            worker.apply(*seq, bytes).await.unwrap();
            if n == 1 {
                let again = worker.apply(*seq, bytes).await.unwrap();
                assert_eq!(again.hits, 0, "a redelivered message is ignored");
            }
        }
        worker
            .checkpoint(std::time::Duration::ZERO, true)
            .await
            .unwrap();
    }
    assert!(used > 1, "the groups fell in {used} partition(s)");

    let correlations: std::collections::BTreeSet<String> = rules
        .rules()
        .iter()
        .filter(|r| matches!(r.kind, siren_core::rules::RuleKind::Correlation(_)))
        .map(|r| r.title.clone())
        .collect();
    let (expected, got) = tokio::task::spawn_blocking(move || {
        (
            read_outcome(&single_db, &correlations),
            read_outcome(&cluster_db, &correlations),
        )
    })
    .await
    .unwrap();
    assert!(
        expected.correlation_hits >= 5,
        "the input completes correlations: {}",
        expected.correlation_hits
    );
    assert_eq!(got.events, expected.events);
    assert_eq!(got.correlation_hits, expected.correlation_hits);
    assert_same(&got, &expected);
    assert!(
        replayed_hits > 0,
        "the takeovers replayed messages with hits"
    );
}
