//! Redaction for reports shared outside the team: user names, IP addresses and host names are
//! replaced by stable pseudonyms (`user-1`, `ip-2`, `host-3`), the same value always by the same
//! pseudonym in one report, in structured fields and in free text alike.

use std::collections::HashMap;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// What a report hides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Redaction {
    /// Account names.
    pub users: bool,
    /// IP addresses (every IPv4 / IPv6 address in free text too).
    pub ips: bool,
    /// Host names.
    pub hosts: bool,
}

impl Redaction {
    /// Parses `users,ips,hosts` (any subset, comma separated).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut redaction = Redaction::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "users" | "user" => redaction.users = true,
                "ips" | "ip" => redaction.ips = true,
                "hosts" | "host" => redaction.hosts = true,
                _ => {
                    return Err(format!(
                        "cannot redact '{item}': choose from users, ips, hosts"
                    ));
                }
            }
        }
        Ok(redaction)
    }

    /// Whether anything is redacted.
    pub fn any(&self) -> bool {
        self.users || self.ips || self.hosts
    }

    /// The redacted kinds' names, for the report's header.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.users {
            names.push("users");
        }
        if self.ips {
            names.push("ips");
        }
        if self.hosts {
            names.push("hosts");
        }
        names
    }
}

/// What kind of value a pseudonym stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An account.
    User,
    /// An IP address.
    Ip,
    /// A host.
    Host,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Ip => "ip",
            Kind::Host => "host",
        }
    }
}

/// Values that are no name worth hiding.
fn placeholder(value: &str) -> bool {
    matches!(value.trim(), "" | "-" | "unknown host" | "N/A" | "n/a")
}

fn ip_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(
            r"(?x)
            \b(?:\d{1,3}\.){3}\d{1,3}\b
            | (?i:\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\b)
            | (?i:(?:\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*\b)?)",
        )
        .expect("the IP pattern is valid")
    })
}

/// Assigns pseudonyms and rewrites text. Learn every value first ([`Redactor::learn`]), then
/// call [`Redactor::seal`] before rewriting free text.
#[derive(Debug, Default)]
pub struct Redactor {
    redaction: Redaction,
    names: HashMap<(Kind, String), String>,
    counters: HashMap<Kind, usize>,
    matcher: Option<(AhoCorasick, Vec<String>)>,
}

impl Redactor {
    /// A redactor for `redaction` that knows no values yet.
    pub fn new(redaction: Redaction) -> Self {
        Self {
            redaction,
            ..Self::default()
        }
    }

    /// Whether this kind is redacted.
    pub fn hides(&self, kind: Kind) -> bool {
        match kind {
            Kind::User => self.redaction.users,
            Kind::Ip => self.redaction.ips,
            Kind::Host => self.redaction.hosts,
        }
    }

    /// Whether anything is redacted.
    pub fn active(&self) -> bool {
        self.redaction.any()
    }

    /// Records a value (giving it a pseudonym) and returns what to show for it.
    pub fn learn(&mut self, kind: Kind, value: &str) -> String {
        if !self.hides(kind) || placeholder(value) {
            return value.to_owned();
        }
        let key = (kind, value.to_lowercase());
        if let Some(name) = self.names.get(&key) {
            return name.clone();
        }
        let counter = self.counters.entry(kind).or_default();
        *counter += 1;
        let name = format!("{}-{}", kind.prefix(), counter);
        self.names.insert(key, name.clone());
        // A domain-qualified account (`CORP\bob`, `bob@corp`) also hides its bare name.
        if kind == Kind::User {
            for part in value.split(['\\', '@']).filter(|p| p.len() > 1) {
                if part != value && !placeholder(part) {
                    self.names
                        .entry((kind, part.to_lowercase()))
                        .or_insert_with(|| name.clone());
                }
            }
        }
        self.matcher = None;
        name
    }

    /// Builds the free-text matcher over every value learnt so far.
    pub fn seal(&mut self) {
        if !self.active() {
            return;
        }
        let mut values: Vec<(String, String)> = self
            .names
            .iter()
            .map(|((_, value), name)| (value.clone(), name.clone()))
            .collect();
        values.sort();
        let patterns: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns);
        if let Ok(matcher) = matcher {
            self.matcher = Some((matcher, values.into_iter().map(|(_, n)| n).collect()));
        }
    }

    /// A structured value of a known kind.
    pub fn value(&mut self, kind: Kind, value: &str) -> String {
        if !self.hides(kind) {
            return value.to_owned();
        }
        let key = (kind, value.to_lowercase());
        match self.names.get(&key) {
            Some(name) => name.clone(),
            None => {
                let name = self.learn(kind, value);
                self.seal();
                name
            }
        }
    }

    /// Free text with every known value (at word boundaries) and, when IPs are hidden,
    /// every IP address replaced.
    pub fn text(&mut self, text: &str) -> String {
        if !self.active() || text.is_empty() {
            return text.to_owned();
        }
        if self.matcher.is_none() {
            self.seal();
        }
        let mut out = String::with_capacity(text.len());
        if let Some((matcher, names)) = &self.matcher {
            let mut last = 0;
            for found in matcher.find_iter(text) {
                let (start, end) = (found.start(), found.end());
                let before = text[..start].chars().next_back();
                let after = text[end..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if word(before) || word(after) {
                    continue;
                }
                out.push_str(&text[last..start]);
                out.push_str(&names[found.pattern().as_usize()]);
                last = end;
            }
            out.push_str(&text[last..]);
        } else {
            out.push_str(text);
        }
        if self.redaction.ips {
            let found: Vec<String> = ip_pattern()
                .find_iter(&out)
                .map(|m| m.as_str().to_owned())
                .filter(|m| m.parse::<std::net::IpAddr>().is_ok())
                .collect();
            if !found.is_empty() {
                let mut replaced = out.clone();
                for ip in found {
                    let name = self.learn(Kind::Ip, &ip);
                    replaced = replaced.replace(&ip, &name);
                }
                self.matcher = None;
                return replaced;
            }
        }
        out
    }
}

/// The kind of value an event field holds, judged by its name.
pub fn field_kind(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    if lower.contains("user") || lower.contains("account") || lower == "user" {
        Some(Kind::User)
    } else if lower.ends_with("ip")
        || lower.contains("ipaddress")
        || lower.ends_with("address")
        || lower.ends_with("_ip")
    {
        Some(Kind::Ip)
    } else if lower.contains("computer") || lower.contains("workstation") || lower == "host" {
        Some(Kind::Host)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_get_stable_pseudonyms_everywhere() {
        let mut r = Redactor::new(Redaction::parse("users,ips,hosts").unwrap());
        assert_eq!(r.learn(Kind::User, "CORP\\alice"), "user-1");
        assert_eq!(r.learn(Kind::Host, "dc01.corp.local"), "host-1");
        assert_eq!(r.learn(Kind::User, "bob"), "user-2");
        r.seal();
        assert_eq!(r.value(Kind::User, "ALICE"), "user-1");
        assert_eq!(
            r.text("Brute force — TargetUserName=bob on DC01.corp.local from 10.1.2.3 (bobby)"),
            "Brute force — TargetUserName=user-2 on host-1 from ip-1 (bobby)"
        );
        assert_eq!(r.text("again 10.1.2.3"), "again ip-1");
        assert!(Redaction::parse("users,mail").is_err());
    }

    #[test]
    fn nothing_changes_without_redaction() {
        let mut r = Redactor::new(Redaction::default());
        assert_eq!(r.learn(Kind::User, "bob"), "bob");
        assert_eq!(r.text("bob at 10.0.0.1"), "bob at 10.0.0.1");
    }
}
