//! The rules one event has matched so far: a tiny inline set of rule indices, so matching
//! one event does not allocate.

/// Rule indices, the first eight inline.
#[derive(Default)]
pub(super) struct Matched {
    inline: [usize; 8],
    len: usize,
    spill: Vec<usize>,
}

impl Matched {
    /// Whether `x` is in the set.
    pub(super) fn contains(&self, x: usize) -> bool {
        self.inline[..self.len.min(8)].contains(&x) || self.spill.contains(&x)
    }

    /// Adds `x` (which is not in the set yet).
    pub(super) fn push(&mut self, x: usize) {
        if self.len < 8 {
            self.inline[self.len] = x;
            self.len += 1;
        } else {
            self.spill.push(x);
        }
    }
}
