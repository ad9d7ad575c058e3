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

    /// The de-duplication key: the event's time to the second (`time_prefix`, 5 bytes),
    /// then 11 bytes of the BLAKE3 digest of host + channel + record id (+ time, because
    /// clearing a log restarts its record numbers) when the event has all three, else of its
    /// content.
    ///
    /// Either way the same record ingested twice, from the same file, a copy of it, or another
    /// format of it, gets the same key. The time comes first so that the keys of events that
    /// arrive together sit together in the unique index: a batch then changes a few index
    /// pages instead of one random page per event (which every commit writes whole to the
    /// SQLite WAL), and the pages it needs stay in the cache however large the store grows.
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
        key[..5].copy_from_slice(&time_prefix(event.timestamp.map(|t| t.timestamp_micros())));
        key[5..].copy_from_slice(&hasher.finalize().as_bytes()[..11]);
        key
    }
}

/// The first 5 bytes of a de-duplication key: `ts_micros >> 20` (units of 1.05 s) offset by
/// 2^39 so that it sorts as unsigned big-endian bytes, clamped to 5 bytes (years −15,400 to
/// 19,400); zeros for an event without a time. The migration
/// `20261203000008_dedup_keys_by_time.sql` computes the same in SQL, keep them together.
pub fn time_prefix(ts_micros: Option<i64>) -> [u8; 5] {
    const OFFSET: i64 = 1 << 39;
    const MAX: i64 = (1 << 40) - 1;
    let Some(micros) = ts_micros else {
        return [0; 5];
    };
    let units = ((micros >> 20) + OFFSET).clamp(0, MAX) as u64;
    let bytes = units.to_be_bytes();
    [bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_stay_the_same_for_the_same_event() {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let event = |time: &str, record: i64| {
            let mut event = Event::from_fields(Default::default(), TenantId::default());
            event.host = Some("DC01".into());
            event.source = Some("Security".into());
            event.record_id = Some(record);
            event.timestamp = at(time);
            event
        };
        let early = EventRow::from_event(&event("2026-11-20T10:00:00Z", 9));
        let late = EventRow::from_event(&event("2026-11-20T10:00:05Z", 1));
        assert!(early.dedup_key < late.dedup_key);
        let again = EventRow::from_event(&event("2026-11-20T10:00:00Z", 9));
        assert_eq!(early.dedup_key, again.dedup_key);
        assert_ne!(
            early.dedup_key,
            EventRow::from_event(&event("2026-11-20T10:00:00Z", 10)).dedup_key
        );
        assert_eq!(time_prefix(None), [0; 5]);
        assert!(time_prefix(Some(-1)) < time_prefix(Some(0)));
        assert_eq!(time_prefix(Some(i64::MIN)), [0; 5]);
        assert_eq!(time_prefix(Some(i64::MAX)), [0xff; 5]);
        // What the migration's SQL computes for 2026-11-20T10:00:00Z.
        let micros = at("2026-11-20T10:00:00Z").map(|t| t.timestamp_micros());
        let expected = format!("{:010X}", (micros.unwrap_or(0) >> 20) + (1 << 39));
        let prefix: String = time_prefix(micros)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(prefix, expected);
    }
}
