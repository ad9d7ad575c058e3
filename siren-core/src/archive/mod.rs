//! Archives of events leaving the store: compressed parts per tenant and day, each with a
//! manifest and checksum, in a folder or an S3-compatible bucket. Retention writes them
//! before it deletes ([`crate::retention::purge`]); `siren archive restore` brings a range
//! back; `siren hunt` reads them as any other log.

pub mod format;
#[cfg(feature = "store")]
mod objects;
#[cfg(feature = "store")]
mod restore;

pub use format::{ArchivedEvent, Header};
#[cfg(feature = "store")]
pub use objects::{Archive, ArchiveConfig, ArchiveError, PartManifest, Usage};
#[cfg(feature = "store")]
pub use restore::{RestoreReport, RestoreRequest, TenantRestore, restore};
