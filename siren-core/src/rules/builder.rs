//! [`RuleSetBuilder`]: rule files found and parsed (on a few threads, through the rule
//! cache), rule ids and references checked, each detection rule compiled per source of its
//! log source and placed in the (channel, event ID) buckets, and the buckets' prefilters made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cache::{self, RuleCache};
use super::parse::{self, Detection, Item, ParseContext};
use super::prefilter::Candidates;
use super::set::{Compiled, RuleSet};
use super::value;
use super::{EventSelector, LoadOptions, RuleDiagnostic, RuleError, RuleKind, pipeline};

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
            pipelines: &self.options.pipelines,
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
            pipelines: &self.options.pipelines,
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
        let mut yaml_sources: Vec<Option<(&'static str, serde_yaml::Mapping)>> = Vec::new();
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
            yaml_sources.push(p.source);
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
            let mut k3 = k.clone();
            set.rules.retain(|_| k.next().unwrap_or(true));
            detections.retain(|_| k2.next().unwrap_or(true));
            yaml_sources.retain(|_| k3.next().unwrap_or(true));
        }
        // Filters: (referenced rule names, detection, its YAML).
        type YamlSource = Option<(&'static str, serde_yaml::Mapping)>;
        let filters: Vec<(Vec<String>, &Detection, &YamlSource)> = set
            .rules
            .iter()
            .zip(&detections)
            .zip(&yaml_sources)
            .filter_map(|((r, d), y)| match (&r.kind, d) {
                (RuleKind::Filter(f), Some(d)) => Some((f.rules.clone(), d, y)),
                _ => None,
            })
            .collect();
        let cx = ParseContext {
            placeholders: &options.placeholders,
            pipelines: &[],
        };
        // A detection as a source's pipeline rewrites it (the same when it has none).
        let for_source = |source: &EventSelector, d: &Detection, y: &YamlSource| {
            let Some((section, doc)) = y.as_ref().filter(|_| !source.pipeline.is_empty()) else {
                return Ok(d.clone());
            };
            let mut doc = doc.clone();
            pipeline::apply_to_document(std::slice::from_ref(&source.pipeline), &mut doc)
                .map_err(|e| RuleError::Pipeline(e.to_string()))?;
            match doc.get(*section) {
                Some(section_yaml) => parse::parse_detection(section_yaml, section, &cx),
                None => Ok(d.clone()),
            }
        };
        // Each detection rule compiled once per log source it maps to (rewritten by that
        // source's pipeline), on every core; then placed in the buckets in order.
        let rules = &set.rules;
        let prepared = in_parallel(detections.iter().enumerate().collect(), |(index, d)| {
            let (RuleKind::Detection, Some(detection)) = (&rules[index].kind, d) else {
                return None;
            };
            let rule = &rules[index];
            let applicable: Vec<(&Detection, &YamlSource)> = filters
                .iter()
                .filter(|(refs, _, _)| refs.iter().any(|r| rule.is_called(r)))
                .map(|(_, d, y)| (*d, *y))
                .collect();
            let Some(sources) = options.logsources.resolve(&rule.logsource) else {
                return Some(Err(Compiled {
                    rule: index,
                    guard: Vec::new(),
                    detection: detection.clone(),
                    filters: applicable.into_iter().map(|(d, _)| d.clone()).collect(),
                }));
            };
            let mut errors = Vec::new();
            let per_source = sources
                .into_iter()
                .filter_map(|source| {
                    let mut guard = Vec::new();
                    if !source.providers.is_empty() {
                        guard.push(equals_item("Provider_Name", &source.providers));
                    }
                    for (field, values) in &source.conditions {
                        guard.push(equals_item(field, values));
                    }
                    let rewritten =
                        for_source(source, detection, &yaml_sources[index]).and_then(|d| {
                            let filters = applicable
                                .iter()
                                .map(|(f, y)| for_source(source, f, y))
                                .collect::<Result<Vec<_>, _>>()?;
                            Ok((d, filters))
                        });
                    let (detection, filters) = match rewritten {
                        Ok(r) => r,
                        Err(e) => {
                            errors.push(e);
                            return None;
                        }
                    };
                    let compiled = Compiled {
                        rule: index,
                        guard,
                        detection,
                        filters,
                    };
                    let required_ids = compiled.detection.event_ids();
                    Some((source, compiled, required_ids))
                })
                .collect::<Vec<_>>();
            Some(Ok((per_source, errors)))
        });
        for (index, prepared) in prepared.into_iter().enumerate() {
            let Some(prepared) = prepared.flatten() else {
                continue;
            };
            let mapped = prepared.is_ok();
            match prepared {
                Ok((per_source, errors)) => {
                    for error in errors {
                        diagnostics.push(RuleDiagnostic {
                            file: set.rules[index].file.clone(),
                            rule: Some(set.rules[index].title.clone()),
                            error,
                        });
                    }
                    for (source, compiled, required_ids) in per_source {
                        let at = set.compiled.len() as u32;
                        set.compiled.push(compiled);
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
