//! The literals every match of a regex contains (from its prefix, its suffix or its
//! middle), which let the prefilter skip events that cannot match.

use std::collections::BTreeSet;

use super::compiled::atom_score;

/// Literals (ASCII lower-case) one of which occurs in every text the regex matches: every
/// match begins with one of its prefix literals and ends with one of its suffix literals,
/// so either list will do; the more selective is kept. `None` when neither list is finite
/// and free of the empty literal.
pub(super) fn regex_atoms(hir: &regex_syntax::hir::Hir) -> Option<Vec<Box<str>>> {
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
