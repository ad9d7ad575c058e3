//! The HTML and Markdown templates (minijinja): the built-in ones from `templates/report/`,
//! or the caller's own. HTML is rendered with auto-escaping on, whatever the template's name.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{AutoEscape, Environment};

use super::ReportError;
use super::ReportFormat;
use super::source::Source;

/// The built-in templates: (name, source).
pub const BUILTIN: [(&str, &str); 4] = [
    (
        "period.html",
        include_str!("../../../templates/report/period.html"),
    ),
    (
        "incident.html",
        include_str!("../../../templates/report/incident.html"),
    ),
    (
        "period.md",
        include_str!("../../../templates/report/period.md"),
    ),
    (
        "incident.md",
        include_str!("../../../templates/report/incident.md"),
    ),
];

/// A template the caller supplies instead of the built-in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTemplate {
    /// Its name in error messages (usually the file's path).
    pub name: String,
    /// Its text.
    pub source: String,
}

/// The built-in template's name for a report kind and format.
pub fn builtin_name(incident_report: bool, format: ReportFormat) -> &'static str {
    match (incident_report, format) {
        (true, ReportFormat::Markdown) => "incident.md",
        (false, ReportFormat::Markdown) => "period.md",
        (true, _) => "incident.html",
        (false, _) => "period.html",
    }
}

/// Escapes text for a Markdown table cell or line: no HTML, no emphasis, no cell breaks.
fn md(value: Value) -> String {
    let text = if value.is_undefined() || value.is_none() {
        String::new()
    } else {
        value.to_string()
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => {}
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// Formats an RFC 3339 time as `2026-03-01 14:05:09 UTC`; anything else unchanged.
fn dt(value: Value) -> String {
    let text = value.to_string();
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => text,
    }
}

/// The environment with the template to render under `name`.
pub fn environment(
    format: ReportFormat,
    name: &str,
    custom: Option<&CustomTemplate>,
) -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    let html = format == ReportFormat::Html;
    env.set_auto_escape_callback(move |_| {
        if html {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_keep_trailing_newline(true);
    env.add_filter("md", md);
    env.add_filter("dt", dt);
    let (name, source) = match custom {
        Some(custom) => (custom.name.clone(), custom.source.clone()),
        None => {
            let source = BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            (name.to_owned(), source.to_owned())
        }
    };
    env.add_template_owned(name, source)
        .map_err(ReportError::template)?;
    Ok(env)
}

/// The incident list as templates see it: iterated lazily, a page of the store at a time.
#[derive(Debug)]
pub struct LazyIncidents {
    /// Where the incidents come from.
    pub source: Arc<Source>,
}

impl Object for LazyIncidents {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let iter = self.source.iter().map(|i| Value::from_serialize(&i));
        Enumerator::Iter(Box::new(iter))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        usize::try_from(self.source.len()).ok()
    }
}
