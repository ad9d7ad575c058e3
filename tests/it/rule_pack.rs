//! SIREN's own rule pack (`rules/`): it loads without a diagnostic, every detection rule's
//! embedded tests pass, the correlation rules fire on synthetic bursts and stay quiet on near
//! misses, and the key rules fire on the corpus files that hold those attacks.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};
use siren_core::correlation::{CorrelationHit, Correlator};
use siren_core::hunt::{self, HuntOptions};
use siren_core::normalize;
use siren_core::normalize::ReadObserver;
use siren_core::rules::{Level, LoadOptions, RuleKind, RuleSet};
use siren_core::{Event, TenantId};

use crate::support::{shared_dir, workspace_root};

/// The shipped pack, loaded as `siren` loads `rules/` (the log-source mapping beside the rules
/// is not a rule and is skipped).
fn load_pack() -> RuleSet {
    let (set, diagnostics) =
        RuleSet::load(&[workspace_root().join("rules")], &LoadOptions::default());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    set
}

#[test]
fn rule_pack_loads_and_every_embedded_test_passes() {
    let set = load_pack();
    assert!(set.len() >= 25, "only {} rules", set.len());
    let mut ids = HashSet::new();
    let mut detections = 0;
    let mut failures = Vec::new();
    for (index, rule) in set.rules().iter().enumerate() {
        let id = rule.id.as_ref().expect("every rule has an id");
        assert!(ids.insert(id.as_str().to_owned()), "duplicate id {id:?}");
        assert_eq!(rule.author.as_deref(), Some("SIREN"), "{}", rule.title);
        assert!(rule.level.is_some(), "{}: no level", rule.title);
        assert!(
            rule.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{}: no description",
            rule.title
        );
        assert!(
            !rule.attack_techniques().is_empty(),
            "{}: no ATT&CK technique tag",
            rule.title
        );
        assert!(
            !rule.siren.investigation.is_empty(),
            "{}: no investigation steps",
            rule.title
        );
        match &rule.kind {
            RuleKind::Detection => {
                detections += 1;
                assert!(
                    rule.logsource_mapped || rule.logsource.product.is_none(),
                    "{}: log source {} is not in the mapping",
                    rule.title,
                    rule.logsource
                );
                let tests = &rule.siren.tests;
                assert!(
                    !tests.must_match.is_empty() && !tests.must_not_match.is_empty(),
                    "{}: needs at least one must-match and one must-not-match test",
                    rule.title
                );
                let report = set.run_embedded_tests(index);
                if !report.passed() {
                    failures.push(format!("{} ({}): {report:?}", rule.title, rule.file));
                }
            }
            RuleKind::Correlation(correlation) => {
                for reference in &correlation.rules {
                    assert!(
                        set.find(reference).is_some(),
                        "{}: refers to unknown rule {reference}",
                        rule.title
                    );
                }
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(detections >= 25, "only {detections} detection rules");
    assert!(set.correlations().count() >= 5);

    // Building blocks (the rules a correlation uses) report nothing by themselves; every
    // other rule, correlations included, does.
    let correlator = Correlator::new(&set);
    assert!(
        correlator.problems().is_empty(),
        "{:?}",
        correlator.problems()
    );
    for (index, rule) in set.rules().iter().enumerate() {
        assert_eq!(
            correlator.is_reported(index),
            !correlator.is_referenced(index),
            "{}",
            rule.title
        );
    }
}

/// An event of the given fields at `second` seconds past 10:00 on a fixed day.
fn event_at(second: u32, mut fields: Value) -> Event {
    let time = format!(
        "2026-03-02T{:02}:{:02}:{:02}Z",
        10 + second / 3600,
        second / 60 % 60,
        second % 60
    );
    fields["TimeCreated"] = Value::String(time);
    Event::from_fields(
        fields
            .as_object()
            .expect("an object")
            .clone()
            .into_iter()
            .collect(),
        TenantId::default(),
    )
}

/// Runs `events` (in time order) through the rule pack and a fresh correlator; returns the
/// correlation hits by rule title.
fn correlate(set: &RuleSet, events: &[Event]) -> Vec<(String, CorrelationHit)> {
    let mut correlator = Correlator::new(set);
    assert!(
        correlator.problems().is_empty(),
        "{:?}",
        correlator.problems()
    );
    let mut hits = Vec::new();
    for event in events {
        set.for_each_match(event, |rule| hits.extend(correlator.observe(rule, event)));
    }
    hits.into_iter()
        .map(|h| (set.rules()[h.rule].title.clone(), h))
        .collect()
}

fn titles(hits: &[(String, CorrelationHit)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (title, _) in hits {
        *out.entry(title.clone()).or_default() += 1;
    }
    out
}

fn failed_logon(second: u32, user: &str, ip: &str) -> Event {
    event_at(
        second,
        json!({"EventID": 4625, "Channel": "Security",
            "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": "WS01.corp.example",
            "TargetUserName": user, "IpAddress": ip, "LogonType": 3,
            "Status": "0xc000006d", "SubStatus": "0xc000006a"}),
    )
}

const BRUTE_FORCE: &str = "Brute Force Against One Account";
const SPRAY: &str = "Password Spraying From One Source";
const SUCCESS_AFTER: &str = "Successful Logon After Brute Force";
const KERBEROS_SPRAY: &str = "Kerberos Password Spraying From One Source";
const OUTBOUND: &str = "Unusual Outbound Data Volume To One External Address";

#[test]
fn brute_force_and_success_after_it() {
    let set = load_pack();
    // Five failures in 80 seconds, then a success: one brute force, one success after it.
    let mut events: Vec<Event> = (0..5)
        .map(|i| failed_logon(i * 20, "alice", "10.9.8.7"))
        .collect();
    events.push(event_at(
        200,
        json!({"EventID": 4624, "Channel": "Security",
            "Provider_Name": "Microsoft-Windows-Security-Auditing", "Computer": "WS01.corp.example",
            "TargetUserName": "alice", "IpAddress": "10.9.8.7", "LogonType": 3}),
    ));
    let hits = correlate(&set, &events);
    let counts = titles(&hits);
    assert_eq!(counts.get(BRUTE_FORCE), Some(&1), "{counts:?}");
    assert_eq!(counts.get(SUCCESS_AFTER), Some(&1), "{counts:?}");
    let (_, brute) = hits.iter().find(|(t, _)| t == BRUTE_FORCE).unwrap();
    assert!(brute.reported);
    assert_eq!(brute.group_value("TargetUserName"), Some("alice"));
    assert_eq!(brute.group_value("Computer"), Some("WS01.corp.example"));
    let (_, after) = hits.iter().find(|(t, _)| t == SUCCESS_AFTER).unwrap();
    assert!(after.reported);
    assert_eq!(after.group_value("TargetUserName"), Some("alice"));

    // Near misses: four failures; five failures spread over five minutes; five failures
    // spread over five accounts (that is no brute force of one account).
    let four: Vec<Event> = (0..4)
        .map(|i| failed_logon(i * 10, "alice", "10.9.8.7"))
        .collect();
    let slow: Vec<Event> = (0..5)
        .map(|i| failed_logon(i * 75, "alice", "10.9.8.7"))
        .collect();
    let spread: Vec<Event> = (0..5)
        .map(|i| failed_logon(i * 5, &format!("user{i}"), "10.9.8.7"))
        .collect();
    for near_miss in [four, slow, spread] {
        let counts = titles(&correlate(&set, &near_miss));
        assert!(!counts.contains_key(BRUTE_FORCE), "{counts:?}");
        assert!(!counts.contains_key(SUCCESS_AFTER), "{counts:?}");
    }
}

#[test]
fn password_spraying_from_one_source() {
    let set = load_pack();
    let spray: Vec<Event> = (0..12)
        .map(|i| failed_logon(i * 15, &format!("user{i}"), "10.9.8.7"))
        .collect();
    let hits = correlate(&set, &spray);
    let counts = titles(&hits);
    assert_eq!(counts.get(SPRAY), Some(&1), "{counts:?}");
    let (_, hit) = hits.iter().find(|(t, _)| t == SPRAY).unwrap();
    assert_eq!(hit.group_value("IpAddress"), Some("10.9.8.7"));

    // Nine accounts, or ten accounts from ten addresses, or local failures: no spraying.
    let nine: Vec<Event> = (0..9)
        .map(|i| failed_logon(i * 15, &format!("user{i}"), "10.9.8.7"))
        .collect();
    let many_sources: Vec<Event> = (0..10)
        .map(|i| failed_logon(i * 15, &format!("user{i}"), &format!("10.9.8.{i}")))
        .collect();
    let local: Vec<Event> = (0..10)
        .map(|i| failed_logon(i * 15, &format!("user{i}"), "-"))
        .collect();
    for near_miss in [nine, many_sources, local] {
        let counts = titles(&correlate(&set, &near_miss));
        assert!(!counts.contains_key(SPRAY), "{counts:?}");
    }

    let preauth = |second: u32, user: String, status: &str| {
        event_at(
            second,
            json!({"EventID": 4771, "Channel": "Security",
                "Provider_Name": "Microsoft-Windows-Security-Auditing",
                "Computer": "DC01.corp.example", "TargetUserName": user,
                "ServiceName": "krbtgt/CORP", "IpAddress": "::ffff:10.0.0.50", "Status": status}),
        )
    };
    let kerberos: Vec<Event> = (0..10)
        .map(|i| preauth(i * 5, format!("user{i}"), "0x18"))
        .collect();
    let counts = titles(&correlate(&set, &kerberos));
    assert_eq!(counts.get(KERBEROS_SPRAY), Some(&1), "{counts:?}");
    let unknown_users: Vec<Event> = (0..10)
        .map(|i| preauth(i * 5, format!("user{i}"), "0x6"))
        .collect();
    let counts = titles(&correlate(&set, &unknown_users));
    assert!(!counts.contains_key(KERBEROS_SPRAY), "{counts:?}");
}

#[test]
fn unusual_outbound_volume() {
    let set = load_pack();
    let flow = |second: u32, dst: &str, bytes: u64| {
        let time = format!("2026-03-02T10:{:02}:{:02}Z", second / 60 % 60, second % 60);
        Event::from_fields(
            json!({"timestamp": time, "src_ip": "10.20.30.40", "dst_ip": dst, "dst_port": 443,
                "action": "allow", "bytes_out": bytes})
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect(),
            TenantId::default(),
        )
    };
    const MIB: u64 = 1024 * 1024;
    let upload: Vec<Event> = (0..6)
        .map(|i| flow(i * 300, "203.0.113.80", 100 * MIB))
        .collect();
    let hits = correlate(&set, &upload);
    let counts = titles(&hits);
    assert_eq!(counts.get(OUTBOUND), Some(&1), "{counts:?}");
    let (_, hit) = hits.iter().find(|(t, _)| t == OUTBOUND).unwrap();
    assert_eq!(hit.group_value("dst_ip"), Some("203.0.113.80"));

    // The same volume to an internal file server, or split over many destinations: quiet.
    let internal: Vec<Event> = (0..6)
        .map(|i| flow(i * 300, "10.20.1.5", 100 * MIB))
        .collect();
    let spread: Vec<Event> = (0..6)
        .map(|i| flow(i * 300, &format!("203.0.113.{}", 80 + i), 100 * MIB))
        .collect();
    for near_miss in [internal, spread] {
        let counts = titles(&correlate(&set, &near_miss));
        assert!(!counts.contains_key(OUTBOUND), "{counts:?}");
    }
}

struct Quiet;
impl ReadObserver for Quiet {}

/// What the pack finds on the corpus.
struct CorpusRun {
    /// Detections per (rule title, file name).
    counts: BTreeMap<(String, String), usize>,
    /// Correlation hits (rule title, file name, hit), each file correlated on its own.
    hits: Vec<(String, String, CorrelationHit)>,
}

/// Hunts the whole EVTX corpus with the pack and correlates each file's detections.
fn hunt_corpus(set: &RuleSet, evtx: &Path) -> CorpusRun {
    let (inputs, _) = normalize::expand_inputs(&[evtx]);
    assert!(inputs.len() > 100, "{} inputs", inputs.len());
    let mut per_file: BTreeMap<String, Vec<(usize, Event)>> = BTreeMap::new();
    hunt::hunt(
        &inputs,
        set,
        &HuntOptions::default(),
        &Quiet,
        |d| {
            let name = Path::new(&*d.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            per_file.entry(name).or_default().push((d.rule, d.event));
        },
        |_| {},
    );
    let mut counts = BTreeMap::new();
    let mut hits = Vec::new();
    for (file, detections) in &per_file {
        for (rule, _) in detections {
            *counts
                .entry((set.rules()[*rule].title.clone(), file.clone()))
                .or_default() += 1;
        }
        let mut correlator = Correlator::new(set);
        for hit in correlator.observe_sorted(detections.iter().map(|(r, e)| (*r, e))) {
            hits.push((set.rules()[hit.rule].title.clone(), file.clone(), hit));
        }
    }
    CorpusRun { counts, hits }
}

#[test]
fn rule_pack_fires_on_the_attack_logs_of_the_corpus() {
    let Some(shared) = shared_dir("rule_pack_fires_on_the_attack_logs_of_the_corpus") else {
        return;
    };
    let evtx = shared.join("corpus/evtx");
    let set = load_pack();
    // (file, rule title that must fire on it)
    let expected: &[(&str, &str)] = &[
        (
            "EVTX-ATTACK-SAMPLES/Credential Access/CA_DCSync_4662.evtx",
            "Directory Replication Requested By A Non-Domain-Controller Account",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Credential Access/sysmon_10_lsass_mimikatz_sekurlsa_logonpasswords.evtx",
            "Process Opened LSASS With Memory-Read Rights",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Defense Evasion/DE_1102_security_log_cleared.evtx",
            "Security Audit Log Cleared",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Defense Evasion/DE_104_system_log_cleared.evtx",
            "Event Log Cleared (System Log)",
        ),
        (
            "DeepBlueCLI/metasploit-psexec-native-target-system.evtx",
            "Remote Execution Service Installed (PsExec Style)",
        ),
        (
            "DeepBlueCLI/new-user-security.evtx",
            "Local Or Domain User Account Created",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Persistence/Network_Service_Guest_added_to_admins_4732.evtx",
            "Member Added To A Privileged Group",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Execution/temp_scheduled_task_4698_4699.evtx",
            "Scheduled Task Registered (Security Log)",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Credential Access/sysmon_10_1_memdump_comsvcs_minidump.evtx",
            "LSASS Memory Dump From The Command Line",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Credential Access/Powershell_4104_MiniDumpWriteDump_Lsass.evtx",
            "PowerShell Script Dumps LSASS Memory",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Privilege Escalation/sysmon_privesc_psexec_dwell.evtx",
            "Named Pipe Of A Remote Execution Tool",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_REMCOM_5145_TargetHost.evtx",
            "Remote Execution Tool Reached Through A File Share",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Privilege Escalation/System_7045_namedpipe_privesc.evtx",
            "Service Created To Echo Into A Named Pipe",
        ),
        (
            "EVTX-ATTACK-SAMPLES/Persistence/DACL_DCSync_Right_Powerview_ Add-DomainObjectAcl.evtx",
            "Domain Root Permissions Changed With Replication Rights In Them",
        ),
        (
            "DeepBlueCLI/powersploit-security.evtx",
            "PowerShell Started With An Encoded Command",
        ),
        (
            "DeepBlueCLI/powersploit-system.evtx",
            "PowerShell Command Line Downloads From The Web",
        ),
        (
            "DeepBlueCLI/Powershell-Invoke-Obfuscation-many.evtx",
            "PowerShell Script Block Downloads Or Decodes And Runs Code",
        ),
    ];
    let CorpusRun { counts, hits } = hunt_corpus(&set, &evtx);
    for (file, title) in expected {
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        let n = counts
            .get(&((*title).to_owned(), name.clone().into_owned()))
            .copied()
            .unwrap_or(0);
        assert!(n > 0, "{title:?} did not fire on {file}: {counts:#?}");
    }
    // No alerting rule floods the corpus: the attack logs hold a handful of each attack.
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for ((title, _), n) in &counts {
        *per_rule.entry(title.as_str()).or_default() += n;
    }
    for rule in set.rules() {
        let n = per_rule.get(rule.title.as_str()).copied().unwrap_or(0);
        println!("{n:>6}  {}", rule.title);
        if rule.level_or_default() >= Level::Medium {
            assert!(n <= 40, "{} fired {n} times on the corpus", rule.title);
        }
    }

    // The correlations, over the whole corpus: one brute force (Administrator, on the SMB
    // guessing log) and one spraying source (on the spraying log), nothing else.
    let brute: Vec<_> = hits.iter().filter(|(t, _, _)| t == BRUTE_FORCE).collect();
    assert_eq!(brute.len(), 1, "{brute:#?}");
    assert_eq!(brute[0].1, "smb-password-guessing-security.evtx");
    assert_eq!(
        brute[0].2.group_value("TargetUserName"),
        Some("Administrator")
    );
    assert_eq!(brute[0].2.group_value("Computer"), Some("DESKTOP-M5SN04R"));
    let spray: Vec<_> = hits.iter().filter(|(t, _, _)| t == SPRAY).collect();
    assert_eq!(spray.len(), 1, "{spray:#?}");
    assert_eq!(spray[0].1, "password-spray.evtx");
    assert_eq!(spray[0].2.group_value("IpAddress"), Some("172.16.144.128"));
}
