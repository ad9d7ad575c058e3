//! `siren ingest` and `siren events list` end to end, on the real EVTX corpus and on bad input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::support::{json_output, shared_dir, siren};

/// The distinct events of the corpus, computed independently of SIREN: the `evtx` crate's
/// reading, keyed by computer, channel, record number and time.
fn distinct_corpus_events(evtx_dir: &Path) -> usize {
    let mut keys = HashSet::new();
    for file in walk(evtx_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "evtx"))
    {
        let mut parser = evtx::EvtxParser::from_path(&file).unwrap();
        for record in parser.records_json_value() {
            let data = record.unwrap().data;
            let system = &data["Event"]["System"];
            keys.insert(format!(
                "{}|{}|{}|{}",
                system["Computer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["Channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                system["EventRecordID"],
                system["TimeCreated"]["#attributes"]["SystemTime"]
            ));
        }
    }
    keys.len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn corpus_is_stored_once_with_every_record() {
    let Some(shared) = shared_dir("corpus_is_stored_once_with_every_record") else {
        return;
    };
    let evtx = shared.join("corpus/evtx");
    let counts: Value =
        serde_json::from_slice(&std::fs::read(evtx.join("record-counts.json")).unwrap()).unwrap();
    let total = counts["records"].as_u64().unwrap();
    let distinct = distinct_corpus_events(&evtx) as u64;
    let dir = tempfile::tempdir().unwrap();

    let (code, first) = json_output(
        siren(dir.path())
            .args(["ingest", "--format", "json"])
            .arg(&evtx),
    );
    assert_eq!(code, 0, "{first:#}");
    // Beside the 297 EVTX files the folder holds record-counts.json (a JSON document, read as
    // one event) and a licence (not a log: ignored).
    assert_eq!(
        first["formats"],
        serde_json::json!({"evtx": 297, "json": 1}),
        "{first:#}"
    );
    assert_eq!(first["records_read"], total + 1, "{first:#}");
    assert_eq!(first["records_skipped"], 0, "{first:#}");
    assert_eq!(first["files_skipped"], 0, "{first:#}");
    assert_eq!(first["files_ignored"], 1, "{first:#}");
    // Events that several sample files share are stored once.
    assert_eq!(first["stored"], distinct + 1, "{first:#}");
    assert_eq!(first["duplicates"], total - distinct, "{first:#}");

    let (_, second) = json_output(
        siren(dir.path())
            .args(["ingest", "--format", "json"])
            .arg(&evtx),
    );
    assert_eq!(
        second["stored"], 0,
        "a second run stores nothing: {second:#}"
    );
    assert_eq!(second["duplicates"], total + 1);

    let (code, listed) =
        json_output(siren(dir.path()).args(["events", "list", "--format", "json", "--limit", "5"]));
    assert_eq!(code, 0);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 5);
    for event in listed {
        let fields = &event["fields"];
        for name in [
            "EventID",
            "Channel",
            "Computer",
            "Provider_Name",
            "TimeCreated",
            "EventRecordID",
        ] {
            assert!(fields.get(name).is_some(), "{name} missing in {event:#}");
        }
        assert!(
            fields.as_object().unwrap().len() > 10,
            "EventData fields kept: {event:#}"
        );
    }
}

/// The corpus rendered to JSON Lines by the `evtx` crate ingests to the same events, field for
/// field, as the EVTX files themselves.
#[test]
fn json_lines_rendering_matches_evtx() {
    let Some(shared) = shared_dir("json_lines_rendering_matches_evtx") else {
        return;
    };
    let evtx_dir = shared.join("corpus/evtx");
    let dir = tempfile::tempdir().unwrap();
    let jsonl_dir = dir.path().join("jsonl");
    std::fs::create_dir(&jsonl_dir).unwrap();
    let mut rendered = 0;
    for (i, file) in walk(&evtx_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "evtx"))
        .enumerate()
    {
        let mut parser = evtx::EvtxParser::from_path(&file).unwrap();
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(jsonl_dir.join(format!("{i}.jsonl"))).unwrap(),
        );
        for record in parser.records_json_value() {
            serde_json::to_writer(&mut out, &record.unwrap().data).unwrap();
            out.write_all(b"\n").unwrap();
            rendered += 1;
        }
    }
    // The same EVTX files alone (the corpus folder also holds a JSON summary).
    let evtx_only = dir.path().join("evtx-only");
    std::fs::create_dir(&evtx_only).unwrap();
    for (i, file) in walk(&evtx_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "evtx"))
        .enumerate()
    {
        std::os::unix::fs::symlink(&file, evtx_only.join(format!("{i}.evtx"))).unwrap();
    }
    let evtx_dir = evtx_only;
    let evtx_db = dir.path().join("evtx.db");
    let jsonl_db = dir.path().join("jsonl.db");
    let ingest = |db: &Path, path: &Path| {
        let (_, summary) = json_output(
            siren(dir.path())
                .arg("--db")
                .arg(db)
                .args(["ingest", "--format", "json"])
                .arg(path),
        );
        summary
    };
    let from_evtx = ingest(&evtx_db, &evtx_dir);
    let from_jsonl = ingest(&jsonl_db, &jsonl_dir);
    assert_eq!(from_jsonl["records_read"], rendered);
    assert_eq!(from_jsonl["records_read"], from_evtx["records_read"]);
    assert_eq!(from_jsonl["stored"], from_evtx["stored"]);
    assert_eq!(from_jsonl["records_skipped"], 0, "{from_jsonl:#}");

    let events = |db: &Path| -> BTreeMap<String, Value> {
        let (_, list) = json_output(
            siren(dir.path())
                .arg("--db")
                .arg(db)
                .args(["events", "list", "--format", "json", "--limit", "100000"]),
        );
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let key = format!(
                    "{}|{}|{}|{}",
                    e["host"], e["channel"], e["record_id"], e["timestamp"]
                );
                (key, e["fields"].clone())
            })
            .collect()
    };
    let a = events(&evtx_db);
    let b = events(&jsonl_db);
    assert_eq!(a.len(), b.len());
    let mismatched: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .take(3)
        .collect();
    assert!(
        mismatched.is_empty(),
        "field values differ for {mismatched:?}"
    );
}

/// Every kind of bad input gets its own message; the good records around it are all kept.
#[test]
fn bad_input_is_reported_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let good = r##"{"Event":{"System":{"EventID":4625,"Channel":"Security","Computer":"dc01","EventRecordID":RID,"TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:00Z"}}},"EventData":{"TargetUserName":"bob"}}}"##;
    let line = |rid: u32| good.replace("RID", &rid.to_string());
    std::fs::write(
        inputs.join("mixed.jsonl"),
        format!("{}\n{{not json\n{}\n", line(1), line(2)),
    )
    .unwrap();
    std::fs::write(
        inputs.join("garbage.bin"),
        [0u8, 159, 146, 150, 255, 0, 1, 2, 3].repeat(100),
    )
    .unwrap();
    std::fs::write(inputs.join("empty.json"), b"").unwrap();
    // A JSON file with an EVTX name: the content decides.
    std::fs::write(inputs.join("renamed.evtx"), line(3)).unwrap();
    let mut huge = line(4).into_bytes();
    huge.truncate(huge.len() - 2);
    huge.extend(std::iter::repeat_n(b' ', 10 << 20));
    huge.extend_from_slice(b"}}\n");
    huge.extend_from_slice(line(5).as_bytes());
    std::fs::write(inputs.join("huge-line.jsonl"), huge).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(inputs.join("does-not-exist"), inputs.join("dangling.json"))
        .unwrap();
    let mut truncated_evtx = 0;
    if let Some(shared) = shared_dir("bad EVTX cases") {
        let bytes = std::fs::read(first_multi_chunk(&shared)).unwrap();
        // Cut in the middle of the first chunk.
        std::fs::write(inputs.join("truncated.evtx"), &bytes[..4096 + 30_000]).unwrap();
        // A corrupt chunk: garbage over the first chunk's records.
        let mut corrupt = bytes.clone();
        for b in &mut corrupt[4096 + 600..4096 + 9000] {
            *b = 0xA5;
        }
        std::fs::write(inputs.join("corrupt-chunk.evtx"), corrupt).unwrap();
        truncated_evtx = 2;
    }

    std::fs::write(
        inputs.join("LICENSE"),
        "Permission is granted to anyone to use this software.\n",
    )
    .unwrap();
    std::fs::write(
        inputs.join("garbage.evtx"),
        [0u8, 159, 146, 150, 255].repeat(100),
    )
    .unwrap();

    let (code, summary) = json_output(
        siren(dir.path())
            .args(["ingest", "--format", "json"])
            .arg(&inputs),
    );
    assert_eq!(code, 65, "{summary:#}");
    let by_file = |list: &Value| -> HashMap<String, Vec<String>> {
        list.as_array()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut map, d| {
                let file = Path::new(d["file"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                map.entry(file).or_default().push(
                    format!(
                        "{}: {}",
                        d["location"].as_str().unwrap(),
                        d["reason"].as_str().unwrap()
                    )
                    .trim_start_matches(": ")
                    .to_owned(),
                );
                map
            })
    };
    let diagnostics = by_file(&summary["diagnostics"]);
    let ignored = by_file(&summary["ignored"]);
    let said = |file: &str| {
        diagnostics
            .get(file)
            .cloned()
            .unwrap_or_default()
            .join(" | ")
    };
    assert!(
        said("mixed.jsonl").starts_with("line 2: invalid JSON"),
        "{diagnostics:#?}"
    );
    assert!(
        said("garbage.evtx").contains("binary data"),
        "{diagnostics:#?}"
    );
    assert!(
        said("huge-line.jsonl").starts_with("line 1: record of 104"),
        "{diagnostics:#?}"
    );
    assert!(
        !diagnostics.contains_key("renamed.evtx"),
        "content wins over the extension: {diagnostics:#?}"
    );
    #[cfg(unix)]
    assert!(
        said("dangling.json").contains("no such file"),
        "{diagnostics:#?}"
    );
    if truncated_evtx > 0 {
        assert!(
            said("truncated.evtx").contains("chunk") || said("truncated.evtx").contains("record"),
            "{diagnostics:#?}"
        );
        assert!(
            diagnostics.contains_key("corrupt-chunk.evtx"),
            "{diagnostics:#?}"
        );
    }
    // In a folder, an empty file and a file that is no log are ignored, not errors.
    assert_eq!(
        ignored.keys().collect::<std::collections::BTreeSet<_>>(),
        ["LICENSE", "empty.json", "garbage.bin"]
            .iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .iter()
            .collect(),
        "{ignored:#?}"
    );

    // Named explicitly, the same files are errors.
    for (file, reason) in [("empty.json", "empty"), ("garbage.bin", "binary data")] {
        let (code, alone) = json_output(
            siren(dir.path())
                .args(["ingest", "--format", "json"])
                .arg(inputs.join(file)),
        );
        assert_eq!(code, 65, "{alone:#}");
        assert!(
            alone["diagnostics"][0]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{alone:#}"
        );
    }

    // Good records: 2 from mixed, 1 renamed, 1 after the huge line, plus what the EVTX files kept.
    assert!(summary["stored"].as_u64().unwrap() >= 4, "{summary:#}");

    // --strict stops at the first problem, keeping what was read before it.
    let strict_dir = tempfile::tempdir().unwrap();
    let (code, strict) = json_output(
        siren(strict_dir.path())
            .args(["ingest", "--strict", "--threads", "1", "--format", "json"])
            .arg(inputs.join("mixed.jsonl")),
    );
    assert_eq!(code, 65);
    assert_eq!(strict["stopped_early"], true);
    assert_eq!(strict["stored"], 1, "{strict:#}");

    // A path that does not exist: exit 66.
    let output = siren(dir.path())
        .args(["ingest", "no/such/path"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/path"));
}

fn first_multi_chunk(shared: &Path) -> std::path::PathBuf {
    walk(&shared.join("corpus/evtx"))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "evtx")
                && std::fs::metadata(p).unwrap().len() > 200_000
        })
        .expect("a multi-chunk EVTX file")
}

/// Every text format through the CLI, from files and from stdin, into one store.
#[test]
fn every_format_ingests_from_files_and_stdin() {
    let fixtures = crate::support::workspace_root().join("tests/fixtures/inputs");
    let dir = tempfile::tempdir().unwrap();
    let samples = ["sample.xml", "sample.syslog", "sample.csv", "sample.jsonl"];
    let mut cmd = siren(dir.path());
    cmd.args(["ingest", "--format", "json"]);
    for sample in samples {
        cmd.arg(fixtures.join(sample));
    }
    let (code, summary) = json_output(&mut cmd);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(
        summary["formats"],
        serde_json::json!({"csv": 1, "json": 1, "syslog": 1, "xml": 1})
    );
    assert_eq!(summary["records_read"], 3 + 7 + 5 + 4);
    // The XML and JSON Lines samples carry the same three Windows events: stored once.
    assert_eq!(summary["stored"], 3 + 7 + 5 + 4 - 3, "{summary:#}");
    assert_eq!(summary["duplicates"], 3, "{summary:#}");

    // The same JSON Lines on stdin: all duplicates.
    let jsonl = std::fs::read(fixtures.join("sample.jsonl")).unwrap();
    let (code, again) = json_output(
        siren(dir.path())
            .args(["ingest", "-", "--format", "json"])
            .write_stdin(jsonl),
    );
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(
        (again["records_read"].as_u64(), again["stored"].as_u64()),
        (Some(4), Some(0)),
        "{again:#}"
    );

    // The bad variants: every good record kept, each bad one reported where it is.
    let mut cmd = siren(dir.path());
    cmd.args(["ingest", "--format", "json"]);
    for bad in ["bad.xml", "bad.syslog", "bad.csv", "bad.jsonl"] {
        cmd.arg(fixtures.join(bad));
    }
    let (code, bad) = json_output(&mut cmd);
    assert_eq!(code, 65, "{bad:#}");
    assert_eq!(bad["records_read"], 2 + 7 + 5 + 4, "{bad:#}");
    assert_eq!(bad["records_skipped"], 4, "{bad:#}");
    let mut locations: Vec<String> = bad["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                Path::new(d["file"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy(),
                d["location"].as_str().unwrap()
            )
        })
        .collect();
    locations.sort();
    assert_eq!(
        locations,
        [
            "bad.csv line 4",
            "bad.jsonl line 3",
            "bad.syslog line 4",
            "bad.xml record 2"
        ]
    );

    // Table output for people, a clear error for a database that cannot be opened.
    let output = siren(dir.path())
        .args(["events", "list", "--limit", "3"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("timestamp"));
    let output = siren(dir.path())
        .args([
            "--db",
            "postgres://nobody@127.0.0.1:1/none",
            "events",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open database"));
}
