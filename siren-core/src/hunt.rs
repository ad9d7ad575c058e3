//! Hunting: read inputs and match every event against a [`RuleSet`], without a database.
//!
//! Reader threads (one per core, each taking the next input) parse and match in parallel;
//! detections are handed to the caller on the calling thread, in no particular order (the
//! caller sorts them, e.g. into a timeline).
//!
//! With [`HuntOptions::correlation`] set, the rule set's correlation rules are evaluated too:
//! the matches of the rules they refer to are kept, and once every input has been read they
//! are fed to a [`Correlator`] in event-time order across all inputs (`correlate.rs`); the
//! hits follow the detections. A rule whose correlations all say `generate: false` (the
//! Sigma default) then reports no detections of its own.

mod correlate;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use correlate::{HuntCorrelation, HuntRecord};

use self::correlate::{Feeds, Kept};
use crate::correlation::{Correlator, CorrelatorConfig, CorrelatorStats};
use crate::event::Event;
use crate::normalize::{self, Diagnostic, EventSink, Format, Input, ReadObserver, ReadOptions};
use crate::rules::{Level, RuleSet};

/// How a hunt behaves.
#[derive(Debug, Clone, Default)]
pub struct HuntOptions {
    /// Reader options.
    pub read: ReadOptions,
    /// Only rules of at least this level report detections.
    pub min_level: Option<Level>,
    /// Reader threads (0 = one per core).
    pub threads: usize,
    /// Stop at the first skipped record or file.
    pub strict: bool,
    /// Evaluate the rule set's correlation rules with this configuration (none: report
    /// every rule's detections and evaluate no correlation). Only [`hunt_rendered`] hands
    /// over the hits.
    pub correlation: Option<CorrelatorConfig>,
}

impl HuntOptions {
    /// Sets the reader options.
    pub fn with_read(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    /// Reports only rules of at least `level`.
    pub fn with_min_level(mut self, level: Option<Level>) -> Self {
        self.min_level = level;
        self
    }

    /// Sets the number of reader threads (0 = one per core).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Evaluates correlation rules with `config` (`None`: none).
    pub fn with_correlation(mut self, config: Option<CorrelatorConfig>) -> Self {
        self.correlation = config;
        self
    }
}

/// What [`hunt_rendered`] hands its caller.
#[derive(Debug)]
pub enum Found<T> {
    /// A detection, rendered on a reader thread; detections come as they are found.
    Detection(T),
    /// A correlation hit; hits come after every input has been read, in the order the
    /// correlator raised them (event time).
    Correlation(HuntCorrelation),
}

/// One rule matching one event.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The rule's index in [`RuleSet::rules`].
    pub rule: usize,
    /// The event.
    pub event: Event,
    /// The input the event came from.
    pub file: Arc<str>,
}

impl Detection {
    /// The detection as a borrowed [`Hit`].
    pub fn hit(&self) -> Hit<'_> {
        Hit {
            rule: self.rule,
            event: &self.event,
            file: &self.file,
        }
    }
}

/// One rule matching one event, borrowed from the reader thread that found it: what
/// [`hunt_rendered`] hands its `render` function, so that an event several rules match is
/// rendered once per rule without being copied.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The rule's index in [`RuleSet::rules`].
    pub rule: usize,
    /// The event.
    pub event: &'a Event,
    /// The input the event came from.
    pub file: &'a Arc<str>,
}

/// What a hunt did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HuntSummary {
    /// Inputs read.
    pub files: u64,
    /// Inputs skipped as a whole.
    pub files_skipped: u64,
    /// Files found in folders and left alone (empty, not logs).
    pub files_ignored: u64,
    /// Events read.
    pub events: u64,
    /// Records that could not be parsed.
    pub records_skipped: u64,
    /// Detections reported.
    pub detections: u64,
    /// Correlation hits reported.
    pub correlation_hits: u64,
    /// The correlator's counters, when correlation rules were evaluated.
    pub correlation: Option<CorrelatorStats>,
    /// Whether `strict` ended the hunt early.
    pub stopped_early: bool,
    /// Wall-clock time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Detections a reader thread collects before it hands them over: one channel message per
/// batch rather than per detection, so the calling thread wakes (and spins) far less often.
const BATCH: usize = 256;

enum Message<T> {
    Detections(Vec<T>),
    Kept(Vec<Kept>),
    Diagnostic(Diagnostic),
    Ignored,
    FileDone { format: Option<Format>, events: u64 },
}

/// Reads `inputs`, matching every event against `rules`; calls `on_detection` for each
/// detection and `on_diagnostic` for each skipped record or file, on the calling thread.
/// Every rule reports its own detections: correlation rules are left to [`hunt_rendered`]
/// (`options.correlation` is not read here).
///
/// ```
/// use siren_core::hunt::{HuntOptions, hunt};
/// use siren_core::normalize::{Quiet, expand_inputs};
/// use siren_core::rules::{LoadOptions, RuleSet};
///
/// let rule = r#"
/// title: Security event log cleared
/// level: high
/// logsource: {product: windows, service: security}
/// detection:
///     selection: {EventID: 1102}
///     condition: selection
/// "#;
/// let (rules, _) = RuleSet::from_yaml("cleared.yml", rule, &LoadOptions::default());
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(
///     dir.path().join("security.jsonl"),
///     r#"{"EventID": 1102, "Channel": "Security", "Computer": "dc01"}
/// {"EventID": 4624, "Channel": "Security", "Computer": "dc01"}
/// not JSON
/// "#,
/// )?;
/// let (inputs, _missing) = expand_inputs(&[dir.path()]);
///
/// let (mut hosts, mut skipped) = (Vec::new(), Vec::new());
/// let summary = hunt(
///     &inputs,
///     &rules,
///     &HuntOptions::default(),
///     &Quiet,
///     |detection| hosts.push(detection.event.host),
///     |diagnostic| skipped.push(diagnostic.to_string()),
/// );
/// assert_eq!((summary.events, summary.detections, summary.records_skipped), (2, 1, 1));
/// assert_eq!(hosts, [Some("dc01".to_owned())]);
/// assert!(skipped[0].contains("security.jsonl: line 3: invalid JSON"), "{skipped:?}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn hunt(
    inputs: &[Input],
    rules: &RuleSet,
    options: &HuntOptions,
    observer: &dyn ReadObserver,
    mut on_detection: impl FnMut(Detection),
    on_diagnostic: impl FnMut(Diagnostic),
) -> HuntSummary {
    let options = options.clone().with_correlation(None);
    hunt_rendered(
        inputs,
        rules,
        &options,
        observer,
        &|hit: Hit<'_>| Detection {
            rule: hit.rule,
            event: hit.event.clone(),
            file: hit.file.clone(),
        },
        |found| {
            if let Found::Detection(detection) = found {
                on_detection(detection);
            }
        },
        on_diagnostic,
    )
}

/// Like [`hunt`], with each detection first turned into `T` by `render` on the reader
/// threads (in parallel), so that only the rendered form crosses to the calling thread and
/// no event is copied; and with the correlation rules evaluated when
/// [`HuntOptions::correlation`] is set, their hits handed to `on_found` after every
/// detection.
pub fn hunt_rendered<T: Send>(
    inputs: &[Input],
    rules: &RuleSet,
    options: &HuntOptions,
    observer: &dyn ReadObserver,
    render: &(dyn Fn(Hit<'_>) -> T + Sync),
    mut on_found: impl FnMut(Found<T>),
    mut on_diagnostic: impl FnMut(Diagnostic),
) -> HuntSummary {
    let started = Instant::now();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(inputs.len().max(1));
    let mut read = options.read.clone();
    if threads > 1 {
        read.evtx_threads = 1;
    }
    let mut correlator = options
        .correlation
        .as_ref()
        .map(|config| Correlator::with_config(rules, config.clone()))
        .filter(|c| !c.is_empty());
    let feeds = correlator.as_ref().map(|c| Feeds::new(c, rules.len()));
    // Which rules may report: detection rules at or above the minimum level whose matches
    // are alerts in their own right (not only building blocks of correlations).
    let reporting: Vec<bool> = rules
        .rules()
        .iter()
        .enumerate()
        .map(|(index, r)| {
            options
                .min_level
                .is_none_or(|min| r.level.is_some_and(|l| l >= min))
                && correlator.as_ref().is_none_or(|c| c.is_reported(index))
        })
        .collect();
    let mut kept: Vec<Kept> = Vec::new();
    // Largest inputs first, so that no thread is left alone on a big file at the end.
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_cached_key(|&i| std::cmp::Reverse(inputs[i].size().unwrap_or(0)));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = crossbeam_channel::bounded::<Message<T>>(4096);
    let mut summary = HuntSummary::default();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, read, reporting, order) = (&next, &stop, &read, &reporting, &order);
            let feeds = feeds.as_ref();
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let at = order.get(next.fetch_add(1, Ordering::Relaxed));
                    let Some(input) = at.and_then(|&i| inputs.get(i)) else {
                        break;
                    };
                    let file: Arc<str> = Arc::from(input.name());
                    let mut sink = MatchSink {
                        rules,
                        render,
                        reporting,
                        feeds,
                        file,
                        tx: &tx,
                        batch: Vec::new(),
                        kept: Vec::new(),
                        events: 0,
                        strict: options.strict,
                        stop,
                        observer,
                    };
                    let format = normalize::read_input(input, read, &mut sink);
                    let events = sink.events;
                    if sink.flush().is_break()
                        || tx.send(Message::FileDone { format, events }).is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for message in rx {
            match message {
                Message::Detections(detections) => {
                    summary.detections += detections.len() as u64;
                    for detection in detections {
                        on_found(Found::Detection(detection));
                    }
                }
                Message::Kept(more) => kept.extend(more),
                Message::Diagnostic(diagnostic) => {
                    if diagnostic.is_file_level() {
                        summary.files_skipped += 1;
                    } else {
                        summary.records_skipped += 1;
                    }
                    on_diagnostic(diagnostic);
                }
                Message::Ignored => summary.files_ignored += 1,
                Message::FileDone { format, events } => {
                    summary.events += events;
                    summary.files += u64::from(format.is_some());
                }
            }
        }
    });
    if let Some(correlator) = correlator.as_mut() {
        correlate::correlate(correlator, kept, |found| {
            if reporting.get(found.hit.rule).copied().unwrap_or(false) {
                summary.correlation_hits += 1;
                on_found(Found::Correlation(found));
            }
        });
        summary.correlation = Some(correlator.stats().clone());
    }
    summary.stopped_early = stop.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    summary
}

struct MatchSink<'a, T> {
    rules: &'a RuleSet,
    render: &'a (dyn Fn(Hit<'_>) -> T + Sync),
    reporting: &'a [bool],
    /// What to keep of the matches of rules correlations refer to, when correlating.
    feeds: Option<&'a Feeds>,
    file: Arc<str>,
    tx: &'a crossbeam_channel::Sender<Message<T>>,
    /// Detections not yet handed over.
    batch: Vec<T>,
    /// Matches kept for the correlator, not yet handed over.
    kept: Vec<Kept>,
    events: u64,
    strict: bool,
    stop: &'a AtomicBool,
    observer: &'a dyn ReadObserver,
}

impl<T> MatchSink<'_, T> {
    /// Hands the collected detections over; `Break` when the calling thread is gone.
    fn flush(&mut self) -> ControlFlow<()> {
        if !self.kept.is_empty() {
            let kept = std::mem::take(&mut self.kept);
            if self.tx.send(Message::Kept(kept)).is_err() {
                return ControlFlow::Break(());
            }
        }
        if self.batch.is_empty() {
            return ControlFlow::Continue(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if self.tx.send(Message::Detections(batch)).is_err() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl<T> EventSink for MatchSink<'_, T> {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.events += 1;
        let mut matched: Vec<usize> = Vec::new();
        let mut fed: Vec<usize> = Vec::new();
        self.rules.for_each_match(&event, |rule| {
            if self.reporting.get(rule).copied().unwrap_or(false) {
                matched.push(rule);
            }
            if self.feeds.is_some_and(|f| f.is_fed(rule)) {
                fed.push(rule);
            }
        });
        if let Some(feeds) = self.feeds
            && !fed.is_empty()
        {
            fed.sort_unstable();
            self.kept
                .push(feeds.keep(&event, fed, &self.file, self.events));
        }
        for &rule in &matched {
            self.batch.push((self.render)(Hit {
                rule,
                event: &event,
                file: &self.file,
            }));
        }
        if (self.batch.len() >= BATCH || self.kept.len() >= BATCH) && self.flush().is_break() {
            return ControlFlow::Break(());
        }
        if self.stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
        self.observer.diagnostic(&diagnostic);
        if self.flush().is_break()
            || self.tx.send(Message::Diagnostic(diagnostic)).is_err()
            || self.strict
        {
            self.stop.store(true, Ordering::Relaxed);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn progress(&mut self, bytes: u64) {
        self.observer.progress(bytes);
    }

    fn ignored(&mut self, _file: &str, _reason: &str) {
        let _ = self.tx.send(Message::Ignored);
    }
}
