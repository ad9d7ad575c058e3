//! The distributed mode's link to a message bus, as the ingest stages see it: front-ends
//! publish, per batch and partition, the matches that feed correlations
//! ([`Publisher`]); the worker that owns a partition correlates them
//! ([`PartitionWorker`](super::PartitionWorker)). The bus itself (NATS JetStream in the
//! server) is not this crate's concern.

use crate::event::TenantId;

/// One bus message: its partition, its de-duplication id and its bytes.
pub type BusMessage = (u32, String, Vec<u8>);

/// Where a front-end publishes a batch's correlation input.
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes the messages and returns once the bus has stored every one durably (an
    /// error otherwise: the batch is then not committed, and the client sends it again).
    /// A message whose id the bus has seen recently is stored once.
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), String>;
}

/// A message's de-duplication id: a hash of its tenant, partition and bytes, so that the same
/// batch published twice (its first commit failed after publishing) is stored once.
pub fn message_id(tenant: &TenantId, partition: u32, entry: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(tenant.as_str().len() as u64).to_le_bytes());
    hasher.update(tenant.as_str().as_bytes());
    hasher.update(&partition.to_le_bytes());
    hasher.update(entry);
    hasher.finalize().to_hex()[..32].to_owned()
}

/// The name a partition's correlation checkpoint and its tenants' heads are kept under.
pub fn partition_state_name(partition: u32) -> String {
    format!("partition:{partition}")
}
