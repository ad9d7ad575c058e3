//! The rule model: metadata shared by every Sigma rule, the SIREN extension, correlation and
//! filter rules.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Fields;

/// A rule's id (`id:`), usually a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(String);

impl RuleId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A rule's `level`, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `informational`.
    Informational,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `critical`.
    Critical,
}

impl Level {
    /// Parses a level name (case-insensitive; `info` is accepted for `informational`).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "informational" | "info" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
    /// The level's Sigma name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `stable`.
    Stable,
    /// `test`.
    Test,
    /// `experimental`.
    Experimental,
    /// `deprecated`.
    Deprecated,
    /// `unsupported`.
    Unsupported,
}

impl Status {
    /// Parses a status name (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "stable" => Status::Stable,
            "test" | "testing" => Status::Test,
            "experimental" => Status::Experimental,
            "deprecated" => Status::Deprecated,
            "unsupported" => Status::Unsupported,
            _ => return None,
        })
    }
    /// The status's Sigma name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stable => "stable",
            Status::Test => "test",
            Status::Experimental => "experimental",
            Status::Deprecated => "deprecated",
            Status::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's `logsource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogSource {
    /// `product` (`windows`, `linux`…).
    pub product: Option<String>,
    /// `category` (`process_creation`…).
    pub category: Option<String>,
    /// `service` (`security`, `sysmon`…).
    pub service: Option<String>,
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [&self.product, &self.category, &self.service]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join("/"))
        }
    }
}

/// Test cases embedded in a rule (`siren: tests:`), run by `siren rules test`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleTests {
    /// Events (flattened fields) the rule must match.
    pub must_match: Vec<Fields>,
    /// Events the rule must not match.
    pub must_not_match: Vec<Fields>,
}

/// SIREN's extension of a rule, under its top-level `siren:` key (other Sigma tools ignore it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SirenExtension {
    /// Fields whose values group alerts into incidents (default: the host).
    pub group_by: Vec<String>,
    /// Overrides the rule's level for the incidents it opens.
    pub severity: Option<Level>,
    /// Suggested investigation and response steps.
    pub investigation: Vec<String>,
    /// Embedded test cases.
    pub tests: RuleTests,
}

/// The kind of a correlation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CorrelationType {
    /// `event_count`: how many events.
    EventCount,
    /// `value_count`: how many distinct values of a field.
    ValueCount,
    /// `temporal`: all referenced rules fire within the timespan, in any order.
    Temporal,
    /// `temporal_ordered`: … in the listed order.
    TemporalOrdered,
    /// `value_sum`: the sum of a field.
    ValueSum,
    /// `value_avg`: the average of a field.
    ValueAvg,
    /// `value_percentile`: a percentile of a field.
    ValuePercentile,
    /// `value_median`: the median of a field.
    ValueMedian,
}

impl CorrelationType {
    /// Parses a type name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "event_count" => CorrelationType::EventCount,
            "value_count" => CorrelationType::ValueCount,
            "temporal" => CorrelationType::Temporal,
            "temporal_ordered" => CorrelationType::TemporalOrdered,
            "value_sum" => CorrelationType::ValueSum,
            "value_avg" => CorrelationType::ValueAvg,
            "value_percentile" => CorrelationType::ValuePercentile,
            "value_median" => CorrelationType::ValueMedian,
            _ => return None,
        })
    }
    /// Whether the type aggregates a field's values (and so needs `condition.field`).
    pub fn needs_field(self) -> bool {
        matches!(
            self,
            CorrelationType::ValueCount
                | CorrelationType::ValueSum
                | CorrelationType::ValueAvg
                | CorrelationType::ValuePercentile
                | CorrelationType::ValueMedian
        )
    }
}

/// A comparison in a correlation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareOp {
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `eq`.
    Eq,
    /// `neq`.
    Neq,
}

impl CompareOp {
    /// Whether `value` satisfies `value OP threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            CompareOp::Gt => value > threshold,
            CompareOp::Gte => value >= threshold,
            CompareOp::Lt => value < threshold,
            CompareOp::Lte => value <= threshold,
            CompareOp::Eq => value == threshold,
            CompareOp::Neq => value != threshold,
        }
    }
}

/// A correlation rule's `condition`: comparisons that must all hold, on a field for the value
/// aggregations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CorrelationCondition {
    /// `(op, threshold)` pairs; all must hold (e.g. `gte: 5` and `lt: 10`).
    pub comparisons: Vec<(CompareOp, f64)>,
    /// The aggregated field (`value_count` and the other value aggregations).
    pub field: Option<String>,
    /// The percentile for `value_percentile`.
    pub percentile: Option<f64>,
}

/// A Sigma correlation rule (`correlation:`), validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlation {
    /// The kind.
    pub kind: CorrelationType,
    /// The rules correlated, by id or name, in the given order.
    pub rules: Vec<String>,
    /// Fields whose values partition the events.
    pub group_by: Vec<String>,
    /// The time window.
    pub timespan: Duration,
    /// The condition (optional for the temporal types, where it defaults to all rules).
    pub condition: Option<CorrelationCondition>,
    /// `generate`: whether the referenced rules' own matches are reported too.
    pub generate: bool,
    /// `aliases`: a virtual field name → (rule id or name → that rule's field).
    pub aliases: Vec<(String, Vec<(String, String)>)>,
}

/// A Sigma filter rule (`filter:`): extra conditions ANDed into the rules it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// The rules filtered, by id or name.
    pub rules: Vec<String>,
}

/// What kind of rule a document is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleKind {
    /// A detection rule: matched against single events.
    Detection,
    /// A correlation rule over other rules' matches.
    Correlation(Correlation),
    /// A filter rule, applied to the detection rules it names.
    Filter(Filter),
}

/// One loaded Sigma rule: its metadata and kind. The compiled matcher lives in the
/// [`super::RuleSet`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// `id`.
    pub id: Option<RuleId>,
    /// `name` (used by correlation and filter rules to refer to rules).
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `status`.
    pub status: Option<Status>,
    /// `description`.
    pub description: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `references`.
    pub references: Vec<String>,
    /// `tags` (e.g. `attack.t1059.001`).
    pub tags: Vec<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
    /// `level` (`None` when the rule gives none).
    pub level: Option<Level>,
    /// `date`.
    pub date: Option<String>,
    /// `modified`.
    pub modified: Option<String>,
    /// `logsource` (empty for correlation rules).
    pub logsource: LogSource,
    /// Whether the log-source mapping knew the log source (else the rule is matched against
    /// every event of its product).
    pub logsource_mapped: bool,
    /// The file it came from.
    pub file: String,
    /// Its 1-based document number within the file.
    pub document: usize,
    /// Detection, correlation or filter.
    pub kind: RuleKind,
    /// The `siren:` extension.
    pub siren: SirenExtension,
}

impl Rule {
    /// The reference alerts, incidents and correlations know the rule by: its id, else its
    /// name, else its title.
    pub fn key(&self) -> String {
        self.id
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| self.title.clone())
    }

    /// The level, or `medium` when the rule gives none.
    pub fn level_or_default(&self) -> Level {
        self.level.unwrap_or(Level::Medium)
    }

    /// The severity incidents from this rule get: the SIREN override, else the level.
    pub fn severity(&self) -> Level {
        self.siren.severity.unwrap_or(self.level_or_default())
    }

    /// MITRE ATT&CK technique ids from the tags (`attack.t1059.001` → `T1059.001`).
    pub fn attack_techniques(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|t| t.strip_prefix("attack.t"))
            .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
            .map(|t| format!("T{}", t.to_ascii_uppercase()))
            .collect()
    }

    /// Whether `reference` (an id or a name) designates this rule.
    pub fn is_called(&self, reference: &str) -> bool {
        self.id.as_ref().is_some_and(|id| id.as_str() == reference)
            || self.name.as_deref() == Some(reference)
    }
}
