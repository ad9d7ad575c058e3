//! Pipelines applied to one rule's YAML document: the detection read into items (field,
//! modifiers, values, the processing items applied to each), each processing item run in
//! turn, and the detection written back as YAML for the rule parser.

use std::collections::{HashMap, HashSet};

use serde_yaml::{Mapping, Value as Yaml};

use super::model::{
    FieldCond, Item as ProcessingItem, ItemCond, Pipeline, RuleCond, StateCond, Transformation,
};
use super::sigma_text::{self, Part};

/// Why a pipeline could not be applied to a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApplyError {
    /// The pipeline's file.
    pub file: String,
    /// The processing item.
    pub item: String,
    /// What happened.
    pub reason: String,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pipeline {}, {}: {}", self.file, self.item, self.reason)
    }
}

/// Modifiers whose values `replace_string` can rewrite as plain wildcard strings.
const PLAIN_MODIFIERS: &[&str] = &["contains", "startswith", "endswith", "all"];

#[derive(Debug, Clone)]
struct DetItem {
    /// The original key and value, written back unchanged when nothing changed.
    original: (Yaml, Yaml),
    field: Option<String>,
    modifiers: Vec<String>,
    values: Vec<Yaml>,
    list: bool,
    applied: HashSet<String>,
    changed: bool,
}

#[derive(Debug, Clone)]
enum Entry {
    One(Box<DetItem>),
    AnyOf(Vec<DetItem>),
    Dropped,
}

#[derive(Debug, Clone)]
enum Search {
    /// A mapping (one group) or a list of mappings (alternatives).
    Groups { groups: Vec<Vec<Entry>>, list: bool },
    /// Keywords, left as they are.
    Raw(Yaml),
}

struct Rule<'d> {
    doc: &'d mut Mapping,
    section: &'static str,
    searches: Vec<(String, Search)>,
    added: Vec<(String, Yaml)>,
    wrap: Vec<(String, bool)>,
    applied: HashSet<String>,
    state: HashMap<String, Yaml>,
    touched: bool,
}

/// Applies `pipelines` (already in priority order) to a rule document (its `detection` or,
/// for a filter rule, its `filter` section). Correlation rules are left as they are.
pub(crate) fn apply_to_document(
    pipelines: &[Pipeline],
    doc: &mut Mapping,
) -> Result<(), ApplyError> {
    if pipelines.iter().all(Pipeline::is_empty) {
        return Ok(());
    }
    let section = if doc.contains_key("detection") {
        "detection"
    } else if doc.contains_key("filter") {
        "filter"
    } else {
        return Ok(());
    };
    let searches = match doc.get(section) {
        Some(Yaml::Mapping(d)) => read_searches(d),
        _ => return Ok(()),
    };
    let mut rule = Rule {
        doc,
        section,
        searches,
        added: Vec::new(),
        wrap: Vec::new(),
        applied: HashSet::new(),
        state: HashMap::new(),
        touched: false,
    };
    for pipeline in pipelines {
        for item in &pipeline.items {
            let fail = |reason: String| ApplyError {
                file: pipeline.file.clone(),
                item: item.label.clone(),
                reason,
            };
            if !item.rule.hold(|c| rule_cond(&rule, c)) {
                continue;
            }
            run(&mut rule, item).map_err(fail)?;
            if let Some(id) = &item.id {
                rule.applied.insert(id.clone());
            }
        }
    }
    if rule.touched {
        write_back(rule).map_err(|reason| ApplyError {
            file: pipelines.last().map(|p| p.file.clone()).unwrap_or_default(),
            item: "the rewritten detection".into(),
            reason,
        })?;
    }
    Ok(())
}

fn read_searches(d: &Mapping) -> Vec<(String, Search)> {
    let mut out = Vec::new();
    for (k, v) in d {
        let Some(name) = k.as_str() else { continue };
        if name == "condition" || name == "timeframe" {
            continue;
        }
        let search = match v {
            Yaml::Mapping(m) => Search::Groups {
                groups: vec![read_group(m)],
                list: false,
            },
            Yaml::Sequence(seq) if !seq.is_empty() && seq.iter().all(Yaml::is_mapping) => {
                Search::Groups {
                    groups: seq
                        .iter()
                        .filter_map(Yaml::as_mapping)
                        .map(read_group)
                        .collect(),
                    list: true,
                }
            }
            other => Search::Raw(other.clone()),
        };
        out.push((name.to_owned(), search));
    }
    out
}

fn read_group(m: &Mapping) -> Vec<Entry> {
    m.iter()
        .map(|(k, v)| {
            let key = k.as_str().map(str::to_owned).unwrap_or_default();
            let mut parts = key.split('|');
            let field = parts.next().unwrap_or("").to_owned();
            let modifiers = parts.map(str::to_owned).collect();
            let (values, list) = match v {
                Yaml::Sequence(seq) => (seq.clone(), true),
                v => (vec![v.clone()], false),
            };
            Entry::One(Box::new(DetItem {
                original: (k.clone(), v.clone()),
                field: (!field.is_empty()).then_some(field),
                modifiers,
                values,
                list,
                applied: HashSet::new(),
                changed: false,
            }))
        })
        .collect()
}

fn yaml_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn same_text(a: &Option<String>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (Some(_), None) => false,
    }
}

fn logsource_key(doc: &Mapping, key: &str) -> Option<String> {
    doc.get("logsource")
        .and_then(|l| l.get(key))
        .and_then(yaml_text)
}

fn state_holds(state: &HashMap<String, Yaml>, c: &StateCond) -> bool {
    (state.get(&c.key) == Some(&c.val)) == c.equal
}

fn all_items(searches: &[(String, Search)]) -> impl Iterator<Item = &DetItem> {
    searches.iter().flat_map(|(_, s)| match s {
        Search::Groups { groups, .. } => groups
            .iter()
            .flatten()
            .flat_map(|e| match e {
                Entry::One(i) => std::slice::from_ref(&**i).iter(),
                Entry::AnyOf(v) => v.iter(),
                Entry::Dropped => [].iter(),
            })
            .collect::<Vec<_>>(),
        Search::Raw(_) => Vec::new(),
    })
}

fn rule_cond(rule: &Rule<'_>, c: &RuleCond) -> bool {
    match c {
        RuleCond::Logsource {
            product,
            category,
            service,
        } => {
            same_text(product, logsource_key(rule.doc, "product").as_deref())
                && same_text(category, logsource_key(rule.doc, "category").as_deref())
                && same_text(service, logsource_key(rule.doc, "service").as_deref())
        }
        RuleCond::Applied(id) => rule.applied.contains(id),
        RuleCond::State(s) => state_holds(&rule.state, s),
        RuleCond::Tag(tag) => match rule.doc.get("tags") {
            Some(Yaml::Sequence(tags)) => tags
                .iter()
                .filter_map(Yaml::as_str)
                .any(|t| t.eq_ignore_ascii_case(tag)),
            _ => false,
        },
        RuleCond::IsSigmaRule(rule_wanted) => *rule_wanted,
        RuleCond::ContainsDetectionItem { field, value } => all_items(&rule.searches).any(|i| {
            i.field.as_deref() == field.as_deref()
                && i.values.iter().any(|v| yaml_text(v) == yaml_text(value))
        }),
    }
}

fn item_cond(rule: &Rule<'_>, item: &DetItem, c: &ItemCond) -> bool {
    match c {
        ItemCond::MatchString { regex, all, negate } => {
            let results = item.values.iter().map(|v| {
                let matched = match v {
                    Yaml::String(s) => {
                        let text = sigma_text::plain(&with_modifier_wildcards(
                            sigma_text::parse(s),
                            &item.modifiers,
                        ));
                        regex.find(&text).is_some_and(|m| m.start() == 0)
                    }
                    _ => false,
                };
                matched != *negate
            });
            let mut results = results.collect::<Vec<_>>().into_iter();
            if *all {
                results.all(|b| b)
            } else {
                results.any(|b| b)
            }
        }
        ItemCond::IsNull { all } => {
            let mut nulls = item.values.iter().map(Yaml::is_null);
            if *all {
                nulls.all(|b| b)
            } else {
                nulls.any(|b| b)
            }
        }
        ItemCond::Applied(id) => item.applied.contains(id),
        ItemCond::State(s) => state_holds(&rule.state, s),
    }
}

fn field_cond(rule: &Rule<'_>, field: Option<&str>, c: &FieldCond) -> bool {
    match c {
        FieldCond::Include(p) => field.is_some_and(|f| p.matches(f)),
        FieldCond::Exclude(p) => !field.is_some_and(|f| p.matches(f)),
        FieldCond::Applied(_) => false,
        FieldCond::State(s) => state_holds(&rule.state, s),
    }
}

fn item_selected(rule: &Rule<'_>, p: &ProcessingItem, item: &DetItem) -> bool {
    p.detection_item.hold(|c| item_cond(rule, item, c))
        && p.field_name.hold(|c| match c {
            FieldCond::Applied(id) => item.applied.contains(id),
            c => field_cond(rule, item.field.as_deref(), c),
        })
}

/// Runs `f` on every detection item the processing item selects; `f` answers the entry
/// that replaces the item, or `None` to keep it.
fn each_item(
    rule: &mut Rule<'_>,
    p: &ProcessingItem,
    f: &dyn Fn(&DetItem) -> Result<Option<Entry>, String>,
) -> Result<(), String> {
    let mut searches = std::mem::take(&mut rule.searches);
    let mut result = Ok(());
    'outer: for (_, search) in &mut searches {
        let Search::Groups { groups, .. } = search else {
            continue;
        };
        for entry in groups.iter_mut().flatten() {
            let replaced = match entry {
                Entry::One(item) if item_selected(rule, p, item) => match f(item) {
                    Ok(r) => r,
                    Err(e) => {
                        result = Err(e);
                        break 'outer;
                    }
                },
                Entry::AnyOf(items) => {
                    let mut out = Vec::new();
                    let mut any = false;
                    for item in items.iter() {
                        let replaced = if item_selected(rule, p, item) {
                            match f(item) {
                                Ok(r) => r,
                                Err(e) => {
                                    result = Err(e);
                                    break 'outer;
                                }
                            }
                        } else {
                            None
                        };
                        match replaced {
                            None => out.push(item.clone()),
                            Some(Entry::One(i)) => {
                                any = true;
                                out.push(*i);
                            }
                            Some(Entry::AnyOf(v)) => {
                                any = true;
                                out.extend(v);
                            }
                            Some(Entry::Dropped) => any = true,
                        }
                    }
                    if !any {
                        None
                    } else if out.is_empty() {
                        Some(Entry::Dropped)
                    } else {
                        Some(Entry::AnyOf(out))
                    }
                }
                _ => None,
            };
            if let Some(r) = replaced {
                *entry = r;
                rule.touched = true;
            }
        }
    }
    rule.searches = searches;
    result
}

fn renamed(item: &DetItem, field: &str, id: &Option<String>) -> DetItem {
    let mut i = item.clone();
    i.field = Some(field.to_owned());
    i.changed = true;
    if let Some(id) = id {
        i.applied.insert(id.clone());
    }
    i
}

fn run(rule: &mut Rule<'_>, p: &ProcessingItem) -> Result<(), String> {
    let id = &p.id;
    match &p.transformation {
        Transformation::FieldNameMapping(mapping) => each_item(rule, p, &|item| {
            let mut item = item.clone();
            // Field references name fields too.
            if item.modifiers.iter().any(|m| m == "fieldref") {
                for v in &mut item.values {
                    if let Some(targets) = v.as_str().and_then(|f| mapping.get(f)) {
                        if targets.len() != 1 {
                            return Err(format!(
                                "the field reference '{}' maps to several fields",
                                v.as_str().unwrap_or_default()
                            ));
                        }
                        *v = Yaml::String(targets[0].clone());
                        item.changed = true;
                    }
                }
            }
            let targets = item.field.as_ref().and_then(|f| mapping.get(f));
            Ok(match targets {
                Some(t) if t.len() == 1 => Some(Entry::One(Box::new(renamed(&item, &t[0], id)))),
                Some(t) => Some(Entry::AnyOf(
                    t.iter().map(|f| renamed(&item, f, id)).collect(),
                )),
                None if item.changed => Some(Entry::One(Box::new(item))),
                None => None,
            })
        }),
        Transformation::FieldNamePrefixMapping(prefixes) => each_item(rule, p, &|item| {
            let Some(field) = &item.field else {
                return Ok(None);
            };
            Ok(prefixes.iter().find_map(|(from, to)| {
                field
                    .strip_prefix(from.as_str())
                    .map(|rest| Entry::One(Box::new(renamed(item, &format!("{to}{rest}"), id))))
            }))
        }),
        Transformation::DropDetectionItem => each_item(rule, p, &|_| Ok(Some(Entry::Dropped))),
        Transformation::ReplaceString {
            regex,
            replacement,
            skip_special,
            interpret_special,
        } => each_item(rule, p, &|item| {
            Ok(
                replace_strings(item, regex, replacement, *skip_special, *interpret_special).map(
                    |mut i| {
                        if let Some(id) = id {
                            i.applied.insert(id.clone());
                        }
                        Entry::One(Box::new(i))
                    },
                ),
            )
        }),
        Transformation::DetectionItemFailure(message) => {
            each_item(rule, p, &|_| Err(message.clone()))
        }
        Transformation::RuleFailure(message) => Err(message.clone()),
        Transformation::SetState { key, val } => {
            rule.state.insert(key.clone(), val.clone());
            Ok(())
        }
        Transformation::ChangeLogsource {
            product,
            category,
            service,
        } => {
            let mut ls = Mapping::new();
            for (k, v) in [
                ("category", category),
                ("product", product),
                ("service", service),
            ] {
                if let Some(v) = v {
                    ls.insert(k.into(), Yaml::String(v.clone()));
                }
            }
            rule.doc.insert("logsource".into(), Yaml::Mapping(ls));
            Ok(())
        }
        Transformation::AddCondition {
            conditions,
            name,
            template,
            negated,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => {
                    let taken: HashSet<&str> = rule
                        .searches
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .chain(rule.added.iter().map(|(n, _)| n.as_str()))
                        .collect();
                    (1..)
                        .map(|n| format!("_cond_{n}"))
                        .find(|n| !taken.contains(n.as_str()))
                        .unwrap_or_default()
                }
            };
            let mut m = Mapping::new();
            for (field, value) in conditions {
                let value = if *template {
                    substitute(rule.doc, value)
                } else {
                    value.clone()
                };
                m.insert(Yaml::String(field.clone()), value);
            }
            rule.added.push((name.clone(), Yaml::Mapping(m)));
            rule.wrap.push((name, *negated));
            rule.touched = true;
            Ok(())
        }
    }
}

/// `$category`, `$product` and `$service` in a template value.
fn substitute(doc: &Mapping, value: &Yaml) -> Yaml {
    match value {
        Yaml::String(s) => {
            let mut s = s.clone();
            for key in ["category", "product", "service"] {
                let with = logsource_key(doc, key).unwrap_or_default();
                s = s
                    .replace(&format!("${{{key}}}"), &with)
                    .replace(&format!("${key}"), &with);
            }
            Yaml::String(s)
        }
        Yaml::Sequence(seq) => Yaml::Sequence(seq.iter().map(|v| substitute(doc, v)).collect()),
        other => other.clone(),
    }
}

/// A value's parts with the wildcards its modifiers imply (as pySigma holds them).
fn with_modifier_wildcards(mut parts: Vec<Part>, modifiers: &[String]) -> Vec<Part> {
    let has = |m: &str| modifiers.iter().any(|x| x == m);
    if (has("contains") || has("endswith")) && parts.first() != Some(&Part::Many) {
        parts.insert(0, Part::Many);
    }
    if (has("contains") || has("startswith")) && parts.last() != Some(&Part::Many) {
        parts.push(Part::Many);
    }
    parts
}

/// The item with `replace_string` applied to its string (and number) values, or `None` when
/// no value changes or the item's modifiers leave no plain string to rewrite.
fn replace_strings(
    item: &DetItem,
    regex: &regex::Regex,
    replacement: &str,
    skip_special: bool,
    interpret_special: bool,
) -> Option<DetItem> {
    if !item
        .modifiers
        .iter()
        .all(|m| PLAIN_MODIFIERS.contains(&m.as_str()))
    {
        return None;
    }
    let mut changed = false;
    let values: Vec<Yaml> = item
        .values
        .iter()
        .map(|v| {
            let text = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => sigma_text::render(&sigma_text::parse(&n.to_string())),
                other => return other.clone(),
            };
            let parts = with_modifier_wildcards(sigma_text::parse(&text), &item.modifiers);
            let replaced = if skip_special {
                replace_plain_parts(&parts, regex, replacement, interpret_special)
            } else {
                replace_plain(&parts, regex, replacement)
            };
            if replaced != parts {
                changed = true;
            }
            Yaml::String(sigma_text::render(&replaced))
        })
        .collect();
    if !changed {
        return None;
    }
    let mut out = item.clone();
    out.values = values;
    out.modifiers
        .retain(|m| !matches!(m.as_str(), "contains" | "startswith" | "endswith"));
    out.changed = true;
    Some(out)
}

/// The regex on the plain representation of the whole value, as pySigma does: only the
/// replaced text is read back from the plain representation (where a literal backslash
/// before a wildcard would be ambiguous); the parts between matches are kept as they were.
fn replace_plain(parts: &[Part], regex: &regex::Regex, replacement: &str) -> Vec<Part> {
    let mut plain = String::new();
    let mut spans = Vec::with_capacity(parts.len());
    for part in parts {
        let start = plain.len();
        plain.push_str(&sigma_text::plain(std::slice::from_ref(part)));
        spans.push((start, plain.len(), *part));
    }
    let mut out = Vec::with_capacity(parts.len());
    let mut pending = String::new();
    let keep = |start: usize, end: usize, out: &mut Vec<Part>, pending: &mut String| {
        for &(s, e, part) in &spans {
            if e <= start || s >= end {
                continue;
            }
            if s >= start && e <= end {
                out.extend(sigma_text::from_plain(pending));
                pending.clear();
                out.push(part);
            } else {
                pending.push_str(&plain[s.max(start)..e.min(end)]);
            }
        }
    };
    let mut at = 0;
    for caps in regex.captures_iter(&plain) {
        let Some(m) = caps.get(0) else { continue };
        keep(at, m.start(), &mut out, &mut pending);
        caps.expand(replacement, &mut pending);
        at = m.end();
    }
    keep(at, plain.len(), &mut out, &mut pending);
    out.extend(sigma_text::from_plain(&pending));
    out
}

/// `skip_special`: the regex runs on each run of literal characters only.
fn replace_plain_parts(
    parts: &[Part],
    regex: &regex::Regex,
    replacement: &str,
    interpret_special: bool,
) -> Vec<Part> {
    let mut out = Vec::with_capacity(parts.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<Part>| {
        if run.is_empty() {
            return;
        }
        let replaced = regex.replace_all(run, replacement);
        if interpret_special {
            out.extend(sigma_text::from_plain(&replaced));
        } else {
            out.extend(replaced.chars().map(Part::Char));
        }
        run.clear();
    };
    for part in parts {
        match part {
            Part::Char(c) => run.push(*c),
            special => {
                flush(&mut run, &mut out);
                out.push(*special);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

fn item_entry(item: &DetItem) -> (Yaml, Yaml) {
    if !item.changed {
        return item.original.clone();
    }
    let mut key = item.field.clone().unwrap_or_default();
    for m in &item.modifiers {
        key.push('|');
        key.push_str(m);
    }
    let value = if item.list || item.values.len() != 1 {
        Yaml::Sequence(item.values.clone())
    } else {
        item.values[0].clone()
    };
    (Yaml::String(key), value)
}

/// The most maps one search may expand to when items map to several fields.
const MAX_ALTERNATIVES: usize = 4096;

fn write_group(group: &[Entry]) -> Result<Vec<Mapping>, String> {
    let mut maps = vec![Mapping::new()];
    for entry in group {
        let choices: Vec<&DetItem> = match entry {
            Entry::One(i) => vec![&**i],
            Entry::AnyOf(v) => v.iter().collect(),
            Entry::Dropped => continue,
        };
        if maps.len() * choices.len() > MAX_ALTERNATIVES {
            return Err(format!(
                "one-to-many field mappings make more than {MAX_ALTERNATIVES} alternatives"
            ));
        }
        let mut next = Vec::with_capacity(maps.len() * choices.len());
        for map in &maps {
            for item in &choices {
                let (k, v) = item_entry(item);
                let mut m = map.clone();
                if m.contains_key(&k) {
                    return Err(format!(
                        "two detection items end up as '{}' in one mapping",
                        k.as_str().unwrap_or_default()
                    ));
                }
                m.insert(k, v);
                next.push(m);
            }
        }
        maps = next;
    }
    Ok(maps)
}

fn write_back(rule: Rule<'_>) -> Result<(), String> {
    let Rule {
        doc,
        section,
        searches,
        added,
        wrap,
        ..
    } = rule;
    let Some(Yaml::Mapping(old)) = doc.get(section) else {
        return Ok(());
    };
    let mut new = Mapping::new();
    let mut searches = searches.into_iter();
    for (k, v) in old {
        match k.as_str() {
            Some("condition") => {
                let wrap_one = |c: &Yaml| -> Yaml {
                    let mut text = yaml_text(c).unwrap_or_default();
                    for (name, negated) in &wrap {
                        let not = if *negated { "not " } else { "" };
                        text = if text.trim().is_empty() {
                            format!("{not}{name}")
                        } else {
                            format!("{not}{name} and ({text})")
                        };
                    }
                    Yaml::String(text)
                };
                let c = match v {
                    Yaml::Sequence(seq) => Yaml::Sequence(seq.iter().map(wrap_one).collect()),
                    c => wrap_one(c),
                };
                new.insert(k.clone(), c);
            }
            Some("timeframe") | None => {
                new.insert(k.clone(), v.clone());
            }
            Some(name) => {
                let Some((_, search)) = searches.next() else {
                    continue;
                };
                let value = match search {
                    Search::Raw(v) => v,
                    Search::Groups { groups, list } => {
                        let mut maps = Vec::new();
                        for g in &groups {
                            maps.extend(write_group(g)?);
                        }
                        if maps.iter().all(Mapping::is_empty) {
                            return Err(format!("every detection item of '{name}' was dropped"));
                        }
                        maps.retain(|m| !m.is_empty());
                        if maps.len() == 1 && !list {
                            Yaml::Mapping(maps.pop().unwrap_or_default())
                        } else {
                            Yaml::Sequence(maps.into_iter().map(Yaml::Mapping).collect())
                        }
                    }
                };
                new.insert(k.clone(), value);
            }
        }
    }
    for (name, m) in added {
        new.insert(Yaml::String(name), m);
    }
    doc.insert(section.into(), Yaml::Mapping(new));
    Ok(())
}
