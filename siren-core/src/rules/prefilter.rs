//! The prefilter of one bucket ([`Candidates`]): per field, one Aho-Corasick automaton over
//! the literals its rules need, so that an event meets only the rules whose needed literals
//! it contains.

use std::collections::HashMap;

use super::memo;
use super::parse;
use super::subject::Subject;

/// The compiled rules of one bucket, with a prefilter: for each field their literals occur
/// in, one Aho-Corasick automaton over all of them. A rule's need (see [`parse::Need`]) is
/// a few clauses, each a slot: a literal found in its field fills the slots it is in, and
/// an event meets only the rules whose slots are all filled (and the rules without a need).
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// Compiled rule indices, ascending.
    members: Vec<u32>,
    /// Bit set over `members` positions: rules evaluated whatever the prefilter says.
    always: Vec<u64>,
    /// Per `members` position: how many slots its need has (0 for `always` members).
    required: Vec<u8>,
    /// Per slot: the `members` position whose clause it is.
    slot_owner: Vec<u32>,
    /// Per field: its literals (lower-case) and, per literal, the slots it fills. The
    /// automata are built on first use, so buckets no event reaches cost nothing.
    literals: Vec<FieldLiterals>,
    /// The position in `literals` of each field.
    by_name: foldhash::HashMap<Box<str>, usize>,
    scans: std::sync::OnceLock<Vec<FieldScan>>,
}

/// A field, its literals, and per literal the slots it fills.
type FieldLiterals = (Box<str>, Vec<String>, Vec<Vec<u32>>);

/// The automaton over one field's literals, and whether all of them fill the same slots
/// (then one hit is all that is asked, see [`memo::matcher`]); `None` if it could not be
/// built: its slots are then always filled.
type FieldScan = Option<(std::sync::Arc<aho_corasick::AhoCorasick>, bool)>;

/// The field name, in a [`parse::Need`], that stands for any of the event's fields: the
/// literals of keyword searches. (A NUL cannot start a rule's field name.)
pub(crate) const ANY_FIELD: &str = "\0any field";

thread_local! {
    /// Per thread: the prefilter's working state.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// What the prefilter keeps per event: which members and slots are on, and per member how
/// many of its slots are (`filled` is zeroed again through `touched` after each event).
#[derive(Default)]
struct Scratch {
    members: Vec<u64>,
    slots: Vec<u64>,
    filled: Vec<u8>,
    touched: Vec<u32>,
}

impl Scratch {
    /// Fills `slot`; turns its owner on when that was the owner's last empty slot.
    fn fill(&mut self, slot: u32, owner: u32, required: u8) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if self.slots[word] & bit != 0 {
            return;
        }
        self.slots[word] |= bit;
        let filled = &mut self.filled[owner as usize];
        if *filled == 0 {
            self.touched.push(owner);
        }
        *filled += 1;
        if *filled == required {
            self.members[owner as usize / 64] |= 1 << (owner % 64);
        }
    }
}

impl Candidates {
    pub(super) fn push(&mut self, at: u32) {
        self.members.push(at);
    }

    #[cfg(test)]
    pub(super) fn contains(&self, at: u32) -> bool {
        self.members.binary_search(&at).is_ok()
    }

    pub(super) fn finish(&mut self, needs: &[Option<parse::Need>]) {
        self.members.sort_unstable();
        self.members.dedup();
        let words = self.members.len().div_ceil(64);
        self.always = vec![0; words];
        self.required = vec![0; self.members.len()];
        // Per field: literal (lower-case) → pattern id, and each pattern's slots.
        type Building = (Box<str>, HashMap<String, usize>, Vec<Vec<u32>>);
        let mut by_field: Vec<Building> = Vec::new();
        for (pos, &at) in self.members.iter().enumerate() {
            let need = needs.get(at as usize).and_then(|n| n.as_ref());
            // Even for one rule: a scan for its literals costs less than evaluating it.
            let Some(need) = need else {
                self.always[pos / 64] |= 1 << (pos % 64);
                continue;
            };
            self.required[pos] = need.len() as u8;
            for clause in need {
                let slot = self.slot_owner.len() as u32;
                self.slot_owner.push(pos as u32);
                for (field, literal) in clause {
                    let at = match by_field.iter().position(|(f, _, _)| f == field) {
                        Some(i) => i,
                        None => {
                            by_field.push((field.clone(), HashMap::new(), Vec::new()));
                            by_field.len() - 1
                        }
                    };
                    let (_, ids, targets) = &mut by_field[at];
                    let next = targets.len();
                    let id = *ids.entry(literal.to_ascii_lowercase()).or_insert(next);
                    if id == next {
                        targets.push(Vec::new());
                    }
                    if targets[id].last() != Some(&slot) {
                        targets[id].push(slot);
                    }
                }
            }
        }
        for (field, ids, targets) in by_field {
            let mut patterns = vec![String::new(); ids.len()];
            for (literal, id) in ids {
                patterns[id] = literal;
            }
            self.by_name.insert(field.clone(), self.literals.len());
            self.literals.push((field, patterns, targets));
        }
    }

    fn scans(&self) -> &[FieldScan] {
        self.scans.get_or_init(|| {
            self.literals
                .iter()
                .map(|(_, patterns, targets)| {
                    // Patterns and texts are lower-cased: cheaper than a case-insensitive
                    // automaton, which has twice the transitions and no SIMD prefilter.
                    // The crate picks the kind: a DFA for up to 100 patterns, else a
                    // contiguous NFA (nearly as fast, and far cheaper to build).
                    let key = patterns.iter().map(|p| p.as_str().into()).collect();
                    let uniform = targets.windows(2).all(|w| w[0] == w[1]);
                    if uniform {
                        return memo::matcher(key).map(|a| (a, true));
                    }
                    memo::AUTOMATA
                        .get_or_build(key, |patterns: &Vec<Box<str>>| {
                            aho_corasick::AhoCorasickBuilder::new()
                                .build(patterns.iter().map(|p| p.as_bytes()))
                                .ok()
                        })
                        .map(|a| (a, false))
                })
                .collect()
        })
    }

    /// Calls `f` with every member the prefilter lets through, in ascending order.
    pub(super) fn for_each(&self, subject: &Subject<'_>, mut f: impl FnMut(u32)) {
        if self.members.is_empty() {
            return;
        }
        if self.literals.is_empty() {
            for &at in &self.members {
                f(at);
            }
            return;
        }
        // Reuse one scratch per thread (taken out, so a re-entrant call cannot clash).
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        scratch.members.clear();
        scratch.members.extend_from_slice(&self.always);
        scratch.slots.clear();
        scratch.slots.resize(self.slot_owner.len().div_ceil(64), 0);
        if scratch.filled.len() < self.members.len() {
            scratch.filled.resize(self.members.len(), 0);
        }
        let scans = self.scans();
        let fill_all = |scratch: &mut Scratch, slots: &[u32]| {
            for &slot in slots {
                let owner = self.slot_owner[slot as usize];
                scratch.fill(slot, owner, self.required[owner as usize]);
            }
        };
        let enable = |scratch: &mut Scratch, i: usize, lower: &[u8]| {
            let Some((automaton, uniform)) = &scans[i] else {
                return;
            };
            let targets = &self.literals[i].2;
            if *uniform {
                if automaton.is_match(lower) {
                    fill_all(scratch, &targets[0]);
                }
                return;
            }
            for m in automaton.find_overlapping_iter(lower) {
                fill_all(scratch, &targets[m.pattern().as_usize()]);
            }
        };
        // Keywords' literals: every field's text, joined.
        let any = self.by_name.get(ANY_FIELD).copied();
        if let Some(i) = any {
            subject.with_joined_lower(&mut |lower| enable(&mut scratch, i, lower));
        }
        // Walk whichever is shorter: the event's fields, or the fields the literals are in.
        if subject.fields.len() < self.literals.len() && !subject.spaced() {
            for (name, value) in subject.fields {
                match self.by_name.get(name.as_str()) {
                    Some(&i) if Some(i) != any => {
                        subject.with_lower(value, &mut |lower| enable(&mut scratch, i, lower));
                    }
                    _ => {}
                }
            }
        } else {
            for (i, (field, _, _)) in self.literals.iter().enumerate() {
                if Some(i) == any {
                    continue;
                }
                if let Some(value) = subject.get(field) {
                    subject.with_lower(value, &mut |lower| enable(&mut scratch, i, lower));
                }
            }
        }
        // Literals without an automaton fill their slots unconditionally.
        for (i, automaton) in scans.iter().enumerate() {
            if automaton.is_none() {
                for slots in &self.literals[i].2 {
                    fill_all(&mut scratch, slots);
                }
            }
        }
        for (w, &word) in scratch.members.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                f(self.members[w * 64 + bit]);
            }
        }
        let Scratch {
            filled, touched, ..
        } = &mut scratch;
        for &owner in touched.iter() {
            filled[owner as usize] = 0;
        }
        touched.clear();
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
    }
}
