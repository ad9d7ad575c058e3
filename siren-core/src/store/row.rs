//! [`EventRow`]: an event prepared for storage (serialised fields, de-duplication key).

use crate::event::{Event, TenantId};

/// An event ready to be written: computed once, on the reading side of the pipeline, so the
/// writer only binds values.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Owner.
    pub tenant: TenantId,
    /// 16-byte digest identifying the event for de-duplication (see [`EventRow::dedup_key`]).
    pub dedup_key: [u8; 16],
    /// Event time, microseconds since the Unix epoch.
    pub ts_micros: Option<i64>,
    /// Host.
    pub host: Option<String>,
    /// Channel, provider or program.
    pub source: Option<String>,
    /// Event ID.
    pub event_id: Option<i64>,
    /// Record number.
    pub record_id: Option<i64>,
    /// Normalised severity.
    pub severity: Option<String>,
    /// Account concerned.
    pub user: Option<String>,
    /// Source IP.
    pub src_ip: Option<String>,
    /// Destination IP.
    pub dst_ip: Option<String>,
    /// Process image.
    pub process: Option<String>,
    /// Command line.
    pub command_line: Option<String>,
    /// Parent process image.
    pub parent_process: Option<String>,
    /// Every original field, as a JSON object.
    pub fields_json: String,
}

impl EventRow {
    /// Prepares `event` for storage.
    pub fn from_event(event: &Event) -> Self {
        // Serialising a map of JSON values cannot fail.
        let fields_json = serde_json::to_string(&event.fields).unwrap_or_else(|_| "{}".to_owned());
        Self {
            tenant: event.tenant.clone(),
            dedup_key: Self::dedup_key(event, &fields_json),
            ts_micros: event.timestamp.map(|t| t.timestamp_micros()),
            host: event.host.clone(),
            source: event.source.clone(),
            event_id: event.event_id,
            record_id: event.record_id,
            severity: event.severity.clone(),
            user: event.user.clone(),
            src_ip: event.src_ip.clone(),
            dst_ip: event.dst_ip.clone(),
            process: event.process.clone(),
            command_line: event.command_line.clone(),
            parent_process: event.parent_process.clone(),
            fields_json,
        }
    }

    /// The de-duplication key: host + channel + record id (+ time, because clearing a log
    /// restarts its record numbers) when the event has all three, else its content.
    ///
    /// Either way the same record ingested twice, from the same file, a copy of it, or another
    /// format of it, gets the same key.
    pub fn dedup_key(event: &Event, fields_json: &str) -> [u8; 16] {
        let mut hasher = blake3::Hasher::new();
        match (&event.host, &event.source, event.record_id) {
            (Some(host), Some(source), Some(record_id)) => {
                hasher.update(b"record\0");
                hasher.update(host.to_lowercase().as_bytes());
                hasher.update(b"\0");
                hasher.update(source.to_lowercase().as_bytes());
                hasher.update(b"\0");
                hasher.update(&record_id.to_le_bytes());
                hasher.update(b"\0");
                let micros = event.timestamp.map_or(i64::MIN, |t| t.timestamp_micros());
                hasher.update(&micros.to_le_bytes());
            }
            _ => {
                hasher.update(b"content\0");
                hasher.update(fields_json.as_bytes());
            }
        }
        let mut key = [0; 16];
        key.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        key
    }
}
