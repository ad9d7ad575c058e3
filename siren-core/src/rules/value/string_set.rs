//! A field item's text patterns ([`StringSet`]): exact, prefix, suffix and contains lists
//! compared ASCII case-insensitively, and the rest as a few joined regexes.

use aho_corasick::AhoCorasick;

use super::lazy_regex::{LAZY_REGEX_MAX, LazyRegex, RegexFlags};
use super::sigma_string::Tok;
use crate::rules::RuleError;

/// A set of text patterns, any of which may match, prepared for speed.
#[derive(Debug, Clone, Default)]
pub(crate) struct StringSet {
    /// ASCII case-insensitive comparison for the literal lists.
    pub(super) ci: bool,
    pub(super) exact: Vec<Box<str>>,
    pub(super) prefix: Vec<Box<str>>,
    pub(super) suffix: Vec<Box<str>>,
    /// Contains patterns: few are searched one by one, more with an automaton built on
    /// first use (rules the prefilter never lets through never pay for it).
    pub(super) contains: Vec<Box<str>>,
    contains_automaton: std::sync::OnceLock<Option<std::sync::Arc<AhoCorasick>>>,
    pub(super) regexes: Vec<LazyRegex>,
    /// A bare `*`: any text matches.
    pub(super) any: bool,
    /// Literals one of which occurs (ASCII case-insensitively) in every text this set
    /// matches; `None` when no such list is known.
    pub(super) atoms: Option<Vec<Box<str>>>,
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
pub(super) fn ci_contains(hay: &[u8], needle: &[u8]) -> bool {
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
            crate::rules::subject::push_lower(&mut lower, b);
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
            crate::rules::memo::matcher(patterns)
        });
        automaton.as_deref()
    }
}

/// A pattern ready to join a [`StringSet`].
#[derive(Debug, Clone)]
pub(super) enum Pattern {
    Glob(Vec<Tok>),
    Regex(String, RegexFlags),
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

/// Builds one set from patterns; `ci` = case-insensitive.
pub(super) fn build_set(
    patterns: Vec<Pattern>,
    ci: bool,
    field: &str,
) -> Result<StringSet, RuleError> {
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
