//! Compiles one Sigma rule from a YAML string and matches it against one JSON event (the
//! shape `evtx_dump` writes), printing the rules that match.
//!
//! `cargo run -p siren-core --example match_event`
#![allow(clippy::print_stdout)]

use siren_core::normalize::flatten::flatten_json_slice;
use siren_core::rules::{LoadOptions, RuleSet};
use siren_core::{Event, TenantId};

const RULE: &str = r#"
title: Logon failure with a bad password
id: 7d3e6a40-0000-4000-8000-00000000e001
level: medium
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
        Status|endswith: '006d'
    condition: selection
"#;

const EVENT: &str = r##"{"Event": {
    "System": {"EventID": 4625, "Channel": "Security", "Computer": "DC01.corp.example",
               "TimeCreated": {"#attributes": {"SystemTime": "2024-03-04T08:15:02Z"}}},
    "EventData": {"TargetUserName": "administrator", "Status": "0xc000006d",
                  "IpAddress": "203.0.113.45"}}}"##;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rules, diagnostics) = RuleSet::from_yaml("inline.yml", RULE, &LoadOptions::default());
    if let Some(problem) = diagnostics.first() {
        return Err(problem.to_string().into());
    }
    let event = Event::from_fields(flatten_json_slice(EVENT.as_bytes())?, TenantId::default());
    // The normalised core, derived from the original fields (which all stay in `event.fields`).
    let core = [&event.host, &event.user, &event.src_ip].map(|f| f.as_deref().unwrap_or("-"));
    let id = event.event_id.unwrap_or_default();
    println!(
        "event {id}: host {}, user {}, from {}",
        core[0], core[1], core[2]
    );
    let mut matched = 0;
    for rule in rules.matches(&event) {
        let level = rule.level.map_or("none", |l| l.as_str());
        println!("matched: {} [{level}]", rule.title);
        matched += 1;
    }
    if matched == 0 {
        println!("no rule matched");
    }
    Ok(())
}
