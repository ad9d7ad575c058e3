//! One module per `siren` subcommand: parse → validated settings → library call → printer.

pub mod events;
pub mod ingest;

use std::sync::Arc;

use crate::exit::Failure;

/// Opens the store the context names.
pub async fn open_store(
    context: &crate::Context,
) -> Result<Arc<dyn siren_core::store::Store>, Failure> {
    Ok(siren_core::store::open(&context.database_url).await?)
}
