//! Sigma's `null` and `''` are two values, checked end to end through `siren hunt` (the
//! production matcher) with two SigmaHQ rules whose authors rely on the difference:
//! - "HackTool - CACTUSTORCH Remote Thread Creation" (`StartModule: null`): Sysmon writes a
//!   present, empty `StartModule` for a thread started outside any module — not null;
//! - "Uncommon New Firewall Rule Added In Windows Firewall Exception List" (`ApplicationPath:
//!   null` filtered out as a rule without a program, `ApplicationPath: ''` filtered out only for
//!   svchost and dllhost): a rule added by mmc.exe with an empty path is still reported.
//!
//! Each case is given as an EVTX record of the corpus where one exists, and as Windows XML and
//! JSON events written here, in both shapes (field missing, field present and empty).

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{json_output, shared_dir, siren};

const CACTUSTORCH: &str = "HackTool - CACTUSTORCH Remote Thread Creation";
const FIREWALL: &str = "Uncommon New Firewall Rule Added In Windows Firewall Exception List";
const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
const FIREWALL_CHANNEL: &str = "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall";

/// The hosts of the events `rule` matched when `siren hunt` ran `rules` over `inputs`.
fn hosts_matched(dir: &Path, rules: &Path, inputs: &Path, rule: &str) -> Vec<String> {
    let (code, value) = json_output(siren(dir).args([
        "hunt".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        inputs.as_os_str(),
    ]));
    assert!(code == 0 || code == 1, "exit {code}: {value}");
    let mut hosts: Vec<String> = value
        .as_array()
        .expect("a JSON array of detections")
        .iter()
        .filter(|d| d["rule_title"] == rule)
        .map(|d| d["host"].as_str().unwrap_or_default().to_owned())
        .collect();
    hosts.sort();
    hosts
}

/// One Windows XML event: `System` from the arguments, `EventData` from `data` — a value of
/// `None` writes an empty `<Data Name="…"/>` element, a field not listed is missing.
fn xml_event(channel: &str, event_id: u32, host: &str, data: &[(&str, Option<&str>)]) -> String {
    let data: String = data
        .iter()
        .map(|(name, value)| match value {
            Some(value) => format!("    <Data Name=\"{name}\">{value}</Data>\n"),
            None => format!("    <Data Name=\"{name}\"/>\n"),
        })
        .collect();
    format!(
        "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\">\n  <System>\n    \
         <EventID>{event_id}</EventID>\n    <TimeCreated SystemTime=\"2026-11-02T10:00:00.0000000Z\"/>\n    \
         <EventRecordID>1</EventRecordID>\n    <Channel>{channel}</Channel>\n    \
         <Computer>{host}</Computer>\n  </System>\n  <EventData>\n{data}  </EventData>\n</Event>\n"
    )
}

fn write_inputs(dir: &Path, xml: &[String], json: &[Value]) -> std::path::PathBuf {
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(
        inputs.join("events.xml"),
        format!("<Events>\n{}</Events>\n", xml.concat()),
    )
    .unwrap();
    let lines: String = json.iter().map(|event| format!("{event}\n")).collect();
    std::fs::write(inputs.join("events.jsonl"), lines).unwrap();
    inputs
}

#[test]
fn cactustorch_start_module_null_is_not_empty() {
    let Some(shared) = shared_dir("cactustorch_start_module_null_is_not_empty") else {
        return;
    };
    let rule = shared.join(
        "corpus/sigma/rules/windows/create_remote_thread/create_remote_thread_win_hktl_cactustorch.yml",
    );
    let dir = tempfile::tempdir().unwrap();

    // The EVTX record: winword.exe starts a thread in a SysWOW64 explorer.exe at an address in
    // no module, so Sysmon writes `<Data Name="StartModule"></Data>` — present and empty.
    let evtx = shared.join(
        "corpus/evtx/EVTX-ATTACK-SAMPLES/AutomatedTestingTools/Malware/sideloading_uacbypass_rundll32_injection_c2.evtx",
    );
    assert!(
        hosts_matched(dir.path(), &rule, &evtx, CACTUSTORCH).is_empty(),
        "record 417082's StartModule is present and empty: not null"
    );

    // The same event written here, in each shape.
    let fields = || {
        vec![
            ("SourceImage", Some("C:\\Windows\\System32\\mshta.exe")),
            ("TargetImage", Some("C:\\Windows\\SysWOW64\\explorer.exe")),
            ("StartAddress", Some("0x0000000000930000")),
        ]
    };
    let mut empty = fields();
    empty.push(("StartModule", None));
    let mut set = fields();
    set.push(("StartModule", Some("C:\\Windows\\SysWOW64\\kernel32.dll")));
    let xml = [
        xml_event(SYSMON, 8, "xml-missing", &fields()),
        xml_event(SYSMON, 8, "xml-empty", &empty),
        xml_event(SYSMON, 8, "xml-set", &set),
    ];
    let event = |host: &str, start_module: Option<Value>| {
        let mut event = json!({
            "Channel": SYSMON, "EventID": 8, "Computer": host,
            "SourceImage": "C:\\Windows\\System32\\mshta.exe",
            "TargetImage": "C:\\Windows\\SysWOW64\\explorer.exe",
        });
        if let Some(value) = start_module {
            event["StartModule"] = value;
        }
        event
    };
    let json = [
        event("json-missing", None),
        event("json-null", Some(Value::Null)),
        event("json-empty", Some(json!(""))),
        event(
            "json-set",
            Some(json!("C:\\Windows\\SysWOW64\\kernel32.dll")),
        ),
    ];
    let inputs = write_inputs(dir.path(), &xml, &json);
    assert_eq!(
        hosts_matched(dir.path(), &rule, &inputs, CACTUSTORCH),
        ["json-missing", "json-null", "xml-missing"]
    );
}

#[test]
fn firewall_rule_with_an_empty_application_path_is_reported() {
    let Some(shared) = shared_dir("firewall_rule_with_an_empty_application_path_is_reported")
    else {
        return;
    };
    let rule =
        shared.join("corpus/sigma/rules/windows/builtin/firewall_as/win_firewall_as_add_rule.yml");
    let dir = tempfile::tempdir().unwrap();
    const MMC: &str = "C:\\Windows\\System32\\mmc.exe";
    const SVCHOST: &str = "C:\\Windows\\System32\\svchost.exe";

    let xml_rule = |host: &str, by: &'static str, path: Option<Option<&'static str>>| {
        let mut data = vec![
            ("RuleId", Some("{0A1B2C3D-0000-4000-8000-000000000001}")),
            ("RuleName", Some("Allow inbound 4444")),
            ("Action", Some("3")),
            ("ModifyingApplication", Some(by)),
        ];
        if let Some(path) = path {
            data.push(("ApplicationPath", path));
        }
        xml_event(FIREWALL_CHANNEL, 2004, host, &data)
    };
    let xml = [
        // mmc.exe adds a rule for every program: its path is present and empty — reported.
        xml_rule("xml-mmc-empty", MMC, Some(None)),
        // A rule without the field at all is `null` — filtered out.
        xml_rule("xml-mmc-missing", MMC, None),
        // svchost's empty path is the rule's own optional filter.
        xml_rule("xml-svchost-empty", SVCHOST, Some(None)),
        xml_rule(
            "xml-mmc-temp",
            MMC,
            Some(Some("C:\\Users\\bob\\Downloads\\nc.exe")),
        ),
    ];
    let json_rule = |host: &str, by: &str, path: Option<Value>| {
        let mut event = json!({
            "Channel": FIREWALL_CHANNEL, "EventID": 2097, "Computer": host,
            "RuleName": "Allow inbound 4444", "Action": 3, "ModifyingApplication": by,
        });
        if let Some(path) = path {
            event["ApplicationPath"] = path;
        }
        event
    };
    let json = [
        json_rule("json-mmc-empty", MMC, Some(json!(""))),
        json_rule("json-mmc-null", MMC, Some(Value::Null)),
        json_rule("json-mmc-missing", MMC, None),
        json_rule("json-svchost-empty", SVCHOST, Some(json!(""))),
    ];
    let inputs = write_inputs(dir.path(), &xml, &json);
    assert_eq!(
        hosts_matched(dir.path(), &rule, &inputs, FIREWALL),
        ["json-mmc-empty", "xml-mmc-empty", "xml-mmc-temp"]
    );
}
