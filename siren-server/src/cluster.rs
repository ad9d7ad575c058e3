//! The distributed mode on NATS JetStream (`server.bus`, `siren serve --bus nats://…`).
//!
//! Every name on the bus starts with the cluster's name (`server.cluster`, default `siren`),
//! so that clusters on separate databases can share one NATS server.
//!
//! - Every process is a **front-end**: `POST /events` stores the batch's events and its
//!   detections' incidents in PostgreSQL and publishes, per partition, the matches that feed
//!   correlations to the stream `<cluster>_correlation` (subject
//!   `<cluster>.correlation.<partition>`, de-duplicated by message id), answering only once
//!   JetStream has them.
//! - Processes with the worker role also **correlate**: each partition is owned by one worker
//!   at a time through a lease in the JetStream key-value bucket `<cluster>_leases` (renewed every
//!   2 s, expiring after 6 s), taken over when its owner stops renewing it. The owner reads the
//!   partition's subject from its checkpoint on ([`PartitionWorker`]).
//! - Members announce themselves in the bucket `<cluster>_members` (role, partitions, progress),
//!   which `siren cluster status` and `/metrics` read; the number of partitions is fixed in the
//!   bucket `<cluster>_settings` by the first process and checked by every other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use siren_core::ingest::bus::{BusMessage, Publisher};
use siren_core::ingest::{PartitionWorker, PipelineOptions};
use siren_core::rules::RuleSet;
use siren_core::store::Store;
use tokio::sync::watch;

/// A lease not renewed for this long is free to take.
const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often leases are renewed and ownership balanced.
const TICK: Duration = Duration::from_secs(2);
/// A member not heard from for this long is gone.
const MEMBER_TTL: Duration = Duration::from_secs(10);
/// How long the stream recognises a message id it has stored.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// A process's role in the distributed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Accepts events only.
    FrontEnd,
    /// Accepts events and correlates the partitions it owns.
    Worker,
    /// Both (the default).
    #[default]
    Both,
}

impl Role {
    /// Whether it correlates partitions.
    pub fn correlates(self) -> bool {
        matches!(self, Role::Worker | Role::Both)
    }
}

/// The connection to the bus: the JetStream context and the cluster's buckets.
#[derive(Clone)]
pub struct Bus {
    jetstream: jetstream::Context,
    /// The stream's name and its subjects' prefix.
    stream: String,
    subjects: String,
    leases: kv::Store,
    members: kv::Store,
    partitions: u32,
}

impl Bus {
    /// Connects to `url`, creating the stream and buckets when they do not exist. The
    /// first process fixes the number of partitions; a process started with another number
    /// is refused, since the partitions of the groups would differ.
    pub async fn connect(url: &str, cluster: &str, partitions: u32) -> anyhow::Result<Self> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("cannot connect to the bus at {url}"))?;
        let jetstream = jetstream::new(client);
        let stream = format!("{cluster}_correlation");
        let subjects = format!("{cluster}.correlation.");
        jetstream
            .get_or_create_stream(stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{subjects}*")],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: Duration::from_secs(7 * 86_400),
                ..Default::default()
            })
            .await
            .context("cannot create the correlation stream")?;
        let leases = bucket(&jetstream, &format!("{cluster}_leases"), LEASE_TTL).await?;
        let members = bucket(&jetstream, &format!("{cluster}_members"), MEMBER_TTL).await?;
        let settings = bucket(&jetstream, &format!("{cluster}_settings"), Duration::ZERO).await?;
        let partitions = partitions.max(1);
        if settings
            .create("partitions", partitions.to_string().into())
            .await
            .is_err()
        {
            let fixed = settings
                .get("partitions")
                .await
                .context("cannot read the cluster's number of partitions")?
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
            match fixed {
                Some(fixed) if fixed != partitions => anyhow::bail!(
                    "the cluster has {fixed} partitions; this process was started with \
                     {partitions} (server.partitions must be the same on every process)"
                ),
                Some(_) => {}
                None => anyhow::bail!("the cluster's number of partitions is unreadable"),
            }
        }
        Ok(Self {
            jetstream,
            stream,
            subjects,
            leases,
            members,
            partitions,
        })
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Announces a member (its status as JSON).
    async fn announce(&self, member: &Member) {
        let bytes = serde_json::to_vec(member).unwrap_or_default();
        if let Err(error) = self.members.put(&member.id, bytes.into()).await {
            tracing::warn!(%error, "announcing this process on the bus failed");
        }
    }

    /// Every member heard from within the last seconds.
    pub async fn members(&self) -> anyhow::Result<Vec<Member>> {
        let mut keys = self.members.keys().await?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key?;
            if let Some(value) = self.members.get(&key).await? {
                if let Ok(member) = serde_json::from_slice::<Member>(&value) {
                    members.push(member);
                }
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(members)
    }

    /// Each partition's owner (partitions without one are left out).
    pub async fn owners(&self) -> anyhow::Result<BTreeMap<u32, String>> {
        let mut keys = self.leases.keys().await?;
        let mut owners = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key?;
            let Some(partition) = key.strip_prefix("p").and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(value) = self.leases.get(&key).await? {
                owners.insert(partition, String::from_utf8_lossy(&value).into_owned());
            }
        }
        Ok(owners)
    }

    /// The cluster as `siren cluster status` shows it.
    pub async fn status(&self) -> anyhow::Result<ClusterStatus> {
        let members = self.members().await?;
        let owners = self.owners().await?;
        let mut progress: HashMap<u32, &PartitionProgress> = HashMap::new();
        for member in &members {
            for p in &member.partitions {
                progress.insert(p.partition, p);
            }
        }
        let partitions = (0..self.partitions)
            .map(|partition| PartitionStatus {
                partition,
                owner: owners.get(&partition).cloned(),
                applied: progress.get(&partition).map(|p| p.applied),
                lag: progress.get(&partition).map(|p| p.lag),
            })
            .collect();
        Ok(ClusterStatus {
            partitions,
            members,
        })
    }
}

async fn bucket(
    jetstream: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> anyhow::Result<kv::Store> {
    if let Ok(store) = jetstream.get_key_value(name).await {
        return Ok(store);
    }
    // The bucket's stream as `create_key_value` makes it (one value per key, roll-ups,
    // direct gets), created directly: `create_key_value` first reads the account's
    // JetStream limits, in a form NATS servers before 2.10 do not answer in.
    jetstream
        .get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create the bucket {name}"))?;
    jetstream
        .get_key_value(name)
        .await
        .with_context(|| format!("cannot open the bucket {name}"))
}

#[async_trait::async_trait]
impl Publisher for Bus {
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(messages.len());
        for (partition, id, bytes) in messages {
            let ack = self
                .jetstream
                .send_publish(
                    format!("{}{partition}", self.subjects),
                    jetstream::message::PublishMessage::build()
                        .payload(bytes.into())
                        .message_id(id),
                )
                .await
                .map_err(|e| format!("publishing to partition {partition} failed: {e}"))?;
            acks.push((partition, ack));
        }
        for (partition, ack) in acks {
            ack.await
                .map_err(|e| format!("partition {partition} was not acknowledged: {e}"))?;
        }
        Ok(())
    }
}

/// A member as it announces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// Its id (`server.node_id`, else host name and process id).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Where it serves HTTP.
    pub listen: String,
    /// The partitions it correlates, with their progress.
    pub partitions: Vec<PartitionProgress>,
    /// When it announced this (RFC 3339).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How far a worker is with one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: u32,
    /// The last stream sequence applied.
    pub applied: u64,
    /// Messages of the partition not applied yet (the consumer's pending count).
    pub lag: u64,
}

/// The cluster as seen from the bus.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// Every partition, its owner and progress.
    pub partitions: Vec<PartitionStatus>,
    /// Every member heard from recently.
    pub members: Vec<Member>,
}

/// One partition's state.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The worker that holds its lease.
    pub owner: Option<String>,
    /// The last stream sequence its owner applied.
    pub applied: Option<u64>,
    /// Messages waiting.
    pub lag: Option<u64>,
}

/// What this process does in the cluster, shared with `/metrics`.
#[derive(Default)]
pub struct Local {
    partitions: std::sync::Mutex<BTreeMap<u32, Arc<Progress>>>,
}

#[derive(Default)]
struct Progress {
    applied: AtomicU64,
    lag: AtomicU64,
}

impl Local {
    /// The partitions this process owns, with their progress.
    pub fn progress(&self) -> Vec<PartitionProgress> {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(&partition, p)| PartitionProgress {
                partition,
                applied: p.applied.load(Ordering::Relaxed),
                lag: p.lag.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn set(&self, partition: u32, progress: Option<Arc<Progress>>) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match progress {
            Some(p) => {
                partitions.insert(partition, p);
            }
            None => {
                partitions.remove(&partition);
            }
        }
    }
}

/// What a process in the cluster runs besides HTTP.
pub struct Node {
    /// The bus.
    pub bus: Bus,
    /// This process's id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Where it serves HTTP.
    pub listen: String,
    /// What it correlates.
    pub local: Arc<Local>,
}

/// A partition this worker owns: its lease's revision and the task correlating it.
struct Owned {
    revision: u64,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs this process's part of the cluster until `stop`: announces it, and for a worker takes,
/// renews, balances and gives back partition leases, correlating each partition it owns.
pub async fn run(
    node: Arc<Node>,
    store: Arc<dyn Store>,
    rules: Option<Arc<RuleSet>>,
    options: PipelineOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let correlates = node.role.correlates() && rules.is_some();
    loop {
        node.bus
            .announce(&Member {
                id: node.id.clone(),
                role: node.role,
                listen: node.listen.clone(),
                partitions: node.local.progress(),
                at: chrono::Utc::now(),
            })
            .await;
        if let (true, Some(rules)) = (correlates, &rules) {
            balance(&node, &store, rules, &options, &mut owned).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Give the partitions back (each saves its checkpoint first) and leave.
    for (partition, lease) in std::mem::take(&mut owned) {
        release(&node, partition, lease).await;
    }
    let _ = node.bus.members.delete(&node.id).await;
}

/// Renews the leases held, then takes or gives back partitions so that each worker owns
/// its share (the partitions divided by the workers, rounded up).
async fn balance(
    node: &Arc<Node>,
    store: &Arc<dyn Store>,
    rules: &Arc<RuleSet>,
    options: &PipelineOptions,
    owned: &mut BTreeMap<u32, Owned>,
) {
    let leases = &node.bus.leases;
    let mut lost = Vec::new();
    for (&partition, lease) in owned.iter_mut() {
        match leases
            .update(lease_key(partition), node.id.clone().into(), lease.revision)
            .await
        {
            Ok(revision) => lease.revision = revision,
            Err(error) => {
                tracing::warn!(partition, %error, "partition lease lost");
                lost.push(partition);
            }
        }
    }
    for partition in lost {
        if let Some(lease) = owned.remove(&partition) {
            // Another worker may own it now: stop at once, without a checkpoint.
            lease.task.abort();
            node.local.set(partition, None);
        }
    }
    let workers = match node.bus.members().await {
        Ok(members) => {
            members
                .iter()
                .filter(|m| m.role.correlates() && m.id != node.id)
                .count()
                + 1
        }
        Err(error) => {
            tracing::warn!(%error, "reading the cluster's members failed");
            return;
        }
    };
    let partitions = node.bus.partitions();
    let share = partitions.div_ceil(workers as u32) as usize;
    while owned.len() > share {
        let Some((&partition, _)) = owned.iter().next_back() else {
            break;
        };
        if let Some(lease) = owned.remove(&partition) {
            release(node, partition, lease).await;
        }
    }
    if owned.len() >= share {
        return;
    }
    // Start looking at a place of our own, so that workers do not all race for partition 0.
    let offset = (blake3::hash(node.id.as_bytes()).as_bytes()[0] as u32) % partitions;
    for step in 0..partitions {
        if owned.len() >= share {
            break;
        }
        let partition = (offset + step) % partitions;
        if owned.contains_key(&partition) {
            continue;
        }
        if let Ok(revision) = leases
            .create(lease_key(partition), node.id.clone().into())
            .await
        {
            tracing::info!(partition, "partition taken");
            let progress = Arc::new(Progress::default());
            node.local.set(partition, Some(progress.clone()));
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(correlate_partition(
                node.bus.clone(),
                store.clone(),
                rules.clone(),
                options.clone(),
                partition,
                progress,
                stop_rx,
            ));
            owned.insert(
                partition,
                Owned {
                    revision,
                    stop: stop_tx,
                    task,
                },
            );
        }
    }
}

async fn release(node: &Node, partition: u32, lease: Owned) {
    let _ = lease.stop.send(true);
    let _ = lease.task.await;
    node.local.set(partition, None);
    if let Err(error) = node.bus.leases.delete(lease_key(partition)).await {
        tracing::warn!(partition, %error, "giving the partition back failed");
    }
    tracing::info!(partition, "partition given back");
}

fn lease_key(partition: u32) -> String {
    format!("p{partition}")
}

/// Correlates one partition until `stop`, opening it again after an error.
async fn correlate_partition(
    bus: Bus,
    store: Arc<dyn Store>,
    rules: Arc<RuleSet>,
    options: PipelineOptions,
    partition: u32,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match correlate_once(
            &bus, &store, &rules, &options, partition, &progress, &mut stop,
        )
        .await
        {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(
                    partition,
                    error = format!("{error:#}"),
                    "correlating the partition failed; resuming from its checkpoint"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn correlate_once(
    bus: &Bus,
    store: &Arc<dyn Store>,
    rules: &Arc<RuleSet>,
    options: &PipelineOptions,
    partition: u32,
    progress: &Progress,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut worker = PartitionWorker::open(
        store.clone(),
        rules.clone(),
        options.clone(),
        partition,
        bus.partitions(),
    )
    .await?;
    progress.applied.store(worker.applied(), Ordering::Relaxed);
    let stream = bus.jetstream.get_stream(&bus.stream).await?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("{}{partition}", bus.subjects),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: worker.applied() + 1,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let every = options.checkpoint_interval;
    while !*stop.borrow() {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                if let Err(error) = worker.checkpoint(every, false).await {
                    tracing::warn!(partition, %error, "partition checkpoint failed");
                }
            }
            next = messages.next() => {
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => anyhow::bail!("reading the partition: {error}"),
                    None => anyhow::bail!("the partition's consumer ended"),
                };
                let (seq, lag) = match message.info() {
                    Ok(info) => (info.stream_sequence, info.pending),
                    Err(error) => anyhow::bail!("a message without its stream position: {error}"),
                };
                let applied = worker.apply(seq, &message.payload).await?;
                if let Some(why) = applied.unreadable {
                    tracing::warn!(partition, seq, %why, "unreadable message skipped");
                }
                progress.applied.store(seq, Ordering::Relaxed);
                progress.lag.store(lag, Ordering::Relaxed);
            }
        }
    }
    worker.checkpoint(every, true).await?;
    Ok(())
}
