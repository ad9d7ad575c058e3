//! [`CorrelationState`]: the correlator's state, kept between ingest runs and server
//! restarts.

use super::StoreError;
use crate::event::TenantId;

/// Saved correlation state, by tenant and name.
#[async_trait::async_trait]
pub trait CorrelationState: Send + Sync {
    /// Saved correlation state.
    async fn load_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves correlation state.
    async fn save_correlation_state(
        &self,
        tenant: &TenantId,
        name: &str,
        state: &[u8],
    ) -> Result<(), StoreError>;
}
