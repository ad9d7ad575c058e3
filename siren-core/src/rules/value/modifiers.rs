//! The modifiers of one field item (`|contains|all`, `|base64offset`, `|re|i`, `|cidr`…):
//! read, checked for conflicts, and applied to the item's values to compile its
//! [`ValueTest`].

use std::net::IpAddr;

use base64::Engine as _;
use ipnet::IpNet;

use super::compiled::{NumOp, Shape, TimePart, ValueTest};
use super::lazy_regex::RegexFlags;
use super::sigma_string::{
    Tok, expand_dashes, expand_placeholders, normalise, parse_sigma_string, plain_text, windash,
};

use super::string_set::{Pattern, build_set};
use crate::rules::RuleError;

/// The most values (after modifier expansion) one field item may produce.
pub(super) const MAX_VARIANTS: usize = 10_000;

/// A value on its way through the transforming modifiers: text tokens or raw bytes.
#[derive(Debug, Clone)]
enum Transformed {
    Toks(Vec<Tok>),
    Bytes(Vec<u8>),
}

impl Transformed {
    fn into_toks(self) -> Vec<Tok> {
        match self {
            Transformed::Toks(t) => t,
            Transformed::Bytes(b) => vec![Tok::Lit(String::from_utf8_lossy(&b).into_owned())],
        }
    }
    fn bytes(self, field: &str, modifier: &str) -> Result<Vec<u8>, RuleError> {
        match self {
            Transformed::Bytes(b) => Ok(b),
            Transformed::Toks(t) => Ok(plain_text(&t, field, modifier)?.into_bytes()),
        }
    }
}

pub(super) fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if bom {
        out.extend_from_slice(if big_endian {
            &[0xFE, 0xFF]
        } else {
            &[0xFF, 0xFE]
        });
    }
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// The three base64 renderings of `data` at each alignment, trimmed to the characters that do
/// not depend on the surrounding bytes (what Sigma's `base64offset` specifies).
pub(super) fn base64_offsets(data: &[u8]) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let start = [0usize, 2, 3];
    let end_trim = [0usize, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(data);
            let encoded = engine.encode(&padded);
            let trim = end_trim[(data.len() + i) % 3];
            let end = encoded.len().saturating_sub(trim);
            encoded.get(start[i]..end).unwrap_or("").to_owned()
        })
        .collect()
}

/// A scalar value of a rule, as YAML gave it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Null => String::new(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
    fn number(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    /// A numeric or boolean value is matched as-is (no wildcards).
    fn toks(&self) -> Vec<Tok> {
        match self {
            Scalar::Str(s) => normalise(parse_sigma_string(s)),
            other => normalise(vec![Tok::Lit(other.text())]),
        }
    }
}

/// What the modifiers of one field item ask for.
#[derive(Debug, Default)]
struct Modifiers {
    transforms: Vec<&'static str>,
    shape: Option<Shape>,
    re: bool,
    flags: RegexFlags,
    cidr: bool,
    num: Option<NumOp>,
    part: Option<TimePart>,
    exists: bool,
    fieldref: bool,
    all: bool,
    cased: bool,
    neq: bool,
}

fn parse_modifiers(key: &str, mods: &[&str]) -> Result<Modifiers, RuleError> {
    let mut m = Modifiers::default();
    let conflict = |reason: String| RuleError::InvalidModifier {
        field: key.to_owned(),
        reason,
    };
    for &name in mods {
        let set_shape = |m: &mut Modifiers, s: Shape| {
            if m.shape.is_some() {
                Err(conflict(
                    "only one of contains, startswith, endswith may be used".to_owned(),
                ))
            } else {
                m.shape = Some(s);
                Ok(())
            }
        };
        let set_num = |m: &mut Modifiers, op: NumOp| {
            if m.num.is_some() {
                Err(conflict(
                    "only one of lt, lte, gt, gte may be used".to_owned(),
                ))
            } else {
                m.num = Some(op);
                Ok(())
            }
        };
        match name {
            "contains" => set_shape(&mut m, Shape::Contains)?,
            "startswith" => set_shape(&mut m, Shape::Prefix)?,
            "endswith" => set_shape(&mut m, Shape::Suffix)?,
            "all" => m.all = true,
            "cased" => m.cased = true,
            "neq" => m.neq = true,
            "exists" => m.exists = true,
            "fieldref" => m.fieldref = true,
            "re" => m.re = true,
            "i" | "ignorecase" => m.flags.i = true,
            "m" | "multiline" => m.flags.m = true,
            "s" | "dotall" => m.flags.s = true,
            "cidr" => m.cidr = true,
            "lt" => set_num(&mut m, NumOp::Lt)?,
            "lte" => set_num(&mut m, NumOp::Lte)?,
            "gt" => set_num(&mut m, NumOp::Gt)?,
            "gte" => set_num(&mut m, NumOp::Gte)?,
            "minute" | "hour" | "day" | "week" | "month" | "year" => {
                if m.part.is_some() {
                    return Err(conflict(
                        "only one time-part modifier may be used".to_owned(),
                    ));
                }
                m.part = Some(match name {
                    "minute" => TimePart::Minute,
                    "hour" => TimePart::Hour,
                    "day" => TimePart::Day,
                    "week" => TimePart::Week,
                    "month" => TimePart::Month,
                    _ => TimePart::Year,
                });
            }
            "base64" => m.transforms.push("base64"),
            "base64offset" => m.transforms.push("base64offset"),
            "wide" | "utf16le" => m.transforms.push("utf16le"),
            "utf16be" => m.transforms.push("utf16be"),
            "utf16" => m.transforms.push("utf16"),
            "windash" => m.transforms.push("windash"),
            "expand" => m.transforms.push("expand"),
            _ => {
                return Err(RuleError::UnknownModifier {
                    field: key.to_owned(),
                    modifier: name.to_owned(),
                });
            }
        }
    }
    let kinds = [
        m.re,
        m.cidr,
        m.num.is_some() || m.part.is_some(),
        m.exists,
        m.fieldref,
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if kinds > 1 {
        return Err(conflict(
            "re, cidr, lt/lte/gt/gte (or a time part), exists and fieldref exclude each other"
                .to_owned(),
        ));
    }
    if (m.flags.i || m.flags.m || m.flags.s) && !m.re {
        return Err(conflict("the regex flags i, m, s need 're'".to_owned()));
    }
    if m.shape.is_some() && (m.re || m.cidr || m.num.is_some() || m.part.is_some() || m.exists) {
        return Err(conflict(
            "contains/startswith/endswith cannot be combined with re, cidr, numeric or exists"
                .to_owned(),
        ));
    }
    if !m.transforms.is_empty() && (m.re || m.cidr || m.num.is_some() || m.exists || m.fieldref) {
        return Err(conflict(format!(
            "'{}' cannot be combined with re, cidr, numeric, exists or fieldref",
            m.transforms[0]
        )));
    }
    Ok(m)
}

/// Compiles one field item: `key` is the whole key (`Field|mod|mod`) for messages, `mods` its
/// modifiers, `values` the value list (a single value is a list of one).
pub(crate) fn compile_item(
    key: &str,
    mods: &[&str],
    values: &[Scalar],
    placeholders: &std::collections::HashMap<String, Vec<String>>,
) -> Result<ValueTest, RuleError> {
    let m = parse_modifiers(key, mods)?;
    if values.is_empty() {
        return Err(RuleError::InvalidKey {
            key: key.to_owned(),
            reason: "empty value list".to_owned(),
        });
    }
    if values.len() > MAX_VARIANTS {
        return Err(RuleError::TooLarge(format!(
            "'{key}' has more than {MAX_VARIANTS} values"
        )));
    }
    let invalid = |reason: String| RuleError::InvalidModifier {
        field: key.to_owned(),
        reason,
    };

    if m.exists {
        let [value] = values else {
            return Err(invalid("'exists' takes one boolean".to_owned()));
        };
        let want = match value {
            Scalar::Bool(b) => *b,
            Scalar::Str(s) if s.eq_ignore_ascii_case("true") => true,
            Scalar::Str(s) if s.eq_ignore_ascii_case("false") => false,
            other => {
                return Err(invalid(format!(
                    "'exists' takes true or false, not {other:?}"
                )));
            }
        };
        return Ok(ValueTest::Exists(want));
    }

    // One test per value; then OR (default), AND (`all`) or none (`neq`).
    let mut per_value: Vec<ValueTest> = Vec::with_capacity(values.len());
    let mut patterns_by_value: Vec<Vec<Pattern>> = Vec::new();
    let ci = !m.cased;
    for value in values {
        if *value == Scalar::Null {
            per_value.push(ValueTest::Null);
            continue;
        }
        if m.fieldref {
            per_value.push(ValueTest::FieldRef {
                other: value.text().into(),
                shape: m.shape.unwrap_or(Shape::Exact),
                cased: m.cased,
            });
        } else if m.cidr {
            let text = value.text();
            let net: IpNet = text
                .parse()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(format!("'{text}' is not a CIDR network")))?;
            per_value.push(ValueTest::Cidr(vec![net]));
        } else if m.num.is_some() || m.part.is_some() {
            let n = value
                .number()
                .ok_or_else(|| invalid(format!("'{}' is not a number", value.text())))?;
            per_value.push(ValueTest::Num {
                op: m.num.unwrap_or(NumOp::Eq),
                value: n,
                part: m.part,
            });
        } else if m.re {
            patterns_by_value.push(vec![Pattern::Regex(value.text(), m.flags)]);
        } else if matches!(value, Scalar::Str(s) if s.is_empty())
            && m.shape.is_none()
            && m.transforms.is_empty()
        {
            per_value.push(ValueTest::Empty);
        } else {
            patterns_by_value.push(
                transform(value, &m, key, placeholders)?
                    .into_iter()
                    .map(Pattern::Glob)
                    .collect(),
            );
        }
    }
    let total: usize = patterns_by_value.iter().map(Vec::len).sum();
    if total > MAX_VARIANTS {
        return Err(RuleError::TooLarge(format!(
            "'{key}' expands to more than {MAX_VARIANTS} values"
        )));
    }
    if m.all && values.len() > 1 {
        for patterns in patterns_by_value {
            per_value.push(ValueTest::Str(build_set(patterns, ci, key)?));
        }
        return Ok(simplify(ValueTest::And(per_value), m.neq));
    }
    if !patterns_by_value.is_empty() {
        let all: Vec<Pattern> = patterns_by_value.into_iter().flatten().collect();
        per_value.push(ValueTest::Str(build_set(all, ci, key)?));
    }
    // CIDR networks of one item share one test.
    if per_value.len() > 1 && per_value.iter().all(|t| matches!(t, ValueTest::Cidr(_))) {
        let nets = per_value
            .drain(..)
            .flat_map(|t| match t {
                ValueTest::Cidr(n) => n,
                _ => Vec::new(),
            })
            .collect();
        per_value.push(ValueTest::Cidr(nets));
    }
    let test = if m.all {
        ValueTest::And(per_value)
    } else {
        ValueTest::Or(per_value)
    };
    Ok(simplify(test, m.neq))
}

fn simplify(test: ValueTest, neq: bool) -> ValueTest {
    let test = match test {
        ValueTest::Or(mut ts) | ValueTest::And(mut ts) if ts.len() == 1 => {
            ts.pop().expect("one test")
        }
        t => t,
    };
    if neq {
        ValueTest::Not(Box::new(test))
    } else {
        test
    }
}

/// Applies the transforming modifiers and the shape (`contains`…) to one value, giving the
/// token lists of its variants.
fn transform(
    value: &Scalar,
    m: &Modifiers,
    key: &str,
    placeholders: &std::collections::HashMap<String, Vec<String>>,
) -> Result<Vec<Vec<Tok>>, RuleError> {
    let mut work = vec![Transformed::Toks(value.toks())];
    for &t in &m.transforms {
        let mut next = Vec::new();
        for w in work {
            match t {
                "utf16le" | "utf16be" | "utf16" => {
                    let text = plain_text(&w.into_toks(), key, t)?;
                    next.push(Transformed::Bytes(utf16(
                        &text,
                        t == "utf16be",
                        t == "utf16",
                    )));
                }
                "base64" => {
                    let bytes = w.bytes(key, t)?;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    next.push(Transformed::Toks(vec![Tok::Lit(encoded)]));
                }
                "base64offset" => {
                    let bytes = w.bytes(key, t)?;
                    for encoded in base64_offsets(&bytes) {
                        next.push(Transformed::Toks(vec![Tok::Lit(encoded)]));
                    }
                }
                "windash" => {
                    for v in expand_dashes(windash(w.into_toks())) {
                        next.push(Transformed::Toks(v));
                    }
                }
                _ => {
                    for v in expand_placeholders(w.into_toks(), placeholders, key)? {
                        next.push(Transformed::Toks(v));
                    }
                }
            }
            if next.len() > MAX_VARIANTS {
                return Err(RuleError::TooLarge(format!(
                    "'{key}' expands to more than {MAX_VARIANTS} values"
                )));
            }
        }
        work = next;
    }
    Ok(work
        .into_iter()
        .map(|w| {
            let mut toks = w.into_toks();
            match m.shape {
                Some(Shape::Contains) => {
                    toks.insert(0, Tok::Star);
                    toks.push(Tok::Star);
                }
                Some(Shape::Prefix) => toks.push(Tok::Star),
                Some(Shape::Suffix) => toks.insert(0, Tok::Star),
                _ => {}
            }
            normalise(toks)
        })
        .collect())
}

/// Compiles the value list of a keyword (field-less) search: each value matches when it occurs
/// anywhere in a field's text.
pub(crate) fn compile_keywords(
    key: &str,
    mods: &[&str],
    values: &[Scalar],
    placeholders: &std::collections::HashMap<String, Vec<String>>,
) -> Result<ValueTest, RuleError> {
    let mut mods: Vec<&str> = mods.to_vec();
    let has_shape = mods
        .iter()
        .any(|m| matches!(*m, "contains" | "startswith" | "endswith" | "re"));
    if !has_shape {
        mods.push("contains");
    }
    let test = compile_item(key, &mods, values, placeholders)?;
    if !test.is_text() {
        return Err(RuleError::InvalidModifier {
            field: key.to_owned(),
            reason: "keyword searches take text values (no null, exists, numeric or cidr)"
                .to_owned(),
        });
    }
    Ok(test)
}
