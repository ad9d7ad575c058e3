//! EVTX files: one file, a list (`once`), or a folder watched for new `.evtx` files. Records
//! are rendered by the `evtx` crate as JSON in `evtx_dump`'s shape (`{"Event": {"System": …,
//! "EventData": …}}`), which the server's JSON reader understands. The position of a file is
//! the number of records consumed (in the file's order), and `done` once it is finished.

use std::path::{Path, PathBuf};
use std::time::Duration;

use evtx::{EvtxParser, ParserSettings};
use serde_json::json;

use super::jsonl::StopError;
use super::{Emit, Source, SourceItem, Stopped};

/// Events handed over at once.
const CHUNK: usize = 500;

/// EVTX files.
pub struct EvtxFiles {
    name: String,
    /// A file or a folder (searched recursively).
    roots: Vec<PathBuf>,
    watch: bool,
    threads: usize,
    /// Watch mode: files seen with this size at the previous scan (written completely).
    sizes: std::collections::HashMap<PathBuf, u64>,
    /// Files finished during this run.
    done: std::collections::HashSet<PathBuf>,
}

impl EvtxFiles {
    /// Reads the files (or folders) once each.
    pub fn new(name: &str, roots: Vec<PathBuf>, watch: bool, threads: usize) -> Self {
        Self {
            name: name.to_owned(),
            roots,
            watch,
            threads,
            sizes: Default::default(),
            done: Default::default(),
        }
    }

    fn key(&self, file: &Path) -> String {
        format!("{}:{}", self.name, file.display())
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in &self.roots {
            if root.is_dir() {
                for entry in walkdir::WalkDir::new(root)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_map(|e| e.ok())
                {
                    let p = entry.path();
                    if entry.file_type().is_file()
                        && p.extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("evtx"))
                    {
                        out.push(p.to_owned());
                    }
                }
            } else {
                out.push(root.clone());
            }
        }
        out
    }

    /// Ships one file from its saved position.
    fn read_file(&self, file: &Path, emit: &mut dyn Emit) -> Result<(), Stopped> {
        let key = self.key(file);
        let saved = emit.resume(&key);
        if saved
            .as_ref()
            .is_some_and(|s| s["done"].as_bool() == Some(true))
        {
            return Ok(());
        }
        let skip = saved.and_then(|s| s["records"].as_u64()).unwrap_or(0);
        let parser = EvtxParser::from_path(file)
            .map(|p| p.with_configuration(ParserSettings::default().num_threads(self.threads)));
        let mut parser = match parser {
            Ok(p) => p,
            Err(error) => {
                emit.problem(format!("{}: not readable as EVTX: {error}", file.display()));
                return emit.mark(
                    &key,
                    json!({"records": 0, "done": true, "error": error.to_string()}),
                );
            }
        };
        let mut consumed = 0u64;
        let mut items = Vec::with_capacity(CHUNK);
        let mut bad = 0u64;
        for record in parser.records_json_value() {
            consumed += 1;
            if consumed <= skip {
                continue;
            }
            match record {
                Ok(record) => items.push(SourceItem {
                    key: key.clone(),
                    position: json!({"records": consumed}),
                    event: record.data.to_string(),
                    parsed: Some(record.data),
                }),
                Err(error) => {
                    bad += 1;
                    if bad <= 10 {
                        emit.problem(format!("{}: record {consumed}: {error}", file.display()));
                    }
                }
            }
            if items.len() >= CHUNK {
                emit.emit(std::mem::take(&mut items))?;
            }
        }
        if !items.is_empty() {
            emit.emit(items)?;
        }
        if bad > 10 {
            emit.problem(format!(
                "{}: {bad} unreadable records in all",
                file.display()
            ));
        }
        emit.mark(&key, json!({"records": consumed, "done": true}))
    }
}

impl Source for EvtxFiles {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, emit: &mut dyn Emit) -> anyhow::Result<()> {
        loop {
            for file in self.files() {
                if self.done.contains(&file) {
                    continue;
                }
                if self.watch {
                    // A file still being copied in is read once its size has settled.
                    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
                    let previous = self.sizes.insert(file.clone(), size);
                    if previous != Some(size) {
                        continue;
                    }
                }
                self.read_file(&file, emit)
                    .map_err(|_| anyhow::Error::new(StopError))?;
                self.done.insert(file);
            }
            if !self.watch {
                return Ok(());
            }
            emit.idle(Duration::from_secs(2))
                .map_err(|_| anyhow::Error::new(StopError))?;
        }
    }
}
