//! Flattening of nested event documents into [`Fields`] that Sigma rules can address by name.
//!
//! Three shapes are recognised:
//! - **Windows events as JSON**, the shape `evtx_dump` and the EVTX reader produce
//!   (`{"Event": {"System": …, "EventData": …}}`). `System` children become `EventID`,
//!   `Channel`, `Computer`…, element attributes become `Element_Attribute` (`Provider_Name`,
//!   `Execution_ProcessID`, `Security_UserID`), `TimeCreated` is its `SystemTime`, and every
//!   `EventData` / `UserData` leaf keeps its own name (`TargetUserName`, `CommandLine`).
//!   Attributes may be inline (`#attributes`) or separate (`Provider_attributes`).
//! - **Winlogbeat / ECS** documents (`{"winlog": {"event_data": …}}`): the `winlog` fields get
//!   their Windows names, everything else keeps its dotted ECS path (`host.name`).
//! - **Anything else** is flattened to dotted paths (`process.parent.name`).
//!
//! A leaf whose name is already taken keeps its full dotted path instead, so nothing is lost.

use serde_json::{Map, Value};

use crate::event::Fields;

pub use super::flatten_stream::flatten_json_slice;

/// Flattens one JSON document into fields. Fails only when the document is not an object.
pub fn flatten(value: Value) -> Result<Fields, String> {
    let Value::Object(mut object) = value else {
        return Err(format!("expected a JSON object, found {}", kind(&value)));
    };
    let is_windows =
        matches!(object.get("Event"), Some(Value::Object(e)) if e.contains_key("System"));
    if is_windows && let Some(Value::Object(event)) = object.remove("Event") {
        let mut out = Fields::default();
        windows_event(event, &mut out);
        // Anything next to `Event` (an export's own metadata) is kept as dotted paths.
        for (key, value) in object {
            dotted(&key, value, &mut out);
        }
        return Ok(out);
    }
    if matches!(object.get("winlog"), Some(Value::Object(_))) {
        return Ok(winlogbeat(object));
    }
    let mut out = Fields::default();
    for (key, value) in object {
        dotted(&key, value, &mut out);
    }
    Ok(out)
}

/// The JSON type of a value, in words.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Flattens the content of a Windows `Event` element.
fn windows_event(event: Map<String, Value>, out: &mut Fields) {
    for (key, value) in event {
        match key.as_str() {
            "#attributes" | "Event_attributes" => {}
            "System" => system(value, out),
            _ => leaves(&key, &|| key.clone(), true, value, out),
        }
    }
}

/// Flattens `System`: children by name, attributes as `Element_Attribute`.
fn system(value: Value, out: &mut Fields) {
    let Value::Object(system) = value else {
        insert(out, "System", &|| "System".to_owned(), value);
        return;
    };
    for (name, value) in system {
        if let Some(element) = name.strip_suffix("_attributes") {
            if let Value::Object(attributes) = value {
                for (attribute, value) in attributes {
                    system_attribute(element, &attribute, value, out);
                }
            }
            continue;
        }
        match value {
            Value::Object(mut element) => {
                if let Some(Value::Object(attributes)) = element.remove("#attributes") {
                    for (attribute, value) in attributes {
                        system_attribute(&name, &attribute, value, out);
                    }
                }
                if let Some(text) = element.remove("#text") {
                    insert(out, &name, &|| name.clone(), text);
                }
                for (child, value) in element {
                    let path = || format!("System.{name}.{child}");
                    leaves(&child, &path, false, value, out);
                }
            }
            // An empty element (`<Keywords/>`) renders as null: keep the name, it exists.
            value => insert(out, &name, &|| name.clone(), value),
        }
    }
}

/// One attribute of a `System` element.
fn system_attribute(element: &str, attribute: &str, value: Value, out: &mut Fields) {
    if attribute.starts_with("xmlns") {
        return;
    }
    let name = if element == "TimeCreated" && attribute == "SystemTime" {
        "TimeCreated".to_owned()
    } else {
        format!("{element}_{attribute}")
    };
    insert(
        out,
        &name,
        &|| format!("System.{element}.{attribute}"),
        value,
    );
}

/// A dotted path, built only when a name is already taken (the rare case): flattening an
/// event allocates no path strings otherwise.
type LazyPath<'a> = &'a dyn Fn() -> String;

/// Flattens `EventData`, `UserData` and other sections: every leaf under its own name.
/// `top` is true for a section itself (an empty section holds nothing to keep).
fn leaves(name: &str, path: LazyPath<'_>, top: bool, value: Value, out: &mut Fields) {
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                match key.as_str() {
                    "#attributes" => {
                        if let Value::Object(attributes) = value {
                            for (attribute, value) in attributes {
                                if !attribute.starts_with("xmlns") {
                                    let attr_path = || format!("{}.{attribute}", path());
                                    insert(out, &format!("{name}_{attribute}"), &attr_path, value);
                                }
                            }
                        }
                    }
                    "#text" => insert(out, name, path, value),
                    _ => {
                        if let Some(element) = key.strip_suffix("_attributes") {
                            if let Value::Object(attributes) = value {
                                for (attribute, value) in attributes {
                                    if !attribute.starts_with("xmlns") {
                                        let attr_path =
                                            || format!("{}.{element}.{attribute}", path());
                                        let attr_name = format!("{element}_{attribute}");
                                        insert(out, &attr_name, &attr_path, value);
                                    }
                                }
                            }
                            continue;
                        }
                        let child_path = || format!("{}.{key}", path());
                        leaves(&key, &child_path, false, value, out);
                    }
                }
            }
        }
        // A section without data (`<EventData/>`) holds nothing to keep.
        Value::Null if top => {}
        value => insert(out, name, path, value),
    }
}

/// Inserts `value` under `name`, or under its full `path` when `name` is taken.
fn insert(out: &mut Fields, name: &str, path: LazyPath<'_>, value: Value) {
    if !out.contains_key(name) {
        out.insert(name.to_owned(), value);
        return;
    }
    let path = path();
    if !out.contains_key(&path) {
        out.insert(path, value);
    } else {
        // The same path twice (repeated elements): keep every value, as an array.
        match out.get_mut(&path) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {}
        }
    }
}

/// Flattens nested objects into dotted keys; arrays and scalars are kept as values.
fn dotted(prefix: &str, value: Value, out: &mut Fields) {
    match value {
        Value::Object(object) if !object.is_empty() => {
            for (key, value) in object {
                dotted(&format!("{prefix}.{key}"), value, out);
            }
        }
        value => {
            out.insert(prefix.to_owned(), value);
        }
    }
}

/// Flattens a Winlogbeat / ECS document.
fn winlogbeat(mut object: Map<String, Value>) -> Fields {
    let mut out = Fields::default();
    let Some(Value::Object(mut winlog)) = object.remove("winlog") else {
        return out;
    };
    // The Windows System fields first, under the names Sigma rules use.
    const RENAMES: [(&str, &str); 8] = [
        ("event_id", "EventID"),
        ("channel", "Channel"),
        ("computer_name", "Computer"),
        ("provider_name", "Provider_Name"),
        ("provider_guid", "Provider_Guid"),
        ("record_id", "EventRecordID"),
        ("version", "Version"),
        ("time_created", "TimeCreated"),
    ];
    for (from, to) in RENAMES {
        if let Some(value) = winlog.remove(from) {
            out.insert(to.to_owned(), numeric_if_integer(value, to));
        }
    }
    if !out.contains_key("TimeCreated") {
        if let Some(value) = object.get("@timestamp") {
            out.insert("TimeCreated".to_owned(), value.clone());
        }
    }
    if let Some(Value::Object(mut process)) = winlog.remove("process") {
        if let Some(pid) = process.remove("pid") {
            out.insert("Execution_ProcessID".to_owned(), pid);
        }
        if let Some(Value::Object(mut thread)) = process.remove("thread") {
            if let Some(tid) = thread.remove("id") {
                out.insert("Execution_ThreadID".to_owned(), tid);
            }
            dotted("winlog.process.thread", Value::Object(thread), &mut out);
        }
        dotted("winlog.process", Value::Object(process), &mut out);
    }
    for section in ["event_data", "user_data"] {
        if let Some(Value::Object(data)) = winlog.remove(section) {
            for (key, value) in data {
                let path = || format!("winlog.{section}.{key}");
                leaves(&key, &path, false, value, &mut out);
            }
        }
    }
    if let Some(Value::Object(mut user)) = winlog.remove("user") {
        if let Some(sid) = user.remove("identifier") {
            out.insert("Security_UserID".to_owned(), sid);
        }
        dotted("winlog.user", Value::Object(user), &mut out);
    }
    for (key, value) in winlog {
        dotted(&format!("winlog.{key}"), value, &mut out);
    }
    for (key, value) in object {
        dotted(&key, value, &mut out);
    }
    out
}

/// Winlogbeat writes `event_id` as a string; the EVTX reader has numbers. Use numbers for the
/// integer System fields so the same event compares equal whichever way it arrived.
fn numeric_if_integer(value: Value, name: &str) -> Value {
    match (&value, name) {
        (Value::String(s), "EventID" | "EventRecordID" | "Version") => {
            s.parse::<u64>().map(Value::from).unwrap_or(value)
        }
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn windows_event_fields_get_their_sigma_names() {
        let doc = json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{5484}"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4625},
                "TimeCreated": {"#attributes": {"SystemTime": "2021-04-22T10:09:34.123Z"}},
                "EventRecordID": 42,
                "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
                "Channel": "Security",
                "Computer": "dc01.corp",
                "Security": null
            },
            "EventData": {"TargetUserName": "bob", "IpAddress": "10.0.0.5"},
            "UserData": {"LogFileCleared": {"#attributes": {"xmlns": "x"}, "SubjectUserName": "eve", "TargetUserName": "other"}}
        }});
        let fields = flatten(doc).unwrap();
        assert_eq!(fields["EventID"], json!(4625));
        assert_eq!(fields["EventID_Qualifiers"], json!(0));
        assert_eq!(
            fields["Provider_Name"],
            json!("Microsoft-Windows-Security-Auditing")
        );
        assert_eq!(fields["TimeCreated"], json!("2021-04-22T10:09:34.123Z"));
        assert_eq!(fields["Execution_ProcessID"], json!(4));
        assert_eq!(fields["Channel"], json!("Security"));
        assert_eq!(fields["TargetUserName"], json!("bob"));
        assert_eq!(fields["SubjectUserName"], json!("eve"));
        // The second TargetUserName is not lost: it keeps its path.
        assert_eq!(
            fields["UserData.LogFileCleared.TargetUserName"],
            json!("other")
        );
        assert!(fields.contains_key("Security"));
        assert!(!fields.keys().any(|k| k.contains("xmlns")));
    }

    #[test]
    fn separate_attributes_flatten_the_same() {
        let doc = json!({"Event": {"System": {
            "Provider_attributes": {"Name": "P"},
            "EventID": 1,
            "TimeCreated_attributes": {"SystemTime": "2021-01-01T00:00:00Z"}
        }, "EventData": {"Image": "C:\\x.exe"}}});
        let fields = flatten(doc).unwrap();
        assert_eq!(fields["Provider_Name"], json!("P"));
        assert_eq!(fields["TimeCreated"], json!("2021-01-01T00:00:00Z"));
        assert_eq!(fields["Image"], json!("C:\\x.exe"));
    }

    #[test]
    fn winlogbeat_documents_get_windows_names() {
        let doc = json!({"@timestamp": "2021-01-01T00:00:00Z", "host": {"name": "ws1"},
            "winlog": {"event_id": "4688", "channel": "Security", "computer_name": "ws1.corp",
                       "record_id": 7, "event_data": {"NewProcessName": "C:\\a.exe"},
                       "process": {"pid": 4, "thread": {"id": 9}}}});
        let fields = flatten(doc).unwrap();
        assert_eq!(fields["EventID"], json!(4688));
        assert_eq!(fields["Computer"], json!("ws1.corp"));
        assert_eq!(fields["NewProcessName"], json!("C:\\a.exe"));
        assert_eq!(fields["Execution_ThreadID"], json!(9));
        assert_eq!(fields["host.name"], json!("ws1"));
        assert_eq!(fields["TimeCreated"], json!("2021-01-01T00:00:00Z"));
    }

    #[test]
    fn flat_objects_use_dotted_paths() {
        let fields = flatten(json!({"a": {"b": 1, "c": [1, 2]}, "d": {}})).unwrap();
        assert_eq!(fields["a.b"], json!(1));
        assert_eq!(fields["a.c"], json!([1, 2]));
        assert_eq!(fields["d"], json!({}));
        assert!(flatten(json!([1])).is_err());
    }
}
