//! The Sigma condition grammar: `and`, `or`, `not`, brackets, `1 of x*`, `all of them`…
//!
//! Precedence is `not` > `and` > `or`; `x of` takes a search identifier, a pattern with `*`
//! wildcards, or `them` (every identifier not starting with `_`). Identifiers are resolved to
//! indices into the rule's search identifiers when the condition is parsed.

/// A parsed condition over a rule's search identifiers (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    /// One search identifier.
    Search(usize),
    /// Negation.
    Not(Box<Cond>),
    /// All must hold.
    And(Vec<Cond>),
    /// One must hold.
    Or(Vec<Cond>),
    /// At least `min` of the searches hold (`usize::MAX` would never hold; `all of` stores
    /// the list length).
    AtLeast { min: usize, searches: Vec<usize> },
}

impl Cond {
    /// Evaluates the condition given a way to evaluate one search.
    pub(crate) fn eval(&self, search: &mut impl FnMut(usize) -> bool) -> bool {
        match self {
            Cond::Search(i) => search(*i),
            Cond::Not(c) => !c.eval(search),
            Cond::And(cs) => cs.iter().all(|c| c.eval(search)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(search)),
            Cond::AtLeast { min, searches } => {
                let mut hits = 0;
                for &i in searches {
                    if search(i) {
                        hits += 1;
                        if hits >= *min {
                            return true;
                        }
                    }
                }
                false
            }
        }
    }
}

/// The longest condition text accepted.
const MAX_LEN: usize = 64 * 1024;
/// The deepest nesting of brackets and `not` accepted.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    Word(&'a str),
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            tokens.push(Token::Open);
            chars.next();
        } else if c == ')' {
            tokens.push(Token::Close);
            chars.next();
        } else if c == '|' {
            return Err(
                "aggregation expressions ('| count() …') are not supported: use a correlation rule"
                    .to_owned(),
            );
        } else if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?') {
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.' | '?') {
                    end = i + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token::Word(&text[start..end]));
        } else {
            return Err(format!("unexpected character '{c}' at offset {start}"));
        }
    }
    Ok(tokens)
}

struct Parser<'a, 'n> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    names: &'n [String],
    depth: usize,
}

fn is_kw(word: &str, kw: &str) -> bool {
    word.eq_ignore_ascii_case(kw)
}

/// Parses `text` against the rule's search identifier `names`.
pub(crate) fn parse(text: &str, names: &[String]) -> Result<Cond, String> {
    if text.len() > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} bytes"));
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("empty condition".to_owned());
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        names,
        depth: 0,
    };
    let cond = parser.or()?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(format!(
            "unexpected {} after a complete expression",
            show(token)
        ));
    }
    Ok(cond)
}

fn show(token: &Token<'_>) -> String {
    match token {
        Token::Open => "'('".to_owned(),
        Token::Close => "')'".to_owned(),
        Token::Word(w) => format!("'{w}'"),
    }
}

impl Parser<'_, '_> {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if is_kw(w, kw))
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.and()?];
        while self.peek_kw("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.not()?];
        while self.peek_kw("and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if self.peek_kw("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Cond, String> {
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return Err("unexpected end of condition".to_owned());
        };
        self.pos += 1;
        match token {
            Token::Open => {
                self.enter()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(format!("expected ')' but found {}", show(other))),
                    None => Err("unclosed '('".to_owned()),
                }
            }
            Token::Close => Err("unexpected ')'".to_owned()),
            Token::Word(word) => {
                if self.peek_kw("of") {
                    self.pos += 1;
                    return self.of(word);
                }
                for kw in ["and", "or", "of", "them"] {
                    if is_kw(word, kw) {
                        return Err(format!("unexpected keyword '{word}'"));
                    }
                }
                match self.names.iter().position(|n| n == word) {
                    Some(i) => Ok(Cond::Search(i)),
                    None => Err(format!("unknown search identifier '{word}'")),
                }
            }
        }
    }

    fn of(&mut self, quantifier: &str) -> Result<Cond, String> {
        let Some(Token::Word(target)) = self.tokens.get(self.pos).cloned() else {
            return Err(format!(
                "'{quantifier} of' must be followed by a name, a pattern or 'them'"
            ));
        };
        self.pos += 1;
        let searches: Vec<usize> = if is_kw(target, "them") {
            (0..self.names.len())
                .filter(|&i| !self.names[i].starts_with('_'))
                .collect()
        } else {
            (0..self.names.len())
                .filter(|&i| glob_match(target, &self.names[i]))
                .collect()
        };
        if searches.is_empty() {
            return Err(format!(
                "'{quantifier} of {target}' matches no search identifier"
            ));
        }
        let min = if is_kw(quantifier, "all") {
            searches.len()
        } else {
            match quantifier.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "'{quantifier} of': expected 'all' or a positive number before 'of'"
                    ));
                }
            }
        };
        Ok(Cond::AtLeast { min, searches })
    }
}

/// Whether `name` matches the identifier pattern `pattern` (`*` any run, `?` one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn eval(cond: &str, ids: &[&str], truth: &[bool]) -> bool {
        let c = parse(cond, &names(ids)).unwrap();
        c.eval(&mut |i| truth[i])
    }

    #[test]
    fn precedence_not_and_or() {
        let ids = ["a", "b", "c"];
        // a or b and c == a or (b and c)
        assert!(eval("a or b and c", &ids, &[true, false, false]));
        assert!(!eval("(a or b) and c", &ids, &[true, false, false]));
        // not a and b == (not a) and b
        assert!(eval("not a and b", &ids, &[false, true, false]));
        assert!(!eval("not (a and b)", &ids, &[true, true, false]));
        assert!(eval("not a or b", &ids, &[true, true, false]));
        assert!(eval("not not a", &ids, &[true, false, false]));
    }

    #[test]
    fn of_forms() {
        let ids = ["sel1", "sel2", "filter", "_hidden"];
        assert!(eval("1 of sel*", &ids, &[false, true, false, false]));
        assert!(!eval("all of sel*", &ids, &[false, true, false, false]));
        assert!(eval(
            "all of sel* and not filter",
            &ids,
            &[true, true, false, false]
        ));
        assert!(eval("1 of them", &ids, &[false, false, true, false]));
        assert!(!eval("1 of them", &ids, &[false, false, false, true]));
        assert!(eval("all of them", &ids, &[true, true, true, false]));
        assert!(eval("2 of them", &ids, &[true, false, true, false]));
        assert!(eval("1 of _h*", &ids, &[false, false, false, true]));
        assert!(eval(
            "ALL OF sel* AND NOT filter",
            &ids,
            &[true, true, false, false]
        ));
    }

    #[test]
    fn errors_name_the_construct() {
        let ids = names(&["a"]);
        assert!(parse("a and b", &ids).unwrap_err().contains("'b'"));
        assert!(parse("1 of x*", &ids).unwrap_err().contains("x*"));
        assert!(parse("(a", &ids).unwrap_err().contains("unclosed"));
        assert!(parse("a)", &ids).unwrap_err().contains("')'"));
        assert!(
            parse("a | count() > 5", &ids)
                .unwrap_err()
                .contains("aggregation")
        );
        assert!(parse("", &ids).is_err());
        assert!(parse("a and", &ids).is_err());
        assert!(parse("not", &ids).is_err());
        assert!(
            parse(&"(".repeat(1000), &ids)
                .unwrap_err()
                .contains("nested")
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("sel*", "selection"));
        assert!(glob_match("*tion", "selection"));
        assert!(glob_match("s?l*", "selection"));
        assert!(!glob_match("filter*", "selection"));
        assert!(glob_match("*", ""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, &names(&["a", "b", "sel1", "_x"]));
        }

        #[test]
        fn never_panics_on_grammar_soup(words in proptest::collection::vec(
            proptest::sample::select(vec!["a", "b", "and", "or", "not", "(", ")", "1", "all",
                "of", "them", "sel*", "x", "|", "2"]), 0..40)) {
            let text = words.join(" ");
            let _ = parse(&text, &names(&["a", "b", "sel1", "_x"]));
        }
    }
}
