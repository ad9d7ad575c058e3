//! The event being matched ([`Subject`]): its fields looked up once per event (Windows
//! names with spaces included), and its texts lower-cased once for every prefilter.

use serde_json::Value;

use super::value;
use crate::event::Fields;

/// One event being matched: its fields, and what was learnt about them on the way.
pub(super) struct Subject<'e> {
    pub(super) fields: &'e Fields,
    /// Whether some field names contain spaces (computed on the first miss).
    spaced: std::cell::Cell<Option<bool>>,
    /// Lower-cased copies of the event's texts, made once whichever prefilters scan them.
    lowered: std::cell::RefCell<Lowered>,
    /// The first fields rules' items looked up: the name's address and what was found.
    looked_up: std::cell::RefCell<LookedUp<'e>>,
}

/// Fields looked up by items, remembered by the address of their (shared) name.
type LookedUp<'e> = ([(usize, Option<&'e Value>); LOOKED_UP], usize);

/// How many looked-up fields an event remembers (more are looked up each time).
const LOOKED_UP: usize = 24;

/// Lower-cased copies of one event's longer texts, end to end, and where each one is.
#[derive(Default)]
struct Lowered {
    bytes: Vec<u8>,
    /// Per copied text: its address and length in the event, and where its copy starts.
    /// (Addresses identify texts only while the event is borrowed, as it is here.)
    spans: Vec<(usize, usize, usize)>,
    /// Where the event's texts joined by NULs start and end, once made.
    joined: Option<(usize, usize)>,
}

/// Appends `text` lower-cased (ASCII) to `out`: a copy, then lower-casing in place, which
/// compiles to wide instructions where a byte-by-byte map does not.
pub(crate) fn push_lower(out: &mut Vec<u8>, text: &[u8]) {
    let start = out.len();
    out.extend_from_slice(text);
    out[start..].make_ascii_lowercase();
}

/// Texts shorter than this are lower-cased again each time rather than looked up.
const LOWER_CACHED_MIN: usize = 24;

thread_local! {
    /// Per thread: the buffers of the last event's [`Lowered`], to reuse.
    static LOWERED: std::cell::RefCell<Lowered> = std::cell::RefCell::new(Lowered::default());
}

impl Drop for Subject<'_> {
    fn drop(&mut self) {
        let mut lowered = std::mem::take(self.lowered.get_mut());
        lowered.bytes.clear();
        lowered.spans.clear();
        lowered.joined = None;
        LOWERED.with(|l| *l.borrow_mut() = lowered);
    }
}

impl<'e> Subject<'e> {
    pub(super) fn new(fields: &'e Fields) -> Self {
        Self {
            fields,
            spaced: std::cell::Cell::new(None),
            lowered: std::cell::RefCell::new(
                LOWERED.with(|l| std::mem::take(&mut *l.borrow_mut())),
            ),
            looked_up: std::cell::RefCell::new(([(0, None); LOOKED_UP], 0)),
        }
    }

    /// Calls `f` with the lower-cased text of `value` (of each item, for a list).
    pub(super) fn with_lower(&self, value: &Value, f: &mut dyn FnMut(&[u8])) {
        match value {
            Value::String(text) if text.len() >= LOWER_CACHED_MIN => {
                let mut cache = self.lowered.borrow_mut();
                let key = (text.as_ptr() as usize, text.len());
                let start = match cache.spans.iter().find(|s| (s.0, s.1) == key) {
                    Some(&(_, _, start)) => start,
                    None => {
                        let start = cache.bytes.len();
                        push_lower(&mut cache.bytes, text.as_bytes());
                        cache.spans.push((key.0, key.1, start));
                        start
                    }
                };
                f(&cache.bytes[start..start + text.len()]);
            }
            Value::String(text) => {
                let mut short = [0u8; LOWER_CACHED_MIN];
                let short = &mut short[..text.len()];
                short.copy_from_slice(text.as_bytes());
                short.make_ascii_lowercase();
                f(short);
            }
            Value::Array(items) => {
                for item in items {
                    self.with_lower(item, f);
                }
            }
            // Numbers and booleans print in lower case already.
            v => {
                value::with_text(v, |text| f(text.as_bytes()));
            }
        }
    }

    /// Calls `f` with all the event's texts, lower-cased and joined by NULs (for keywords:
    /// their literals hold no NUL, so each occurrence lies within one text).
    pub(super) fn with_joined_lower(&self, f: &mut dyn FnMut(&[u8])) {
        let mut cache = self.lowered.borrow_mut();
        let (start, end) = match cache.joined {
            Some(range) => range,
            None => {
                let start = cache.bytes.len();
                for value in self.fields.values() {
                    let mut push = |text: &str| {
                        cache.bytes.extend_from_slice(text.as_bytes());
                        cache.bytes.push(0);
                    };
                    match value {
                        Value::Array(items) => {
                            for item in items {
                                value::with_text(item, &mut push);
                            }
                        }
                        v => {
                            value::with_text(v, &mut push);
                        }
                    }
                }
                cache.bytes[start..].make_ascii_lowercase();
                let range = (start, cache.bytes.len());
                cache.joined = Some(range);
                range
            }
        };
        f(&cache.bytes[start..end]);
    }

    /// Whether some of the event's field names contain spaces.
    pub(super) fn spaced(&self) -> bool {
        match self.spaced.get() {
            Some(s) => s,
            None => {
                let s = self.fields.keys().any(|k| k.contains(' '));
                self.spaced.set(Some(s));
                s
            }
        }
    }

    /// The field an item names, as [`Subject::get`] finds it, looked up once per event:
    /// items naming the same field share the name (see `Detection::share_field_names`), so
    /// its address identifies it. `name` must live as long as the subject (the rule set's
    /// names do).
    pub(super) fn get_item(&self, name: &std::sync::Arc<str>) -> Option<&'e Value> {
        let address = name.as_ptr() as usize;
        let mut memo = self.looked_up.borrow_mut();
        let (entries, len) = &mut *memo;
        if let Some(&(_, value)) = entries[..*len].iter().find(|(a, _)| *a == address) {
            return value;
        }
        let value = self.get(name);
        if let Some(slot) = entries.get_mut(*len) {
            *slot = (address, value);
            *len += 1;
        }
        value
    }

    /// The field's value. Windows events name some fields with spaces (`Threat Name`), which
    /// Sigma rules write without (`ThreatName`): a miss falls back to that comparison.
    pub(super) fn get(&self, name: &str) -> Option<&'e Value> {
        if let Some(v) = self.fields.get(name) {
            return Some(v);
        }
        if !self.spaced() {
            return None;
        }
        self.fields
            .iter()
            .find(|(k, _)| k.contains(' ') && k.bytes().filter(|&b| b != b' ').eq(name.bytes()))
            .map(|(_, v)| v)
    }
}
