//! Group keys: the values of a correlation's `group-by` fields, read from an event or from
//! the hit of a correlation that another one refers to.

use super::CorrelationHit;
use crate::event::Event;

/// A group's values of the `group-by` fields, in order (`None`: the field is missing).
pub(super) type GroupKey = Vec<Option<String>>;

/// What a match is read from: an event, or a hit of a correlation that another refers to.
pub(super) enum KeyInput<'a> {
    Event(&'a Event, Option<&'a str>),
    Hit(&'a CorrelationHit),
}

impl KeyInput<'_> {
    pub(super) fn field(&self, name: &str) -> Option<String> {
        match self {
            KeyInput::Event(event, _) => event.get_str(name).map(|v| v.into_owned()),
            KeyInput::Hit(hit) => hit.group_value(name).map(str::to_owned),
        }
    }
}
