//! The rule cache: each rule file's YAML documents kept as JSON, keyed by the file's path,
//! size and modification time, so that loading the same rules again skips YAML parsing
//! (most of the start-up time with thousands of rules).
//!
//! One cache file per set of rule roots, in a folder the caller names. A line per rule
//! file: its path (a JSON string), size, modification time (nanoseconds since the epoch)
//! and documents (a JSON array), separated by tabs. Only files whose documents all parsed
//! and come back from JSON exactly as YAML gave them are kept; a file changed within the
//! last few seconds is not (its time may not yet tell a later change apart). A cache that
//! cannot be read, or was written by another version, counts as empty: the rules are then
//! parsed from their files, as without a cache.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_yaml::Value as Yaml;

/// The first line of a cache file: the format and the version that wrote it.
const HEADER: &str = concat!("siren rule cache 1 ", env!("CARGO_PKG_VERSION"));

/// Files modified more recently than this are not cached.
const SETTLED: Duration = Duration::from_secs(3);

/// What identifies one version of a rule file: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: u128,
}

impl Stamp {
    /// The stamp of a file's metadata; `None` when the time is unknown, or so recent that
    /// a change within the same tick could go unnoticed.
    pub(crate) fn of(metadata: &std::fs::Metadata) -> Option<Self> {
        let modified = metadata.modified().ok()?;
        let age = SystemTime::now().duration_since(modified).ok()?;
        if age < SETTLED {
            return None;
        }
        let modified = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(Self {
            len: metadata.len(),
            modified,
        })
    }
}

/// One file's line: its path, and the rest (size, time, documents).
pub(crate) struct Entry {
    path: String,
    rest: String,
}

/// The cache of one set of rule roots, as read when loading began.
pub(crate) struct RuleCache {
    file: PathBuf,
    /// Path → the rest of its line (size, time, documents), as read.
    entries: HashMap<String, String>,
}

impl RuleCache {
    /// Opens the cache of the rules under `roots`, in `dir`.
    pub(crate) fn open<P: AsRef<Path>>(dir: &Path, roots: &[P]) -> Self {
        // FNV-1a over the roots: a stable name for the same roots, run after run.
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for root in roots {
            let root = root.as_ref();
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
            for b in root.to_string_lossy().bytes().chain([0]) {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let file = dir.join(format!("rules-{hash:016x}.cache"));
        let mut entries = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if lines.next() == Some(HEADER) {
                for line in lines {
                    let Some((path, rest)) = line.split_once('\t') else {
                        continue;
                    };
                    if let Ok(path) = serde_json::from_str::<String>(path) {
                        entries.insert(path, rest.to_owned());
                    }
                }
            }
        }
        Self { file, entries }
    }

    /// The cached documents of `path`, if the cache holds this version of it.
    pub(crate) fn documents(&self, path: &str, stamp: Stamp) -> Option<(Vec<Yaml>, Entry)> {
        let rest = self.entries.get(path)?;
        let mut parts = rest.splitn(3, '\t');
        let len: u64 = parts.next()?.parse().ok()?;
        let modified: u128 = parts.next()?.parse().ok()?;
        if (Stamp { len, modified }) != stamp {
            return None;
        }
        let documents = serde_json::from_str(parts.next()?).ok()?;
        let entry = Entry {
            path: path.to_owned(),
            rest: rest.clone(),
        };
        Some((documents, entry))
    }

    /// The entry for `documents` just parsed from `path`, if they can be cached exactly.
    pub(crate) fn entry(path: &str, stamp: Stamp, documents: &[Yaml]) -> Option<Entry> {
        let json = serde_json::to_string(documents).ok()?;
        // Tags, non-string keys and non-finite numbers do not survive JSON: keep only what
        // comes back the same.
        let back: Vec<Yaml> = serde_json::from_str(&json).ok()?;
        if back != documents {
            return None;
        }
        Some(Entry {
            path: path.to_owned(),
            rest: format!("{}\t{}\t{json}", stamp.len, stamp.modified),
        })
    }

    /// Writes the cache anew with `entries` (this load's files), unless nothing changed.
    /// Best effort: a cache that cannot be written is only a slower next start.
    pub(crate) fn save(&self, entries: &[Entry]) {
        let unchanged = entries.len() == self.entries.len()
            && entries
                .iter()
                .all(|e| self.entries.get(&e.path) == Some(&e.rest));
        if unchanged {
            return;
        }
        let _ = self.write(entries);
    }

    fn write(&self, entries: &[Entry]) -> std::io::Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        // Readable by its owner only: the cache decides which rules load.
        crate::owner_only::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut out = std::io::BufWriter::new(temp.as_file_mut());
            writeln!(out, "{HEADER}")?;
            for entry in entries {
                let Some(path) = json_string(&entry.path) else {
                    continue;
                };
                writeln!(out, "{path}\t{}", entry.rest)?;
            }
            out.flush()?;
        }
        // Renamed into place whole, so that a reader never sees half a cache.
        temp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// A path as a JSON string (which holds no raw tab or newline).
fn json_string(path: &str) -> Option<String> {
    serde_json::to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::rules::{LoadOptions, RuleSet};

    const RULE: &str = "title: Whoami\nlogsource: {product: windows, category: process_creation}\n\
                        detection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n";

    /// Writes a rule file dated an hour ago (settled: the cache keeps it).
    fn write_old(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    fn titles(dir: &std::path::Path, cache: &std::path::Path) -> (Vec<String>, Vec<String>) {
        let options = LoadOptions::default().with_cache_dir(Some(cache.to_owned()));
        let (set, problems) = RuleSet::load(&[dir], &options);
        let titles = set.rules().iter().map(|r| r.title.clone()).collect();
        (titles, problems.iter().map(ToString::to_string).collect())
    }

    fn cache_file(cache: &std::path::Path) -> std::path::PathBuf {
        let mut files: Vec<_> = std::fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one cache file per set of rule roots");
        files.remove(0)
    }

    #[test]
    fn a_cached_file_loads_from_the_cache_until_it_changes() {
        let (rules, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let rule = rules.path().join("whoami.yml");
        write_old(&rule, RULE);
        write_old(&rules.path().join("broken.yml"), "title: [unclosed\n");
        let first = titles(rules.path(), cache.path());
        assert_eq!(first.0, ["Whoami"]);
        assert_eq!(
            first.1.len(),
            1,
            "the broken file is reported: {:?}",
            first.1
        );
        let file = cache_file(cache.path());
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2, "a header and the parsed file only");

        // Read from the cache: an edit to the cached documents shows (and the broken
        // file, never cached, is parsed and reported again).
        std::fs::write(&file, text.replace("\"Whoami\"", "\"From the cache\"")).unwrap();
        assert_eq!(
            titles(rules.path(), cache.path()),
            (vec!["From the cache".to_owned()], first.1.clone())
        );

        // The file changes (size and time): parsed again, and the cache follows.
        write_old(&rule, &RULE.replace("Whoami", "Whoami again"));
        assert_eq!(titles(rules.path(), cache.path()).0, ["Whoami again"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"Whoami again\"") && !text.contains("From the cache"));
    }

    #[test]
    fn recent_files_and_unreadable_caches_are_parsed() {
        let (rules, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Written just now: its time cannot yet tell a change in the same tick apart.
        std::fs::write(rules.path().join("fresh.yml"), RULE).unwrap();
        assert_eq!(titles(rules.path(), cache.path()).0, ["Whoami"]);
        assert_eq!(
            std::fs::read_dir(cache.path()).unwrap().count(),
            0,
            "nothing cached"
        );

        // A cache that is not one (or of another version) counts as empty and is replaced.
        write_old(&rules.path().join("fresh.yml"), RULE);
        assert_eq!(titles(rules.path(), cache.path()).0, ["Whoami"]);
        let file = cache_file(cache.path());
        std::fs::write(&file, "garbage\n\t\t\n").unwrap();
        assert_eq!(titles(rules.path(), cache.path()).0, ["Whoami"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with(super::HEADER) && text.lines().count() == 2);
    }

    #[test]
    fn documents_json_cannot_keep_exactly_are_not_cached() {
        let stamp = super::Stamp {
            len: 1,
            modified: 1,
        };
        let tagged: Vec<serde_yaml::Value> =
            vec![serde_yaml::from_str("title: !custom x\n").unwrap()];
        assert!(super::RuleCache::entry("t.yml", stamp, &tagged).is_none());
        let keyed: Vec<serde_yaml::Value> = vec![serde_yaml::from_str("1: one\n").unwrap()];
        assert!(super::RuleCache::entry("k.yml", stamp, &keyed).is_none());
        let plain: Vec<serde_yaml::Value> =
            vec![serde_yaml::from_str("title: x\nn: 1.5\n").unwrap()];
        assert!(super::RuleCache::entry("p.yml", stamp, &plain).is_some());
    }
}
