//! The agent's spool read from its files, in the format `siren-agent/src/spool` documents, so a
//! test can tell from outside the process which events wait for the server's acknowledgement.

use std::path::Path;

/// What the spool folder holds at one moment.
pub struct SpoolFiles {
    /// Every record below this sequence number is acknowledged (`ack.json`'s `acked_seq`).
    pub acked: u64,
    /// The sequence numbers of the events (markers aside) in the segment files.
    pub events: Vec<u64>,
}

impl SpoolFiles {
    /// Reads `state/spool`: `ack.json`, then each `NNNN….seg` (named by the sequence number of
    /// its first record) frame by frame, `len: u32 LE | crc32: u32 LE | payload`, where the
    /// payload is `key_len: u16 LE | key | pos_len: u32 LE | position | event` and a marker has
    /// no event. A frame still being written ends its segment; a segment deleted meanwhile
    /// (all of it acknowledged) is skipped.
    pub fn read(state: &Path) -> Self {
        let dir = state.join("spool");
        let acked = match std::fs::read(dir.join("ack.json")) {
            Ok(text) => {
                let ack: serde_json::Value = serde_json::from_slice(&text).unwrap();
                ack["acked_seq"].as_u64().unwrap()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => panic!("ack.json: {e}"),
        };
        let mut events = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Self { acked, events };
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "seg") {
                continue;
            }
            let first: u64 = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{}: not a segment name", path.display()));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let mut at = 0;
            let mut seq = first;
            while let Some(header) = bytes.get(at..at + 8) {
                let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
                let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
                    break;
                };
                let key_len = u16::from_le_bytes(payload[..2].try_into().unwrap()) as usize;
                let rest = &payload[2 + key_len..];
                let pos_len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                if rest.len() > 4 + pos_len {
                    events.push(seq);
                }
                seq += 1;
                at += 8 + len;
            }
        }
        events.sort_unstable();
        Self { acked, events }
    }

    /// The events of this reading that are not acknowledged in `later` (a reading taken
    /// afterwards: acknowledgements only move forward).
    pub fn unacknowledged_in(&self, later: &SpoolFiles) -> usize {
        self.events.iter().filter(|s| **s >= later.acked).count()
    }
}
