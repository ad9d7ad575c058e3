//! A Sigma string value as parts (literal characters and wildcards), to and from its YAML
//! text and pySigma's "plain" representation, which `replace_string` rewrites.

/// One part of a Sigma string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// A literal character.
    Char(char),
    /// `*`.
    Many,
    /// `?`.
    One,
}

/// Parses a rule's string value: `*` and `?` are wildcards, `\*`, `\?` and `\\` escapes,
/// any other backslash literal.
pub(crate) fn parse(text: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => parts.push(Part::Many),
            '?' => parts.push(Part::One),
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    parts.push(Part::Char(n));
                }
                _ => parts.push(Part::Char('\\')),
            },
            c => parts.push(Part::Char(c)),
        }
    }
    parts
}

/// The rule text of parts, escaping only where needed.
pub(crate) fn render(parts: &[Part]) -> String {
    let mut out = String::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Many => out.push('*'),
            Part::One => out.push('?'),
            Part::Char(c @ ('*' | '?')) => {
                out.push('\\');
                out.push(*c);
            }
            Part::Char('\\') => {
                let next_special = matches!(
                    parts.get(i + 1),
                    Some(Part::Many | Part::One | Part::Char('*' | '?' | '\\'))
                );
                out.push_str(if next_special { "\\\\" } else { "\\" });
            }
            Part::Char(c) => out.push(*c),
        }
    }
    out
}

/// pySigma's plain representation: wildcards as themselves, literal `*` / `?` escaped, every
/// other character (backslashes included) as it is.
pub(crate) fn plain(parts: &[Part]) -> String {
    let mut out = String::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Many => out.push('*'),
            Part::One => out.push('?'),
            Part::Char(c @ ('*' | '?')) => {
                out.push('\\');
                out.push(*c);
            }
            Part::Char(c) => out.push(*c),
        }
    }
    out
}

/// Reads a plain representation back: a backslash is literal unless it escapes a wildcard.
pub(crate) fn from_plain(text: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => parts.push(Part::Many),
            '?' => parts.push(Part::One),
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?')) => {
                    chars.next();
                    parts.push(Part::Char(n));
                }
                _ => parts.push(Part::Char('\\')),
            },
            c => parts.push(Part::Char(c)),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in [
            r"C:\Windows\*.exe",
            r"a\*b",
            r"\\server\share",
            r"x\\*",
            "plain",
        ] {
            let parts = parse(text);
            assert_eq!(parse(&render(&parts)), parts, "{text}");
            if !text.contains(r"\\*") {
                assert_eq!(from_plain(&plain(&parts)), parts, "{text}");
            }
        }
        assert_eq!(parse(r"a\*")[1], Part::Char('*'));
        assert_eq!(render(&parse(r"C:\Windows\")), r"C:\Windows\");
    }
}
