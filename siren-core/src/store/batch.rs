//! [`BatchWrite`]: one batch written in one transaction that the ingest pipeline drives step
//! by step — the events, then the incidents their alerts open, then what the batch fed the
//! correlator — so that a batch is stored whole or not at all while the store decides
//! nothing about detection.

use chrono::{DateTime, Utc};

use super::{EventRow, StoreError};
use crate::incident::{Alert, AlertOutcome};

/// A batch of one tenant's being written, begun by
/// [`EventStore::begin_batch`](super::EventStore::begin_batch). It holds the tenant's
/// correlation journal locked until it is committed or dropped (dropping it rolls back), so
/// that writers of the same tenant, in this process or another, take turns.
#[async_trait::async_trait]
pub trait BatchWrite: Send {
    /// The sequence number of the last entry of the tenant's correlation journal when the
    /// batch began (0: none yet). An entry appended by this batch gets the next one.
    fn journal_head(&self) -> u64;

    /// Stores events, skipping any already stored (same tenant and dedup key), and returns
    /// the de-duplication keys of those that were new.
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<Vec<[u8; 16]>, StoreError>;

    /// Groups alerts into incidents as
    /// [`IncidentStore::record_alerts`](super::IncidentStore::record_alerts) does.
    async fn record_alerts(
        &mut self,
        alerts: &[Alert],
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError>;

    /// Appends `entry` (what the batch fed the correlator) to the tenant's correlation
    /// journal; returns its sequence number.
    async fn append_journal(&mut self, entry: &[u8]) -> Result<u64, StoreError>;

    /// Moves the journal head to `seq` without an entry: the distributed mode's worker
    /// marks the stream sequence whose alerts the batch stores.
    async fn move_head(&mut self, seq: u64) -> Result<(), StoreError>;

    /// Commits everything the batch wrote.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
