//! Sigma string values as tokens: `*` and `?` wildcards, `\` escapes, the positions
//! `windash` varies and the `%name%` placeholders `expand` replaces.

use super::modifiers::MAX_VARIANTS;
use crate::rules::RuleError;

/// The dash characters `windash` treats as interchangeable.
const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// One token of a Sigma string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
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
pub(super) fn parse_sigma_string(s: &str) -> Vec<Tok> {
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
pub(super) fn normalise(toks: Vec<Tok>) -> Vec<Tok> {
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

pub(super) fn plain_text(toks: &[Tok], field: &str, modifier: &str) -> Result<String, RuleError> {
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

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Marks the `windash` positions: a `-` or `/` at the start of a word.
pub(super) fn windash(toks: Vec<Tok>) -> Vec<Tok> {
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
pub(super) fn expand_dashes(toks: Vec<Tok>) -> Vec<Vec<Tok>> {
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
pub(super) fn expand_placeholders(
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
