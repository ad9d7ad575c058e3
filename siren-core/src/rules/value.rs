//! Value modifiers (`contains`, `base64offset`, `windash`, `re`, `cidr`, `lt`…) and the
//! compiled tests they turn a Sigma field item into.
//!
//! A field item (`CommandLine|contains|all: [a, b]`) compiles to one [`ValueTest`] tree whose
//! leaves are prepared once: literal strings are classified as exact / prefix / suffix /
//! contains (contains patterns of one item share one Aho-Corasick automaton, ASCII
//! case-insensitive), other wildcard shapes and `re` values become compiled regexes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::RuleError;
use super::memo::Memo;
use crate::event::Fields;

/// The most values (after modifier expansion) one field item may produce.
const MAX_VARIANTS: usize = 10_000;
/// Compiled size limit for one regex.
const REGEX_SIZE_LIMIT: usize = 4 << 20;
/// The dash characters `windash` treats as interchangeable.
const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// One token of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Quest,
    /// A `windash` position: any of [`DASHES`].
    Dash,
}

/// Parses a Sigma string: `*` and `?` are wildcards, `\` escapes `*`, `?` and `\`; a `\`
/// before anything else is a literal backslash.
fn parse_sigma_string(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    toks.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                toks.push(if c == '*' { Tok::Star } else { Tok::Quest });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        toks.push(Tok::Lit(lit));
    }
    toks
}

/// Merges adjacent literals and collapses runs of `*`.
fn normalise(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    for t in toks {
        match (out.last_mut(), t) {
            (Some(Tok::Lit(prev)), Tok::Lit(s)) => prev.push_str(&s),
            (Some(Tok::Star), Tok::Star) => {}
            (_, Tok::Lit(s)) if s.is_empty() => {}
            (_, t) => out.push(t),
        }
    }
    out
}

fn plain_text(toks: &[Tok], field: &str, modifier: &str) -> Result<String, RuleError> {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Lit(l) => s.push_str(l),
            _ => {
                return Err(RuleError::InvalidModifier {
                    field: field.to_owned(),
                    reason: format!("'{modifier}' cannot encode a value with wildcards"),
                });
            }
        }
    }
    Ok(s)
}

/// A value on its way through the transforming modifiers: text tokens or raw bytes.
#[derive(Debug, Clone)]
enum Work {
    Toks(Vec<Tok>),
    Bytes(Vec<u8>),
}

impl Work {
    fn into_toks(self) -> Vec<Tok> {
        match self {
            Work::Toks(t) => t,
            Work::Bytes(b) => vec![Tok::Lit(String::from_utf8_lossy(&b).into_owned())],
        }
    }
    fn bytes(self, field: &str, modifier: &str) -> Result<Vec<u8>, RuleError> {
        match self {
            Work::Bytes(b) => Ok(b),
            Work::Toks(t) => Ok(plain_text(&t, field, modifier)?.into_bytes()),
        }
    }
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
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
fn base64_offsets(data: &[u8]) -> Vec<String> {
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

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Marks the `windash` positions: a `-` or `/` at the start of a word.
fn windash(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::new();
    for t in toks {
        let Tok::Lit(s) = t else {
            out.push(t);
            continue;
        };
        let chars: Vec<char> = s.chars().collect();
        let mut lit = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev_word = i > 0 && is_word(chars[i - 1]);
            let next_word = chars.get(i + 1).is_some_and(|&n| is_word(n));
            if (c == '-' || c == '/') && !prev_word && next_word {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(Tok::Dash);
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            out.push(Tok::Lit(lit));
        }
    }
    out
}

/// Expands `Dash` tokens into literal variants when there are few of them (so the literals can
/// use the fast paths); many are left for the regex.
fn expand_dashes(toks: Vec<Tok>) -> Vec<Vec<Tok>> {
    let count = toks.iter().filter(|t| **t == Tok::Dash).count();
    if count == 0 || count > 3 {
        return vec![toks];
    }
    let mut variants: Vec<Vec<Tok>> = vec![Vec::new()];
    for t in toks {
        if t == Tok::Dash {
            let mut next = Vec::with_capacity(variants.len() * DASHES.len());
            for v in &variants {
                for d in DASHES {
                    let mut v = v.clone();
                    v.push(Tok::Lit(d.to_string()));
                    next.push(v);
                }
            }
            variants = next;
        } else {
            for v in &mut variants {
                v.push(t.clone());
            }
        }
    }
    variants.into_iter().map(normalise).collect()
}

/// Replaces `%name%` placeholders in literals with each configured value.
fn expand_placeholders(
    toks: Vec<Tok>,
    placeholders: &std::collections::HashMap<String, Vec<String>>,
    field: &str,
) -> Result<Vec<Vec<Tok>>, RuleError> {
    let mut variants: Vec<Vec<Tok>> = vec![Vec::new()];
    for t in toks {
        let Tok::Lit(s) = t else {
            for v in &mut variants {
                v.push(t.clone());
            }
            continue;
        };
        let mut rest = s.as_str();
        while !rest.is_empty() {
            let placeholder = rest.find('%').and_then(|a| {
                rest[a + 1..]
                    .find('%')
                    .map(|b| (a, a + 1 + b))
                    .filter(|&(a, b)| b > a + 1)
            });
            let Some((a, b)) = placeholder else {
                for v in &mut variants {
                    v.push(Tok::Lit(rest.to_owned()));
                }
                break;
            };
            for v in &mut variants {
                v.push(Tok::Lit(rest[..a].to_owned()));
            }
            let name = &rest[a + 1..b];
            let values = placeholders
                .get(name)
                .ok_or_else(|| RuleError::UnknownPlaceholder {
                    field: field.to_owned(),
                    placeholder: name.to_owned(),
                })?;
            let mut next = Vec::new();
            for v in &variants {
                for value in values {
                    let mut v = v.clone();
                    v.extend(parse_sigma_string(value));
                    next.push(v);
                }
            }
            if next.len() > MAX_VARIANTS {
                return Err(RuleError::TooLarge(format!(
                    "'{field}' expands to more than {MAX_VARIANTS} values"
                )));
            }
            variants = next;
            rest = &rest[b + 1..];
        }
    }
    Ok(variants.into_iter().map(normalise).collect())
}

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
    /// The field is missing, null or empty.
    Null,
    /// The field is the empty string (or null).
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
            ValueTest::Null => match value {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            },
            ValueTest::Empty => {
                matches!(value, Some(Value::Null))
                    || matches!(value, Some(Value::String(s)) if s.is_empty())
            }
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

/// A set of text patterns, any of which may match, prepared for speed.
#[derive(Debug, Clone, Default)]
pub(crate) struct StringSet {
    /// ASCII case-insensitive comparison for the literal lists.
    ci: bool,
    exact: Vec<Box<str>>,
    prefix: Vec<Box<str>>,
    suffix: Vec<Box<str>>,
    /// Contains patterns: few are searched one by one, more with an automaton built on
    /// first use (rules the prefilter never lets through never pay for it).
    contains: Vec<Box<str>>,
    contains_automaton: std::sync::OnceLock<Option<std::sync::Arc<AhoCorasick>>>,
    regexes: Vec<LazyRegex>,
    /// A bare `*`: any text matches.
    any: bool,
    /// Literals one of which occurs (ASCII case-insensitively) in every text this set
    /// matches; `None` when no such list is known.
    atoms: Option<Vec<Box<str>>>,
}

impl StringSet {
    pub(crate) fn is_match(&self, s: &str) -> bool {
        if self.any {
            return true;
        }
        let b = s.as_bytes();
        if self.ci {
            if self
                .exact
                .iter()
                .any(|p| p.len() == b.len() && p.as_bytes().eq_ignore_ascii_case(b))
            {
                return true;
            }
            if self
                .prefix
                .iter()
                .any(|p| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
            {
                return true;
            }
            if self.suffix.iter().any(|p| {
                b.len() >= p.len() && b[b.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
            }) {
                return true;
            }
        } else {
            if self.exact.iter().any(|p| **p == *s) {
                return true;
            }
            if self.prefix.iter().any(|p| s.starts_with(&**p)) {
                return true;
            }
            if self.suffix.iter().any(|p| s.ends_with(&**p)) {
                return true;
            }
        }
        if !self.contains.is_empty() && self.contains_match(b) {
            return true;
        }
        self.regexes.iter().any(|r| r.is_match(s))
    }
}

/// From this length on, a text is lower-cased once and searched with `memmem` rather than
/// compared case-insensitively at every occurrence of a pattern's first byte (a common one,
/// such as a space, occurs hundreds of times in a long PowerShell command line).
const LONG_TEXT: usize = 512;

/// Up to this many contains patterns are searched one by one rather than with an automaton.
const FEW_CONTAINS: usize = 3;

thread_local! {
    /// Per thread: a buffer for lower-cased text.
    static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `needle` occurs in `hay`, ASCII case-insensitively.
fn ci_contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    let last_start = hay.len() - needle.len();
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let candidates = &hay[..=last_start];
    let check = |i: usize| hay[i..i + needle.len()].eq_ignore_ascii_case(needle);
    if lo == up {
        memchr::memchr_iter(lo, candidates).any(check)
    } else {
        memchr::memchr2_iter(lo, up, candidates).any(check)
    }
}

impl StringSet {
    fn contains_match(&self, b: &[u8]) -> bool {
        if !self.ci {
            return match self.contains_automaton() {
                Some(ac) => ac.is_match(b),
                None => self
                    .contains
                    .iter()
                    .any(|p| memchr::memmem::find(b, p.as_bytes()).is_some()),
            };
        }
        if self.contains_automaton().is_none() && b.len() < LONG_TEXT {
            return self.contains.iter().any(|p| ci_contains(b, p.as_bytes()));
        }
        LOWER.with(|buffer| {
            // Taken out, so a re-entrant call cannot clash.
            let mut lower = std::mem::take(&mut *buffer.borrow_mut());
            lower.clear();
            super::push_lower(&mut lower, b);
            let hit = self.contains_match_lower(&lower);
            *buffer.borrow_mut() = lower;
            hit
        })
    }

    /// Whether this set's contains patterns occur in `lower`, a text already lower-cased
    /// (ASCII): for a case-insensitive set, the same answer as [`StringSet::is_match`]'s
    /// contains part on the original text.
    pub(crate) fn contains_match_lower(&self, lower: &[u8]) -> bool {
        if !self.ci {
            return false;
        }
        match self.contains_automaton() {
            Some(ac) => ac.is_match(lower),
            // The patterns of a case-insensitive set are kept lower-cased.
            None => self
                .contains
                .iter()
                .any(|p| memchr::memmem::find(lower, p.as_bytes()).is_some()),
        }
    }

    /// Whether patterns are compared ASCII case-insensitively.
    pub(crate) fn is_ci(&self) -> bool {
        self.ci
    }

    /// The automaton over the contains patterns (lower-cased for a case-insensitive set),
    /// built on first use; `None` for a few patterns, searched one by one.
    fn contains_automaton(&self) -> Option<&AhoCorasick> {
        if self.contains.len() <= FEW_CONTAINS {
            return None;
        }
        let automaton = self.contains_automaton.get_or_init(|| {
            // Case-insensitive sets search lower-cased text for lower-cased patterns: an
            // ASCII case-insensitive automaton cannot use the crate's SIMD prefilters.
            let patterns: Vec<Box<str>> = self
                .contains
                .iter()
                .map(|p| {
                    if self.ci {
                        p.to_ascii_lowercase().into()
                    } else {
                        p.clone()
                    }
                })
                .collect();
            super::memo::matcher(patterns)
        });
        automaton.as_deref()
    }
}

/// A pattern ready to join a [`StringSet`].
#[derive(Debug, Clone)]
enum Pattern {
    Glob(Vec<Tok>),
    Regex(String, RegexFlags),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct RegexFlags {
    i: bool,
    m: bool,
    s: bool,
}

fn regex_for_glob(toks: &[Tok], ci: bool) -> String {
    let mut re = String::from(if ci { "(?is)" } else { "(?s)" });
    let mut toks = toks;
    let open_start = toks.first() == Some(&Tok::Star);
    let open_end = toks.len() > 1 && toks.last() == Some(&Tok::Star);
    if open_start {
        toks = &toks[1..];
    } else {
        re.push('^');
    }
    if open_end {
        toks = &toks[..toks.len() - 1];
    }
    for t in toks {
        match t {
            Tok::Lit(s) => re.push_str(&regex::escape(s)),
            Tok::Star => re.push_str(".*"),
            Tok::Quest => re.push('.'),
            Tok::Dash => re.push_str("[-/\u{2013}\u{2014}\u{2015}]"),
        }
    }
    if !open_end {
        re.push('$');
    }
    re
}

/// Whether ASCII case-insensitive comparison of `s` is full case-insensitive comparison:
/// every non-ASCII character has no case (dashes, symbols).
fn ascii_foldable(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii()
            || (c.to_lowercase().eq(std::iter::once(c)) && c.to_uppercase().eq(std::iter::once(c)))
    })
}

/// The longest literal of a glob, usable as a prefilter atom.
fn glob_atom(toks: &[Tok], ci: bool) -> Option<Box<str>> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Lit(s) if !ci || ascii_foldable(s) => Some(s),
            _ => None,
        })
        .max_by_key(|s| s.len())
        .map(|s| s.as_str().into())
}

/// A rule's regex, checked when the rule loads and compiled when an event first reaches it:
/// compiling every regex of a large rule set costs more than reading its YAML, and most of
/// them belong to rules few events meet. A regex that could approach the compiled size limit
/// is compiled at load, so every regex that fails to compile is reported there.
#[derive(Debug, Clone)]
struct LazyRegex {
    pattern: Box<str>,
    flags: RegexFlags,
    /// Literals one of which occurs in every match (see [`regex_atoms`]).
    atoms: Option<Vec<Box<str>>>,
    compiled: std::sync::OnceLock<Option<std::sync::Arc<Regex>>>,
}

/// A regex this much longer, or with a counted repetition above this, is compiled at load.
const LAZY_REGEX_MAX: u32 = 256;

impl LazyRegex {
    fn new(pattern: String, flags: RegexFlags, field: &str) -> Result<Self, RuleError> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(flags.i)
            .multi_line(flags.m)
            .dot_matches_new_line(flags.s)
            .build()
            .parse(&pattern)
            .map_err(|e| bad_regex(field, &pattern, &e.to_string()))?;
        let compiled = std::sync::OnceLock::new();
        if pattern.len() > LAZY_REGEX_MAX as usize || max_repetition(&hir) > LAZY_REGEX_MAX {
            let _ = compiled.set(Some(std::sync::Arc::new(compile_regex(
                &pattern, flags, field,
            )?)));
        }
        Ok(Self {
            pattern: pattern.into(),
            flags,
            atoms: regex_atoms(&hir),
            compiled,
        })
    }

    fn is_match(&self, s: &str) -> bool {
        static BUILT: Memo<(Box<str>, RegexFlags), Regex> = Memo::new();
        self.compiled
            .get_or_init(|| {
                BUILT.get_or_build((self.pattern.clone(), self.flags), |(pattern, flags)| {
                    compile_regex(pattern, *flags, "").ok()
                })
            })
            .as_ref()
            .is_some_and(|r| r.is_match(s))
    }
}

/// Literals (ASCII lower-case) one of which occurs in every text the regex matches: every
/// match begins with one of its prefix literals and ends with one of its suffix literals,
/// so either list will do; the more selective is kept. `None` when neither list is finite
/// and free of the empty literal.
fn regex_atoms(hir: &regex_syntax::hir::Hir) -> Option<Vec<Box<str>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let list = |kind: ExtractKind| -> Option<Vec<Box<str>>> {
        let seq = Extractor::new().kind(kind.clone()).extract(hir);
        let mut atoms = Vec::new();
        for literal in seq.literals()? {
            let bytes = literal.as_bytes();
            // A literal cut to the length limit may end (or, as a suffix, begin) inside a
            // character: keep its whole characters, still a substring of every match.
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) if kind.is_prefix() => {
                    std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?
                }
                Err(_) => {
                    let start = bytes.iter().position(|b| b & 0xC0 != 0x80)?;
                    std::str::from_utf8(&bytes[start..]).ok()?
                }
            };
            if text.is_empty() {
                return None;
            }
            atoms.push(text.to_ascii_lowercase().into_boxed_str());
        }
        atoms.sort_unstable();
        atoms.dedup();
        (!atoms.is_empty()).then_some(atoms)
    };
    let inner =
        required_texts(hir).map(|set| set.into_iter().map(String::into_boxed_str).collect());
    [list(ExtractKind::Prefix), list(ExtractKind::Suffix), inner]
        .into_iter()
        .flatten()
        .max_by_key(|a| atom_score(a))
}

/// The most texts a literal list may hold while the required literals of a regex are
/// worked out.
const MAX_TEXTS: usize = 64;

/// The most texts a character class may stand for in such a list.
const MAX_CLASS_TEXTS: usize = 10;

/// Every text `hir` matches, ASCII lower-cased, when there are at most [`MAX_TEXTS`].
fn exact_texts(hir: &regex_syntax::hir::Hir) -> Option<BTreeSet<String>> {
    use regex_syntax::hir::{Class, HirKind};
    let mut texts = BTreeSet::new();
    let mut add = |text: String| {
        texts.insert(text);
        texts.len() <= MAX_TEXTS
    };
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {
            add(String::new());
        }
        HirKind::Literal(literal) => {
            add(std::str::from_utf8(&literal.0).ok()?.to_ascii_lowercase());
        }
        // Only small classes (case variants, digits): a whitespace class would multiply the
        // list by 25 for no gain.
        HirKind::Class(Class::Unicode(class)) => {
            for range in class.ranges() {
                for c in range.start()..=range.end() {
                    texts.insert(c.to_ascii_lowercase().to_string());
                    if texts.len() > MAX_CLASS_TEXTS {
                        return None;
                    }
                }
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            for range in class.ranges() {
                for b in range.start()..=range.end() {
                    texts.insert(char::from(b.to_ascii_lowercase()).to_string());
                    if !b.is_ascii() || texts.len() > MAX_CLASS_TEXTS {
                        return None;
                    }
                }
            }
        }
        HirKind::Capture(capture) => return exact_texts(&capture.sub),
        HirKind::Concat(parts) => {
            let mut product = BTreeSet::from([String::new()]);
            for part in parts {
                product = cross(&product, &exact_texts(part)?)?;
            }
            return Some(product);
        }
        HirKind::Alternation(branches) => {
            for branch in branches {
                for text in exact_texts(branch)? {
                    if !add(text) {
                        return None;
                    }
                }
            }
        }
        HirKind::Repetition(r) if r.min == 0 && r.max == Some(1) => {
            add(String::new());
            for text in exact_texts(&r.sub)? {
                if !add(text) {
                    return None;
                }
            }
        }
        HirKind::Repetition(r) if r.max == Some(r.min) && r.min <= 8 => {
            let sub = exact_texts(&r.sub)?;
            let mut product = BTreeSet::from([String::new()]);
            for _ in 0..r.min {
                product = cross(&product, &sub)?;
            }
            return Some(product);
        }
        HirKind::Repetition(_) => return None,
    }
    Some(texts)
}

/// Every concatenation of a text of `a` and one of `b`, when there are at most
/// [`MAX_TEXTS`].
fn cross(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    if a.len().saturating_mul(b.len()) > MAX_TEXTS {
        return None;
    }
    Some(
        a.iter()
            .flat_map(|x| b.iter().map(move |y| format!("{x}{y}")))
            .collect(),
    )
}

/// Texts (ASCII lower-case) one of which occurs anywhere in every match of `hir`: like the
/// prefix and suffix lists, but also from the middle, so `\.exe\s+\w+werfault\.exe` gives
/// `werfault.exe` rather than `.exe`. `None` when no such list is known.
fn required_texts(hir: &regex_syntax::hir::Hir) -> Option<BTreeSet<String>> {
    use regex_syntax::hir::HirKind;
    // A text containing another of the list adds nothing: drop it.
    let usable = |set: BTreeSet<String>| {
        let kept: BTreeSet<String> = set
            .iter()
            .filter(|t| {
                !set.iter()
                    .any(|u| u.len() < t.len() && t.contains(u.as_str()))
            })
            .cloned()
            .collect();
        (!kept.is_empty() && !kept.contains("")).then_some(kept)
    };
    match hir.kind() {
        HirKind::Capture(capture) => required_texts(&capture.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_texts(&r.sub),
        HirKind::Alternation(branches) => {
            let mut all = BTreeSet::new();
            for branch in branches {
                all.extend(required_texts(branch)?);
            }
            (all.len() <= MAX_TEXTS).then_some(all)
        }
        HirKind::Concat(parts) => {
            // Adjacent parts with few texts join into longer literals; any part's required
            // texts are required of the whole.
            let mut best: Option<BTreeSet<String>> = None;
            let mut keep = |candidate: Option<BTreeSet<String>>| {
                let Some(candidate) = candidate.and_then(usable) else {
                    return;
                };
                if best
                    .as_ref()
                    .is_none_or(|b| atom_score(&candidate) > atom_score(b))
                {
                    best = Some(candidate);
                }
            };
            let mut run = BTreeSet::from([String::new()]);
            for part in parts {
                match exact_texts(part) {
                    Some(texts) => match cross(&run, &texts) {
                        Some(longer) => run = longer,
                        None => {
                            keep(Some(std::mem::replace(&mut run, texts)));
                        }
                    },
                    None => {
                        keep(Some(std::mem::replace(
                            &mut run,
                            BTreeSet::from([String::new()]),
                        )));
                        keep(required_texts(part));
                    }
                }
            }
            keep(Some(run));
            best
        }
        _ => exact_texts(hir).and_then(usable),
    }
}

/// The largest bounded repetition count in `hir` (nested ones multiplied).
fn max_repetition(hir: &regex_syntax::hir::Hir) -> u32 {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Repetition(r) => {
            let count = r.max.unwrap_or(r.min).max(1);
            count.saturating_mul(max_repetition(&r.sub).max(1))
        }
        HirKind::Capture(c) => max_repetition(&c.sub),
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            hs.iter().map(max_repetition).max().unwrap_or(0)
        }
        _ => 0,
    }
}

fn bad_regex(field: &str, pattern: &str, error: &str) -> RuleError {
    RuleError::BadRegex {
        field: field.to_owned(),
        pattern: pattern.to_owned(),
        reason: error.lines().last().unwrap_or("").trim().to_owned(),
    }
}

fn compile_regex(pattern: &str, flags: RegexFlags, field: &str) -> Result<Regex, RuleError> {
    RegexBuilder::new(pattern)
        .case_insensitive(flags.i)
        .multi_line(flags.m)
        .dot_matches_new_line(flags.s)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| bad_regex(field, pattern, &e.to_string()))
}

/// Builds one set from patterns; `ci` = case-insensitive.
fn build_set(patterns: Vec<Pattern>, ci: bool, field: &str) -> Result<StringSet, RuleError> {
    let mut set = StringSet {
        ci,
        ..StringSet::default()
    };
    let mut contains: Vec<String> = Vec::new();
    let mut glob_regexes: Vec<String> = Vec::new();
    let mut atoms: Option<Vec<Box<str>>> = Some(Vec::new());
    for p in patterns {
        match p {
            Pattern::Regex(re, flags) => {
                let regex = LazyRegex::new(re, flags, field)?;
                match (&mut atoms, &regex.atoms) {
                    (Some(list), Some(more)) => list.extend(more.iter().cloned()),
                    (atoms, _) => *atoms = None,
                }
                set.regexes.push(regex);
            }
            Pattern::Glob(toks) => {
                // Non-ASCII literals under case-insensitivity need Unicode folding: regex.
                let ascii = toks.iter().all(|t| match t {
                    Tok::Lit(s) => ascii_foldable(s),
                    _ => true,
                });
                match (&mut atoms, glob_atom(&toks, ci)) {
                    (Some(list), Some(atom)) => list.push(atom),
                    (atoms, _) => *atoms = None,
                }
                let lit = |t: &Tok| match t {
                    Tok::Lit(s) => Some(s.clone()),
                    _ => None,
                };
                let fast = if ci && !ascii {
                    None
                } else {
                    match toks.as_slice() {
                        [] => Some((0, String::new())),
                        [Tok::Star] => Some((4, String::new())),
                        [l @ Tok::Lit(_)] => lit(l).map(|s| (0, s)),
                        [l @ Tok::Lit(_), Tok::Star] => lit(l).map(|s| (1, s)),
                        [Tok::Star, l @ Tok::Lit(_)] => lit(l).map(|s| (2, s)),
                        [Tok::Star, l @ Tok::Lit(_), Tok::Star] => lit(l).map(|s| (3, s)),
                        _ => None,
                    }
                };
                match fast {
                    Some((0, s)) => set.exact.push(s.into()),
                    Some((1, s)) => set.prefix.push(s.into()),
                    Some((2, s)) => set.suffix.push(s.into()),
                    Some((3, s)) => contains.push(s),
                    Some(_) => set.any = true,
                    None => glob_regexes.push(regex_for_glob(&toks, ci)),
                }
            }
        }
    }
    // The globs' regexes are joined into a few alternations, each searched once, rather
    // than searched one by one: a list of non-ASCII literals (look-alike characters) is
    // dozens of them.
    let mut joined = String::new();
    for re in glob_regexes {
        if !joined.is_empty() && joined.len() + re.len() + 5 > LAZY_REGEX_MAX as usize {
            let full = std::mem::take(&mut joined);
            set.regexes
                .push(LazyRegex::new(full, RegexFlags::default(), field)?);
        }
        if !joined.is_empty() {
            joined.push('|');
        }
        joined.push_str("(?:");
        joined.push_str(&re);
        joined.push(')');
    }
    if !joined.is_empty() {
        set.regexes
            .push(LazyRegex::new(joined, RegexFlags::default(), field)?);
    }
    set.contains = contains
        .into_iter()
        .map(|p| if ci { p.to_ascii_lowercase() } else { p })
        .map(String::into_boxed_str)
        .collect();
    set.atoms = atoms.filter(|a| !a.is_empty() && !set.any);
    Ok(set)
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
    let mut work = vec![Work::Toks(value.toks())];
    for &t in &m.transforms {
        let mut next = Vec::new();
        for w in work {
            match t {
                "utf16le" | "utf16be" | "utf16" => {
                    let text = plain_text(&w.into_toks(), key, t)?;
                    next.push(Work::Bytes(utf16(&text, t == "utf16be", t == "utf16")));
                }
                "base64" => {
                    let bytes = w.bytes(key, t)?;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    next.push(Work::Toks(vec![Tok::Lit(encoded)]));
                }
                "base64offset" => {
                    let bytes = w.bytes(key, t)?;
                    for encoded in base64_offsets(&bytes) {
                        next.push(Work::Toks(vec![Tok::Lit(encoded)]));
                    }
                }
                "windash" => {
                    for v in expand_dashes(windash(w.into_toks())) {
                        next.push(Work::Toks(v));
                    }
                }
                _ => {
                    for v in expand_placeholders(w.into_toks(), placeholders, key)? {
                        next.push(Work::Toks(v));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(key: &str, values: &[Scalar]) -> Result<ValueTest, RuleError> {
        let mut parts = key.split('|');
        let _field = parts.next();
        let mods: Vec<&str> = parts.collect();
        let mut placeholders = std::collections::HashMap::new();
        placeholders.insert(
            "admins".to_owned(),
            vec!["root".to_owned(), "adm*".to_owned()],
        );
        compile_item(key, &mods, values, &placeholders)
    }

    fn s(v: &str) -> Scalar {
        Scalar::Str(v.to_owned())
    }

    fn hit(key: &str, values: &[Scalar], event_value: Value) -> bool {
        let fields = Fields::default();
        item(key, values).unwrap().eval(Some(&event_value), &fields)
    }

    fn atoms_of(pattern: &str, i: bool) -> Option<Vec<String>> {
        let flags = RegexFlags {
            i,
            ..RegexFlags::default()
        };
        let regex = LazyRegex::new(pattern.to_owned(), flags, "F").unwrap();
        regex
            .atoms
            .map(|a| a.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn numbers_read_as_display_prints_them() {
        for n in [
            json!(0),
            json!(4688),
            json!(-17),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.5),
            json!(1e300),
        ] {
            assert_eq!(with_text(&n, str::to_owned), Some(n.to_string()), "{n}");
        }
    }

    #[test]
    fn regexes_give_the_prefilter_their_literals() {
        // The longer of prefix and suffix lists wins.
        assert_eq!(
            atoms_of(r"ipconfig\s+/all", false),
            Some(vec!["ipconfig".into()])
        );
        assert_eq!(atoms_of(r".*\.ps1$", false), Some(vec![".ps1".into()]));
        assert_eq!(
            atoms_of(r"(Invoke|IEX)\(", false),
            Some(vec!["iex(".into(), "invoke(".into()])
        );
        // Case variants collapse to one lower-case literal; the Kelvin sign (a case variant
        // of `k`) stays, so the list still covers every match.
        assert_eq!(atoms_of(r"\.exe\s", true), Some(vec![".exe".into()]));
        let k = atoms_of("kb[0-9]", true).unwrap();
        assert!(k.contains(&"kb7".to_owned()), "{k:?}");
        assert!(k.contains(&"\u{212a}b7".to_owned()), "{k:?}");
        assert_eq!(k.len(), 20);
        // No finite list, or an empty literal in it: nothing to prefilter on.
        assert_eq!(atoms_of(r"\w+", false), None);
        assert_eq!(atoms_of(r"a?", false), None);
        // A set with a regex without literals has no atoms; with literals it has all of them.
        let set = build_set(
            vec![
                Pattern::Regex(r"\d{4}".into(), RegexFlags::default()),
                Pattern::Glob(vec![Tok::Star, Tok::Lit("x".into())]),
            ],
            true,
            "F",
        )
        .unwrap();
        assert!(set.atoms.is_none());
        let set = build_set(
            vec![
                Pattern::Regex(r"net\s+user".into(), RegexFlags::default()),
                Pattern::Glob(vec![Tok::Star, Tok::Lit("whoami".into()), Tok::Star]),
            ],
            true,
            "F",
        )
        .unwrap();
        let atoms: Vec<&str> = set.atoms.iter().flatten().map(|a| &**a).collect();
        assert_eq!(atoms, ["user", "whoami"]);
    }

    #[test]
    fn literals_from_the_middle_of_a_regex_reach_the_prefilter() {
        // Neither end has a useful literal; the middle has a long one.
        assert_eq!(
            atoms_of(
                r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe["']?\s+\d{2,10}"#,
                false
            ),
            // The long s (U+017F) is a case variant of `s`, as `(?i)` has it.
            Some(vec![
                "werfaultsecure.exe".into(),
                "werfault\u{17f}ecure.exe".into()
            ])
        );
        // An alternation in the middle: one of its branches' literals.
        assert_eq!(
            atoms_of(r"\w+\s+(?:foo|barbaz)\s+\w+", false),
            Some(vec!["barbaz".into(), "foo".into()])
        );
        // Adjacent small pieces join; a required repetition keeps its literal.
        assert_eq!(
            atoms_of(r"\s(?:-|/)enc\w*\s+(?:abc)+", true),
            Some(vec!["-enc".into(), "/enc".into()])
        );
        // A branch without a literal leaves the whole without one.
        assert_eq!(atoms_of(r"\w+(?:foo|\d+)\w+", false), None);
        assert_eq!(atoms_of(r"\w+(?:foo)?\w+", false), None);
        // Each atom really occurs in a match.
        let re = regex::Regex::new(r"(?i)\.exe\s+\S{0,9}WerFaultSecure\.exe").unwrap();
        let text = "x.EXE  -pWERFAULTSECURE.exe";
        assert!(re.is_match(text));
        let atoms = atoms_of(r"\.exe\s+\S{0,9}WerFaultSecure\.exe", true).unwrap();
        assert!(
            atoms
                .iter()
                .any(|a| text.to_ascii_lowercase().contains(a.as_str()))
        );
    }

    #[test]
    fn long_texts_are_searched_lower_cased_for_few_contains_patterns() {
        let set = build_set(
            vec![
                Pattern::Glob(vec![Tok::Star, Tok::Lit(" -W Hidden ".into()), Tok::Star]),
                Pattern::Glob(vec![Tok::Star, Tok::Lit("FromBase64".into()), Tok::Star]),
            ],
            true,
            "CommandLine",
        )
        .unwrap();
        let padding = "a b c d ".repeat(200);
        for (text, hit) in [
            (format!("{padding} -w hIDDEN {padding}"), true),
            (format!("{padding}[convert]::frombase64string("), true),
            (format!(" -W HIDDEN{padding}"), false),
            (format!("{padding} -w hidde"), false),
            (" -w hidden ".to_owned(), true),
            ("-w hidden".to_owned(), false),
        ] {
            assert_eq!(
                set.is_match(&text),
                hit,
                "{}",
                &text[text.len().saturating_sub(30)..]
            );
        }
    }

    #[test]
    fn many_non_ascii_literals_are_searched_as_few_regexes() {
        // Look-alike characters: case-insensitive, so they need Unicode case folding.
        let letters: Vec<char> = ('\u{0410}'..='\u{042F}').collect();
        let patterns = letters
            .iter()
            .map(|c| Pattern::Glob(vec![Tok::Star, Tok::Lit(c.to_string()), Tok::Star]))
            .collect();
        let set = build_set(patterns, true, "CommandLine").unwrap();
        assert!(
            set.regexes.len() < letters.len() / 4,
            "{}",
            set.regexes.len()
        );
        for c in &letters {
            let lower: String = c.to_lowercase().collect();
            assert!(set.is_match(&format!("cmd /c {c}x")), "{c}");
            assert!(set.is_match(&format!("cmd /c {lower}x")), "{lower}");
        }
        assert!(!set.is_match("cmd /c ABCx"));
        // Anchored shapes joined with others keep their anchors.
        let set = build_set(
            vec![
                Pattern::Glob(vec![
                    Tok::Lit("\u{0410}".into()),
                    Tok::Star,
                    Tok::Lit("z".into()),
                ]),
                Pattern::Glob(vec![Tok::Star, Tok::Lit("\u{0412}".into()), Tok::Quest]),
            ],
            true,
            "F",
        )
        .unwrap();
        assert_eq!(set.regexes.len(), 1);
        assert!(set.is_match("\u{0430}bcZ"));
        assert!(!set.is_match("x\u{0430}bcz"));
        assert!(set.is_match("x\u{0432}y"));
        assert!(!set.is_match("x\u{0432}yy"));
    }

    #[test]
    fn many_contains_patterns_match_case_insensitively() {
        let values: Vec<Scalar> = (0..20).map(|i| s(&format!("Needle{i}"))).collect();
        assert!(hit("F|contains", &values, json!("a NEEDLE7 in hay")));
        assert!(hit("F|contains", &values, json!("needle19")));
        assert!(!hit("F|contains", &values, json!("needle 7")));
        assert!(hit("F|contains|cased", &values, json!("xNeedle3x")));
        assert!(!hit("F|contains|cased", &values, json!("xneedle3x")));
    }

    #[test]
    fn plain_is_exact_and_case_insensitive() {
        assert!(hit("F", &[s("Foo")], json!("foo")));
        assert!(!hit("F", &[s("Foo")], json!("foo2")));
        assert!(hit("F", &[s("a"), s("b")], json!("B")));
        assert!(hit("F|cased", &[s("Foo")], json!("Foo")));
        assert!(!hit("F|cased", &[s("Foo")], json!("foo")));
    }

    #[test]
    fn wildcards_and_escapes() {
        assert!(hit("F", &[s("*\\cmd.exe")], json!("C:\\Windows\\CMD.EXE")));
        assert!(hit("F", &[s("a?c")], json!("abc")));
        assert!(!hit("F", &[s("a?c")], json!("abbc")));
        assert!(hit("F", &[s("a*c*e")], json!("aXXcYYe")));
        assert!(hit("F", &[s("a\\*b")], json!("a*b")));
        assert!(!hit("F", &[s("a\\*b")], json!("axb")));
        assert!(hit("F", &[s("a\\?b")], json!("a?b")));
        assert!(hit("F", &[s("a\\\\*")], json!("a\\anything")));
        assert!(hit("F", &[s("C:\\Windows\\")], json!("c:\\windows\\")));
        assert!(hit("F", &[s("*")], json!("")));
        assert!(hit("F", &[s("ÄB")], json!("äb")));
    }

    #[test]
    fn shapes() {
        assert!(hit("F|contains", &[s("mimi")], json!("x MIMIkatz")));
        assert!(hit("F|startswith", &[s("c:\\")], json!("C:\\x")));
        assert!(!hit("F|startswith", &[s("c:\\")], json!("D:\\x")));
        assert!(hit("F|endswith", &[s(".EXE")], json!("a.exe")));
        assert!(hit("F|contains|all", &[s("a"), s("b")], json!("xbxa")));
        assert!(!hit("F|contains|all", &[s("a"), s("b")], json!("xxa")));
        assert!(hit("F|contains", &[s("a*c")], json!("zzabbbczz")));
        assert!(hit("F|contains|cased", &[s("AbC")], json!("xAbCx")));
        assert!(!hit("F|contains|cased", &[s("AbC")], json!("xabcx")));
    }

    #[test]
    fn few_and_many_contains() {
        assert!(ci_contains(b"abcXYZ", b"xy"));
        assert!(ci_contains(b"xy", b"XY"));
        assert!(!ci_contains(b"x", b"xy"));
        assert!(ci_contains(b"a-b", b"-B"));
        assert!(ci_contains(b"", b""));
        let many: Vec<Scalar> = (0..10).map(|i| s(&format!("pat{i}"))).collect();
        assert!(hit("F|contains", &many, json!("xxPAT7xx")));
        assert!(!hit("F|contains", &many, json!("xxpat_xx")));
        assert!(hit("F|contains|cased", &many, json!("xxpat7xx")));
        assert!(!hit("F|contains|cased", &many, json!("xxPAT7xx")));
    }

    #[test]
    fn numbers_and_null() {
        assert!(hit("EventID", &[Scalar::Int(4688)], json!(4688)));
        assert!(hit("EventID", &[Scalar::Int(4688)], json!("4688")));
        assert!(!hit("EventID", &[Scalar::Int(4688)], json!(46880)));
        let fields = Fields::default();
        let null = item("F", &[Scalar::Null]).unwrap();
        assert!(null.eval(None, &fields));
        assert!(null.eval(Some(&json!(null)), &fields));
        assert!(null.eval(Some(&json!("")), &fields));
        assert!(!null.eval(Some(&json!("x")), &fields));
        let empty = item("F", &[s("")]).unwrap();
        assert!(empty.eval(Some(&json!("")), &fields));
        assert!(!empty.eval(None, &fields));
        assert!(!empty.eval(Some(&json!("x")), &fields));
        assert!(hit("F", &[Scalar::Bool(true)], json!(true)));
        assert!(hit("F", &[s("x")], json!(["a", "X"])));
    }

    #[test]
    fn exists() {
        let fields = Fields::default();
        let t = item("F|exists", &[Scalar::Bool(true)]).unwrap();
        assert!(t.eval(Some(&json!("")), &fields));
        assert!(!t.eval(None, &fields));
        let f = item("F|exists", &[Scalar::Bool(false)]).unwrap();
        assert!(f.eval(None, &fields));
        assert!(item("F|exists", &[s("maybe")]).is_err());
    }

    #[test]
    fn neq() {
        assert!(hit("F|neq", &[s("a")], json!("b")));
        assert!(!hit("F|neq", &[s("a")], json!("A")));
        assert!(!hit("F|neq", &[s("a"), s("b")], json!("b")));
        assert!(hit("F|neq", &[s("a"), s("b")], json!("c")));
    }

    #[test]
    fn windash() {
        for v in ["-enc", "/enc", "\u{2013}enc", "\u{2014}enc", "\u{2015}enc"] {
            assert!(hit(
                "F|windash|contains",
                &[s(" -enc ")],
                json!(format!("x {v} y"))
            ));
        }
        assert!(!hit(
            "F|windash|contains",
            &[s(" -enc ")],
            json!("x +enc y")
        ));
        // Many dash positions fall back to a regex.
        let many = " -a -b -c -d -e";
        assert!(hit(
            "F|contains|windash",
            &[s(many)],
            json!("x /a -b /c -d /e")
        ));
        // A dash inside a word is left alone.
        assert!(!hit("F|windash", &[s("a-b")], json!("a/b")));
    }

    #[test]
    fn base64_and_utf16() {
        assert!(hit("F|base64", &[s("abc")], json!("YWJj")));
        assert!(hit("F|base64|contains", &[s("abc")], json!("xxYWJjxx")));
        assert_eq!(
            base64_offsets(b"http://"),
            vec!["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]
        );
        let engine = base64::engine::general_purpose::STANDARD;
        for prefix in ["", "a", "ab", "abc"] {
            let encoded = engine.encode(format!("{prefix}http://host"));
            assert!(hit(
                "F|base64offset|contains",
                &[s("http://")],
                json!(encoded)
            ));
        }
        let wide = engine.encode(utf16("xx Invoke-Mimikatz yy", false, false));
        assert!(hit(
            "F|wide|base64offset|contains",
            &[s("Invoke-Mimikatz")],
            json!(wide)
        ));
        assert!(hit(
            "F|utf16le|base64offset|contains",
            &[s("Invoke-Mimikatz")],
            json!(wide)
        ));
        let be = engine.encode(utf16("Invoke", true, false));
        assert!(hit("F|utf16be|base64", &[s("Invoke")], json!(be)));
        let bom = engine.encode(utf16("Invoke", false, true));
        assert!(hit("F|utf16|base64", &[s("Invoke")], json!(bom)));
        assert!(item("F|base64", &[s("a*")]).is_err());
    }

    #[test]
    fn regexes() {
        assert!(hit("F|re", &[s("^a.c$")], json!("abc")));
        assert!(!hit("F|re", &[s("^a.c$")], json!("ABC")));
        assert!(hit("F|re|i", &[s("^a.c$")], json!("ABC")));
        assert!(hit("F|re|m", &[s("^b$")], json!("a\nb\nc")));
        assert!(!hit("F|re", &[s("^b$")], json!("a\nb\nc")));
        assert!(hit("F|re|s", &[s("a.b")], json!("a\nb")));
        assert!(!hit("F|re", &[s("a.b")], json!("a\nb")));
        assert!(matches!(
            item("F|re", &[s("(unclosed")]),
            Err(RuleError::BadRegex { .. })
        ));
        assert!(item("F|i", &[s("x")]).is_err());
        // Checked at load although compiled on first use: syntax errors, and (compiled at
        // load because of their counted repetitions) regexes over the size limit.
        assert!(matches!(
            item("F|re", &[s("a[")]),
            Err(RuleError::BadRegex { .. })
        ));
        assert!(matches!(
            item("F|re", &[s("(\\w{1000}){1000}")]),
            Err(RuleError::BadRegex { .. })
        ));
        assert!(hit("F|re", &[s("^a{300}$")], json!("a".repeat(300))));
        assert!(!hit("F|re", &[s("^a{300}$")], json!("a".repeat(299))));
    }

    #[test]
    fn numeric() {
        assert!(hit("F|lt", &[Scalar::Int(5)], json!(4)));
        assert!(!hit("F|lt", &[Scalar::Int(5)], json!(5)));
        assert!(hit("F|lte", &[Scalar::Int(5)], json!("5")));
        assert!(hit("F|gt", &[Scalar::Int(5)], json!(6)));
        assert!(hit("F|gte", &[Scalar::Float(5.5)], json!(5.5)));
        assert!(hit("F|gt", &[Scalar::Int(15)], json!("0x10")));
        assert!(!hit("F|gt", &[Scalar::Int(5)], json!("n/a")));
        assert!(item("F|gt", &[s("x")]).is_err());
    }

    #[test]
    fn cidr() {
        let nets = [s("10.0.0.0/8"), s("fe80::/10")];
        assert!(hit("F|cidr", &nets, json!("10.1.2.3")));
        assert!(hit("F|cidr", &nets, json!("::ffff:10.1.2.3")));
        assert!(hit("F|cidr", &nets, json!("fe80::1")));
        assert!(!hit("F|cidr", &nets, json!("192.168.1.1")));
        assert!(!hit("F|cidr", &nets, json!("-")));
        assert!(item("F|cidr", &[s("10.0.0.0/99")]).is_err());
    }

    #[test]
    fn expand() {
        assert!(hit("F|expand", &[s("%admins%")], json!("ROOT")));
        assert!(hit("F|expand", &[s("%admins%")], json!("administrator")));
        assert!(hit(
            "F|expand|contains",
            &[s("u=%admins%;")],
            json!("x u=root; y")
        ));
        assert!(!hit("F|expand", &[s("%admins%")], json!("bob")));
        assert!(matches!(
            item("F|expand", &[s("%nope%")]),
            Err(RuleError::UnknownPlaceholder { .. })
        ));
    }

    #[test]
    fn fieldref() {
        let mut fields = Fields::default();
        fields.insert("A".into(), json!("Alice"));
        fields.insert("B".into(), json!("alice"));
        fields.insert("C".into(), json!("Al"));
        let t = item("B|fieldref", &[s("A")]).unwrap();
        assert!(t.eval(fields.get("B"), &fields));
        let t = item("B|fieldref|cased", &[s("A")]).unwrap();
        assert!(!t.eval(fields.get("B"), &fields));
        let t = item("A|fieldref|startswith", &[s("C")]).unwrap();
        assert!(t.eval(fields.get("A"), &fields));
        let t = item("A|fieldref", &[s("Missing")]).unwrap();
        assert!(!t.eval(fields.get("A"), &fields));
    }

    #[test]
    fn time_parts() {
        let ts = json!("2024-03-10T22:15:00.123Z");
        assert!(hit("T|hour", &[Scalar::Int(22)], ts.clone()));
        assert!(hit("T|hour|gte", &[Scalar::Int(20)], ts.clone()));
        assert!(hit("T|minute", &[Scalar::Int(15)], ts.clone()));
        assert!(hit("T|day", &[Scalar::Int(10)], ts.clone()));
        assert!(hit("T|week", &[Scalar::Int(10)], ts.clone()));
        assert!(hit("T|month", &[Scalar::Int(3)], ts.clone()));
        assert!(hit("T|year", &[Scalar::Int(2024)], ts.clone()));
        assert!(hit(
            "T|hour",
            &[Scalar::Int(5)],
            json!("2024-03-10 05:00:00.000")
        ));
        assert!(!hit("T|hour", &[Scalar::Int(5)], json!("garbage")));
    }

    #[test]
    fn bad_modifiers_are_named() {
        match item("F|contanis", &[s("x")]) {
            Err(RuleError::UnknownModifier { modifier, .. }) => assert_eq!(modifier, "contanis"),
            other => panic!("{other:?}"),
        }
        assert!(item("F|contains|startswith", &[s("x")]).is_err());
        assert!(item("F|re|cidr", &[s("x")]).is_err());
        assert!(item("F", &[]).is_err());
    }
}
