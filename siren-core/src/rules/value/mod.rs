//! Value modifiers (`contains`, `base64offset`, `windash`, `re`, `cidr`, `lt`…) and the
//! compiled tests they turn a Sigma field item into.
//!
//! A field item (`CommandLine|contains|all: [a, b]`) compiles to one [`ValueTest`] tree whose
//! leaves are prepared once: literal strings are classified as exact / prefix / suffix /
//! contains (contains patterns of one item share one Aho-Corasick automaton, ASCII
//! case-insensitive), other wildcard shapes and `re` values become compiled regexes.
//!
//! `modifiers.rs` reads the modifiers and compiles an item; `sigma_string.rs` turns a Sigma
//! string into tokens (wildcards, escapes, `windash`, placeholders); `compiled.rs` holds the
//! [`ValueTest`] tree and evaluates it; `string_set.rs` the text patterns of one item;
//! `lazy_regex.rs` the regexes compiled on first use; `regex_literals.rs` the literals a
//! regex's matches must contain, for the prefilter.

mod compiled;
mod lazy_regex;
mod modifiers;
mod regex_literals;
mod sigma_string;
mod string_set;
#[cfg(test)]
mod tests;

pub(crate) use compiled::{ValueTest, with_text};
pub(crate) use modifiers::{Scalar, compile_item, compile_keywords};
