//! The `*_cond_expr` expressions that combine a processing item's named conditions:
//! names, `and`, `or`, `not` and parentheses.

/// A condition expression over condition names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A named condition.
    Name(String),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction.
    And(Box<Expr>, Box<Expr>),
    /// Disjunction.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Parses an expression; `known` are the condition names it may use.
    pub(crate) fn parse(text: &str, known: &[&str]) -> Result<Expr, String> {
        let tokens = tokenize(text);
        let mut at = 0;
        let expr = or_expr(&tokens, &mut at, known)?;
        if at != tokens.len() {
            return Err(format!("unexpected '{}' in '{text}'", tokens[at]));
        }
        Ok(expr)
    }

    /// Evaluates the expression, `value` giving each name's truth.
    pub(crate) fn eval(&self, value: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Expr::Name(n) => value(n),
            Expr::Not(e) => !e.eval(value),
            Expr::And(a, b) => a.eval(value) && b.eval(value),
            Expr::Or(a, b) => a.eval(value) || b.eval(value),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn or_expr(t: &[String], at: &mut usize, known: &[&str]) -> Result<Expr, String> {
    let mut left = and_expr(t, at, known)?;
    while t.get(*at).is_some_and(|w| w.eq_ignore_ascii_case("or")) {
        *at += 1;
        left = Expr::Or(Box::new(left), Box::new(and_expr(t, at, known)?));
    }
    Ok(left)
}

fn and_expr(t: &[String], at: &mut usize, known: &[&str]) -> Result<Expr, String> {
    let mut left = not_expr(t, at, known)?;
    while t.get(*at).is_some_and(|w| w.eq_ignore_ascii_case("and")) {
        *at += 1;
        left = Expr::And(Box::new(left), Box::new(not_expr(t, at, known)?));
    }
    Ok(left)
}

fn not_expr(t: &[String], at: &mut usize, known: &[&str]) -> Result<Expr, String> {
    let Some(word) = t.get(*at) else {
        return Err("the expression ends too early".into());
    };
    *at += 1;
    if word.eq_ignore_ascii_case("not") {
        return Ok(Expr::Not(Box::new(not_expr(t, at, known)?)));
    }
    if word == "(" {
        let inner = or_expr(t, at, known)?;
        if t.get(*at).map(String::as_str) != Some(")") {
            return Err("a '(' is not closed".into());
        }
        *at += 1;
        return Ok(inner);
    }
    if known.contains(&word.as_str()) {
        Ok(Expr::Name(word.clone()))
    } else {
        Err(format!("no condition is named '{word}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_parentheses() {
        let e = Expr::parse("a or not b and (c or a)", &["a", "b", "c"]).unwrap();
        let truth = |a: bool, b: bool, c: bool| {
            e.eval(&|n: &str| match n {
                "a" => a,
                "b" => b,
                _ => c,
            })
        };
        assert!(truth(true, true, false));
        assert!(!truth(false, true, true));
        assert!(truth(false, false, true));
        assert!(Expr::parse("a and", &["a"]).is_err());
        assert!(Expr::parse("a and x", &["a"]).is_err());
        assert!(Expr::parse("(a", &["a"]).is_err());
    }
}
