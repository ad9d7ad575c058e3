//! A rule's regexes: checked when the rule loads, compiled on first use, and shared between
//! rules with the same pattern.

use regex::{Regex, RegexBuilder};

use super::regex_literals::regex_atoms;
use crate::rules::RuleError;
use crate::rules::memo::Memo;

/// Compiled size limit for one regex.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(super) struct RegexFlags {
    pub(super) i: bool,
    pub(super) m: bool,
    pub(super) s: bool,
}

/// A rule's regex, checked when the rule loads and compiled when an event first reaches it:
/// compiling every regex of a large rule set costs more than reading its YAML, and most of
/// them belong to rules few events meet. A regex that could approach the compiled size limit
/// is compiled at load, so every regex that fails to compile is reported there.
#[derive(Debug, Clone)]
pub(super) struct LazyRegex {
    pattern: Box<str>,
    flags: RegexFlags,
    /// Literals one of which occurs in every match (see [`regex_atoms`]).
    pub(super) atoms: Option<Vec<Box<str>>>,
    compiled: std::sync::OnceLock<Option<std::sync::Arc<Regex>>>,
}

/// A regex this much longer, or with a counted repetition above this, is compiled at load.
pub(super) const LAZY_REGEX_MAX: u32 = 256;

impl LazyRegex {
    pub(super) fn new(pattern: String, flags: RegexFlags, field: &str) -> Result<Self, RuleError> {
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

    pub(super) fn is_match(&self, s: &str) -> bool {
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
