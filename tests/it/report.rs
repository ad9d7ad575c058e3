//! `siren report export` end to end on the EVTX corpus ingested with the built-in rules: every
//! format names the same incidents (PDF read back with `pdftotext`, its charts seen in the
//! pages `pdftoppm` renders), incident reports keep their timeline and notes in order, user
//! templates are used, broken ones leave no file, and redaction hides names everywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{json_differences, shared_dir, siren, workspace_root};

/// A database with the whole EVTX corpus ingested (built once per test run).
fn corpus_db() -> Option<PathBuf> {
    static DB: OnceLock<Option<PathBuf>> = OnceLock::new();
    DB.get_or_init(|| {
        let shared = shared_dir("report tests")?;
        let dir = tempfile::tempdir().unwrap().keep();
        let output = siren(&dir)
            .args(["--db", "corpus.db", "ingest", "--quiet", "--format", "json"])
            .arg(shared.join("corpus/evtx"))
            .output()
            .unwrap();
        assert!(
            matches!(output.status.code(), Some(0 | 65)),
            "ingest failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(dir.join("corpus.db"))
    })
    .clone()
}

/// A private copy of the corpus database in `dir` (for tests that change incidents), taken
/// with `VACUUM INTO`: copying the files could miss what another test's process is just
/// checkpointing from the write-ahead log into the main file.
fn copy_db(dir: &Path) -> Option<PathBuf> {
    let db = corpus_db()?;
    let copy = dir.join("corpus.db");
    let target = copy.clone();
    // A thread of its own, so that both plain and async tests can wait for it.
    std::thread::spawn(move || {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .read_only(true);
            let mut connection = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::query("VACUUM INTO ?")
                .bind(target.to_string_lossy().into_owned())
                .execute(&mut connection)
                .await
                .unwrap();
        });
    })
    .join()
    .unwrap();
    Some(copy)
}

/// Runs `siren --db DB report export ARGS` in `dir` and returns stdout, failing on error.
fn export(dir: &Path, db: &Path, args: &[&str]) -> Vec<u8> {
    let output = siren(dir)
        .arg("--db")
        .arg(db)
        .args(["report", "export"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "report export {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn pdf_text(pdf: &Path) -> String {
    let output = Command::new("pdftotext")
        .args(["-raw", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (Debian poppler-utils) is installed");
    assert!(
        output.status.success(),
        "pdftotext failed on {}",
        pdf.display()
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Text with every run of whitespace removed, so wrapped lines compare equal.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

fn md_unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn validate(schema: &Value, report: &Value) {
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
}

fn schema() -> Value {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/schema/report.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A PPM (P6) image: width, height, RGB bytes.
fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[at + 1..].to_vec())
}

/// Pixels of a strong colour (the severity colours of the charts) in rows `top..bottom`
/// (fractions of the page height).
fn coloured_pixels(image: &(usize, usize, Vec<u8>), top: f64, bottom: f64) -> usize {
    let (w, h, data) = image;
    let (from, to) = ((*h as f64 * top) as usize, (*h as f64 * bottom) as usize);
    let mut count = 0;
    for y in from..to {
        for x in 0..*w {
            let p = &data[(y * w + x) * 3..(y * w + x) * 3 + 3];
            let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
            if max - min > 60 {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn every_format_names_the_same_incidents() {
    let Some(db) = corpus_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The store's own list is the reference.
    let listed: Value = serde_json::from_slice(
        &siren(d)
            .arg("--db")
            .arg(&db)
            .args(["incidents", "list", "--limit", "10000", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert!(
        listed.len() >= 20,
        "the corpus opens incidents: {}",
        listed.len()
    );
    let ids: BTreeSet<i64> = listed.iter().map(|i| i["id"].as_i64().unwrap()).collect();

    // JSON: valid against the schema, the same incidents.
    let json: Value = serde_json::from_slice(&export(d, &db, &["--format", "json"])).unwrap();
    validate(&schema(), &json);
    let incidents = json["incidents"].as_array().unwrap();
    let json_ids: BTreeSet<i64> = incidents
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(json_ids, ids);
    assert_eq!(
        json["summary"]["total"].as_u64().unwrap() as usize,
        ids.len()
    );
    let by_severity: u64 = json["summary"]["by_severity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(by_severity as usize, ids.len());
    let titles: Vec<(i64, String)> = incidents
        .iter()
        .map(|i| {
            (
                i["id"].as_i64().unwrap(),
                i["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // CSV: one row per incident, same ids and titles.
    let csv_bytes = export(d, &db, &["--format", "csv", "-o", "-"]);
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    assert_eq!(&headers[1], "title");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), ids.len());
    let csv_titles: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].to_owned()))
        .collect();
    assert_eq!(
        csv_titles, titles,
        "CSV and JSON list the same incidents in order"
    );

    // HTML: every title (escaped), two inline SVG charts, no external resource.
    export(d, &db, &["--format", "html", "-o", "r.html"]);
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for (id, title) in &titles {
        assert!(
            html.contains(&html_escape(title)),
            "HTML lacks incident {id}: {title}"
        );
    }

    // Markdown: a row per incident.
    let md = String::from_utf8(export(d, &db, &["--format", "md"])).unwrap();
    let md_plain = md_unescape(&md);
    for (id, title) in &titles {
        assert!(
            md.contains(&format!("\n| {id} | ")),
            "Markdown lacks row {id}"
        );
        assert!(md_plain.contains(title.as_str()), "Markdown lacks {title}");
    }

    // PDF: every title read back; the charts drawn on the first page.
    export(d, &db, &["--format", "pdf", "-o", "r.pdf"]);
    let pdf = std::fs::read(d.join("r.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = squeeze(&pdf_text(&d.join("r.pdf")));
    for (id, title) in &titles {
        assert!(
            text.contains(&squeeze(title)),
            "PDF lacks incident {id}: {title}"
        );
    }
    assert!(text.contains("Page1of"), "page numbers");
    let status = Command::new("pdftoppm")
        .args(["-r", "60", "-f", "1", "-l", "1"])
        .arg(d.join("r.pdf"))
        .arg(d.join("page"))
        .status()
        .unwrap();
    assert!(status.success());
    let page = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ppm"))
        .expect("pdftoppm wrote page 1");
    let image = read_ppm(&page);
    // The charts sit in the middle of page 1; the title block above them has no such colour.
    let charts = coloured_pixels(&image, 0.30, 0.85);
    let title_block = coloured_pixels(&image, 0.0, 0.12);
    assert!(
        charts > image.0 * image.1 / 100,
        "chart bars on page 1: {charts} coloured pixels"
    );
    assert!(charts > title_block * 5, "{charts} vs {title_block}");
}

#[test]
fn an_incident_report_keeps_its_timeline_and_notes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(db) = copy_db(d) else { return };
    let json: Value = serde_json::from_slice(&export(d, &db, &["--format", "json"])).unwrap();
    let id = json["incidents"][0]["id"].as_i64().unwrap().to_string();
    let run = |args: &[&str]| {
        let output = siren(d).arg("--db").arg(&db).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&["incidents", "note", &id, "First note: looked at the host"]);
    run(&["incidents", "status", &id, "acknowledged"]);
    run(&[
        "incidents",
        "note",
        &id,
        "Second note: <b>escalating</b> & waiting",
    ]);
    run(&[
        "incidents",
        "status",
        &id,
        "resolved",
        "--resolution",
        "true_positive",
        "--note",
        "Third note: contained",
    ]);
    let notes = [
        "First note: looked at the host",
        "Second note: <b>escalating</b> & waiting",
        "Third note: contained",
    ];
    let in_order = |text: &str, items: &[String]| {
        let mut at = 0;
        for item in items {
            match text[at..].find(item.as_str()) {
                Some(found) => at += found + item.len(),
                None => panic!("{item:?} missing or out of order"),
            }
        }
    };

    let report: Value =
        serde_json::from_slice(&export(d, &db, &["--incident", &id, "--format", "json"])).unwrap();
    validate(&schema(), &report);
    assert_eq!(report["kind"], "incident");
    let incident = &report["incidents"][0];
    let listed: Vec<&str> = incident["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["detail"].as_str().unwrap())
        .collect();
    assert_eq!(listed, notes);
    let kinds: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert!(
        kinds.ends_with(&["note", "status_changed", "note", "status_changed", "note"]),
        "{kinds:?}"
    );
    let history: Vec<(&str, &str)> = incident["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["from"].as_str().unwrap(), c["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        history,
        [("new", "acknowledged"), ("acknowledged", "resolved")]
    );
    assert_eq!(incident["resolution"], "true_positive");
    assert!(incident["acknowledged_at"].is_string() && incident["resolved_at"].is_string());
    assert!(
        !incident["events"].as_array().unwrap().is_empty(),
        "triggering events"
    );

    let md = String::from_utf8(export(d, &db, &["--incident", &id, "--format", "md"])).unwrap();
    let md = md_unescape(&md);
    in_order(&md, &notes.map(String::from));
    let html = String::from_utf8(export(d, &db, &["--incident", &id, "--format", "html"])).unwrap();
    in_order(&html, &notes.map(html_escape));
    assert!(!html.contains("<b>escalating"), "notes are escaped in HTML");
    export(
        d,
        &db,
        &["--incident", &id, "--format", "pdf", "-o", "i.pdf"],
    );
    let text = squeeze(&pdf_text(&d.join("i.pdf")));
    in_order(&text, &notes.map(squeeze));
    in_order(
        &text,
        &["Statushistory", "Timeline", "Triggeringevents", "Notes"].map(String::from),
    );

    // The period summary now counts the acknowledgement and the resolution.
    let summary: Value = serde_json::from_slice(&export(d, &db, &["--format", "json"])).unwrap();
    assert_eq!(summary["summary"]["acknowledged"], 1);
    assert!(summary["summary"]["mean_time_to_resolve"]["seconds"].is_number());

    let output = siren(d)
        .arg("--db")
        .arg(&db)
        .args(["report", "export", "--incident", "999999", "--format", "md"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&output.stderr).contains("incident 999999 not found"));
}

#[test]
fn user_templates_are_used_and_broken_ones_write_nothing() {
    let Some(db) = corpus_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("custom.html"),
        "<h1>ACME SOC {{ report.title }}</h1>\n{% for i in incidents %}<p>{{ i.id }}: {{ i.title }}</p>\n{% endfor %}<em>{{ \"<x>\" }}</em>\n",
    )
    .unwrap();
    export(
        d,
        &db,
        &[
            "--format",
            "html",
            "--template",
            "custom.html",
            "-o",
            "c.html",
        ],
    );
    let html = std::fs::read_to_string(d.join("c.html")).unwrap();
    assert!(
        html.starts_with("<h1>ACME SOC Incident summary</h1>"),
        "{html:.200}"
    );
    assert!(html.contains("<em>&lt;x&gt;</em>"), "auto-escaped");
    assert!(html.matches("<p>").count() >= 20);

    // A template folder in the configuration replaces the built-in Markdown summary.
    std::fs::create_dir(d.join("tpl")).unwrap();
    std::fs::write(d.join("tpl/period.md"), "TOTAL {{ summary.total }}\n").unwrap();
    std::fs::write(d.join("siren.yaml"), "report:\n  templates: tpl\n").unwrap();
    let md = String::from_utf8(export(d, &db, &["--format", "md"])).unwrap();
    assert!(md.starts_with("TOTAL "), "{md}");
    std::fs::remove_file(d.join("siren.yaml")).unwrap();

    let before = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    // A syntax error on line 3, and an error while rendering on line 2.
    std::fs::write(
        d.join("broken.html"),
        "<h1>{{ report.title }}</h1>\n<p>fine</p>\n{% for i in incidents %}{{ i.id }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("failing.md"),
        "# {{ report.title }}\n{% for i in incidents %}{{ i.id + \"x\" }}{% endfor %}\n",
    )
    .unwrap();
    std::fs::write(d.join("kept.md"), "the previous report").unwrap();
    for (template, format, target, line) in [
        ("broken.html", "html", "out.html", "line 3"),
        ("failing.md", "md", "kept.md", "line 2"),
    ] {
        let files = before(d);
        let output = siren(d)
            .arg("--db")
            .arg(&db)
            .args([
                "report",
                "export",
                "--format",
                format,
                "--template",
                template,
                "-o",
                target,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{stderr}");
        assert!(
            stderr.contains(template) && stderr.contains(line),
            "{stderr}"
        );
        assert_eq!(before(d), files, "no file written or left behind");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("kept.md")).unwrap(),
        "the previous report"
    );
}

/// Names in the corpus's incidents and in one incident's triggering events.
fn names(report: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |v: &Value| {
        if let Some(s) = v.as_str()
            && s.len() >= 4
            && s != "unknown host"
        {
            names.insert(s.to_owned());
        }
    };
    for incident in report["incidents"].as_array().unwrap() {
        for key in ["hosts", "users", "ips"] {
            incident[key].as_array().unwrap().iter().for_each(&mut add);
        }
        for event in incident["events"].as_array().into_iter().flatten() {
            for key in ["host", "user", "src_ip", "dst_ip"] {
                add(&event[key]);
            }
        }
    }
    names
}

fn contains_word(text: &str, word: &str) -> bool {
    let lower = text.to_lowercase();
    let word = word.to_lowercase();
    lower.match_indices(&word).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

#[test]
fn redaction_hides_names_in_every_format() {
    let Some(db) = corpus_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain: Value = serde_json::from_slice(&export(d, &db, &["--format", "json"])).unwrap();
    // The incident with the most assets, with its events, adds event-level names.
    let busiest = plain["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|i| i["users"].as_array().unwrap().len() + i["ips"].as_array().unwrap().len())
        .unwrap()["id"]
        .to_string();
    let detail: Value = serde_json::from_slice(&export(
        d,
        &db,
        &["--incident", &busiest, "--format", "json"],
    ))
    .unwrap();
    let mut hidden = names(&plain);
    hidden.extend(names(&detail));
    assert!(
        hidden.len() >= 10,
        "the corpus names hosts, users and addresses: {hidden:?}"
    );

    let redact = ["--redact", "users,ips,hosts"];
    for scope in [vec![], vec!["--incident", busiest.as_str()]] {
        let mut outputs = Vec::new();
        for format in ["json", "csv", "md", "html"] {
            let mut args = vec!["--format", format];
            args.extend(&redact);
            args.extend(&scope);
            outputs.push((format, String::from_utf8(export(d, &db, &args)).unwrap()));
        }
        let mut args = vec!["--format", "pdf", "-o", "red.pdf"];
        args.extend(&redact);
        args.extend(&scope);
        export(d, &db, &args);
        outputs.push(("pdf", pdf_text(&d.join("red.pdf"))));
        for (format, text) in &outputs {
            for name in &hidden {
                assert!(
                    !contains_word(text, name),
                    "{format} report ({scope:?}) still shows {name:?}"
                );
            }
            assert!(text.contains("host-1"), "{format}: pseudonyms shown");
        }
        let json: Value = serde_json::from_str(&outputs[0].1).unwrap();
        validate(&schema(), &json);
        assert_eq!(
            json["redacted"],
            serde_json::json!(["users", "ips", "hosts"])
        );
        assert_eq!(
            json["incidents"].as_array().unwrap().len(),
            if scope.is_empty() {
                plain["incidents"].as_array().unwrap().len()
            } else {
                1
            }
        );
    }
}

/// The server offers the same reports: tenant-scoped, for readers, as downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_offers_the_same_reports_for_download() {
    use siren_core::user::Role;
    let Some(corpus) = corpus_db() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = copy_db(dir.path()).unwrap();
    let reference: Value = serde_json::from_slice(&export(
        dir.path(),
        &corpus,
        &["--format", "json", "--redact", "users"],
    ))
    .unwrap();
    let server = crate::server::start(
        &format!("sqlite://{}", db.display()),
        None,
        crate::server::config(),
    )
    .await;
    let viewer = crate::server::add_token(&server.store, "default", Role::Viewer, false).await;
    let agent = crate::server::add_token(&server.store, "default", Role::Agent, false).await;
    let stranger = crate::server::add_token(&server.store, "globex", Role::Admin, false).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| http.get(server.at(path)).bearer_auth(token).send();

    // JSON: the incidents of the CLI's report, redacted alike.
    let response = get("/api/v1/reports/summary?format=json&redact=users", &viewer)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"siren-summary-")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    let json: Value = response.json().await.unwrap();
    validate(&schema(), &json);
    let ids = |report: &Value| -> BTreeSet<i64> {
        report["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&json), ids(&reference));
    assert_eq!(json["redacted"], json!(["users"]));
    assert_eq!(names(&json), names(&reference));

    // PDF (the default format): every incident's title, read back, redacted alike.
    let response = get("/api/v1/reports/summary?redact=users", &viewer)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = dir.path().join("summary.pdf");
    std::fs::write(&pdf, response.bytes().await.unwrap()).unwrap();
    let text = squeeze(&pdf_text(&pdf));
    for incident in reference["incidents"].as_array().unwrap() {
        let title = squeeze(incident["title"].as_str().unwrap());
        assert!(text.contains(&title), "{title} missing from the PDF");
    }

    // One incident, in Markdown.
    let first = reference["incidents"][0].clone();
    let id = first["id"].as_i64().unwrap();
    let response = get(
        &format!("/api/v1/reports/incidents/{id}?format=md"),
        &viewer,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let markdown = response.text().await.unwrap();
    assert!(
        md_unescape(&markdown).contains(first["title"].as_str().unwrap()),
        "{markdown}"
    );

    // Another tenant sees neither the incident nor, in its summary, any of them.
    let response = get(
        &format!("/api/v1/reports/incidents/{id}?format=json"),
        &stranger,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let theirs: Value = get("/api/v1/reports/summary?format=json", &stranger)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["incidents"], json!([]));

    // Agents send events only; bad parameters are named.
    let response = get("/api/v1/reports/summary", &agent).await.unwrap();
    assert_eq!(response.status(), 403);
    for (query, expected) in [
        ("format=docx", "unknown report format 'docx'"),
        ("redact=passwords", "redact:"),
        ("since=yesterday", "since"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since must be before until",
        ),
    ] {
        let response = get(&format!("/api/v1/reports/summary?{query}"), &viewer)
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
}

/// A report without what differs between two databases of the same data: ids, the times of
/// writing and of the analyst's work (not of the events), and the order of an event's fields
/// (PostgreSQL's `jsonb` keeps its own).
fn comparable(report: &Value) -> Value {
    let mut report = report.clone();
    for key in ["generated_at", "since", "title"] {
        report[key] = Value::Null;
    }
    for key in ["mean_time_to_acknowledge", "mean_time_to_resolve"] {
        report["summary"][key] = Value::Null;
    }
    if let Some(incidents) = report["incidents"].as_array_mut() {
        for incident in incidents.iter_mut() {
            for key in [
                "id",
                "created_at",
                "updated_at",
                "acknowledged_at",
                "resolved_at",
            ] {
                if incident.get(key).is_some() {
                    incident[key] = Value::Null;
                }
            }
            for list in ["timeline", "notes", "status_history"] {
                if let Some(entries) = incident[list].as_array_mut() {
                    for entry in entries.iter_mut() {
                        entry["at"] = Value::Null;
                    }
                }
            }
            if let Some(events) = incident["events"].as_array_mut() {
                for event in events.iter_mut() {
                    if let Some(fields) = event["fields"].as_array_mut() {
                        fields.sort_by_key(|field| field.to_string());
                    }
                }
            }
        }
        incidents.sort_by_key(|incident| incident.to_string());
    }
    report
}

/// The same corpus ingested into PostgreSQL gives the same reports as on SQLite: the period
/// summary (counts and every incident), and an incident report after the same analyst work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_the_same_on_postgresql() {
    let Some(sqlite) = corpus_db() else { return };
    let Some(postgres) = crate::support::fresh_postgres_database().await else {
        return;
    };
    let shared = shared_dir("reports on PostgreSQL").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = copy_db(d).unwrap_or(sqlite);
    let output = siren(d)
        .args(["--db", &postgres, "ingest", "--quiet", "--format", "json"])
        .arg(shared.join("corpus/evtx"))
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 65)),
        "ingest into PostgreSQL failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let postgres = PathBuf::from(postgres);
    let period = |db: &Path| -> Value {
        serde_json::from_slice(&export(d, db, &["--format", "json", "--since", "3650d"])).unwrap()
    };
    let (on_sqlite, on_postgres) = (period(&sqlite), period(&postgres));
    validate(&schema(), &on_postgres);
    assert!(on_postgres["incidents"].as_array().unwrap().len() >= 20);
    let differences = json_differences(&comparable(&on_postgres), &comparable(&on_sqlite), 20);
    assert!(
        differences.is_empty(),
        "the period reports differ (PostgreSQL ≠ SQLite):\n{}",
        differences.join("\n")
    );

    // The same work on the same incident (found by its title and key), then its report.
    let first = &on_sqlite["incidents"][0];
    let id_in = |report: &Value| -> String {
        report["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == first["title"] && i["group_key"] == first["group_key"])
            .expect("the incident is in both")["id"]
            .to_string()
    };
    let mut reports = Vec::new();
    for (db, id) in [
        (&sqlite, id_in(&on_sqlite)),
        (&postgres, id_in(&on_postgres)),
    ] {
        for args in [
            vec![
                "incidents",
                "note",
                &id,
                "Looked at <the host> & its logons",
            ],
            vec!["incidents", "status", &id, "acknowledged"],
            vec![
                "incidents",
                "status",
                &id,
                "resolved",
                "--resolution",
                "benign",
            ],
        ] {
            let output = siren(d).arg("--db").arg(db).args(&args).output().unwrap();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: Value =
            serde_json::from_slice(&export(d, db, &["--format", "json", "--incident", &id]))
                .unwrap();
        validate(&schema(), &report);
        reports.push(comparable(&report));
    }
    assert_eq!(reports[0]["incidents"][0]["status"], "resolved");
    let differences = json_differences(&reports[0], &reports[1], 20);
    assert!(
        differences.is_empty(),
        "the incident reports differ (SQLite ≠ PostgreSQL):\n{}",
        differences.join("\n")
    );
}
