use crate::rules::{LoadOptions, Pipeline, PipelineError, RuleSet};
use crate::{Event, Fields, TenantId};

const RULE: &str = r#"
title: Encoded PowerShell
id: 00000000-0000-4000-8000-00000000a001
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\powershell.exe'
        CommandLine|contains: ' -enc '
    filter:
        ParentImage: 'C:\Windows\explorer.exe'
    condition: selection and not filter
"#;

fn event(pairs: &[(&str, serde_json::Value)]) -> Event {
    let mut fields = Fields::default();
    for (k, v) in pairs {
        fields.insert((*k).into(), v.clone());
    }
    Event::from_fields(fields, TenantId::default())
}

fn hits(pipeline: &str, event: &Event) -> usize {
    let p = Pipeline::parse("p.yml", pipeline).unwrap();
    let (set, problems) =
        RuleSet::from_yaml("r.yml", RULE, &LoadOptions::default().with_pipeline(p));
    assert!(problems.is_empty(), "{problems:?}");
    set.matches(event).count()
}

#[test]
fn one_to_many_mapping_add_condition_and_replace_string() {
    let pipeline = r#"
name: test
priority: 5
transformations:
  - id: ecs
    type: field_name_mapping
    mapping:
      Image: [process.executable, process.name]
      CommandLine: process.command_line
      ParentImage: process.parent.executable
    rule_conditions: [{type: logsource, category: process_creation}]
  - type: change_logsource
    product: ecs
  - type: add_condition
    conditions: {event.category: process}
  - type: replace_string
    regex: '^C:\\Windows\\'
    replacement: 'D:\\Win\\'
    field_name_conditions: [{type: include_fields, fields: [process.parent.executable]}]
"#;
    let base = [
        ("event.category", serde_json::json!("process")),
        (
            "process.command_line",
            serde_json::json!("powershell -enc AAA"),
        ),
    ];
    let mut by_name = base.to_vec();
    by_name.push(("process.name", serde_json::json!("C:\\x\\powershell.exe")));
    assert_eq!(hits(pipeline, &event(&by_name)), 1);
    let mut filtered = by_name.clone();
    filtered.push((
        "process.parent.executable",
        serde_json::json!("D:\\Win\\explorer.exe"),
    ));
    assert_eq!(hits(pipeline, &event(&filtered)), 0);
    let mut not_filtered = by_name.clone();
    not_filtered.push((
        "process.parent.executable",
        serde_json::json!("C:\\Windows\\explorer.exe"),
    ));
    assert_eq!(hits(pipeline, &event(&not_filtered)), 1);
    let without_category = [
        (
            "process.command_line",
            serde_json::json!("powershell -enc AAA"),
        ),
        (
            "process.executable",
            serde_json::json!("C:\\x\\powershell.exe"),
        ),
    ];
    assert_eq!(hits(pipeline, &event(&without_category)), 0);
}

#[test]
fn drop_and_state_conditions() {
    let pipeline = r#"
transformations:
  - type: set_state
    key: env
    val: lab
  - type: drop_detection_item
    rule_conditions: [{type: processing_state, key: env, val: lab}]
    field_name_conditions: [{type: include_fields, fields: [CommandLine]}]
"#;
    let e = event(&[
        (
            "Channel",
            serde_json::json!("Microsoft-Windows-Sysmon/Operational"),
        ),
        ("EventID", serde_json::json!(1)),
        ("Image", serde_json::json!("C:\\x\\powershell.exe")),
        ("CommandLine", serde_json::json!("powershell -nop")),
    ]);
    assert_eq!(hits(pipeline, &e), 1);
}

#[test]
fn backend_only_transformations_are_named() {
    let err = Pipeline::parse(
        "ecs.yml",
        "transformations:\n  - id: kw\n    type: field_name_suffix\n    suffix: .keyword\n",
    )
    .unwrap_err();
    assert!(matches!(err, PipelineError::NotApplicable { .. }));
    let text = err.to_string();
    assert!(
        text.contains("ecs.yml") && text.contains("'kw'") && text.contains("field_name_suffix"),
        "{text}"
    );
    let err = Pipeline::parse("f.yml", "finalizers:\n  - type: concat\n").unwrap_err();
    assert!(err.to_string().contains("finalizers"), "{err}");
}

#[test]
fn rule_failure_is_a_diagnostic() {
    let p = Pipeline::parse(
        "p.yml",
        "transformations:\n  - type: rule_failure\n    message: no process logs here\n    rule_conditions: [{type: logsource, category: process_creation}]\n",
    )
    .unwrap();
    let (set, problems) =
        RuleSet::from_yaml("r.yml", RULE, &LoadOptions::default().with_pipeline(p));
    assert_eq!(set.len(), 0);
    assert!(problems[0].to_string().contains("no process logs here"));
}
