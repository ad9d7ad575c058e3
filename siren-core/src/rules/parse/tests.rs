//! Parser tests: documents, detections, the `siren:` extension, correlations and timespans,
//! and hostile text.

use std::collections::HashMap;
use std::time::Duration;

use super::correlation::parse_timespan;
use super::{ParseContext, Parsed, parse_file};
use crate::rules::model::{CorrelationType, Level, RuleKind};
use crate::rules::{RuleDiagnostic, RuleError};

fn parse_one(text: &str) -> Result<Parsed, RuleDiagnostic> {
    let placeholders = HashMap::new();
    let cx = ParseContext {
        placeholders: &placeholders,
        pipelines: &[],
    };
    parse_file("t.yml", text, &cx).into_iter().next().unwrap()
}

#[test]
fn timespans() {
    assert_eq!(parse_timespan("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_timespan("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_timespan("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_timespan("2d"), Some(Duration::from_secs(172_800)));
    assert_eq!(parse_timespan("5"), None);
    assert_eq!(parse_timespan("m"), None);
    assert_eq!(parse_timespan("0s"), None);
    assert_eq!(parse_timespan("99999999999999999999d"), None);
}

#[test]
fn correlation_is_validated() {
    let ok = "title: t\ncorrelation:\n  type: value_count\n  rules: [a]\n  group-by: [IpAddress]\n  timespan: 5m\n  condition: {gt: 3, field: TargetUserName}\n";
    let p = parse_one(ok).unwrap();
    let RuleKind::Correlation(c) = p.rule.kind else {
        panic!()
    };
    assert_eq!(c.kind, CorrelationType::ValueCount);
    assert_eq!(
        c.condition.unwrap().field.as_deref(),
        Some("TargetUserName")
    );
    let missing_field = ok.replace(", field: TargetUserName", "");
    assert!(
        parse_one(&missing_field)
            .unwrap_err()
            .to_string()
            .contains("condition.field")
    );
    let bad_type = ok.replace("value_count", "value_cnt");
    assert!(
        parse_one(&bad_type)
            .unwrap_err()
            .to_string()
            .contains("value_cnt")
    );
    let bad_span = ok.replace("5m", "5 minutes");
    assert!(
        parse_one(&bad_span)
            .unwrap_err()
            .to_string()
            .contains("timespan")
    );
}

#[test]
fn yaml_errors_have_line_and_column() {
    let err = parse_one("title: t\ndetection:\n  sel: [a\n  condition: sel\n").unwrap_err();
    match err.error {
        RuleError::Yaml { line, column, .. } => assert!(line > 0 && column > 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn siren_extension() {
    let text = "title: t\nlogsource: {product: windows, service: security}\ndetection:\n  sel: {EventID: 4625}\n  condition: sel\nsiren:\n  group_by: [TargetUserName]\n  severity: high\n  investigation: [look]\n  tests:\n    match: [{EventID: 4625}]\n    no_match: [{EventID: 4624}]\n";
    let p = parse_one(text).unwrap();
    assert_eq!(p.rule.siren.severity, Some(Level::High));
    assert_eq!(p.rule.siren.tests.must_match.len(), 1);
    assert_eq!(p.rule.siren.tests.must_not_match.len(), 1);
    let bad = text.replace("group_by", "groupby");
    assert!(
        parse_one(&bad)
            .unwrap_err()
            .to_string()
            .contains("siren.groupby")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_one_all(&text);
    }

    #[test]
    fn rule_shaped_soup_never_panics(
        field in "[A-Za-z|]{0,30}",
        value in "[-*?\\\\a-z%/ ]{0,20}",
        cond in "[a-z0-9_*() ]{0,40}",
    ) {
        let text = format!(
            "title: t\nlogsource: {{product: windows}}\ndetection:\n  sel:\n    '{field}': '{value}'\n  condition: {cond}\n"
        );
        let _ = parse_one_all(&text);
    }
}

fn parse_one_all(text: &str) -> usize {
    let placeholders = HashMap::new();
    let cx = ParseContext {
        placeholders: &placeholders,
        pipelines: &[],
    };
    parse_file("t.yml", text, &cx).len()
}
