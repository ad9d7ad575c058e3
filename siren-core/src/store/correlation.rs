//! [`CorrelationState`]: the correlator's state, kept between ingest runs and server
//! restarts, as a checkpoint and the journal of what batches fed the correlator since.
//!
//! Every batch that feeds the correlator appends an entry to its tenant's journal in the
//! batch's own transaction ([`BatchWrite::append_journal`](super::BatchWrite::append_journal)).
//! Now and then a writer saves the correlator's whole state as a checkpoint, with the
//! sequence number of the last journal entry it covers, and the entries it covers are
//! deleted. The state after any committed batch is therefore the checkpoint with the later
//! entries replayed — after a crash, and in another process writing the same tenant.

use super::StoreError;
use crate::event::TenantId;

/// A saved correlator state and the last journal entry it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The state, as the correlator wrote it.
    pub state: Vec<u8>,
    /// The sequence number of the last journal entry the state includes.
    pub seq: u64,
}

/// Saved correlation state and journal, by tenant and name.
#[async_trait::async_trait]
pub trait CorrelationState: Send + Sync {
    /// The last checkpoint saved.
    async fn load_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// Saves a checkpoint covering the journal up to `seq` and deletes the entries it
    /// covers. A checkpoint older than the one saved (a lower `seq`) is not written.
    async fn save_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
        seq: u64,
    ) -> Result<(), StoreError>;

    /// The journal's entries after `after`, in order, with their sequence numbers.
    async fn correlation_journal(
        &self,
        tenant: &TenantId,
        name: &str,
        after: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}
