//! The compiled test of one field item ([`ValueTest`]) and its evaluation against a field's
//! value: text patterns, null and existence, numbers and time parts, CIDR networks, field
//! references.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::string_set::StringSet;
use crate::event::Fields;

/// A time part extracted by the `minute`…`year` modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// How a `fieldref` compares the two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

/// The compiled test of one value list against one field's value.
#[derive(Debug, Clone)]
pub(crate) enum ValueTest {
    /// Any holds.
    Or(Vec<ValueTest>),
    /// All hold.
    And(Vec<ValueTest>),
    /// Does not hold.
    Not(Box<ValueTest>),
    /// Text patterns.
    Str(StringSet),
    /// The field is missing or JSON null (Sigma's `null`; a present empty string is not null).
    Null,
    /// The field is the empty string (Sigma's `''`; a missing or null field is not empty).
    Empty,
    /// The field is present (with a non-null value) or not.
    Exists(bool),
    /// Numeric comparison of the value, or of a time part of it.
    Num {
        op: NumOp,
        value: f64,
        part: Option<TimePart>,
    },
    /// The value is an IP address inside one of the networks.
    Cidr(Vec<IpNet>),
    /// The value compares with another field's value.
    FieldRef {
        other: Box<str>,
        shape: Shape,
        cased: bool,
    },
}

/// Formats a number into a small stack buffer, so numeric fields are matched without
/// allocating.
struct NumBuf {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the text of a scalar value (strings, numbers, booleans); `None` for null,
/// arrays and objects.
pub(crate) fn with_text<R>(value: &Value, f: impl FnOnce(&str) -> R) -> Option<R> {
    match value {
        Value::String(s) => Some(f(s)),
        // Integers as `Display` prints them, without the formatting machinery.
        Value::Number(n) if n.is_u64() || n.is_i64() => {
            let mut buf = itoa::Buffer::new();
            match n.as_u64() {
                Some(u) => Some(f(buf.format(u))),
                None => n.as_i64().map(|i| f(buf.format(i))),
            }
        }
        Value::Number(n) => {
            let mut buf = NumBuf {
                buf: [0; 40],
                len: 0,
            };
            if write!(buf, "{n}").is_ok() {
                std::str::from_utf8(&buf.buf[..buf.len]).ok().map(f)
            } else {
                Some(f(&n.to_string()))
            }
        }
        Value::Bool(b) => Some(f(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16).ok().map(|n| n as f64)
            } else {
                s.parse::<f64>().ok()
            }
        }
        _ => None,
    }
}

fn time_part(value: &Value, part: TimePart) -> Option<f64> {
    use chrono::{Datelike, Timelike};
    let text = value.as_str()?.trim();
    let dt = chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| d.naive_utc())
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    Some(f64::from(match part {
        TimePart::Minute => dt.minute(),
        TimePart::Hour => dt.hour(),
        TimePart::Day => dt.day(),
        TimePart::Week => dt.iso_week().week(),
        TimePart::Month => dt.month(),
        TimePart::Year => dt.year() as u32,
    }))
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let ip: IpAddr = text.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    })
}

impl ValueTest {
    /// Tests the field's value (`None` when the field is missing) of `fields`.
    pub(crate) fn eval(&self, value: Option<&Value>, fields: &Fields) -> bool {
        match self {
            ValueTest::Or(ts) => ts.iter().any(|t| t.eval(value, fields)),
            ValueTest::And(ts) => ts.iter().all(|t| t.eval(value, fields)),
            ValueTest::Not(t) => !t.eval(value, fields),
            ValueTest::Null => matches!(value, None | Some(Value::Null)),
            ValueTest::Empty => match value {
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| matches!(item, Value::String(s) if s.is_empty())),
                _ => false,
            },
            ValueTest::Exists(want) => {
                let present = !matches!(value, None | Some(Value::Null));
                present == *want
            }
            _ => match value {
                None => false,
                Some(Value::Array(items)) => items.iter().any(|v| self.leaf(v, fields)),
                Some(v) => self.leaf(v, fields),
            },
        }
    }

    fn leaf(&self, value: &Value, fields: &Fields) -> bool {
        match self {
            ValueTest::Str(set) => with_text(value, |s| set.is_match(s)).unwrap_or(false),
            ValueTest::Num {
                op,
                value: want,
                part,
            } => {
                let got = match part {
                    Some(p) => time_part(value, *p),
                    None => as_number(value),
                };
                let Some(got) = got else { return false };
                match op {
                    NumOp::Eq => got == *want,
                    NumOp::Lt => got < *want,
                    NumOp::Lte => got <= *want,
                    NumOp::Gt => got > *want,
                    NumOp::Gte => got >= *want,
                }
            }
            ValueTest::Cidr(nets) => with_text(value, |s| {
                parse_ip(s).is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            })
            .unwrap_or(false),
            ValueTest::FieldRef {
                other,
                shape,
                cased,
            } => {
                let Some(other) = fields.get(&**other) else {
                    return false;
                };
                with_text(value, |a| {
                    with_text(other, |b| compare_shape(a, b, *shape, *cased)).unwrap_or(false)
                })
                .unwrap_or(false)
            }
            // The combinators and null/exists tests are handled in `eval`.
            other => other.eval(Some(value), fields),
        }
    }

    /// Literals one of which occurs (ASCII case-insensitively) in the value's text whenever
    /// this test holds; `None` when no such list is known.
    pub(crate) fn atoms(&self) -> Option<Vec<Box<str>>> {
        match self {
            ValueTest::Str(set) => set.atoms.clone(),
            ValueTest::Or(ts) => {
                let mut all = Vec::new();
                for t in ts {
                    all.extend(t.atoms()?);
                }
                Some(all)
            }
            ValueTest::And(ts) => ts
                .iter()
                .filter_map(|t| t.atoms())
                .max_by_key(|a| atom_score(a)),
            _ => None,
        }
    }

    /// The integers this test's value must equal, written as such (`4624`, not `04624`):
    /// `None` unless the test holds only for texts that are one of them.
    pub(crate) fn exact_integers(&self) -> Option<Vec<i64>> {
        match self {
            ValueTest::Str(set)
                if !set.any
                    && set.prefix.is_empty()
                    && set.suffix.is_empty()
                    && set.contains.is_empty()
                    && set.regexes.is_empty()
                    && !set.exact.is_empty() =>
            {
                set.exact
                    .iter()
                    .map(|e| e.parse::<i64>().ok().filter(|n| n.to_string() == **e))
                    .collect()
            }
            ValueTest::Or(ts) => {
                let mut all = Vec::new();
                for t in ts {
                    all.extend(t.exact_integers()?);
                }
                Some(all)
            }
            ValueTest::And(ts) => ts.iter().find_map(ValueTest::exact_integers),
            _ => None,
        }
    }

    /// The set, when this test is nothing but contains patterns: such a test holds for some
    /// field of an event exactly when it holds for all its texts joined by NUL characters.
    pub(crate) fn contains_only(&self) -> Option<&StringSet> {
        match self {
            ValueTest::Str(set)
                if !set.any
                    && set.exact.is_empty()
                    && set.prefix.is_empty()
                    && set.suffix.is_empty()
                    && set.regexes.is_empty()
                    && !set.contains.is_empty()
                    && set.contains.iter().all(|p| !p.contains('\0')) =>
            {
                Some(set)
            }
            _ => None,
        }
    }

    /// Whether this test can only hold for a present, non-null value (used for keyword search).
    pub(crate) fn is_text(&self) -> bool {
        match self {
            ValueTest::Str(_) => true,
            ValueTest::Or(ts) | ValueTest::And(ts) => ts.iter().all(|t| t.is_text()),
            _ => false,
        }
    }
}

/// How selective a list of atoms is: its shortest literal's length, fewer atoms breaking ties.
pub(crate) fn atom_score<'a, S: AsRef<str> + 'a>(
    atoms: impl IntoIterator<Item = &'a S>,
) -> (usize, std::cmp::Reverse<usize>) {
    let (mut shortest, mut count) = (usize::MAX, 0);
    for atom in atoms {
        shortest = shortest.min(atom.as_ref().len());
        count += 1;
    }
    (
        if count == 0 { 0 } else { shortest },
        std::cmp::Reverse(count),
    )
}

fn compare_shape(a: &str, b: &str, shape: Shape, cased: bool) -> bool {
    if cased {
        match shape {
            Shape::Exact => a == b,
            Shape::Prefix => a.starts_with(b),
            Shape::Suffix => a.ends_with(b),
            Shape::Contains => a.contains(b),
        }
    } else {
        let (a, b) = (a.to_lowercase(), b.to_lowercase());
        match shape {
            Shape::Exact => a == b,
            Shape::Prefix => a.starts_with(&b),
            Shape::Suffix => a.ends_with(&b),
            Shape::Contains => a.contains(&b),
        }
    }
}
