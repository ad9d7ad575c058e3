//! An event's element tree as the JSON value the `evtx` crate renders (`#attributes`,
//! `#text`, `Data` by name, numeric `System` values), so that it flattens like an EVTX record.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::element::Element;

/// Where an element sits, for the typing of `System` values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The `<Event>` element.
    Root,
    /// `<Event><System>`.
    System,
    /// A child of `System`.
    SystemChild,
    /// Anything else.
    Other,
}

/// `System` children whose text the `evtx` crate renders as a number.
const NUMERIC_SYSTEM_ELEMENTS: [&str; 6] = [
    "EventID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "EventRecordID",
];

/// The JSON value of an element, as the `evtx` crate renders it: `null` when empty, its text
/// when it has only text, otherwise an object of `#attributes`, `#text` and its children.
pub(super) fn element_value(element: &Element, role: Role) -> Value {
    let text = content_text(element);
    let numeric_text =
        role == Role::SystemChild && NUMERIC_SYSTEM_ELEMENTS.contains(&element.name.as_str());
    let attributes: Vec<&(String, String)> = element
        .attributes
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if element.children.is_empty() && attributes.is_empty() {
        if text.is_empty() {
            return Value::Null;
        }
        return scalar(text, numeric_text);
    }
    let mut object = Map::new();
    if !attributes.is_empty() {
        let mut values = Map::new();
        for (key, value) in attributes {
            let numeric = role == Role::SystemChild
                && (element.name == "Execution"
                    || (element.name == "EventID" && key == "Qualifiers"));
            values.insert(key.clone(), scalar(value, numeric));
        }
        object.insert("#attributes".to_owned(), Value::Object(values));
    }
    if !text.is_empty() {
        object.insert("#text".to_owned(), scalar(text, numeric_text));
    }
    let child_role = match role {
        Role::Root => None,
        Role::System => Some(Role::SystemChild),
        _ => Some(Role::Other),
    };
    members(
        element,
        child_role,
        is_data_container(&element.name),
        &mut object,
    );
    Value::Object(object)
}

fn is_data_container(name: &str) -> bool {
    name == "EventData" || name == "UserData"
}

/// An element's own text: as written for a leaf, trimmed when it also has children (the
/// indentation between them is no content).
fn content_text(element: &Element) -> &str {
    if element.children.is_empty() {
        &element.text
    } else {
        element.text.trim()
    }
}

/// Text as a JSON value: a number where the `evtx` crate has one, otherwise a string.
fn scalar(text: &str, numeric: bool) -> Value {
    if numeric {
        if let Ok(n) = text.trim().parse::<u64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.trim().parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(text.to_owned())
}

/// The children of `element` as members of `object`. In `EventData` / `UserData`, `<Data
/// Name="X">` becomes member `X` (a run of the same name an array), and unnamed `<Data>`
/// become one `"Data": {"#text": …}`. Repeated names get `_1`, `_2`… suffixes.
fn members(
    element: &Element,
    child_role: Option<Role>,
    container: bool,
    object: &mut Map<String, Value>,
) {
    let named = container
        && element
            .children
            .iter()
            .any(|c| c.name == "Data" && data_name(c).is_some());
    let mut positional_done = false;
    let mut name_counts: HashMap<&str, u32> = HashMap::new();
    let mut data_counts: HashMap<&str, u32> = HashMap::new();
    let mut skip = 0;
    for (index, child) in element.children.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if container && child.name == "Data" {
            if named {
                let Some(name) = data_name(child) else {
                    continue;
                };
                let run = 1 + element.children[index + 1..]
                    .iter()
                    .take_while(|c| c.name == "Data" && data_name(c) == Some(name))
                    .count();
                skip = run - 1;
                let key = suffixed(name, &mut data_counts);
                let value = if run == 1 {
                    data_value(child)
                } else {
                    Value::Array(
                        element.children[index..index + run]
                            .iter()
                            .map(data_value)
                            .collect(),
                    )
                };
                object.insert(key, value);
            } else if !positional_done {
                positional_done = true;
                let data: Vec<Value> = element
                    .children
                    .iter()
                    .filter(|c| c.name == "Data")
                    .map(data_value)
                    .collect();
                let value = if data.len() == 1 {
                    data.into_iter().next().unwrap_or(Value::Null)
                } else {
                    Value::Array(data)
                };
                object.insert(
                    "Data".to_owned(),
                    Value::Object(Map::from_iter([("#text".to_owned(), value)])),
                );
            }
            continue;
        }
        let key = suffixed(&child.name, &mut name_counts);
        let role = match child_role {
            Some(role) => role,
            None if child.name == "System" => Role::System,
            None => Role::Other,
        };
        object.insert(key, element_value(child, role));
    }
}

/// The non-empty `Name` attribute of a `<Data>` element.
fn data_name(element: &Element) -> Option<&str> {
    element
        .attributes
        .iter()
        .find(|(key, value)| key == "Name" && !value.is_empty())
        .map(|(_, value)| value.as_str())
}

/// `name` the first time, then `name_1`, `name_2`…
fn suffixed<'a>(name: &'a str, counts: &mut HashMap<&'a str, u32>) -> String {
    let count = counts.entry(name).or_insert(0);
    *count += 1;
    match *count - 1 {
        0 => name.to_owned(),
        n => format!("{name}_{n}"),
    }
}

/// The value of one `<Data>`: `""` when empty, its text, or (nested elements) an object.
fn data_value(element: &Element) -> Value {
    let text = content_text(element);
    if element.children.is_empty() {
        return Value::String(text.to_owned());
    }
    let mut object = Map::new();
    if !text.is_empty() {
        object.insert("#text".to_owned(), Value::String(text.to_owned()));
    }
    members(element, Some(Role::Other), false, &mut object);
    Value::Object(object)
}
