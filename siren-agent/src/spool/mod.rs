//! The bounded on-disk spool: events wait here, durably, until the server acknowledges them.
//!
//! Layout of the spool folder:
//! - `NNNNNNNNNNNNNNNNNNNN.seg` — segment files named by the sequence number of their first
//!   record. A record is framed as `len: u32 LE | crc32(payload): u32 LE | payload`, and the
//!   payload is `key_len: u16 LE | key | pos_len: u32 LE | position JSON | event JSON` (an empty
//!   event is a *marker*: it carries a position for events that were read but filtered out).
//! - `ack.json` — the sequence number below which everything is acknowledged, and the
//!   acknowledged read position of every source key. Replaced atomically (write, fsync,
//!   rename, fsync the folder).
//!
//! An append is written and `fsync`ed before `append` returns. On open, every segment is
//! checked frame by frame; a torn tail (power loss in the middle of a write) is cut off, and a
//! damaged frame elsewhere ends its segment (reported, counted). The sum of the segment files
//! never exceeds `max_bytes`: when an append would pass it, the oldest segments are deleted
//! (`drop_oldest`, their unsent events counted) or the append waits for acknowledgements
//! (`block`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use siren_core::owner_only;

use crate::config::WhenFull;

/// Bytes of a frame header.
const HEADER: u64 = 8;

/// Spool failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The file system refused.
    #[error("spool {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The spool was closed while an append waited for room.
    #[error("the spool is shutting down")]
    Closed,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One spooled item: an event (or a marker) and the read position just after it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    /// The position key (a source name, or source name + file).
    pub key: String,
    /// The position after this record, opaque to the spool.
    pub position: Value,
    /// The event as JSON text, or `None` for a position marker.
    pub event: Option<String>,
}

impl SpoolRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        let position = self.position.to_string();
        let key = &self.key.as_bytes()[..self.key.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(position.len() as u32).to_le_bytes());
        out.extend_from_slice(position.as_bytes());
        if let Some(event) = &self.event {
            out.extend_from_slice(event.as_bytes());
        }
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        let key_len = u16::from_le_bytes(payload.get(..2)?.try_into().ok()?) as usize;
        let key = std::str::from_utf8(payload.get(2..2 + key_len)?).ok()?;
        let rest = &payload[2 + key_len..];
        let pos_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let position = serde_json::from_slice(rest.get(4..4 + pos_len)?).ok()?;
        let event = &rest[4 + pos_len..];
        let event = if event.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(event).ok()?.to_owned())
        };
        Some(Self {
            key: key.to_owned(),
            position,
            event,
        })
    }
}

/// What `ack.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AckState {
    /// Every record with a lower sequence number has been acknowledged.
    acked_seq: u64,
    /// Acknowledged positions by key.
    positions: BTreeMap<String, Value>,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    count: u64,
    bytes: u64,
    path: PathBuf,
}

/// Counters the spool keeps (since the process started, except `depth`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SpoolStats {
    /// Events waiting for acknowledgement.
    pub depth: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// The bound.
    pub max_bytes: u64,
    /// Unsent records deleted because the spool was full.
    pub dropped: u64,
    /// Records lost to damaged frames found on open.
    pub corrupted: u64,
}

struct Inner {
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    next_seq: u64,
    ack: AckState,
    read_seq: u64,
    reader: Option<(u64, BufReader<File>, u64)>,
    stats: SpoolStats,
    closed: bool,
    /// The last segment's records and bytes known to be on disk (fsynced), for a rollback.
    durable: (u64, u64),
    /// Sequence numbers of unacknowledged markers (records without an event).
    markers: std::collections::BTreeSet<u64>,
}

/// The spool. Shared between the source threads (append) and the shipper (read, ack).
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    when_full: WhenFull,
    inner: Mutex<Inner>,
    /// Signalled when records arrive.
    arrived: Condvar,
    /// Signalled when room is made (or the spool closes).
    room: Condvar,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Where each position key resumes: the newest position among acknowledged records and
    /// records still in the spool.
    pub resume: BTreeMap<String, Value>,
    /// Sequence numbers of unacknowledged markers.
    markers: std::collections::BTreeSet<u64>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, checking every segment.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
        when_full: WhenFull,
    ) -> Result<(Self, Recovered), SpoolError> {
        // Events waiting to be shipped: the spool is its owner's only.
        owner_only::create_dir_all(dir).map_err(io(dir))?;
        if let Err(error) = owner_only::restrict(dir, 0o077) {
            tracing::warn!(%error, dir = %dir.display(), "cannot make the spool its owner's only");
        }
        let ack_path = dir.join("ack.json");
        let ack: AckState = match std::fs::read(&ack_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::error!(%error, file = %ack_path.display(), "unreadable acknowledgement state; resending the whole spool");
                AckState::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AckState::default(),
            Err(e) => return Err(io(&ack_path)(e)),
        };
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok());
            match first {
                Some(first) => names.push((first, path)),
                None if path.extension().is_some_and(|e| e == "tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                None => {}
            }
        }
        names.sort();
        let mut recovered = Recovered {
            resume: ack.positions.clone(),
            markers: Default::default(),
        };
        let mut segments = VecDeque::new();
        let mut stats = SpoolStats {
            max_bytes,
            ..SpoolStats::default()
        };
        let last = names.len().saturating_sub(1);
        for (i, (first_seq, path)) in names.into_iter().enumerate() {
            let (count, valid_bytes, damaged) =
                scan_segment(&path, first_seq, ack.acked_seq, &mut recovered)?;
            if damaged {
                if i == last {
                    tracing::warn!(file = %path.display(), valid_bytes, "cutting off a torn write at the end of the spool");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io(&path))?;
                    f.set_len(valid_bytes).map_err(io(&path))?;
                    f.sync_all().map_err(io(&path))?;
                } else {
                    tracing::error!(file = %path.display(), "damaged spool segment: records after the damage are lost");
                    stats.corrupted += 1;
                }
            }
            if first_seq + count <= ack.acked_seq && i != last {
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            stats.bytes += valid_bytes;
            segments.push_back(Segment {
                first_seq,
                count,
                bytes: valid_bytes,
                path,
            });
        }
        let next_seq = segments
            .back()
            .map_or(ack.acked_seq, |s| s.first_seq + s.count)
            .max(ack.acked_seq);
        let mut inner = Inner {
            segments,
            writer: None,
            next_seq,
            read_seq: ack.acked_seq,
            ack,
            reader: None,
            stats,
            closed: false,
            durable: (0, 0),
            markers: std::mem::take(&mut recovered.markers),
        };
        inner.mark_durable();
        inner.settle();
        let spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            when_full,
            inner: Mutex::new(inner),
            arrived: Condvar::new(),
            room: Condvar::new(),
        };
        Ok((spool, recovered))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends records and fsyncs them. Returns how many unsent records were dropped to make
    /// room (policy `drop_oldest`). On a write failure (a full disk) nothing of this append
    /// stays in the spool and the caller may try again.
    pub fn append(&self, records: &[SpoolRecord]) -> Result<u64, SpoolError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut inner = self.lock();
        let mut dropped = 0;
        let mut payload = Vec::new();
        let mut wrote = false;
        // A failed write: cut what this append wrote, keep the spool whole.
        macro_rules! check {
            ($result:expr, $path:expr) => {
                match $result {
                    Ok(v) => v,
                    Err(e) => {
                        inner.rollback_tail();
                        return Err(io($path)(e));
                    }
                }
            };
        }
        for record in records {
            payload.clear();
            record.encode(&mut payload);
            let size = payload.len() as u64 + HEADER;
            if size > self.segment_bytes {
                tracing::error!(key = %record.key, size, segment_bytes = self.segment_bytes, "record larger than a spool segment: not spooled");
                inner.stats.dropped += 1;
                continue;
            }
            // Make room.
            loop {
                if inner.closed {
                    inner.rollback_tail();
                    return Err(SpoolError::Closed);
                }
                if inner.stats.bytes + size <= self.max_bytes || inner.segments.len() <= 1 {
                    // (One segment alone is at most half the bound.)
                    break;
                }
                match self.when_full {
                    WhenFull::DropOldest => {
                        if let Some(seg) = inner.segments.pop_front() {
                            // Counted from the acknowledgement cursor: a batch being sent
                            // from this segment is gone from disk too if it fails.
                            let from = inner.ack.acked_seq.max(seg.first_seq);
                            let to = seg.first_seq + seg.count;
                            let markers = if from < to {
                                inner.markers.range(from..to).count() as u64
                            } else {
                                0
                            };
                            let unsent = to.saturating_sub(from).saturating_sub(markers);
                            check!(std::fs::remove_file(&seg.path), &seg.path);
                            inner.stats.bytes = inner.stats.bytes.saturating_sub(seg.bytes);
                            inner.stats.dropped += unsent;
                            dropped += unsent;
                            if inner.reader.as_ref().is_some_and(|r| r.0 == seg.first_seq) {
                                inner.reader = None;
                            }
                            tracing::warn!(dropped = unsent, file = %seg.path.display(), "spool full: deleted the oldest segment");
                            inner.settle();
                        }
                    }
                    WhenFull::Block => {
                        if wrote {
                            // Make what is written so far durable before waiting.
                            check!(inner.sync_writer(), &self.dir);
                            wrote = false;
                            inner.mark_durable();
                            self.arrived.notify_all();
                        }
                        inner = self
                            .room
                            .wait_timeout(inner, Duration::from_secs(1))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            }
            let needs_new = inner
                .segments
                .back()
                .is_none_or(|s| s.bytes > 0 && s.bytes + size > self.segment_bytes);
            if needs_new {
                check!(inner.sync_writer(), &self.dir);
                inner.mark_durable();
                inner.writer = None;
                let first_seq = inner.next_seq;
                let path = self.dir.join(format!("{first_seq:020}.seg"));
                let file = check!(
                    owner_only::options().create(true).append(true).open(&path),
                    &path
                );
                check!(sync_dir(&self.dir), &self.dir);
                inner.writer = Some(BufWriter::with_capacity(64 << 10, file));
                inner.segments.push_back(Segment {
                    first_seq,
                    count: 0,
                    bytes: 0,
                    path,
                });
                inner.mark_durable();
            }
            let path = inner
                .segments
                .back()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            if inner.writer.is_none() {
                let file = check!(OpenOptions::new().append(true).open(&path), &path);
                inner.writer = Some(BufWriter::with_capacity(64 << 10, file));
            }
            let crc = crc32fast::hash(&payload);
            if let Some(w) = inner.writer.as_mut() {
                check!(
                    w.write_all(&(payload.len() as u32).to_le_bytes())
                        .and_then(|()| w.write_all(&crc.to_le_bytes()))
                        .and_then(|()| w.write_all(&payload)),
                    &path
                );
            }
            if let Some(seg) = inner.segments.back_mut() {
                seg.bytes += size;
                seg.count += 1;
            }
            if record.event.is_none() {
                let seq = inner.next_seq;
                inner.markers.insert(seq);
            }
            inner.stats.bytes += size;
            inner.next_seq += 1;
            wrote = true;
        }
        if wrote {
            check!(inner.sync_writer(), &self.dir);
            inner.mark_durable();
        }
        inner.update_depth();
        drop(inner);
        self.arrived.notify_all();
        Ok(dropped)
    }

    /// Takes the next unread records (at most `max_records`, and about `max_bytes` of events),
    /// waiting up to `wait` for the first one. Returns their sequence numbers with them.
    pub fn read(
        &self,
        max_records: usize,
        max_bytes: u64,
        wait: Duration,
    ) -> Result<Vec<(u64, SpoolRecord)>, SpoolError> {
        let mut inner = self.lock();
        if inner.read_seq >= inner.next_seq && !wait.is_zero() {
            inner = self
                .arrived
                .wait_timeout(inner, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        while out.len() < max_records && bytes < max_bytes && inner.read_seq < inner.next_seq {
            let seq = inner.read_seq;
            let Some(seg) = inner
                .segments
                .iter()
                .find(|s| s.first_seq <= seq && seq < s.first_seq + s.count)
                .map(|s| (s.first_seq, s.path.clone()))
            else {
                // A gap (a damaged segment): skip to the next segment.
                let next = inner
                    .segments
                    .iter()
                    .map(|s| s.first_seq)
                    .find(|&f| f > seq);
                inner.read_seq = next.unwrap_or(inner.next_seq);
                inner.reader = None;
                continue;
            };
            let reusable = inner
                .reader
                .as_ref()
                .is_some_and(|(first, _, at)| *first == seg.0 && *at == seq);
            if !reusable {
                let file = File::open(&seg.1).map_err(io(&seg.1))?;
                let mut reader = BufReader::with_capacity(64 << 10, file);
                for _ in seg.0..seq {
                    if read_frame(&mut reader).map_err(io(&seg.1))?.is_none() {
                        break;
                    }
                }
                inner.reader = Some((seg.0, reader, seq));
            }
            let Some((_, reader, at)) = inner.reader.as_mut() else {
                break;
            };
            match read_frame(reader).map_err(io(&seg.1))? {
                Some(payload) => {
                    *at += 1;
                    inner.read_seq += 1;
                    match SpoolRecord::decode(&payload) {
                        Some(record) => {
                            bytes += record.event.as_ref().map_or(0, |e| e.len() as u64);
                            out.push((seq, record));
                        }
                        None => {
                            tracing::error!(seq, "undecodable spool record skipped");
                            inner.stats.corrupted += 1;
                        }
                    }
                }
                None => {
                    // Frame counted but unreadable now: skip the rest of this segment.
                    tracing::error!(file = %seg.1.display(), seq, "spool segment shorter than recorded");
                    inner.read_seq = (seg.0
                        + inner
                            .segments
                            .iter()
                            .find(|s| s.first_seq == seg.0)
                            .map_or(0, |s| s.count))
                    .max(seq + 1);
                    inner.reader = None;
                }
            }
        }
        Ok(out)
    }

    /// Records everything below `through` (exclusive) as acknowledged with the given positions,
    /// durably, then deletes segments that hold only acknowledged records.
    pub fn ack(&self, through: u64, positions: &BTreeMap<String, Value>) -> Result<(), SpoolError> {
        let mut inner = self.lock();
        if through > inner.ack.acked_seq {
            inner.ack.acked_seq = through;
        }
        for (k, v) in positions {
            inner.ack.positions.insert(k.clone(), v.clone());
        }
        let tmp = self.dir.join("ack.json.tmp");
        let dest = self.dir.join("ack.json");
        {
            let mut f = owner_only::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io(&tmp))?;
            let text = serde_json::to_vec(&inner.ack).unwrap_or_default();
            f.write_all(&text).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(&self.dir).map_err(io(&self.dir))?;
        while inner.segments.len() > 1
            && inner
                .segments
                .front()
                .is_some_and(|s| s.first_seq + s.count <= inner.ack.acked_seq)
        {
            if let Some(seg) = inner.segments.pop_front() {
                std::fs::remove_file(&seg.path).map_err(io(&seg.path))?;
                inner.stats.bytes = inner.stats.bytes.saturating_sub(seg.bytes);
                if inner.reader.as_ref().is_some_and(|r| r.0 == seg.first_seq) {
                    inner.reader = None;
                }
            }
        }
        inner.update_depth();
        drop(inner);
        self.room.notify_all();
        Ok(())
    }

    /// Sends unacknowledged records again from the oldest one (after a restart of shipping).
    pub fn rewind(&self) {
        let mut inner = self.lock();
        inner.read_seq = inner.ack.acked_seq;
        inner.reader = None;
        inner.settle();
    }

    /// Current counters.
    pub fn stats(&self) -> SpoolStats {
        let inner = self.lock();
        let mut s = inner.stats;
        s.depth = inner.pending_events();
        s
    }

    /// Whether every record has been acknowledged.
    pub fn is_drained(&self) -> bool {
        let inner = self.lock();
        inner.ack.acked_seq >= inner.next_seq
    }

    /// Wakes and fails appends waiting for room; further appends fail.
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_all();
        self.arrived.notify_all();
    }
}

impl Inner {
    /// Unacknowledged events (markers aside).
    fn pending_events(&self) -> u64 {
        let records = self.next_seq.saturating_sub(self.ack.acked_seq);
        records.saturating_sub(self.markers.range(self.ack.acked_seq..).count() as u64)
    }

    fn update_depth(&mut self) {
        let acked = self.ack.acked_seq;
        self.markers = self.markers.split_off(&acked);
        self.stats.depth = self.pending_events();
    }

    /// Moves the cursors past records no longer on disk (dropped segments).
    fn settle(&mut self) {
        let floor = self.segments.front().map_or(self.next_seq, |s| s.first_seq);
        if self.ack.acked_seq < floor {
            self.ack.acked_seq = floor;
        }
        if self.read_seq < self.ack.acked_seq {
            self.read_seq = self.ack.acked_seq;
            self.reader = None;
        }
        self.update_depth();
    }

    /// Remembers the last segment's current size as durable.
    fn mark_durable(&mut self) {
        self.durable = self.segments.back().map_or((0, 0), |s| (s.count, s.bytes));
    }

    /// Forgets records written to the last segment since it was last durable: the buffered
    /// bytes are discarded and the file cut back, so it ends with whole frames.
    fn rollback_tail(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.into_parts();
        }
        let (count, bytes) = self.durable;
        if let Some(seg) = self.segments.back_mut() {
            if seg.count == count && seg.bytes == bytes {
                return;
            }
            let lost = seg.count.saturating_sub(count);
            self.stats.bytes = (self.stats.bytes + bytes).saturating_sub(seg.bytes);
            self.next_seq -= lost;
            let next = self.next_seq;
            let _ = self.markers.split_off(&next);
            seg.count = count;
            seg.bytes = bytes;
            if let Ok(f) = OpenOptions::new().write(true).open(&seg.path) {
                let _ = f.set_len(bytes);
                let _ = f.sync_all();
            }
            self.reader = None;
        }
        self.update_depth();
    }

    fn sync_writer(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// Reads one frame; `None` at a clean end or at a damaged/torn frame.
fn read_frame(reader: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER as usize];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > 1 << 30 {
        return Ok(None);
    }
    let mut payload = vec![0; len];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Counts a segment's valid frames; updates resume positions from unacknowledged records.
/// Returns (records, valid bytes, damaged).
fn scan_segment(
    path: &Path,
    first_seq: u64,
    acked_seq: u64,
    recovered: &mut Recovered,
) -> Result<(u64, u64, bool), SpoolError> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut count = 0;
    let mut valid = 0u64;
    while let Some(payload) = read_frame(&mut reader).map_err(io(path))? {
        if first_seq + count >= acked_seq
            && let Some(record) = SpoolRecord::decode(&payload)
        {
            if record.event.is_none() {
                recovered.markers.insert(first_seq + count);
            }
            recovered.resume.insert(record.key, record.position);
        }
        count += 1;
        valid += payload.len() as u64 + HEADER;
    }
    let _ = reader.seek(SeekFrom::Start(valid));
    Ok((count, valid, valid != len))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Windows has no directory handles to flush; NTFS journals the metadata.
    Ok(())
}

#[cfg(test)]
mod tests;
