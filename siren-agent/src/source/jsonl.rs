//! A JSON-lines file followed like `tail -F`: new lines as they are written; when the file is
//! rotated (a new file under the name) the old one is read to its end first; when it is
//! truncated reading starts again at the top. The position is the file's identity (device and
//! inode on Unix) and the offset after the last complete line.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Emit, Source, SourceItem, Stopped};
use crate::config::StartAt;

/// Lines longer than this are skipped (reported).
const MAX_LINE: usize = 4 << 20;
/// Events handed over at once.
const CHUNK: usize = 500;

/// A followed (or one-shot) JSON-lines file.
pub struct JsonLines {
    name: String,
    key: String,
    path: PathBuf,
    start_at: StartAt,
    follow: bool,
    poll: Duration,
}

impl JsonLines {
    /// A file followed until the agent stops.
    pub fn follow(name: &str, path: &Path, start_at: StartAt) -> Self {
        Self {
            name: name.to_owned(),
            key: name.to_owned(),
            path: path.to_owned(),
            start_at,
            follow: true,
            poll: Duration::from_millis(250),
        }
    }

    /// A file read once to its end (`siren-agent once`), its position kept under `key`.
    pub fn once(name: &str, key: &str, path: &Path) -> Self {
        Self {
            name: name.to_owned(),
            key: key.to_owned(),
            path: path.to_owned(),
            start_at: StartAt::Oldest,
            follow: false,
            poll: Duration::ZERO,
        }
    }
}

/// A file's identity: device and inode where there are such things.
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::windows::fs::MetadataExt;
    format!("ctime:{}", meta.creation_time())
}

struct Open {
    reader: BufReader<File>,
    id: String,
    /// Offset after the last complete line.
    offset: u64,
    partial: Vec<u8>,
    skipping: bool,
    /// The offset of the last position handed over.
    reported: u64,
}

impl Open {
    fn at(path: &Path, offset: u64) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let id = identity(&file.metadata()?);
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            reader: BufReader::with_capacity(64 << 10, file),
            id,
            offset,
            partial: Vec::new(),
            skipping: false,
            reported: u64::MAX,
        })
    }
}

/// The event shipped for one line: the line itself when it is JSON, else the text wrapped as
/// `{"message": …}` so nothing is lost.
fn line_event(line: &[u8], path: &Path) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        Some(text.to_owned())
    } else {
        Some(
            json!({"message": text, "log": {"file": {"path": path.display().to_string()}}})
                .to_string(),
        )
    }
}

impl JsonLines {
    fn position(&self, open: &mut Open) -> Value {
        open.reported = open.offset;
        json!({"id": open.id, "offset": open.offset})
    }

    /// Reads complete lines to the end of what is written; hands them over.
    fn drain(&self, open: &mut Open, emit: &mut dyn Emit, last: bool) -> anyhow::Result<()> {
        let mut items = Vec::new();
        loop {
            let n = open.reader.read_until(b'\n', &mut open.partial)?;
            if n == 0 {
                break;
            }
            let complete = open.partial.last() == Some(&b'\n');
            if open.partial.len() > MAX_LINE && !open.skipping {
                emit.problem(format!(
                    "{}: line at offset {} is longer than {MAX_LINE} bytes: skipped",
                    self.path.display(),
                    open.offset
                ));
                open.skipping = true;
            }
            if !complete {
                // The end of what is written, in the middle of a line: keep it for later
                // (unless it is being skipped).
                if open.skipping {
                    open.offset += open.partial.len() as u64;
                    open.partial.clear();
                }
                break;
            }
            open.offset += open.partial.len() as u64;
            let skipped = std::mem::replace(&mut open.skipping, false);
            if !skipped && let Some(event) = line_event(&open.partial, &self.path) {
                items.push(SourceItem {
                    key: self.key.clone(),
                    position: self.position(open),
                    event,
                    parsed: None,
                });
            }
            open.partial.clear();
            if items.len() >= CHUNK {
                emit.emit(std::mem::take(&mut items)).map_err(stopped)?;
            }
        }
        if last && !open.partial.is_empty() && !open.skipping {
            // The file is finished (rotated away or read once): its unterminated last line
            // is a line too.
            open.offset += open.partial.len() as u64;
            if let Some(event) = line_event(&open.partial, &self.path) {
                items.push(SourceItem {
                    key: self.key.clone(),
                    position: self.position(open),
                    event,
                    parsed: None,
                });
            }
            open.partial.clear();
        }
        if !items.is_empty() {
            emit.emit(items).map_err(stopped)?;
        }
        Ok(())
    }

    /// Opens where the saved position says, finding a rotated file by its identity.
    fn start(&self, emit: &mut dyn Emit) -> Option<(Open, bool)> {
        let saved = emit.resume(&self.key);
        let current = std::fs::metadata(&self.path).ok();
        if let Some(saved) = saved {
            let id = saved["id"].as_str().unwrap_or_default().to_owned();
            let offset = saved["offset"].as_u64().unwrap_or(0);
            if current.as_ref().is_some_and(|m| identity(m) == id) {
                let len = current.as_ref().map_or(0, |m| m.len());
                let offset = if len < offset { 0 } else { offset };
                return Open::at(&self.path, offset).ok().map(|o| (o, false));
            }
            // Rotated while the agent was stopped: finish the old file if it is still beside.
            if let Some(old) = self.find_by_identity(&id) {
                tracing::info!(source = %self.name, file = %old.display(), "finishing the rotated file first");
                if let Ok(open) = Open::at(&old, offset) {
                    return Some((open, true));
                }
            }
            if current.is_some() {
                tracing::warn!(source = %self.name, file = %self.path.display(), "the file was replaced while the agent was stopped; reading the new one from its start");
            }
            return Open::at(&self.path, 0).ok().map(|o| (o, false));
        }
        let offset = match self.start_at {
            StartAt::Oldest => 0,
            StartAt::Newest => current.map_or(0, |m| m.len()),
        };
        Open::at(&self.path, offset).ok().map(|o| (o, false))
    }

    fn find_by_identity(&self, id: &str) -> Option<PathBuf> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty())?;
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && identity(&m) == id))
    }
}

fn stopped(_: Stopped) -> anyhow::Error {
    anyhow::Error::new(StopError)
}

/// The agent is stopping (not a failure).
#[derive(Debug, thiserror::Error)]
#[error("stopped")]
pub struct StopError;

impl Source for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, emit: &mut dyn Emit) -> anyhow::Result<()> {
        let mut reported_missing = false;
        let (mut open, mut old) = loop {
            match self.start(emit) {
                Some(o) => break o,
                None if !self.follow => {
                    anyhow::bail!("{}: cannot open", self.path.display())
                }
                None => {
                    if !reported_missing {
                        tracing::info!(source = %self.name, file = %self.path.display(), "waiting for the file to appear");
                        reported_missing = true;
                    }
                    emit.idle(Duration::from_secs(1)).map_err(stopped)?;
                }
            }
        };
        loop {
            self.drain(&mut open, emit, old || !self.follow)?;
            if !self.follow {
                if open.reported != open.offset {
                    // Trailing blank or skipped lines: their position still counts.
                    let position = self.position(&mut open);
                    emit.mark(&self.key, position).map_err(stopped)?;
                }
                return Ok(());
            }
            if old {
                // The rotated file is finished: continue with the file under the name.
                match Open::at(&self.path, 0) {
                    Ok(new) => {
                        open = new;
                        old = false;
                        continue;
                    }
                    Err(_) => {
                        emit.idle(self.poll).map_err(stopped)?;
                        continue;
                    }
                }
            }
            match std::fs::metadata(&self.path) {
                Ok(meta) if identity(&meta) != open.id => {
                    // Rotated: read what was written to the old file meanwhile, then switch.
                    tracing::info!(source = %self.name, file = %self.path.display(), "file rotated");
                    old = true;
                }
                Ok(meta) if meta.len() < open.offset => {
                    tracing::warn!(source = %self.name, file = %self.path.display(), "file truncated; reading it from its start");
                    open = Open::at(&self.path, 0)?;
                }
                _ => emit.idle(self.poll).map_err(stopped)?,
            }
        }
    }
}
