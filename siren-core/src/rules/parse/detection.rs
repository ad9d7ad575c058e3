//! A compiled `detection` section ([`Detection`]): its searches and condition, renamed for a
//! log source, and what it requires of an event: the literals the prefilter looks for (its
//! [`Need`]) and the event IDs it can hold for.

use crate::rules::condition::Cond;
use crate::rules::value::ValueTest;

/// One field item of a search: a field (or, for keywords, none) and its test.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub field: Option<std::sync::Arc<str>>,
    pub test: ValueTest,
}

/// Makes the items that name the same field share one name.
pub(crate) fn share_names<'i>(
    items: impl Iterator<Item = &'i mut Item>,
    names: &mut std::collections::HashSet<std::sync::Arc<str>>,
) {
    for item in items {
        if let Some(field) = &mut item.field {
            match names.get(field) {
                Some(shared) => *field = shared.clone(),
                None => {
                    names.insert(field.clone());
                }
            }
        }
    }
}

/// A search identifier's definition: alternatives (OR) of item groups (AND).
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub alternatives: Vec<Vec<Item>>,
}

/// A compiled `detection` section.
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub searches: Vec<Search>,
    pub condition: Cond,
}

impl Detection {
    /// Makes items that name the same field share one name (so that a name's address
    /// identifies it, see `Subject::get_item`).
    pub(crate) fn share_field_names(
        &mut self,
        names: &mut std::collections::HashSet<std::sync::Arc<str>>,
    ) {
        let items = self
            .searches
            .iter_mut()
            .flat_map(|s| s.alternatives.iter_mut().flatten());
        share_names(items, names);
    }
}

/// One half of a necessary condition: one of these (field, literal) pairs occurs, the
/// literal ASCII case-insensitively in the field's text. The field
/// [`ANY_FIELD`](crate::rules::prefilter::ANY_FIELD) stands for any of the event's fields (keywords).
pub(crate) type Clause = Vec<(Box<str>, Box<str>)>;

/// A necessary condition for a detection, in conjunctive form: whenever the detection holds,
/// every clause does. Never empty, and no clause is.
pub(crate) type Need = Vec<Clause>;

/// The most clauses a need keeps (the most selective): each costs the prefilter a bit per
/// event that meets its literal, and past a few they rarely rule out more.
const MAX_CLAUSES: usize = 4;

/// How selective a clause is: its shortest literal's length, fewer pairs breaking ties.
fn clause_score(clause: &Clause) -> (usize, std::cmp::Reverse<usize>) {
    (
        clause.iter().map(|(_, a)| a.len()).min().unwrap_or(0),
        std::cmp::Reverse(clause.len()),
    )
}

/// The need of a conjunction: every part's clauses (a part without a need adds none).
fn all_of(needs: impl Iterator<Item = Option<Need>>) -> Option<Need> {
    let mut clauses: Need = needs.flatten().flatten().collect();
    for clause in &mut clauses {
        clause.sort_unstable();
        clause.dedup();
    }
    clauses.sort_by_key(|c| std::cmp::Reverse(clause_score(c)));
    let mut kept: Need = Vec::new();
    for clause in clauses {
        if kept.len() == MAX_CLAUSES {
            break;
        }
        if !kept.contains(&clause) {
            kept.push(clause);
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// The need of a disjunction: for two parts, `(a1 and a2) or (b1 and b2)` implies each
/// `ai or bj`; so each clause of the result joins one clause of every part (the most
/// selective ones). A part without a need leaves none.
fn any_of(needs: impl Iterator<Item = Option<Need>>) -> Option<Need> {
    let mut result: Option<Need> = None;
    for need in needs {
        let need = need?;
        result = Some(match result {
            None => need,
            Some(previous) => {
                let mut joined = Vec::new();
                for a in previous.iter().take(2) {
                    for b in need.iter().take(2) {
                        joined.push(a.iter().chain(b).cloned().collect());
                    }
                }
                all_of(std::iter::once(Some(joined)))?
            }
        });
    }
    result
}

impl Detection {
    /// The detection's necessary condition, when one can be derived from its literals.
    pub(crate) fn need(&self) -> Option<Need> {
        self.cond_need(&self.condition)
    }

    fn search_need(&self, i: usize) -> Option<Need> {
        any_of(self.searches[i].alternatives.iter().map(|group| {
            all_of(group.iter().map(|item| {
                // A keyword's literal occurs in some field: the prefilter scans them all.
                let field: Box<str> = item
                    .field
                    .as_deref()
                    .unwrap_or(crate::rules::prefilter::ANY_FIELD)
                    .into();
                let atoms = item.test.atoms()?;
                let clause: Clause = atoms.into_iter().map(|a| (field.clone(), a)).collect();
                (!clause.is_empty()).then(|| vec![clause])
            }))
        }))
    }

    fn cond_need(&self, cond: &Cond) -> Option<Need> {
        match cond {
            Cond::Search(i) => self.search_need(*i),
            Cond::Not(_) => None,
            Cond::And(cs) => all_of(cs.iter().map(|c| self.cond_need(c))),
            Cond::Or(cs) => any_of(cs.iter().map(|c| self.cond_need(c))),
            Cond::AtLeast { min, searches } => {
                if *min >= searches.len() {
                    all_of(searches.iter().map(|&i| self.search_need(i)))
                } else {
                    any_of(searches.iter().map(|&i| self.search_need(i)))
                }
            }
        }
    }
}

impl Detection {
    /// The event IDs one of which an event must have for the detection to hold: the
    /// `EventID` values its condition requires, when it requires one of a few.
    pub(crate) fn event_ids(&self) -> Option<Vec<i64>> {
        let mut ids = self.cond_ids(&self.condition)?;
        ids.sort_unstable();
        ids.dedup();
        (!ids.is_empty() && ids.len() <= MAX_EVENT_IDS).then_some(ids)
    }

    fn search_ids(&self, i: usize) -> Option<Vec<i64>> {
        let mut all = Vec::new();
        for group in &self.searches[i].alternatives {
            let ids = group.iter().find_map(|item| {
                (item.field.as_deref() == Some("EventID"))
                    .then(|| item.test.exact_integers())
                    .flatten()
            })?;
            all.extend(ids);
        }
        Some(all)
    }

    fn cond_ids(&self, cond: &Cond) -> Option<Vec<i64>> {
        let any = |ids: &mut dyn Iterator<Item = Option<Vec<i64>>>| {
            let mut all = Vec::new();
            for part in ids {
                all.extend(part?);
            }
            Some(all)
        };
        match cond {
            Cond::Search(i) => self.search_ids(*i),
            Cond::Not(_) => None,
            Cond::And(cs) => cs.iter().find_map(|c| self.cond_ids(c)),
            Cond::Or(cs) => any(&mut cs.iter().map(|c| self.cond_ids(c))),
            Cond::AtLeast { min, searches } => {
                if *min >= searches.len() {
                    searches.iter().find_map(|&i| self.search_ids(i))
                } else {
                    any(&mut searches.iter().map(|&i| self.search_ids(i)))
                }
            }
        }
    }
}

/// Past this many event IDs, a detection stays with its source's other rules.
const MAX_EVENT_IDS: usize = 16;
