//! [`RuleSet`]: the compiled rules in their (channel, event ID) buckets, an event matched
//! against the buckets it can meet, one rule's own test events.

use std::path::Path;

use serde_json::Value;

use super::matched::Matched;
use super::parse::{Detection, Item};
use super::prefilter::Candidates;
use super::subject::Subject;
use super::value;
use super::{Correlation, LoadOptions, Rule, RuleDiagnostic, RuleKind, RuleSetBuilder};
use crate::event::Event;

/// One detection rule compiled for one of its log source's sources.
#[derive(Debug)]
pub(super) struct Compiled {
    /// Index into [`RuleSet::rules`].
    pub(super) rule: usize,
    /// Conditions the source adds (provider, field values).
    pub(super) guard: Vec<Item>,
    /// The rule's detection, with the source's field names.
    pub(super) detection: Detection,
    /// Filter rules' detections, which must hold too.
    pub(super) filters: Vec<Detection>,
}

#[derive(Debug, Default)]
pub(super) struct ChannelBucket {
    pub(super) by_event_id: foldhash::HashMap<i64, Candidates>,
    /// Rules whose log source names no event ID but whose detection requires one of a few
    /// (`EventID: 4624`) sit under those IDs too; events without an ID meet them here.
    pub(super) without_event_id: Candidates,
    pub(super) any_event_id: Candidates,
}

/// A loaded, compiled set of rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(super) rules: Vec<Rule>,
    pub(super) compiled: Vec<Compiled>,
    /// Keyed by lower-case channel.
    pub(super) by_channel: foldhash::HashMap<String, ChannelBucket>,
    /// Windows rules without a mapped log source: every event with a channel.
    pub(super) windows_any: Candidates,
    /// Other rules without a mapped log source: every event without a channel.
    pub(super) generic: Candidates,
}

thread_local! {
    /// Per thread: an event's texts joined, for keyword searches.
    static KEYWORD_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
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
    ///
    /// ```
    /// use siren_core::rules::{LoadOptions, RuleSet};
    /// use siren_core::{Event, Fields, TenantId};
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("cleared.yml"), r#"
    /// title: Security event log cleared
    /// logsource: {product: windows, service: security}
    /// detection:
    ///     selection: {EventID: 1102}
    ///     condition: selection
    /// "#)?;
    /// std::fs::write(dir.path().join("broken.yml"), "title: No detection\n")?;
    ///
    /// let (rules, diagnostics) = RuleSet::load(&[dir.path()], &LoadOptions::default());
    /// assert_eq!(rules.len(), 1);
    /// assert_eq!(diagnostics.len(), 1);
    /// assert!(diagnostics[0].to_string().contains("broken.yml"));
    ///
    /// let mut fields = Fields::default();
    /// fields.insert("Channel".into(), "Security".into());
    /// fields.insert("EventID".into(), 1102.into());
    /// let event = Event::from_fields(fields, TenantId::default());
    /// let mut matched = Vec::new();
    /// rules.for_each_match(&event, |index| matched.push(rules.rules()[index].title.clone()));
    /// assert_eq!(matched, ["Security event log cleared"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
        let mut matched: Matched = Matched::default();
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

    /// Whether the rule at `index` matches `event` (respecting its log source). It runs the
    /// same path as [`RuleSet::for_each_match`] — log-source buckets, prefilter, channel
    /// fallback — so a test of one rule tests what hunt, ingest and the server do.
    pub fn rule_matches(&self, index: usize, event: &Event) -> bool {
        let mut hit = false;
        self.for_each_match(event, |rule| hit |= rule == index);
        hit
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
