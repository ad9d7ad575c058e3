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

#[test]
fn hayabusa_event_keys_get_the_names_flattening_gives() {
    use super::model::flattened_name;
    let cases = [
        ("Event.System.EventID", "EventID"),
        ("Event.System.Provider_attributes.Name", "Provider_Name"),
        (
            "Event.System.TimeCreated_attributes.SystemTime",
            "TimeCreated",
        ),
        (
            "Event.System.Execution_attributes.ProcessID",
            "Execution_ProcessID",
        ),
        ("Event.EventData.CommandLine", "CommandLine"),
        ("Event.UserData.EventInfo.ErrorCode", "ErrorCode"),
        (
            "Event.UserData.LogFileCleared.Channel",
            "UserData.LogFileCleared.Channel",
        ),
        ("Event.EventData.Data_attributes.Name", "Data_Name"),
        ("Event.UserData.Foo.Level_attributes.Bar", "Level_Bar"),
        ("Event.UserData.Foo.Computer", "UserData.Foo.Computer"),
        ("winlog.channel", "channel"),
    ];
    for (key, name) in cases {
        assert_eq!(flattened_name(key), name, "{key}");
    }
}

#[test]
fn hayabusa_channel_alias_matches_the_cleared_log_not_the_event_channel() {
    let aliases = "alias,event_key\nLogFileClearedChannel,Event.UserData.LogFileCleared.Channel\n";
    let p = Pipeline::parse("eventkey_alias.txt", aliases).unwrap();
    let rule = r#"
title: Sysmon log cleared
logsource: {product: windows, service: system}
detection:
    s:
        EventID: 104
        LogFileClearedChannel: Microsoft-Windows-Sysmon/Operational
    condition: s
"#;
    let (set, problems) =
        RuleSet::from_yaml("r.yml", rule, &LoadOptions::default().with_pipeline(p));
    assert!(problems.is_empty(), "{problems:?}");
    // As the EVTX reader flattens a 104: `System`'s `Channel` first, then `UserData`'s.
    let text = br#"{"Event":{"System":{"EventID":104,"Channel":"System"},"UserData":{"LogFileCleared":{"Channel":"Microsoft-Windows-Sysmon/Operational"}}}}"#;
    let fields = crate::normalize::flatten::flatten_json_slice(text).unwrap();
    let e = Event::from_fields(fields, TenantId::default());
    assert_eq!(set.matches(&e).count(), 1);
    let other = std::str::from_utf8(text)
        .unwrap()
        .replace("Sysmon/Operational", "PowerShell/Operational");
    let fields = crate::normalize::flatten::flatten_json_slice(other.as_bytes()).unwrap();
    let e = Event::from_fields(fields, TenantId::default());
    assert_eq!(set.matches(&e).count(), 0);
}

#[test]
fn hayabusa_aliases_become_a_field_mapping() {
    let aliases = "alias,event_key\nEventID,Event.System.EventID\nRdsGtwErrorCode,Event.UserData.EventInfo.ErrorCode\n";
    let p = Pipeline::parse("eventkey_alias.txt", aliases).unwrap();
    let rule = r#"
title: RDS gateway error
logsource: {product: windows, service: security}
detection:
    s:
        RdsGtwErrorCode: 23003
    condition: s
"#;
    let (set, problems) =
        RuleSet::from_yaml("r.yml", rule, &LoadOptions::default().with_pipeline(p));
    assert!(problems.is_empty(), "{problems:?}");
    let e = event(&[
        ("Channel", serde_json::json!("Security")),
        ("EventID", serde_json::json!(1)),
        ("ErrorCode", serde_json::json!(23003)),
    ]);
    assert_eq!(set.matches(&e).count(), 1);
}

#[test]
fn security_4657_and_5156_stand_for_sysmon_registry_and_network_events() {
    let rules = r#"
title: Run key set
logsource: {product: windows, category: registry_set}
detection:
    s:
        TargetObject|startswith: 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run'
        Image|endswith: '\reg.exe'
        EventType: SetValue
    condition: s
---
title: System binary to 4444
logsource: {product: windows, category: network_connection}
detection:
    s:
        Image: 'C:\Windows\System32\rundll32.exe'
        DestinationPort: 4444
        Initiated: 'true'
        Protocol: tcp
    condition: s
"#;
    let (set, problems) = RuleSet::from_yaml("r.yml", rules, &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    let registry = event(&[
        ("Channel", serde_json::json!("Security")),
        ("EventID", serde_json::json!(4657)),
        ("OperationType", serde_json::json!("%%1905")),
        (
            "ObjectName",
            serde_json::json!(
                "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
            ),
        ),
        (
            "ProcessName",
            serde_json::json!("C:\\Windows\\System32\\reg.exe"),
        ),
    ]);
    let hits: Vec<&str> = set.matches(&registry).map(|r| r.title.as_str()).collect();
    assert_eq!(hits, ["Run key set"]);
    let network = event(&[
        ("Channel", serde_json::json!("Security")),
        ("EventID", serde_json::json!(5156)),
        (
            "Application",
            serde_json::json!("\\device\\harddiskvolume2\\windows\\system32\\rundll32.exe"),
        ),
        ("DestPort", serde_json::json!("4444")),
        ("Direction", serde_json::json!("%%14593")),
        ("Protocol", serde_json::json!(6)),
    ]);
    let hits: Vec<&str> = set.matches(&network).map(|r| r.title.as_str()).collect();
    assert_eq!(hits, ["System binary to 4444"]);
}
