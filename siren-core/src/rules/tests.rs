//! Rule-set tests: whole rules loaded from YAML and matched against events.

use serde_json::json;

use super::*;
use crate::event::{Event, Fields, TenantId};

fn event(fields: serde_json::Value) -> Event {
    let serde_json::Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Event::from_fields(map.into_iter().collect(), TenantId::default())
}

fn load(text: &str) -> RuleSet {
    let (set, diagnostics) = RuleSet::from_yaml("test.yml", text, &LoadOptions::default());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    set
}

/// A Sysmon process-creation event with `fields`.
fn sysmon(fields: serde_json::Value) -> Event {
    let mut e = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1});
    e.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    event(e)
}

fn titles(set: &RuleSet, e: &Event) -> Vec<String> {
    set.matches(e).map(|r| r.title.clone()).collect()
}

const PROC: &str = r#"
title: Encoded PowerShell
id: 11111111-0000-4000-8000-000000000001
level: high
status: test
tags: [attack.execution, attack.t1059.001]
logsource: {product: windows, category: process_creation}
detection:
    selection_img:
        - Image|endswith: '\powershell.exe'
        - OriginalFileName: PowerShell.EXE
    selection_cli:
        CommandLine|contains|windash: ' -enc '
    filter_main:
        ParentImage|startswith: 'C:\Program Files\Trusted\'
    condition: all of selection_* and not 1 of filter_*
"#;

#[test]
fn process_creation_matches_sysmon_and_security_4688() {
    let set = load(PROC);
    let rule = &set.rules()[0];
    assert_eq!(rule.level, Some(Level::High));
    assert_eq!(rule.attack_techniques(), vec!["T1059.001"]);
    assert!(rule.logsource_mapped);
    let sysmon = event(
        json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
        "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "CommandLine": "powershell /enc ZQBjAGgAbwA=", "ParentImage": "C:\\Windows\\explorer.exe"}),
    );
    assert_eq!(titles(&set, &sysmon), ["Encoded PowerShell"]);
    let security = event(json!({"Channel": "Security", "EventID": 4688,
        "NewProcessName": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "CommandLine": "powershell -enc ZQBjAGgAbwA=", "ParentProcessName": "C:\\x.exe"}));
    assert_eq!(titles(&set, &security), ["Encoded PowerShell"]);
    // Filtered parent.
    let filtered = event(
        json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
        "Image": "C:\\powershell.exe", "CommandLine": "powershell -enc x",
        "ParentImage": "c:\\program files\\trusted\\a.exe"}),
    );
    assert!(titles(&set, &filtered).is_empty());
    // Right fields, wrong event ID or channel: never considered.
    let wrong_id = event(
        json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 3,
        "Image": "C:\\powershell.exe", "CommandLine": "powershell -enc x"}),
    );
    assert!(titles(&set, &wrong_id).is_empty());
    let wrong_channel = event(json!({"Channel": "Application", "EventID": 1,
        "Image": "C:\\powershell.exe", "CommandLine": "powershell -enc x"}));
    assert!(titles(&set, &wrong_channel).is_empty());
    assert!(set.rule_matches(0, &sysmon));
    assert!(!set.rule_matches(0, &wrong_id));
}

#[test]
fn keywords_search_every_field() {
    let set = load(
        r#"
title: Keywords
logsource: {product: windows, service: system}
detection:
    keywords:
        - 'mimikatz'
        - 'sekurlsa::*'
    condition: keywords
"#,
    );
    let hit = event(json!({"Channel": "System", "EventID": 7045, "ImagePath": "C:\\MimiKatz.exe"}));
    assert_eq!(titles(&set, &hit).len(), 1);
    let hit2 = event(
        json!({"Channel": "System", "EventID": 1, "Data": ["x", "run sekurlsa::logonpasswords"]}),
    );
    assert_eq!(titles(&set, &hit2).len(), 1);
    let miss = event(json!({"Channel": "System", "EventID": 7045, "ImagePath": "C:\\calc.exe"}));
    // A keyword never spans two fields.
    let split = event(json!({"Channel": "System", "EventID": 7045, "A": "mimi", "B": "katz"}));
    assert!(titles(&set, &split).is_empty());
    assert!(titles(&set, &miss).is_empty());
}

#[test]
fn regex_and_keyword_rules_are_prefiltered_and_still_match() {
    // Enough rules in one bucket for the prefilter to be used.
    let mut text = String::new();
    for (i, detection) in [
        "sel: {CommandLine|re: 'ipconfig\\s+/all'}\n    condition: sel",
        "kw: ['sekurlsa::']\n    condition: kw",
        "sel: {Image|endswith: '\\rundll32.exe'}\n    kw: ['perfc.dat']\n    condition: 1 of them",
        "sel: {CommandLine|contains: whoami}\n    condition: sel",
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "title: R{i}\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n    {detection}\n---\n"
        ));
    }
    let set = load(text.trim_end_matches("---\n"));
    // Every rule has a necessary literal: none is evaluated on every event.
    for compiled in &set.compiled {
        assert!(compiled.detection.need().is_some(), "{compiled:?}");
    }
    let e = sysmon(json!({"CommandLine": "IPCONFIG   /all", "Image": "C:\\x.exe"}));
    assert!(titles(&set, &e).is_empty(), "the regex is cased");
    let e = sysmon(json!({"CommandLine": "ipconfig   /all"}));
    assert_eq!(titles(&set, &e), ["R0"]);
    let e = sysmon(json!({"CommandLine": "x", "User": "run SEKURLSA::logonpasswords"}));
    assert_eq!(titles(&set, &e), ["R1"]);
    let e = sysmon(json!({"ParentCommandLine": ["a", "C:\\perfc.dat"]}));
    assert_eq!(titles(&set, &e), ["R2"]);
    let e = sysmon(json!({"CommandLine": "cmd /c WHOAMI", "Image": "C:\\Windows\\rundll32.exe"}));
    assert_eq!(titles(&set, &e), ["R2", "R3"]);
    let e = sysmon(json!({"CommandLine": "notepad", "Image": "C:\\notepad.exe"}));
    assert!(titles(&set, &e).is_empty());
}

#[test]
fn every_bucket_sees_the_texts_lowered_once_for_the_event() {
    // Two prefiltered buckets over the same field (Windows rules without a category, and
    // process creation), both scanning one event's texts: long ones are lower-cased once and
    // shared, short ones each time, numbers as printed, lists item by item.
    let mut text = String::new();
    for (i, word) in ["alpha", "bravo", "charlie", "delta"].iter().enumerate() {
        text.push_str(&format!(
            "title: W{i}\nlogsource: {{product: windows}}\ndetection:\n    sel: {{CommandLine|contains: {word}}}\n    condition: sel\n---\n"
        ));
    }
    for (i, word) in ["echo", "foxtrot", "4711", "golf"].iter().enumerate() {
        text.push_str(&format!(
            "title: P{i}\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n    sel: {{CommandLine|contains: '{word}'}}\n    kw: ['{word}']\n    condition: sel or kw\n---\n"
        ));
    }
    let set = load(text.trim_end_matches("---\n"));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let long = "C:\\Windows\\System32\\cmd.exe /c ALPHA and then Echo again";
    assert!(long.len() >= 24);
    let e = sysmon(json!({"CommandLine": long}));
    assert_eq!(sorted(titles(&set, &e)), ["P0", "W0"]);
    let e = sysmon(json!({"CommandLine": "bravo FOXTROT"}));
    assert_eq!(sorted(titles(&set, &e)), ["P1", "W1"]);
    // A keyword found in a number, and in one item of a list.
    let e = sysmon(json!({"CommandLine": "x", "ProcessId": 4711}));
    assert_eq!(sorted(titles(&set, &e)), ["P2"]);
    let e =
        sysmon(json!({"CommandLine": ["x", "a much longer text that mentions GOLF and DELTA"]}));
    assert_eq!(sorted(titles(&set, &e)), ["P3", "W3"]);
    // The next event reuses the buffers, never the previous event's texts.
    let e = sysmon(json!({"CommandLine": "C:\\Windows\\System32\\cmd.exe /c nothing to see here"}));
    assert!(titles(&set, &e).is_empty());
}

#[test]
fn needs_are_conjunctions_of_clauses_and_the_prefilter_asks_for_all() {
    let set = load(
        r#"
title: Both
logsource: {product: windows, category: process_creation}
detection:
    img:
        - Image|endswith: '\certutil.exe'
        - OriginalFileName: CertUtil.exe
    cli:
        CommandLine|contains: [urlcache, verifyctl]
    filter:
        CommandLine|contains: trusted
    condition: img and cli and not filter
"#,
    );
    let need = set.compiled[0].detection.need().unwrap();
    assert_eq!(need.len(), 2, "{need:?}");
    // Either clause alone does not let the rule through; both do.
    let only_image = sysmon(json!({"Image": "C:\\x\\certutil.exe", "CommandLine": "x"}));
    assert!(titles(&set, &only_image).is_empty());
    let only_cli = sysmon(json!({"Image": "C:\\x\\curl.exe", "CommandLine": "-urlcache"}));
    assert!(titles(&set, &only_cli).is_empty());
    let both = sysmon(json!({"OriginalFileName": "CERTUTIL.EXE", "CommandLine": "-UrlCache -f"}));
    assert_eq!(titles(&set, &both), ["Both"]);
    let filtered =
        sysmon(json!({"Image": "C:\\x\\certutil.exe", "CommandLine": "urlcache trusted"}));
    assert!(titles(&set, &filtered).is_empty());
}

#[test]
fn a_required_event_id_buckets_the_rule_under_it() {
    let set = load(
        r#"
title: Logon
logsource: {product: windows, service: security}
detection:
    sel:
        EventID: [4624, 4625]
        LogonType: 3
    condition: sel
---
title: Any
logsource: {product: windows, service: security}
detection:
    sel:
        EventID|startswith: '46'
        LogonType: 3
    condition: sel
"#,
    );
    assert_eq!(
        set.compiled[0].detection.event_ids(),
        Some(vec![4624, 4625])
    );
    assert_eq!(set.compiled[1].detection.event_ids(), None);
    let security = set.by_channel.get("security").unwrap();
    assert!(security.by_event_id[&4625].contains(0));
    assert!(security.any_event_id.contains(1));
    let logon = |id: serde_json::Value| {
        event(json!({"Channel": "Security", "EventID": id, "LogonType": 3}))
    };
    assert_eq!(titles(&set, &logon(json!(4625))), ["Logon", "Any"]);
    assert_eq!(titles(&set, &logon(json!("4624"))), ["Logon", "Any"]);
    assert_eq!(titles(&set, &logon(json!(4634))), ["Any"]);
    // An event whose ID cannot be read as a number still meets the rule.
    let odd = event(json!({"Channel": "Security", "EventID": ["4624"], "LogonType": 3}));
    assert_eq!(odd.event_id, None);
    assert_eq!(titles(&set, &odd), ["Logon", "Any"]);
    assert!(set.rule_matches(0, &odd));
}

#[test]
fn condition_lists_are_or_and_them_skips_underscore() {
    let set = load(
        r#"
title: Lists
logsource: {product: windows, service: security}
detection:
    a: {EventID: 1}
    b: {EventID: 2}
    _c: {EventID: 3}
    condition:
        - a
        - b
---
title: Them
logsource: {product: windows, service: security}
detection:
    a: {EventID: 1}
    _c: {EventID: 3}
    condition: 1 of them
"#,
    );
    let e = |id: i64| event(json!({"Channel": "Security", "EventID": id}));
    assert_eq!(titles(&set, &e(1)), ["Lists", "Them"]);
    assert_eq!(titles(&set, &e(2)), ["Lists"]);
    assert!(titles(&set, &e(3)).is_empty());
}

#[test]
fn null_and_empty_values() {
    let set = load(
        r#"
title: Nulls
logsource: {product: windows, service: security}
detection:
    sel:
        EventID: 4624
        TargetDomainName: null
        Extra: ''
    condition: sel
"#,
    );
    let hit = event(json!({"Channel": "Security", "EventID": 4624, "Extra": ""}));
    assert_eq!(titles(&set, &hit).len(), 1);
    let miss = event(
        json!({"Channel": "Security", "EventID": 4624, "TargetDomainName": "X", "Extra": ""}),
    );
    assert!(titles(&set, &miss).is_empty());
}

#[test]
fn filter_rules_apply_to_named_rules() {
    let set = load(
        r#"
title: Logon
id: 22222222-0000-4000-8000-000000000001
name: any_logon
logsource: {product: windows, service: security}
detection:
    sel: {EventID: 4624}
    condition: sel
---
title: Not from the jump host
logsource: {product: windows, service: security}
filter:
    rules: [any_logon]
    jump:
        IpAddress: 10.0.0.5
    condition: not jump
"#,
    );
    assert!(matches!(set.rules()[1].kind, RuleKind::Filter(_)));
    let from_jump = event(json!({"Channel": "Security", "EventID": 4624, "IpAddress": "10.0.0.5"}));
    assert!(titles(&set, &from_jump).is_empty());
    let other = event(json!({"Channel": "Security", "EventID": 4624, "IpAddress": "10.0.0.6"}));
    assert_eq!(titles(&set, &other), ["Logon"]);
}

#[test]
fn correlation_rules_are_parsed_and_references_checked() {
    let text = r#"
title: Many failures
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 2m
    condition: {gte: 5}
level: high
---
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection:
    sel: {EventID: 4625}
    condition: sel
"#;
    let set = load(text);
    let (rule, c) = set.correlations().next().unwrap();
    assert_eq!(rule.title, "Many failures");
    assert_eq!(c.kind, CorrelationType::EventCount);
    assert_eq!(c.timespan.as_secs(), 120);
    assert_eq!(c.group_by, ["TargetUserName"]);
    assert_eq!(set.find("failed_logon"), Some(1));

    let orphan = text.replace("rules: [failed_logon]", "rules: [nope]");
    let (set, diagnostics) = RuleSet::from_yaml("c.yml", &orphan, &LoadOptions::default());
    assert_eq!(set.len(), 1);
    assert!(
        diagnostics[0].to_string().contains("'nope'"),
        "{}",
        diagnostics[0]
    );
}

#[test]
fn bad_rules_are_reported_and_the_rest_load() {
    let text = r#"
title: Good
logsource: {product: windows, service: security}
detection:
    sel: {EventID: 1}
    condition: sel
---
title: Typo modifier
logsource: {product: windows, service: security}
detection:
    sel: {CommandLine|contians: x}
    condition: sel
---
title: Bad regex
logsource: {product: windows, service: security}
detection:
    sel: {CommandLine|re: '(x'}
    condition: sel
---
title: Bad condition
logsource: {product: windows, service: security}
detection:
    sel: {EventID: 1}
    condition: sel and selection
---
title: No detection
logsource: {product: windows}
---
- just a list
"#;
    let (set, diagnostics) = RuleSet::from_yaml("mixed.yml", text, &LoadOptions::default());
    assert_eq!(set.len(), 1);
    let messages: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(messages.len(), 5, "{messages:#?}");
    assert!(messages[0].contains("'Typo modifier'") && messages[0].contains("contians"));
    assert!(messages[1].contains("'(x'"));
    assert!(messages[2].contains("'selection'"));
    assert!(messages[3].contains("detection"));
    assert!(messages[4].contains("document 6"));
}

#[test]
fn duplicate_ids_are_reported() {
    let one = "title: A\nid: x-1\nlogsource: {product: windows, service: system}\ndetection:\n  s: {EventID: 1}\n  condition: s\n";
    let text = format!("{one}---\n{}", one.replace("title: A", "title: B"));
    let (set, diagnostics) = RuleSet::from_yaml("d.yml", &text, &LoadOptions::default());
    assert_eq!(set.len(), 1);
    assert!(matches!(
        diagnostics[0].error,
        RuleError::DuplicateId { .. }
    ));
}

#[test]
fn unmapped_log_sources() {
    let set = load(
        r#"
title: Linux
logsource: {product: linux, service: auth}
detection:
    sel: {program: sshd}
    condition: sel
---
title: Windows generic
logsource: {product: windows}
detection:
    sel: {Computer: dc01}
    condition: sel
"#,
    );
    assert!(!set.rules()[0].logsource_mapped);
    let syslog = event(json!({"program": "sshd"}));
    assert_eq!(titles(&set, &syslog), ["Linux"]);
    let win = event(json!({"Channel": "Whatever/Operational", "EventID": 9, "Computer": "DC01"}));
    assert_eq!(titles(&set, &win), ["Windows generic"]);
}

#[test]
fn placeholders_and_user_mapping() {
    let text = r#"
title: Admin logon
logsource: {product: windows, service: security}
detection:
    sel:
        TargetUserName|expand: '%admins%'
    condition: sel
"#;
    let (_, diagnostics) = RuleSet::from_yaml("p.yml", text, &LoadOptions::default());
    assert!(matches!(
        diagnostics[0].error,
        RuleError::UnknownPlaceholder { .. }
    ));
    let options = LoadOptions::default()
        .with_placeholders_yaml("p.yml", "admins: [root, 'adm*']")
        .unwrap()
        .with_logsources(
            LogSourceMap::parse(
                "mine.yml",
                "logsources:\n  - {product: windows, service: security, sources: [{channel: MySecurity}]}\n",
            )
            .unwrap(),
        );
    let (set, diagnostics) = RuleSet::from_yaml("p.yml", text, &options);
    assert!(diagnostics.is_empty());
    let hit =
        event(json!({"Channel": "MySecurity", "EventID": 4624, "TargetUserName": "Administrator"}));
    assert_eq!(titles(&set, &hit).len(), 1);
    let elsewhere =
        event(json!({"Channel": "Security", "EventID": 4624, "TargetUserName": "root"}));
    assert!(titles(&set, &elsewhere).is_empty());
}

#[test]
fn embedded_tests_run() {
    let set = load(
        r#"
title: Failed logon
logsource: {product: windows, service: security}
detection:
    sel: {EventID: 4625}
    condition: sel
siren:
    tests:
        match:
            - {Channel: Security, EventID: 4625}
        no_match:
            - {Channel: Security, EventID: 4624}
            - {Channel: Security, EventID: 4625}
"#,
    );
    let report = set.run_embedded_tests(0);
    assert_eq!(report.run, 3);
    assert!(report.failed_match.is_empty());
    assert_eq!(report.failed_no_match, vec![1]);
    assert!(!report.passed());
}

#[test]
fn registry_add_uses_the_event_type_guard() {
    let set = load(
        r#"
title: Run key created
logsource: {product: windows, category: registry_add}
detection:
    sel: {TargetObject|contains: '\CurrentVersion\Run'}
    condition: sel
"#,
    );
    let base = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 12,
        "TargetObject": "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\x"});
    let mut create = base.clone();
    create["EventType"] = json!("CreateKey");
    let mut delete = base;
    delete["EventType"] = json!("DeleteKey");
    assert_eq!(titles(&set, &event(create)).len(), 1);
    assert!(titles(&set, &event(delete)).is_empty());
}

#[test]
fn rule_set_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
}

proptest::proptest! {
    /// Loading and matching never panic, whatever the rule and the event hold.
    #[test]
    fn hostile_rules_and_events_never_panic(
        key in "[A-Za-z]{1,8}(\\|(contains|startswith|endswith|all|re|i|m|s|cidr|base64|base64offset|wide|utf16be|utf16|windash|expand|exists|cased|neq|lt|gt|fieldref|hour|x)){0,3}",
        value in "[-%*?\\\\/a-z0-9. ]{0,12}",
        condition in "(not |1 of |all of )?(sel|s\\*|them|x)( (and|or) (not )?(sel|x))?",
        logsource in "(category: process_creation|service: security|service: nope|category: registry_add)",
        event_value in "[-*?\\\\/A-Za-z0-9. ]{0,16}",
    ) {
        let text = format!(
            "title: t\nlogsource: {{product: windows, {logsource}}}\ndetection:\n  sel:\n    '{key}': '{value}'\n  condition: {condition}\n"
        );
        let options = LoadOptions::default().with_placeholder("p", vec!["v*".into()]);
        let (set, _) = RuleSet::from_yaml("fuzz.yml", &text, &options);
        for channel in ["Security", "Microsoft-Windows-Sysmon/Operational", "Other"] {
            let e = event(json!({"Channel": channel, "EventID": 1, "EventType": "CreateKey",
                "CommandLine": event_value.clone(), "Image": event_value.clone()}));
            let _ = set.matches(&e).count();
            let field = key.split('|').next().unwrap_or_default().to_owned();
            let mut fields = Fields::default();
            fields.insert("Channel".into(), channel.into());
            fields.insert("EventID".into(), json!(4688));
            fields.insert(field, json!(event_value.clone()));
            let e = Event::from_fields(fields, TenantId::default());
            let _ = set.matches(&e).count();
        }
    }
}

#[test]
fn channel_less_sources_match_events_without_a_channel() {
    let set = load(
        r#"
title: Linux shell spawn
logsource: {product: linux, category: process_creation}
detection:
    sel: {Image|endswith: /bash}
    condition: sel
"#,
    );
    let sysmon = event(
        json!({"Channel": "Linux-Sysmon/Operational", "EventID": 1, "Image": "/usr/bin/bash"}),
    );
    let audit = event(json!({"Image": "/bin/bash"}));
    let windows = event(json!({"Channel": "Security", "EventID": 1, "Image": "/bin/bash"}));
    assert_eq!(titles(&set, &sysmon).len(), 1);
    assert_eq!(titles(&set, &audit).len(), 1);
    assert!(titles(&set, &windows).is_empty());
}

#[test]
fn hostile_yaml_is_refused_quickly() {
    // An alias bomb: each level repeats the previous one ten times.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("title: bomb\nlogsource: {product: windows}\ndetection:\n  sel: {F: *a9}\n  condition: sel\n");
    let started = std::time::Instant::now();
    let (set, diagnostics) = RuleSet::from_yaml("bomb.yml", &text, &LoadOptions::default());
    assert!(set.is_empty());
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(started.elapsed().as_secs() < 5);

    // Deep nesting.
    let deep = format!(
        "title: deep\ndetection: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (set, diagnostics) = RuleSet::from_yaml("deep.yml", &deep, &LoadOptions::default());
    assert!(set.is_empty());
    assert_eq!(diagnostics.len(), 1);
}

#[test]
fn the_shipped_mapping_beside_rules_is_not_a_rule() {
    let (set, diagnostics) = RuleSet::from_yaml(
        "rules/logsources.yml",
        crate::rules::DEFAULT_MAPPING,
        &LoadOptions::default(),
    );
    assert!(set.is_empty());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}
