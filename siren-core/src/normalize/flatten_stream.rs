//! Flattening of a Windows event's JSON text straight into [`Fields`], without first building
//! the document as a tree of `serde_json::Value`s.
//!
//! This is the EVTX reader's hot path: the `evtx` crate renders each record as JSON text, and
//! every leaf of that text lands in the flat field map as it is parsed. The result is the one
//! [`flatten`](super::flatten::flatten) gives for the same document; whenever the text leaves
//! the shape where that is certain (a name taken twice, duplicate keys, anything but
//! `{"Event": {"System": …, …}}`), the text is parsed again the general way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::flatten::flatten;
use crate::event::Fields;

/// Flattens one JSON document, as [`flatten`] would flatten it once parsed.
pub fn flatten_json_slice(text: &[u8]) -> Result<Fields, String> {
    if let Some(fields) = windows_fast(text) {
        return Ok(fields);
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    flatten(value)
}

/// The fast path: `Some` when the text is a Windows event whose flattening needed none of the
/// general path's rare cases.
fn windows_fast(text: &[u8]) -> Option<Fields> {
    // One UTF-8 check of the whole text (fast on ASCII) rather than one per string, as
    // parsing from bytes would do.
    let text = std::str::from_utf8(text).ok()?;
    let mut state = State {
        // Room for a typical event's fields, so the map does not grow on the way.
        out: Fields::with_capacity_and_hasher(32, Default::default()),
        bailed: false,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let done = Root(&mut state).deserialize(&mut deserializer).is_ok()
        && deserializer.end().is_ok()
        && !state.bailed;
    done.then_some(state.out)
}

/// The fields made so far, and whether the fast path had to give up.
struct State {
    out: Fields,
    bailed: bool,
}

impl State {
    /// Gives up: the caller takes the general path.
    fn bail<E: de::Error>(&mut self) -> E {
        self.bailed = true;
        E::custom("not the common shape")
    }

    /// Inserts a field whose name must be free (a taken name is the general path's case).
    fn insert<E: de::Error>(&mut self, name: Cow<'_, str>, value: Value) -> Result<(), E> {
        // One hash of the name, whether it is free or taken.
        match self.out.entry(name.into_owned()) {
            indexmap::map::Entry::Vacant(slot) => {
                slot.insert(value);
                Ok(())
            }
            indexmap::map::Entry::Occupied(_) => Err(self.bail()),
        }
    }
}

/// The names of one object's keys whose values were objects, to notice a repeated one (the
/// general path keeps only the last of repeated keys). Scalar keys need no record: a repeat
/// takes a name twice, which bails anyway.
#[derive(Default)]
struct SeenObjects {
    hashes: [u64; 16],
    len: usize,
}

impl SeenObjects {
    /// Records `key`; false when it was seen before or there is no more room.
    fn first_time(&mut self, key: &str) -> bool {
        // FNV-1a: a collision only sends the event down the general path.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        if self.hashes[..self.len].contains(&hash) || self.len == self.hashes.len() {
            return false;
        }
        self.hashes[self.len] = hash;
        self.len += 1;
        true
    }
}

/// A key, borrowed from the text when it holds no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Whether a value was an object (for [`SeenObjects`]).
type WasObject = bool;

/// The document: exactly one key, `Event`.
struct Root<'s>(&'s mut State);

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Windows event")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match map.next_key::<Key<'de>>()? {
            Some(Key(key)) if key == "Event" => {}
            _ => return Err(self.0.bail()),
        }
        map.next_value_seed(EventElement(&mut *self.0))?;
        if map.next_key::<Key<'de>>()?.is_some() {
            return Err(self.0.bail());
        }
        Ok(())
    }
}

/// The content of `Event`: `System` and the data sections.
struct EventElement<'s>(&'s mut State);

impl<'de> DeserializeSeed<'de> for EventElement<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventElement<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut seen = SeenObjects::default();
        let mut system = false;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let was_object = match &*key {
                "#attributes" | "Event_attributes" => {
                    map.next_value::<IgnoredAny>()?;
                    false
                }
                "System" => {
                    system = true;
                    map.next_value_seed(System(&mut *state))?;
                    true
                }
                _ => map.next_value_seed(Leaves {
                    state: &mut *state,
                    name: &key,
                    top: true,
                })?,
            };
            if was_object && !seen.first_time(&key) {
                return Err(state.bail());
            }
        }
        // Without `System` the document is not flattened as a Windows event.
        if !system {
            return Err(state.bail());
        }
        Ok(())
    }
}

/// `System`: children by name, attributes as `Element_Attribute`, `TimeCreated` its time.
struct System<'s>(&'s mut State);

impl<'de> DeserializeSeed<'de> for System<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for System<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a System object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut seen = SeenObjects::default();
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            let was_object = if let Some(element) = name.strip_suffix("_attributes") {
                map.next_value_seed(Attributes {
                    state: &mut *state,
                    element,
                    system: true,
                })?
            } else {
                map.next_value_seed(SystemElement {
                    state: &mut *state,
                    name: &name,
                })?
            };
            if was_object && !seen.first_time(&name) {
                return Err(state.bail());
            }
        }
        Ok(())
    }
    // `System` as anything but an object is the general path's case.
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        Err(self.0.bail())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.0.bail())
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<(), E> {
        Err(self.0.bail())
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<(), E> {
        Err(self.0.bail())
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<(), E> {
        Err(self.0.bail())
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<(), E> {
        Err(self.0.bail())
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<(), E> {
        Err(self.0.bail())
    }
}

/// An attribute object: `Element_attributes` or `#attributes`. Inserts every attribute but
/// the namespace declarations as `Element_Attribute` (in `System`, `TimeCreated`'s
/// `SystemTime` is `TimeCreated`). Anything but an object is dropped, as the general path does.
struct Attributes<'s, 'n> {
    state: &'s mut State,
    element: &'n str,
    system: bool,
}

impl<'de> DeserializeSeed<'de> for Attributes<'_, '_> {
    type Value = WasObject;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WasObject, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Attributes<'_, '_> {
    type Value = WasObject;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WasObject, A::Error> {
        while let Some(Key(attribute)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value_seed(Scalar)?;
            if attribute.starts_with("xmlns") {
                continue;
            }
            let name = if self.system && self.element == "TimeCreated" && attribute == "SystemTime"
            {
                Cow::Borrowed("TimeCreated")
            } else {
                // Concatenated by hand: `format!` costs several times more, once per attribute.
                let mut name = String::with_capacity(self.element.len() + 1 + attribute.len());
                name.push_str(self.element);
                name.push('_');
                name.push_str(&attribute);
                Cow::Owned(name)
            };
            self.state.insert(name, value)?;
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WasObject, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<WasObject, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<WasObject, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<WasObject, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<WasObject, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<WasObject, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<WasObject, E> {
        Ok(false)
    }
}

/// One child of `System`: a value, or an object of `#attributes` and `#text` (its
/// attributes first, then its text, whatever their order in the text).
struct SystemElement<'s, 'n> {
    state: &'s mut State,
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for SystemElement<'_, '_> {
    type Value = WasObject;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WasObject, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SystemElement<'_, '_> {
    type Value = WasObject;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a System element")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WasObject, A::Error> {
        let (mut attributes, mut text) = (false, None);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match &*key {
                "#attributes" if !attributes => {
                    attributes = true;
                    map.next_value_seed(Attributes {
                        state: &mut *self.state,
                        element: self.name,
                        system: true,
                    })?;
                }
                "#text" if text.is_none() => text = Some(map.next_value_seed(Scalar)?),
                // Other children, or a repeated key: the general path's case.
                _ => return Err(self.state.bail()),
            }
        }
        if let Some(text) = text {
            self.state.insert(Cow::Borrowed(self.name), text)?;
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WasObject, A::Error> {
        let value = Scalar.visit_seq(seq)?;
        self.state.insert(Cow::Borrowed(self.name), value)?;
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<WasObject, E> {
        self.state.insert(Cow::Borrowed(self.name), Value::Null)?;
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<WasObject, E> {
        self.state
            .insert(Cow::Borrowed(self.name), Value::Bool(v))?;
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WasObject, E> {
        self.state
            .insert(Cow::Borrowed(self.name), Value::from(v))?;
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WasObject, E> {
        self.state
            .insert(Cow::Borrowed(self.name), Value::from(v))?;
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WasObject, E> {
        self.state.insert(Cow::Borrowed(self.name), float(v))?;
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<WasObject, E> {
        self.state
            .insert(Cow::Borrowed(self.name), Value::String(v.to_owned()))?;
        Ok(false)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<WasObject, E> {
        self.state
            .insert(Cow::Borrowed(self.name), Value::String(v))?;
        Ok(false)
    }
}

/// `EventData`, `UserData` and other sections: every leaf under its own name. `top` is true
/// for a section itself (an empty section holds nothing to keep).
struct Leaves<'s, 'n> {
    state: &'s mut State,
    name: &'n str,
    top: bool,
}

impl Leaves<'_, '_> {
    fn leaf<E: de::Error>(self, value: Value) -> Result<WasObject, E> {
        self.state.insert(Cow::Borrowed(self.name), value)?;
        Ok(false)
    }
}

impl<'de> DeserializeSeed<'de> for Leaves<'_, '_> {
    type Value = WasObject;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<WasObject, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Leaves<'_, '_> {
    type Value = WasObject;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event section")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WasObject, A::Error> {
        let state = self.state;
        let mut seen = SeenObjects::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let was_object = match &*key {
                "#attributes" => map.next_value_seed(Attributes {
                    state: &mut *state,
                    element: self.name,
                    system: false,
                })?,
                "#text" => {
                    let value = map.next_value_seed(Scalar)?;
                    state.insert(Cow::Borrowed(self.name), value)?;
                    false
                }
                _ => match key.strip_suffix("_attributes") {
                    Some(element) => map.next_value_seed(Attributes {
                        state: &mut *state,
                        element,
                        system: false,
                    })?,
                    None => map.next_value_seed(Leaves {
                        state: &mut *state,
                        name: &key,
                        top: false,
                    })?,
                },
            };
            if was_object && !seen.first_time(&key) {
                return Err(state.bail());
            }
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WasObject, A::Error> {
        let value = Scalar.visit_seq(seq)?;
        self.leaf(value)
    }
    fn visit_unit<E: de::Error>(self) -> Result<WasObject, E> {
        // A section without data (`<EventData/>`) holds nothing to keep.
        if self.top {
            return Ok(false);
        }
        self.leaf(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<WasObject, E> {
        self.leaf(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WasObject, E> {
        self.leaf(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WasObject, E> {
        self.leaf(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WasObject, E> {
        self.leaf(float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<WasObject, E> {
        self.leaf(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<WasObject, E> {
        self.leaf(Value::String(v))
    }
}

/// A number as `serde_json::Value` makes it (a non-finite float is null).
fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A value kept whole, as `serde_json::Value` parses it.
struct Scalar;

impl<'de> DeserializeSeed<'de> for Scalar {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        de::Deserialize::deserialize(deserializer)
    }
}

impl<'de> Visitor<'de> for Scalar {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fast path and the general path agree, and the fast path was taken (or not).
    fn agree(doc: &Value, fast: bool) {
        let text = serde_json::to_vec(doc).unwrap();
        assert_eq!(windows_fast(&text).is_some(), fast, "{doc}");
        let general = flatten(doc.clone()).unwrap();
        let streamed = flatten_json_slice(&text).unwrap();
        assert_eq!(
            serde_json::to_string(&streamed).unwrap(),
            serde_json::to_string(&general).unwrap(),
            "{doc}"
        );
    }

    #[test]
    fn windows_events_flatten_as_the_general_path_does() {
        let doc = json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{5484}"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4625},
                "TimeCreated": {"#attributes": {"SystemTime": "2021-04-22T10:09:34.123Z"}},
                "EventRecordID": 42,
                "Correlation": null,
                "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
                "Channel": "Security",
                "Computer": "dc01.corp",
                "Keywords": "0x8010000000000000",
                "Security": {"#attributes": {"UserID": "S-1-5-18"}}
            },
            "EventData": {"TargetUserName": "bob", "IpAddress": "10.0.0.5", "Ratio": 1.5,
                          "Binary": null, "List": [1, "a", {"b": null}], "Empty": {}},
            "UserData": {"LogFileCleared": {"#attributes": {"xmlns": "x"}, "SubjectUserName": "eve",
                         "Data_attributes": {"Name": "n"}, "Deep": {"#text": "t", "#attributes": {"k": 1}}}}
        }});
        agree(&doc, true);
        // Text before attributes, separate attributes.
        agree(
            &json!({"Event": {"System": {
                "Provider_attributes": {"Name": "P", "xmlns:x": "y"},
                "EventID": {"#text": 1, "#attributes": {"Qualifiers": ""}},
                "TimeCreated_attributes": {"SystemTime": "2021-01-01T00:00:00Z"}
            }, "EventData": null}}),
            true,
        );
    }

    #[test]
    fn rare_shapes_take_the_general_path() {
        for doc in [
            // A name taken twice.
            json!({"Event": {"System": {"Channel": "S"}, "EventData": {"A": 1},
                             "UserData": {"X": {"A": 2}}}}),
            // No System.
            json!({"Event": {"EventData": {"A": 1}}}),
            // Something beside Event.
            json!({"Event": {"System": {}}, "meta": {"a": 1}}),
            // A System element with children.
            json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "P"}, "Child": 1}}}}),
            // System that is not an object.
            json!({"Event": {"System": "x"}}),
            // Not an event at all.
            json!({"a": {"b": 1}}),
        ] {
            agree(&doc, false);
        }
        // Repeated keys: the general path keeps the last.
        let text = br#"{"Event": {"System": {"Channel": "S"}, "EventData": {"A": {"x": 1}, "A": {"y": 2}}}}"#;
        assert!(windows_fast(text).is_none());
        let fields = flatten_json_slice(text).unwrap();
        assert_eq!(fields.get("y"), Some(&json!(2)));
        assert!(fields.get("x").is_none());
        assert!(flatten_json_slice(b"[1]").is_err());
        assert!(flatten_json_slice(b"{\"Event\": ").is_err());
    }
}
