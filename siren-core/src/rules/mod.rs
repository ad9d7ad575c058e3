//! Sigma rules: parsing, the log-source mapping, and the compiled matcher.
//!
//! [`RuleSet::load`] reads rule files and folders (multi-document YAML: detection, correlation
//! and filter rules), compiles every detection rule once, and reports each rule it could not
//! load as a [`RuleDiagnostic`] naming the file, the rule and the construct. The set is
//! `Send + Sync`; [`RuleSet::matches`] tests one event against only the rules whose log source
//! can produce it (rules are bucketed by channel and event ID through the [`LogSourceMap`]).
//!
//! ```
//! use siren_core::rules::{LoadOptions, RuleSet};
//! use siren_core::{Event, TenantId};
//!
//! let rule = r#"
//! title: Failed logon for a disabled account
//! id: 3c1f8a52-0000-4000-8000-000000000001
//! level: medium
//! logsource: {product: windows, service: security}
//! detection:
//!     selection:
//!         EventID: 4625
//!         Status|endswith: '0072'
//!     condition: selection
//! "#;
//! let (rules, diagnostics) = RuleSet::from_yaml("example.yml", rule, &LoadOptions::default());
//! assert!(diagnostics.is_empty());
//!
//! let mut fields = siren_core::Fields::default();
//! fields.insert("Channel".into(), "Security".into());
//! fields.insert("EventID".into(), 4625.into());
//! fields.insert("Status".into(), "0xC0000072".into());
//! let event = Event::from_fields(fields, TenantId::default());
//! let hits: Vec<&str> = rules.matches(&event).map(|r| r.title.as_str()).collect();
//! assert_eq!(hits, ["Failed logon for a disabled account"]);
//! ```
//!
//! # What is supported
//! The Sigma 2.x specification: every value modifier (`contains`, `startswith`, `endswith`,
//! `all`, `exists`, `cased`, `neq`, `windash`, `re` with `i`/`m`/`s`, `base64`, `base64offset`,
//! `utf16le`/`wide`, `utf16be`, `utf16`, `lt`, `lte`, `gt`, `gte`, `cidr`, `expand` with the
//! placeholders of [`LoadOptions`], `fieldref`, `minute`…`year`) and their chains; `*` / `?`
//! wildcards with `\` escapes; case-insensitive matching unless `cased`; `null` (missing, null
//! or empty) and `''`; lists (OR, or AND with `all`) and maps (AND); keyword searches over every
//! field; the whole condition grammar; filter rules (`filter:`), ANDed into the rules they
//! name; correlation rules (`correlation:`), parsed and validated into [`Correlation`] for the
//! correlation engine. Deprecated Sigma 1.0 constructs (`action:` collections, `| count()`
//! aggregations) are reported as unsupported.
//!
//! Field names that Windows writes with spaces (`Threat Name`) match their Sigma spelling
//! without (`ThreatName`).
//!
//! # The `siren:` extension
//! One optional top-level key, ignored by other Sigma tools (unknown keys under it are errors):
//! ```yaml
//! siren:
//!   group_by: [TargetUserName]      # incident grouping key (default: the host)
//!   severity: high                  # overrides `level` for incidents
//!   investigation:                  # suggested steps, shown with the incident
//!     - Check the source IP's other logons
//!   tests:                          # run by `siren rules test`
//!     match:    [{Channel: Security, EventID: 4625, TargetUserName: bob}]
//!     no_match: [{Channel: Security, EventID: 4624}]
//! ```
//! See [`SirenExtension`] and [`RuleSet::run_embedded_tests`].
//!
//! # Log sources
//! [`LogSourceMap::default`] is `rules/logsources.yml`, embedded in the library; a user's file
//! in the same format replaces it ([`LogSourceMap::load`], [`LoadOptions::with_logsources`]).
//! A rule whose log source the mapping does not know is still loaded
//! ([`Rule::logsource_mapped`] is false) and meets every event of its product: Windows rules
//! every event with a channel, other rules every event without one.
//!
//! # Speed
//! Each rule is compiled once per source of its log source (with that source's field names).
//! An event meets only the rules of its (channel, event ID) bucket; within a bucket, an
//! Aho-Corasick automaton per field over the literals each rule needs lets through only the
//! rules one of whose literals the event contains. A rule's needed literals come from its
//! values, from its regexes (every match begins with one of the regex's prefix literals and
//! ends with one of its suffix literals) and from its keywords (searched in every field).
//! Literal comparisons are ASCII case-insensitive without allocating; regexes are checked at
//! load and compiled once, on first use, like the automata, so start-up stays short and rules
//! no event reaches cost nothing. Identical pattern lists and regexes (a rule compiled for
//! Sysmon and for Security, buckets with the same literals) share one build (`memo`). Each of
//! an event's longer texts is lower-cased once, whichever buckets' prefilters scan it.

mod cache;
mod condition;
mod error;
mod logsource;
mod memo;
mod model;
mod parse;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use error::{LogSourceError, RuleDiagnostic, RuleError};
pub use logsource::{DEFAULT_MAPPING, LogSourceEntry, LogSourceMap, Source};
pub use model::{
    CompareOp, Correlation, CorrelationCondition, CorrelationType, Filter, Level, LogSource, Rule,
    RuleId, RuleKind, RuleTests, SirenExtension, Status,
};

use crate::event::{Event, Fields};
use cache::RuleCache;
use parse::{Detection, Item, ParseContext};

/// What rule loading needs: the log-source mapping and the `expand` placeholders.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The log-source mapping (default: the one shipped in `rules/logsources.yml`).
    pub logsources: LogSourceMap,
    /// Placeholder values for the `expand` modifier: name (without `%`) → values.
    pub placeholders: HashMap<String, Vec<String>>,
    /// Rule files larger than this are refused.
    pub max_file_bytes: u64,
    /// A folder for the rule cache (parsed rule files kept for the next load), or none.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            logsources: LogSourceMap::default(),
            placeholders: HashMap::new(),
            max_file_bytes: 8 << 20,
            cache_dir: None,
        }
    }
}

impl LoadOptions {
    /// Uses another log-source mapping.
    pub fn with_logsources(mut self, map: LogSourceMap) -> Self {
        self.logsources = map;
        self
    }

    /// Keeps parsed rule files in `dir`, so that loading them again skips YAML parsing
    /// (see the `cache` module: files are matched by path, size and modification time).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Sets the values of one `expand` placeholder.
    pub fn with_placeholder(mut self, name: impl Into<String>, values: Vec<String>) -> Self {
        self.placeholders.insert(name.into(), values);
        self
    }

    /// Adds placeholders from YAML: a mapping of name → value or list of values.
    pub fn with_placeholders_yaml(mut self, file: &str, text: &str) -> Result<Self, RuleError> {
        let invalid = |reason: String| RuleError::InvalidKey {
            key: format!("placeholders in {file}"),
            reason,
        };
        let map: HashMap<String, serde_yaml::Value> =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (name, value) in map {
            let values = match value {
                serde_yaml::Value::Sequence(seq) => seq
                    .iter()
                    .map(|v| match v {
                        serde_yaml::Value::String(s) => Some(s.clone()),
                        serde_yaml::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid(format!("'{name}': expected strings")))?,
                serde_yaml::Value::String(s) => vec![s],
                serde_yaml::Value::Number(n) => vec![n.to_string()],
                _ => return Err(invalid(format!("'{name}': expected strings"))),
            };
            self.placeholders.insert(name, values);
        }
        Ok(self)
    }
}

/// One detection rule compiled for one of its log source's sources.
#[derive(Debug)]
struct Compiled {
    /// Index into [`RuleSet::rules`].
    rule: usize,
    /// Conditions the source adds (provider, field values).
    guard: Vec<Item>,
    /// The rule's detection, with the source's field names.
    detection: Detection,
    /// Filter rules' detections, which must hold too.
    filters: Vec<Detection>,
}

#[derive(Debug, Default)]
struct ChannelBucket {
    by_event_id: foldhash::HashMap<i64, Candidates>,
    /// Rules whose log source names no event ID but whose detection requires one of a few
    /// (`EventID: 4624`) sit under those IDs too; events without an ID meet them here.
    without_event_id: Candidates,
    any_event_id: Candidates,
}

/// A loaded, compiled set of rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    /// Compiled entries per rule (for [`RuleSet::rule_matches`]).
    per_rule: Vec<Vec<u32>>,
    /// Keyed by lower-case channel.
    by_channel: foldhash::HashMap<String, ChannelBucket>,
    /// Windows rules without a mapped log source: every event with a channel.
    windows_any: Candidates,
    /// Other rules without a mapped log source: every event without a channel.
    generic: Candidates,
}

/// Collects rules from files and texts, then compiles them into a [`RuleSet`].
#[derive(Debug)]
pub struct RuleSetBuilder<'o> {
    options: &'o LoadOptions,
    parsed: Vec<parse::Parsed>,
    diagnostics: Vec<RuleDiagnostic>,
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, diagnostics: &mut Vec<RuleDiagnostic>) {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(path)
            .follow_links(true)
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(e) => Some(e),
                Err(e) => {
                    diagnostics.push(RuleDiagnostic {
                        file: e
                            .path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| path.display().to_string()),
                        rule: None,
                        error: RuleError::Io(e.to_string()),
                    });
                    None
                }
            })
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .filter(|p| {
                p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("yml") || x.eq_ignore_ascii_case("yaml")
                })
            })
            .collect();
        files.sort();
        out.extend(files);
    } else {
        out.push(path.to_owned());
    }
}

impl<'o> RuleSetBuilder<'o> {
    /// A builder using `options`.
    pub fn new(options: &'o LoadOptions) -> Self {
        Self {
            options,
            parsed: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// Adds every rule of a file, or of every `.yml` / `.yaml` file under a folder.
    pub fn add_path(&mut self, path: &Path) -> &mut Self {
        self.add_paths(&[path])
    }

    /// Adds the rules of several files or folders, parsing all their files in one batch.
    pub fn add_paths<P: AsRef<Path>>(&mut self, paths: &[P]) -> &mut Self {
        let mut files = Vec::new();
        for path in paths {
            collect_files(path.as_ref(), &mut files, &mut self.diagnostics);
        }
        let cx = ParseContext {
            placeholders: &self.options.placeholders,
        };
        // Parse the files on a few threads, each taking the next file: YAML parsing
        // dominates start-up (unless the cache holds the file). Results keep the files' order.
        let max = self.options.max_file_bytes;
        let cache = (self.options.cache_dir.as_deref()).map(|dir| RuleCache::open(dir, paths));
        let results = in_parallel(files.iter().collect(), |file| {
            read_and_parse(file, max, &cx, cache.as_ref())
        });
        let mut entries = Vec::new();
        for (parsed, entry) in results.into_iter().flatten() {
            entries.extend(entry);
            for result in parsed {
                match result {
                    Ok(p) => self.parsed.push(p),
                    Err(d) => self.diagnostics.push(d),
                }
            }
        }
        if let Some(cache) = cache {
            cache.save(&entries);
        }
        self
    }

    /// Adds the rules of one YAML text; `name` stands for the file in diagnostics.
    pub fn add_yaml(&mut self, name: &str, text: &str) -> &mut Self {
        let cx = ParseContext {
            placeholders: &self.options.placeholders,
        };
        for result in parse::parse_file(name, text, &cx) {
            match result {
                Ok(p) => self.parsed.push(p),
                Err(d) => self.diagnostics.push(d),
            }
        }
        self
    }

    /// Compiles what was added: the rule set, and every rule that was not loaded.
    pub fn build(self) -> (RuleSet, Vec<RuleDiagnostic>) {
        let RuleSetBuilder {
            options,
            parsed,
            mut diagnostics,
        } = self;
        let mut set = RuleSet::default();
        let mut seen_ids: HashMap<String, String> = HashMap::new();
        let mut detections: Vec<Option<Detection>> = Vec::new();
        for p in parsed {
            if let Some(id) = &p.rule.id {
                if let Some(first) = seen_ids.get(id.as_str()) {
                    diagnostics.push(RuleDiagnostic {
                        file: p.rule.file.clone(),
                        rule: Some(p.rule.title.clone()),
                        error: RuleError::DuplicateId {
                            id: id.to_string(),
                            first: first.clone(),
                        },
                    });
                    continue;
                }
                seen_ids.insert(id.to_string(), p.rule.file.clone());
            }
            set.rules.push(p.rule);
            detections.push(p.detection);
        }
        // Correlations must refer to loaded rules.
        let mut keep = vec![true; set.rules.len()];
        for (i, rule) in set.rules.iter().enumerate() {
            if let RuleKind::Correlation(c) = &rule.kind {
                for reference in &c.rules {
                    if !set.rules.iter().any(|r| r.is_called(reference)) {
                        diagnostics.push(RuleDiagnostic {
                            file: rule.file.clone(),
                            rule: Some(rule.title.clone()),
                            error: RuleError::UnknownRuleReference(reference.clone()),
                        });
                        keep[i] = false;
                        break;
                    }
                }
            }
        }
        if keep.iter().any(|k| !k) {
            let mut k = keep.into_iter();
            let mut k2 = k.clone();
            set.rules.retain(|_| k.next().unwrap_or(true));
            detections.retain(|_| k2.next().unwrap_or(true));
        }
        set.per_rule = vec![Vec::new(); set.rules.len()];
        // Filters: (referenced rule names, detection).
        let filters: Vec<(Vec<String>, &Detection)> = set
            .rules
            .iter()
            .zip(&detections)
            .filter_map(|(r, d)| match (&r.kind, d) {
                (RuleKind::Filter(f), Some(d)) => Some((f.rules.clone(), d)),
                _ => None,
            })
            .collect();
        // Each detection rule compiled once per log source it maps to (renaming its fields
        // for that source), on every core; then placed in the buckets in order.
        let rules = &set.rules;
        let prepared = in_parallel(detections.iter().enumerate().collect(), |(index, d)| {
            let (RuleKind::Detection, Some(detection)) = (&rules[index].kind, d) else {
                return None;
            };
            let rule = &rules[index];
            let applicable: Vec<&Detection> = filters
                .iter()
                .filter(|(refs, _)| refs.iter().any(|r| rule.is_called(r)))
                .map(|(_, d)| *d)
                .collect();
            let Some(sources) = options.logsources.resolve(&rule.logsource) else {
                return Some(Err(Compiled {
                    rule: index,
                    guard: Vec::new(),
                    detection: detection.clone(),
                    filters: applicable.into_iter().cloned().collect(),
                }));
            };
            let per_source = sources
                .into_iter()
                .map(|source| {
                    let rename = |f: &str| source.field(f).to_owned();
                    let mut guard = Vec::new();
                    if !source.providers.is_empty() {
                        guard.push(equals_item("Provider_Name", &source.providers));
                    }
                    for (field, values) in &source.conditions {
                        guard.push(equals_item(field, values));
                    }
                    let compiled = Compiled {
                        rule: index,
                        guard,
                        detection: detection.renamed(&rename),
                        filters: applicable.iter().map(|d| d.renamed(&rename)).collect(),
                    };
                    let required_ids = compiled.detection.event_ids();
                    (source, compiled, required_ids)
                })
                .collect::<Vec<_>>();
            Some(Ok(per_source))
        });
        for (index, prepared) in prepared.into_iter().enumerate() {
            let Some(prepared) = prepared.flatten() else {
                continue;
            };
            let mapped = prepared.is_ok();
            match prepared {
                Ok(per_source) => {
                    for (source, compiled, required_ids) in per_source {
                        let at = set.compiled.len() as u32;
                        set.compiled.push(compiled);
                        set.per_rule[index].push(at);
                        if source.channels.is_empty() {
                            set.generic.push(at);
                        }
                        for channel in &source.channels {
                            let bucket = set.by_channel.entry(channel.to_lowercase()).or_default();
                            if source.event_ids.is_empty() {
                                match &required_ids {
                                    Some(ids) => {
                                        for id in ids {
                                            bucket.by_event_id.entry(*id).or_default().push(at);
                                        }
                                        bucket.without_event_id.push(at);
                                    }
                                    None => bucket.any_event_id.push(at),
                                }
                            } else {
                                for id in &source.event_ids {
                                    bucket.by_event_id.entry(*id).or_default().push(at);
                                }
                            }
                        }
                    }
                }
                Err(compiled) => {
                    let at = set.compiled.len() as u32;
                    set.compiled.push(compiled);
                    set.per_rule[index].push(at);
                    let windows = set.rules[index]
                        .logsource
                        .product
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case("windows"));
                    if windows {
                        set.windows_any.push(at);
                    } else {
                        set.generic.push(at);
                    }
                }
            }
            set.rules[index].logsource_mapped = mapped;
        }
        let mut names = std::collections::HashSet::new();
        for compiled in &mut set.compiled {
            parse::share_names(compiled.guard.iter_mut(), &mut names);
            compiled.detection.share_field_names(&mut names);
            for filter in &mut compiled.filters {
                filter.share_field_names(&mut names);
            }
        }
        // Prefilters over each bucket's literals: the needs, then the buckets, each spread
        // over the cores (this runs before any event can be read).
        let needs: Vec<Option<parse::Need>> =
            in_parallel(set.compiled.iter().collect(), |c| c.detection.need())
                .into_iter()
                .map(Option::flatten)
                .collect();
        let mut lists: Vec<&mut Candidates> = vec![&mut set.windows_any, &mut set.generic];
        for bucket in set.by_channel.values_mut() {
            lists.extend(bucket.by_event_id.values_mut());
            lists.push(&mut bucket.without_event_id);
            lists.push(&mut bucket.any_event_id);
        }
        in_parallel(lists, |list| list.finish(&needs));
        (set, diagnostics)
    }
}

/// `f` of each item, in order, computed on a few threads (each taking the next item);
/// `None` for an item whose thread died.
fn in_parallel<I: Send, T: Send>(items: Vec<I>, f: impl Fn(I) -> T + Sync) -> Vec<Option<T>> {
    let count = items.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(count.max(1));
    if threads == 1 {
        return items.into_iter().map(|i| Some(f(i))).collect();
    }
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (queue, f) = (&queue, &f);
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some((at, item)) = next else {
                            break;
                        };
                        done.push((at, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(count).collect();
    for (at, t) in done.drain(..) {
        out[at] = Some(t);
    }
    out
}

/// One rule file's rules and diagnostics, and its entry for the rule cache (if it has one).
type FileRules = (
    Vec<Result<parse::Parsed, RuleDiagnostic>>,
    Option<cache::Entry>,
);

fn read_and_parse(
    path: &Path,
    max_bytes: u64,
    cx: &ParseContext<'_>,
    cache: Option<&RuleCache>,
) -> FileRules {
    let name = path.display().to_string();
    let fail = |error: RuleError| {
        let diagnostic = RuleDiagnostic {
            file: name.clone(),
            rule: None,
            error,
        };
        (vec![Err(diagnostic)], None)
    };
    let stamp = match std::fs::metadata(path) {
        Ok(m) if m.len() > max_bytes => {
            return fail(RuleError::TooLarge(format!(
                "the file has {} bytes (limit {max_bytes})",
                m.len()
            )));
        }
        Ok(m) => cache::Stamp::of(&m),
        Err(e) => return fail(RuleError::Io(e.to_string())),
    };
    let cached = cache.zip(stamp).and_then(|(c, s)| c.documents(&name, s));
    if let Some((documents, entry)) = cached {
        return (parse::parse_documents(&name, documents, cx), Some(entry));
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return fail(RuleError::Io(format!("not UTF-8: {e}"))),
        },
        Err(e) => return fail(RuleError::Io(e.to_string())),
    };
    let (documents, error) = parse::yaml_documents(&name, &text);
    let entry = match (cache, stamp, &error) {
        (Some(_), Some(stamp), None) => RuleCache::entry(&name, stamp, &documents),
        _ => None,
    };
    let mut parsed = parse::parse_documents(&name, documents, cx);
    parsed.extend(error.map(Err));
    (parsed, entry)
}

/// A guard item: `field` equals one of `values` (case-insensitive).
fn equals_item(field: &str, values: &[String]) -> Item {
    let scalars: Vec<value::Scalar> = values
        .iter()
        .map(|v| {
            value::Scalar::Str(
                v.replace('\\', "\\\\")
                    .replace('*', "\\*")
                    .replace('?', "\\?"),
            )
        })
        .collect();
    let test = value::compile_item(field, &[], &scalars, &HashMap::new())
        .unwrap_or(value::ValueTest::Exists(false));
    Item {
        field: Some(field.into()),
        test,
    }
}

/// One event being matched: its fields, and what was learnt about them on the way.
struct Subject<'e> {
    fields: &'e Fields,
    /// Whether some field names contain spaces (computed on the first miss).
    spaced: std::cell::Cell<Option<bool>>,
    /// Lower-cased copies of the event's texts, made once whichever prefilters scan them.
    lowered: std::cell::RefCell<Lowered>,
    /// The first fields rules' items looked up: the name's address and what was found.
    looked_up: std::cell::RefCell<LookedUp<'e>>,
}

/// Fields looked up by items, remembered by the address of their (shared) name.
type LookedUp<'e> = ([(usize, Option<&'e Value>); LOOKED_UP], usize);

/// How many looked-up fields an event remembers (more are looked up each time).
const LOOKED_UP: usize = 24;

/// Lower-cased copies of one event's longer texts, end to end, and where each one is.
#[derive(Default)]
struct Lowered {
    bytes: Vec<u8>,
    /// Per copied text: its address and length in the event, and where its copy starts.
    /// (Addresses identify texts only while the event is borrowed, as it is here.)
    spans: Vec<(usize, usize, usize)>,
    /// Where the event's texts joined by NULs start and end, once made.
    joined: Option<(usize, usize)>,
}

/// Appends `text` lower-cased (ASCII) to `out`: a copy, then lower-casing in place, which
/// compiles to wide instructions where a byte-by-byte map does not.
pub(crate) fn push_lower(out: &mut Vec<u8>, text: &[u8]) {
    let start = out.len();
    out.extend_from_slice(text);
    out[start..].make_ascii_lowercase();
}

/// Texts shorter than this are lower-cased again each time rather than looked up.
const LOWER_CACHED_MIN: usize = 24;

thread_local! {
    /// Per thread: the buffers of the last event's [`Lowered`], to reuse.
    static LOWERED: std::cell::RefCell<Lowered> = std::cell::RefCell::new(Lowered::default());
}

impl Drop for Subject<'_> {
    fn drop(&mut self) {
        let mut lowered = std::mem::take(self.lowered.get_mut());
        lowered.bytes.clear();
        lowered.spans.clear();
        lowered.joined = None;
        LOWERED.with(|l| *l.borrow_mut() = lowered);
    }
}

impl<'e> Subject<'e> {
    fn new(fields: &'e Fields) -> Self {
        Self {
            fields,
            spaced: std::cell::Cell::new(None),
            lowered: std::cell::RefCell::new(
                LOWERED.with(|l| std::mem::take(&mut *l.borrow_mut())),
            ),
            looked_up: std::cell::RefCell::new(([(0, None); LOOKED_UP], 0)),
        }
    }

    /// Calls `f` with the lower-cased text of `value` (of each item, for a list).
    fn with_lower(&self, value: &Value, f: &mut dyn FnMut(&[u8])) {
        match value {
            Value::String(text) if text.len() >= LOWER_CACHED_MIN => {
                let mut cache = self.lowered.borrow_mut();
                let key = (text.as_ptr() as usize, text.len());
                let start = match cache.spans.iter().find(|s| (s.0, s.1) == key) {
                    Some(&(_, _, start)) => start,
                    None => {
                        let start = cache.bytes.len();
                        push_lower(&mut cache.bytes, text.as_bytes());
                        cache.spans.push((key.0, key.1, start));
                        start
                    }
                };
                f(&cache.bytes[start..start + text.len()]);
            }
            Value::String(text) => {
                let mut short = [0u8; LOWER_CACHED_MIN];
                let short = &mut short[..text.len()];
                short.copy_from_slice(text.as_bytes());
                short.make_ascii_lowercase();
                f(short);
            }
            Value::Array(items) => {
                for item in items {
                    self.with_lower(item, f);
                }
            }
            // Numbers and booleans print in lower case already.
            v => {
                value::with_text(v, |text| f(text.as_bytes()));
            }
        }
    }

    /// Calls `f` with all the event's texts, lower-cased and joined by NULs (for keywords:
    /// their literals hold no NUL, so each occurrence lies within one text).
    fn with_joined_lower(&self, f: &mut dyn FnMut(&[u8])) {
        let mut cache = self.lowered.borrow_mut();
        let (start, end) = match cache.joined {
            Some(range) => range,
            None => {
                let start = cache.bytes.len();
                for value in self.fields.values() {
                    let mut push = |text: &str| {
                        cache.bytes.extend_from_slice(text.as_bytes());
                        cache.bytes.push(0);
                    };
                    match value {
                        Value::Array(items) => {
                            for item in items {
                                value::with_text(item, &mut push);
                            }
                        }
                        v => {
                            value::with_text(v, &mut push);
                        }
                    }
                }
                cache.bytes[start..].make_ascii_lowercase();
                let range = (start, cache.bytes.len());
                cache.joined = Some(range);
                range
            }
        };
        f(&cache.bytes[start..end]);
    }

    /// Whether some of the event's field names contain spaces.
    fn spaced(&self) -> bool {
        match self.spaced.get() {
            Some(s) => s,
            None => {
                let s = self.fields.keys().any(|k| k.contains(' '));
                self.spaced.set(Some(s));
                s
            }
        }
    }

    /// The field an item names, as [`Subject::get`] finds it, looked up once per event:
    /// items naming the same field share the name (see `Detection::share_field_names`), so
    /// its address identifies it. `name` must live as long as the subject (the rule set's
    /// names do).
    fn get_item(&self, name: &std::sync::Arc<str>) -> Option<&'e Value> {
        let address = name.as_ptr() as usize;
        let mut memo = self.looked_up.borrow_mut();
        let (entries, len) = &mut *memo;
        if let Some(&(_, value)) = entries[..*len].iter().find(|(a, _)| *a == address) {
            return value;
        }
        let value = self.get(name);
        if let Some(slot) = entries.get_mut(*len) {
            *slot = (address, value);
            *len += 1;
        }
        value
    }

    /// The field's value. Windows events name some fields with spaces (`Threat Name`), which
    /// Sigma rules write without (`ThreatName`): a miss falls back to that comparison.
    fn get(&self, name: &str) -> Option<&'e Value> {
        if let Some(v) = self.fields.get(name) {
            return Some(v);
        }
        if !self.spaced() {
            return None;
        }
        self.fields
            .iter()
            .find(|(k, _)| k.contains(' ') && k.bytes().filter(|&b| b != b' ').eq(name.bytes()))
            .map(|(_, v)| v)
    }
}

fn eval_item(item: &Item, subject: &Subject<'_>) -> bool {
    let fields = subject.fields;
    match &item.field {
        Some(field) => item.test.eval(subject.get_item(field), fields),
        None if item.test.contains_only().is_some() => {
            let Some(set) = item.test.contains_only() else {
                return false;
            };
            // Case-insensitive: the texts joined and lower-cased once per event.
            if set.is_ci() {
                let mut hit = false;
                subject.with_joined_lower(&mut |lower| hit = set.contains_match_lower(lower));
                return hit;
            }
            // Else one search over every text of the event, joined, rather than one per field.
            let mut joined = KEYWORD_TEXT.with(|t| std::mem::take(&mut *t.borrow_mut()));
            joined.clear();
            for v in fields.values() {
                let mut push = |text: &str| {
                    joined.push_str(text);
                    joined.push('\0');
                };
                match v {
                    Value::Array(items) => {
                        for item in items {
                            value::with_text(item, &mut push);
                        }
                    }
                    v => {
                        value::with_text(v, &mut push);
                    }
                }
            }
            let hit = set.is_match(&joined);
            KEYWORD_TEXT.with(|t| *t.borrow_mut() = joined);
            hit
        }
        None => fields.values().any(|v| match v {
            Value::Array(items) => items.iter().any(|v| item.test.eval(Some(v), fields)),
            Value::Object(_) | Value::Null => false,
            v => item.test.eval(Some(v), fields),
        }),
    }
}

fn eval_detection(detection: &Detection, subject: &Subject<'_>) -> bool {
    detection.condition.eval(&mut |i| {
        detection.searches[i]
            .alternatives
            .iter()
            .any(|group| group.iter().all(|item| eval_item(item, subject)))
    })
}

impl Compiled {
    fn matches(&self, subject: &Subject<'_>) -> bool {
        self.guard.iter().all(|g| eval_item(g, subject))
            && eval_detection(&self.detection, subject)
            && self.filters.iter().all(|f| eval_detection(f, subject))
    }
}

/// The event's channel, lower-cased into `buf` when it fits (no allocation), else owned.
fn channel_key<'b>(channel: &str, buf: &'b mut [u8; 128]) -> std::borrow::Cow<'b, str> {
    let bytes = channel.as_bytes();
    if bytes.len() <= buf.len() && channel.is_ascii() {
        let out = &mut buf[..bytes.len()];
        out.copy_from_slice(bytes);
        out.make_ascii_lowercase();
        std::borrow::Cow::Borrowed(std::str::from_utf8(out).unwrap_or(""))
    } else {
        std::borrow::Cow::Owned(channel.to_lowercase())
    }
}

impl RuleSet {
    /// Loads every rule under `paths` (files, or folders searched for `.yml` / `.yaml`).
    ///
    /// Returns the compiled set and one diagnostic per rule or file that was not loaded.
    pub fn load<P: AsRef<Path>>(
        paths: &[P],
        options: &LoadOptions,
    ) -> (RuleSet, Vec<RuleDiagnostic>) {
        let mut builder = RuleSetBuilder::new(options);
        builder.add_paths(paths);
        builder.build()
    }

    /// Loads the rules of one YAML text (one or many documents); `name` stands for the file.
    pub fn from_yaml(
        name: &str,
        text: &str,
        options: &LoadOptions,
    ) -> (RuleSet, Vec<RuleDiagnostic>) {
        let mut builder = RuleSetBuilder::new(options);
        builder.add_yaml(name, text);
        builder.build()
    }

    /// A builder, to load from several files and texts.
    pub fn builder(options: &LoadOptions) -> RuleSetBuilder<'_> {
        RuleSetBuilder::new(options)
    }

    /// Every loaded rule (detection, correlation and filter rules), in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The number of loaded rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule was loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The loaded correlation rules.
    pub fn correlations(&self) -> impl Iterator<Item = (&Rule, &Correlation)> {
        self.rules.iter().filter_map(|r| match &r.kind {
            RuleKind::Correlation(c) => Some((r, c)),
            _ => None,
        })
    }

    /// The index of the rule with this id or name.
    pub fn find(&self, reference: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.is_called(reference))
    }

    /// Calls `f` with the index (into [`RuleSet::rules`]) of every detection rule that matches
    /// `event`, each once, in load order within each log-source bucket.
    pub fn for_each_match(&self, event: &Event, mut f: impl FnMut(usize)) {
        let fields = &event.fields;
        let channel = match fields.get("Channel") {
            Some(Value::String(c)) => Some(c.as_str()),
            _ => event
                .source
                .as_deref()
                .filter(|_| fields.contains_key("EventID")),
        };
        let subject = Subject::new(fields);
        let mut matched: smallvec_lite::Small = smallvec_lite::Small::default();
        let mut check = |at: u32, f: &mut dyn FnMut(usize)| {
            let compiled = &self.compiled[at as usize];
            if !matched.contains(compiled.rule) && compiled.matches(&subject) {
                matched.push(compiled.rule);
                f(compiled.rule);
            }
        };
        match channel {
            Some(channel) => {
                let mut buf = [0u8; 128];
                let key = channel_key(channel, &mut buf);
                if let Some(bucket) = self.by_channel.get(&*key) {
                    match event.event_id {
                        Some(id) => {
                            if let Some(list) = bucket.by_event_id.get(&id) {
                                list.for_each(&subject, |at| check(at, &mut f));
                            }
                        }
                        None => bucket
                            .without_event_id
                            .for_each(&subject, |at| check(at, &mut f)),
                    }
                    bucket
                        .any_event_id
                        .for_each(&subject, |at| check(at, &mut f));
                }
                self.windows_any.for_each(&subject, |at| check(at, &mut f));
            }
            None => {
                self.generic.for_each(&subject, |at| check(at, &mut f));
            }
        }
    }

    /// The detection rules that match `event`.
    pub fn matches<'s>(&'s self, event: &Event) -> impl Iterator<Item = &'s Rule> + 's {
        let mut hits = Vec::new();
        self.for_each_match(event, |i| hits.push(i));
        hits.into_iter().map(move |i| &self.rules[i])
    }

    /// Whether the rule at `index` matches `event` (respecting its log source).
    pub fn rule_matches(&self, index: usize, event: &Event) -> bool {
        let mut hit = false;
        self.for_each_match_of(index, event, &mut hit);
        hit
    }

    fn for_each_match_of(&self, index: usize, event: &Event, hit: &mut bool) {
        let Some(list) = self.per_rule.get(index) else {
            return;
        };
        let fields = &event.fields;
        let channel = match fields.get("Channel") {
            Some(Value::String(c)) => Some(c.to_lowercase()),
            _ => None,
        };
        for &at in list {
            let in_bucket = match &channel {
                Some(channel) => {
                    self.windows_any.contains(at)
                        || self.by_channel.get(channel).is_some_and(|b| {
                            b.any_event_id.contains(at)
                                || match event.event_id {
                                    Some(id) => {
                                        b.by_event_id.get(&id).is_some_and(|l| l.contains(at))
                                    }
                                    None => b.without_event_id.contains(at),
                                }
                        })
                }
                None => self.generic.contains(at),
            };
            if in_bucket && self.compiled[at as usize].matches(&Subject::new(fields)) {
                *hit = true;
                return;
            }
        }
    }

    /// Runs the test cases embedded in the rule at `index` (`siren: tests:`): the events of
    /// `must_match` that it does not match, and those of `must_not_match` that it matches.
    pub fn run_embedded_tests(&self, index: usize) -> EmbeddedTestReport {
        let mut report = EmbeddedTestReport::default();
        let Some(rule) = self.rules.get(index) else {
            return report;
        };
        let tenant = crate::event::TenantId::default();
        for (i, fields) in rule.siren.tests.must_match.iter().enumerate() {
            report.run += 1;
            let event = Event::from_fields(fields.clone(), tenant.clone());
            if !self.rule_matches(index, &event) {
                report.failed_match.push(i);
            }
        }
        for (i, fields) in rule.siren.tests.must_not_match.iter().enumerate() {
            report.run += 1;
            let event = Event::from_fields(fields.clone(), tenant.clone());
            if self.rule_matches(index, &event) {
                report.failed_no_match.push(i);
            }
        }
        report
    }
}

/// The outcome of a rule's embedded tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedTestReport {
    /// How many test events ran.
    pub run: usize,
    /// Positions in `must_match` of the events the rule did not match.
    pub failed_match: Vec<usize>,
    /// Positions in `must_not_match` of the events the rule matched.
    pub failed_no_match: Vec<usize>,
}

impl EmbeddedTestReport {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.failed_match.is_empty() && self.failed_no_match.is_empty()
    }
}

/// The compiled rules of one bucket, with a prefilter: for each field their literals occur
/// in, one Aho-Corasick automaton over all of them. A rule's need (see [`parse::Need`]) is
/// a few clauses, each a slot: a literal found in its field fills the slots it is in, and
/// an event meets only the rules whose slots are all filled (and the rules without a need).
#[derive(Debug, Default)]
struct Candidates {
    /// Compiled rule indices, ascending.
    members: Vec<u32>,
    /// Bit set over `members` positions: rules evaluated whatever the prefilter says.
    always: Vec<u64>,
    /// Per `members` position: how many slots its need has (0 for `always` members).
    required: Vec<u8>,
    /// Per slot: the `members` position whose clause it is.
    slot_owner: Vec<u32>,
    /// Per field: its literals (lower-case) and, per literal, the slots it fills. The
    /// automata are built on first use, so buckets no event reaches cost nothing.
    literals: Vec<FieldLiterals>,
    /// The position in `literals` of each field.
    by_name: foldhash::HashMap<Box<str>, usize>,
    scans: std::sync::OnceLock<Vec<FieldScan>>,
}

/// A field, its literals, and per literal the slots it fills.
type FieldLiterals = (Box<str>, Vec<String>, Vec<Vec<u32>>);

/// The automaton over one field's literals, and whether all of them fill the same slots
/// (then one hit is all that is asked, see [`memo::matcher`]); `None` if it could not be
/// built: its slots are then always filled.
type FieldScan = Option<(std::sync::Arc<aho_corasick::AhoCorasick>, bool)>;

/// The field name, in a [`parse::Need`], that stands for any of the event's fields: the
/// literals of keyword searches. (A NUL cannot start a rule's field name.)
pub(crate) const ANY_FIELD: &str = "\0any field";

thread_local! {
    /// Per thread: an event's texts joined, for keyword searches.
    static KEYWORD_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// Per thread: the prefilter's working state.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// What the prefilter keeps per event: which members and slots are on, and per member how
/// many of its slots are (`filled` is zeroed again through `touched` after each event).
#[derive(Default)]
struct Scratch {
    members: Vec<u64>,
    slots: Vec<u64>,
    filled: Vec<u8>,
    touched: Vec<u32>,
}

impl Scratch {
    /// Fills `slot`; turns its owner on when that was the owner's last empty slot.
    fn fill(&mut self, slot: u32, owner: u32, required: u8) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if self.slots[word] & bit != 0 {
            return;
        }
        self.slots[word] |= bit;
        let filled = &mut self.filled[owner as usize];
        if *filled == 0 {
            self.touched.push(owner);
        }
        *filled += 1;
        if *filled == required {
            self.members[owner as usize / 64] |= 1 << (owner % 64);
        }
    }
}

impl Candidates {
    fn push(&mut self, at: u32) {
        self.members.push(at);
    }

    fn contains(&self, at: u32) -> bool {
        self.members.binary_search(&at).is_ok()
    }

    fn finish(&mut self, needs: &[Option<parse::Need>]) {
        self.members.sort_unstable();
        self.members.dedup();
        let words = self.members.len().div_ceil(64);
        self.always = vec![0; words];
        self.required = vec![0; self.members.len()];
        // Per field: literal (lower-case) → pattern id, and each pattern's slots.
        type Building = (Box<str>, HashMap<String, usize>, Vec<Vec<u32>>);
        let mut by_field: Vec<Building> = Vec::new();
        for (pos, &at) in self.members.iter().enumerate() {
            let need = needs.get(at as usize).and_then(|n| n.as_ref());
            // Even for one rule: a scan for its literals costs less than evaluating it.
            let Some(need) = need else {
                self.always[pos / 64] |= 1 << (pos % 64);
                continue;
            };
            self.required[pos] = need.len() as u8;
            for clause in need {
                let slot = self.slot_owner.len() as u32;
                self.slot_owner.push(pos as u32);
                for (field, literal) in clause {
                    let at = match by_field.iter().position(|(f, _, _)| f == field) {
                        Some(i) => i,
                        None => {
                            by_field.push((field.clone(), HashMap::new(), Vec::new()));
                            by_field.len() - 1
                        }
                    };
                    let (_, ids, targets) = &mut by_field[at];
                    let next = targets.len();
                    let id = *ids.entry(literal.to_ascii_lowercase()).or_insert(next);
                    if id == next {
                        targets.push(Vec::new());
                    }
                    if targets[id].last() != Some(&slot) {
                        targets[id].push(slot);
                    }
                }
            }
        }
        for (field, ids, targets) in by_field {
            let mut patterns = vec![String::new(); ids.len()];
            for (literal, id) in ids {
                patterns[id] = literal;
            }
            self.by_name.insert(field.clone(), self.literals.len());
            self.literals.push((field, patterns, targets));
        }
    }

    fn scans(&self) -> &[FieldScan] {
        self.scans.get_or_init(|| {
            self.literals
                .iter()
                .map(|(_, patterns, targets)| {
                    // Patterns and texts are lower-cased: cheaper than a case-insensitive
                    // automaton, which has twice the transitions and no SIMD prefilter.
                    // The crate picks the kind: a DFA for up to 100 patterns, else a
                    // contiguous NFA (nearly as fast, and far cheaper to build).
                    let key = patterns.iter().map(|p| p.as_str().into()).collect();
                    let uniform = targets.windows(2).all(|w| w[0] == w[1]);
                    if uniform {
                        return memo::matcher(key).map(|a| (a, true));
                    }
                    memo::AUTOMATA
                        .get_or_build(key, |patterns: &Vec<Box<str>>| {
                            aho_corasick::AhoCorasickBuilder::new()
                                .build(patterns.iter().map(|p| p.as_bytes()))
                                .ok()
                        })
                        .map(|a| (a, false))
                })
                .collect()
        })
    }

    /// Calls `f` with every member the prefilter lets through, in ascending order.
    fn for_each(&self, subject: &Subject<'_>, mut f: impl FnMut(u32)) {
        if self.members.is_empty() {
            return;
        }
        if self.literals.is_empty() {
            for &at in &self.members {
                f(at);
            }
            return;
        }
        // Reuse one scratch per thread (taken out, so a re-entrant call cannot clash).
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        scratch.members.clear();
        scratch.members.extend_from_slice(&self.always);
        scratch.slots.clear();
        scratch.slots.resize(self.slot_owner.len().div_ceil(64), 0);
        if scratch.filled.len() < self.members.len() {
            scratch.filled.resize(self.members.len(), 0);
        }
        let scans = self.scans();
        let fill_all = |scratch: &mut Scratch, slots: &[u32]| {
            for &slot in slots {
                let owner = self.slot_owner[slot as usize];
                scratch.fill(slot, owner, self.required[owner as usize]);
            }
        };
        let enable = |scratch: &mut Scratch, i: usize, lower: &[u8]| {
            let Some((automaton, uniform)) = &scans[i] else {
                return;
            };
            let targets = &self.literals[i].2;
            if *uniform {
                if automaton.is_match(lower) {
                    fill_all(scratch, &targets[0]);
                }
                return;
            }
            for m in automaton.find_overlapping_iter(lower) {
                fill_all(scratch, &targets[m.pattern().as_usize()]);
            }
        };
        // Keywords' literals: every field's text, joined.
        let any = self.by_name.get(ANY_FIELD).copied();
        if let Some(i) = any {
            subject.with_joined_lower(&mut |lower| enable(&mut scratch, i, lower));
        }
        // Walk whichever is shorter: the event's fields, or the fields the literals are in.
        if subject.fields.len() < self.literals.len() && !subject.spaced() {
            for (name, value) in subject.fields {
                match self.by_name.get(name.as_str()) {
                    Some(&i) if Some(i) != any => {
                        subject.with_lower(value, &mut |lower| enable(&mut scratch, i, lower));
                    }
                    _ => {}
                }
            }
        } else {
            for (i, (field, _, _)) in self.literals.iter().enumerate() {
                if Some(i) == any {
                    continue;
                }
                if let Some(value) = subject.get(field) {
                    subject.with_lower(value, &mut |lower| enable(&mut scratch, i, lower));
                }
            }
        }
        // Literals without an automaton fill their slots unconditionally.
        for (i, automaton) in scans.iter().enumerate() {
            if automaton.is_none() {
                for slots in &self.literals[i].2 {
                    fill_all(&mut scratch, slots);
                }
            }
        }
        for (w, &word) in scratch.members.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                f(self.members[w * 64 + bit]);
            }
        }
        let Scratch {
            filled, touched, ..
        } = &mut scratch;
        for &owner in touched.iter() {
            filled[owner as usize] = 0;
        }
        touched.clear();
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
    }
}

/// A tiny inline set of rule indices, so matching one event does not allocate.
mod smallvec_lite {
    #[derive(Default)]
    pub(super) struct Small {
        inline: [usize; 8],
        len: usize,
        spill: Vec<usize>,
    }

    impl Small {
        pub(super) fn contains(&self, x: usize) -> bool {
            self.inline[..self.len.min(8)].contains(&x) || self.spill.contains(&x)
        }
        pub(super) fn push(&mut self, x: usize) {
            if self.len < 8 {
                self.inline[self.len] = x;
                self.len += 1;
            } else {
                self.spill.push(x);
            }
        }
    }
}

#[cfg(test)]
mod tests;
