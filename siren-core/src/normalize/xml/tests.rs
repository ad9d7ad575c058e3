//! XML reader tests: field names and types as on the EVTX path, broken, truncated, oversized
//! and deeply nested events, and real records.

use serde_json::json;

use super::super::fuzz_tests::{Collect, read_bytes};
use super::super::{Format, Input, Location, ReadOptions};

const LOGON_FAILURE: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
<Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-a5ba-3e3b0328c30d}"/>
<EventID>4625</EventID>
<Version>0</Version>
<Level>0</Level>
<Task>12544</Task>
<Opcode>0</Opcode>
<Keywords>0x8010000000000000</Keywords>
<TimeCreated SystemTime="2021-04-22T10:09:34.1234560Z"/>
<EventRecordID>4711</EventRecordID>
<Correlation ActivityID="{A1B2}"/>
<Execution ProcessID="628" ThreadID="3760"/>
<Channel>Security</Channel>
<Computer>dc01.corp.local</Computer>
<Security/>
  </System>
  <EventData>
<Data Name="TargetUserName">bob</Data>
<Data Name="IpAddress">10.0.0.5</Data>
<Data Name="Note">a &lt;b&gt; &amp; &#x41; &unknown; <![CDATA[<raw> & text]]></Data>
<Data Name="Empty"></Data>
  </EventData>
</Event>"#;

fn read(text: &str) -> Collect {
    let (result, sink) = read_bytes("events.xml", text.as_bytes(), &ReadOptions::default());
    assert_eq!(result, Ok(Format::Xml), "{:?}", sink.diagnostics);
    sink
}

#[test]
fn one_event_gets_the_evtx_field_names_and_types() {
    let sink = read(LOGON_FAILURE);
    assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
    let [event] = sink.events.as_slice() else {
        panic!("expected one event, got {}", sink.events.len())
    };
    let f = &event.fields;
    assert_eq!(f["EventID"], json!(4625));
    assert_eq!(f["EventRecordID"], json!(4711));
    assert_eq!(f["Level"], json!(0));
    assert_eq!(f["Keywords"], json!("0x8010000000000000"));
    assert_eq!(f["Execution_ProcessID"], json!(628));
    assert_eq!(
        f["Provider_Name"],
        json!("Microsoft-Windows-Security-Auditing")
    );
    assert_eq!(f["TimeCreated"], json!("2021-04-22T10:09:34.1234560Z"));
    assert_eq!(f["Correlation_ActivityID"], json!("{A1B2}"));
    assert_eq!(f["Channel"], json!("Security"));
    assert_eq!(f["Computer"], json!("dc01.corp.local"));
    assert_eq!(f["Security"], json!(null));
    assert_eq!(f["TargetUserName"], json!("bob"));
    assert_eq!(f["Note"], json!("a <b> & A &unknown; <raw> & text"));
    assert_eq!(f["Empty"], json!(""));
    assert_eq!(event.event_id, Some(4625));
    assert_eq!(event.user.as_deref(), Some("bob"));
    assert_eq!(event.src_ip.as_deref(), Some("10.0.0.5"));
    assert!(event.timestamp.is_some());
}

#[test]
fn unnamed_data_user_data_and_namespaces() {
    let text = r#"<?xml version="1.0" encoding="utf-8"?>
<e:Events xmlns:e="http://schemas.microsoft.com/win/2004/08/events/event">
<e:Event><e:System><e:EventID Qualifiers="16384">15457</e:EventID><e:Channel>Application</e:Channel></e:System>
<e:EventData><e:Data>xp_cmdshell</e:Data><e:Data>0</e:Data><e:Data>1</e:Data><e:Binary>0A0B</e:Binary></e:EventData></e:Event>
<!-- a comment <Event> -->
<e:Event><e:System><e:EventID>104</e:EventID></e:System><e:UserData>
<LogFileCleared xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog">
<SubjectUserName>jwrig</SubjectUserName><BackupPath></BackupPath><Privilege>a</Privilege><Privilege>b</Privilege>
</LogFileCleared></e:UserData>
<RenderingInfo Culture="en-US"><Message>The log file was cleared.</Message><Keywords><Keyword>Audit Success</Keyword></Keywords></RenderingInfo>
</e:Event>
<e:Event><e:System><e:EventID>1</e:EventID></e:System><e:EventData><e:Data>only</e:Data></e:EventData></e:Event>
</e:Events>"#;
    let sink = read(text);
    assert!(sink.diagnostics.is_empty(), "{:?}", sink.diagnostics);
    assert_eq!(sink.events.len(), 3);
    let f = &sink.events[0].fields;
    assert_eq!(f["EventID"], json!(15457));
    assert_eq!(f["EventID_Qualifiers"], json!(16384));
    assert_eq!(f["Data"], json!(["xp_cmdshell", "0", "1"]));
    assert_eq!(f["Binary"], json!("0A0B"));
    let f = &sink.events[1].fields;
    assert_eq!(f["SubjectUserName"], json!("jwrig"));
    assert_eq!(f["BackupPath"], json!(null));
    assert_eq!(f["Privilege"], json!("a"));
    assert_eq!(f["Privilege_1"], json!("b"));
    assert_eq!(f["Message"], json!("The log file was cleared."));
    assert_eq!(f["RenderingInfo_Culture"], json!("en-US"));
    assert_eq!(f["Keyword"], json!("Audit Success"));
    assert_eq!(sink.events[2].fields["Data"], json!("only"));
}

#[test]
fn a_broken_event_is_reported_and_the_next_one_read() {
    let good = "<Event><System><EventID>1</EventID></System></Event>\n";
    let text = format!(
        "<Events>\n{good}<Event><System><EventID>2</EventID></Oops></System></Event>\n\
         {good}<Event><System><EventID>3</EventID>\n{good}<Event><System a=\"1\" a=\"2\"/></Event>\n{good}</Events>\n"
    );
    let sink = read(&text);
    assert_eq!(sink.events.len(), 4, "{:?}", sink.diagnostics);
    let places: Vec<_> = sink
        .diagnostics
        .iter()
        .map(|d| (d.location.clone(), d.reason.clone()))
        .collect();
    assert_eq!(places.len(), 3, "{places:?}");
    assert_eq!(places[0].0, Location::Record(2));
    assert!(places[0].1.contains("line 3"), "{}", places[0].1);
    assert!(
        places[0].1.contains("expected </EventID>, found </Oops>")
            || places[0].1.contains("</Oops>"),
        "{}",
        places[0].1
    );
    assert_eq!(places[1].0, Location::Record(4));
    assert!(places[1].1.contains("not closed"), "{}", places[1].1);
    assert_eq!(places[2].0, Location::Record(6));
}

#[test]
fn truncated_input_is_reported() {
    let cut = &LOGON_FAILURE[..LOGON_FAILURE.len() / 2];
    let text = format!("{LOGON_FAILURE}\n{cut}");
    let sink = read(&text);
    assert_eq!(sink.events.len(), 1);
    assert_eq!(sink.diagnostics.len(), 1, "{:?}", sink.diagnostics);
    assert_eq!(sink.diagnostics[0].location, Location::Record(2));
    assert!(
        sink.diagnostics[0].reason.contains("line 25"),
        "{}",
        sink.diagnostics[0].reason
    );
}

#[test]
fn oversized_event_is_skipped_and_the_rest_kept() {
    let big = format!(
        "<Event><System><EventID>9</EventID></System><EventData><Data Name=\"X\">{}</Data></EventData></Event>",
        "x".repeat(5000)
    );
    let text = format!("{LOGON_FAILURE}\n{big}\n{LOGON_FAILURE}\n");
    let options = ReadOptions::default().with_max_record_bytes(2000);
    let (result, sink) = read_bytes("big.xml", text.as_bytes(), &options);
    assert_eq!(result, Ok(Format::Xml));
    assert_eq!(sink.events.len(), 2, "{:?}", sink.diagnostics);
    assert_eq!(sink.diagnostics.len(), 1);
    assert_eq!(sink.diagnostics[0].location, Location::Record(2));
    assert!(
        sink.diagnostics[0]
            .reason
            .contains("exceeds the limit of 2000 bytes")
    );
}

#[test]
fn bom_wrong_extension_and_empty_input() {
    let text = format!("\u{feff}{LOGON_FAILURE}");
    let (result, sink) = read_bytes("events.csv", text.as_bytes(), &ReadOptions::default());
    assert_eq!(result, Ok(Format::Xml));
    assert_eq!(sink.events.len(), 1);
    let (result, _) = read_bytes("events.xml", b"", &ReadOptions::default());
    assert!(result.unwrap_err().contains("empty"));
    let (result, sink) = read_bytes(
        "none.xml",
        b"<Events>\n</Events>\n",
        &ReadOptions::default(),
    );
    assert_eq!(result, Ok(Format::Xml));
    assert!(sink.events.is_empty() && sink.diagnostics.is_empty());
    let (result, _) = read_bytes("other.xml", b"<root><a/></root>", &ReadOptions::default());
    assert!(result.unwrap_err().contains("<Event>"));
}

#[test]
fn deep_nesting_is_reported_not_followed() {
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let text = format!(
        "<Event><System><EventID>1</EventID></System><UserData>{deep}</UserData></Event>\n{LOGON_FAILURE}"
    );
    let sink = read(&text);
    assert_eq!(sink.events.len(), 1);
    assert_eq!(sink.diagnostics.len(), 1, "{:?}", sink.diagnostics);
    assert!(
        sink.diagnostics[0]
            .reason
            .contains("nested more than 256 deep")
    );
}

/// Text form of a value, for comparing the XML and EVTX renderings of one record: XML has
/// no types, so numbers and booleans compare by their text.
fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(items) => {
            items.iter().map(text_of).collect::<Vec<_>>().join("\u{1}")
        }
        other => other.to_string(),
    }
}

#[test]
fn real_records_give_the_same_fields_as_the_evtx_path() {
    let Some(shared) = crate::test_corpus::shared_dir("the XML/EVTX comparison") else {
        return;
    };
    let corpus = shared.join("corpus/evtx");
    // Every DeepBlueCLI log, and samples with unnamed `<Data>`, UserData, an attributed
    // `EventData`, escaped XML in a value, and Sysmon's typed values.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(corpus.join("DeepBlueCLI"))
        .expect("the corpus has DeepBlueCLI's logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "evtx"));
    files.sort();
    for sample in [
        "Defense Evasion/DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx",
        "Execution/temp_scheduled_task_4698_4699.evtx",
        "Credential Access/CA_4624_4625_LogonType2_LogonProc_chrome.evtx",
        "Credential Access/CA_Mimikatz_Memssp_Default_Logs_Sysmon_11.evtx",
    ] {
        files.push(corpus.join("EVTX-ATTACK-SAMPLES").join(sample));
    }
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut compared = 0;
    for file in &files {
        let path = std::path::PathBuf::from(&file);
        assert!(path.is_file(), "{file} is not in the corpus");
        // The EVTX path.
        let mut from_evtx = Collect::default();
        super::super::read_input(
            &Input::File(path.clone()),
            &ReadOptions::default(),
            &mut from_evtx,
        );
        // The evtx crate's XML rendering of the same records, through the XML reader.
        let mut parser = evtx::EvtxParser::from_path(&path).expect("corpus file opens");
        let xml: String = parser
            .records()
            .take(40)
            .filter_map(Result::ok)
            .map(|r| r.data)
            .collect::<Vec<_>>()
            .join("\n");
        let from_xml = read(&xml);
        assert!(
            from_xml.diagnostics.is_empty(),
            "{file}: {:?}",
            from_xml.diagnostics
        );
        for event in &from_xml.events {
            let record = event.record_id;
            let Some(expected) = from_evtx.events.iter().find(|e| e.record_id == record) else {
                panic!("{file}: record {record:?} not found on the EVTX path")
            };
            let names = |e: &crate::Event| e.fields.keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                names(event),
                names(expected),
                "{file}: record {record:?}: field names"
            );
            for (name, value) in &expected.fields {
                let got = &event.fields[name];
                // System fields are typed the same on both paths; EventData only as text.
                if matches!(value, serde_json::Value::Number(_)) && name.contains("EventID") {
                    assert_eq!(got, value, "{file}: record {record:?}: {name}");
                }
                assert_eq!(
                    text_of(got),
                    text_of(value),
                    "{file}: record {record:?}: {name}"
                );
            }
            assert_eq!(event.timestamp, expected.timestamp);
            assert_eq!(event.event_id, expected.event_id);
            assert_eq!(event.host, expected.host);
            assert_eq!(event.user, expected.user);
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} records compared");
}
