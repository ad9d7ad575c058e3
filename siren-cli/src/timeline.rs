//! A timeline sorted by time that does not hold everything in memory: lines are buffered up
//! to a budget, then spilled to sorted temporary files that are merged at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

/// Bytes of lines kept in memory before a sorted run is spilled to disk.
const DEFAULT_BUDGET: usize = 64 << 20;

/// Lines keyed by time (microseconds; `i64::MIN` for none), emitted in (time, line) order.
pub struct Timeline {
    buffer: Vec<(i64, String)>,
    bytes: usize,
    budget: usize,
    runs: Vec<std::fs::File>,
}

impl Timeline {
    /// An empty timeline with the default memory budget.
    pub fn new() -> Self {
        Self::with_budget(DEFAULT_BUDGET)
    }

    /// An empty timeline that spills past `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            buffer: Vec::new(),
            bytes: 0,
            budget,
            runs: Vec::new(),
        }
    }

    /// Adds one line (which must not contain a newline).
    pub fn push(&mut self, time: i64, line: String) -> std::io::Result<()> {
        self.bytes += line.len() + 32;
        self.buffer.push((time, line));
        if self.bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> std::io::Result<()> {
        self.buffer.sort_unstable();
        let mut file = tempfile::tempfile()?;
        {
            let mut out = BufWriter::new(&mut file);
            for (time, line) in self.buffer.drain(..) {
                writeln!(out, "{time}\t{line}")?;
            }
            out.flush()?;
        }
        file.rewind()?;
        self.runs.push(file);
        self.bytes = 0;
        Ok(())
    }

    /// Calls `emit` with every line in order.
    pub fn finish(
        mut self,
        mut emit: impl FnMut(&str) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.buffer.sort_unstable();
        if self.runs.is_empty() {
            for (_, line) in &self.buffer {
                emit(line)?;
            }
            return Ok(());
        }
        let mut readers: Vec<_> = self
            .runs
            .into_iter()
            .map(|f| BufReader::new(f).lines())
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, reader) in readers.iter_mut().enumerate() {
            if let Some(entry) = next_entry(reader)? {
                heap.push(Reverse((entry, i)));
            }
        }
        let mut memory = self.buffer.into_iter().peekable();
        loop {
            let from_disk = heap.peek().map(|Reverse((entry, _))| entry);
            let take_memory = match (memory.peek(), from_disk) {
                (Some(m), Some(d)) => m <= d,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Ok(()),
            };
            if take_memory {
                if let Some((_, line)) = memory.next() {
                    emit(&line)?;
                }
            } else if let Some(Reverse(((_, line), i))) = heap.pop() {
                emit(&line)?;
                if let Some(entry) = next_entry(&mut readers[i])? {
                    heap.push(Reverse((entry, i)));
                }
            }
        }
    }
}

fn next_entry(
    lines: &mut std::io::Lines<BufReader<std::fs::File>>,
) -> std::io::Result<Option<(i64, String)>> {
    let Some(line) = lines.next().transpose()? else {
        return Ok(None);
    };
    let (time, rest) = line.split_once('\t').unwrap_or(("0", ""));
    Ok(Some((time.parse().unwrap_or(i64::MIN), rest.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_spilled_runs_in_order() {
        let mut timeline = Timeline::with_budget(200);
        let times = [5, 3, 9, 1, 7, 3, 2, 8, 6, 4, 0, 11, 10];
        for (i, t) in times.iter().enumerate() {
            timeline.push(*t, format!("event {t} #{i}")).unwrap();
        }
        assert!(!timeline.runs.is_empty(), "the budget forces spills");
        let mut out = Vec::new();
        timeline
            .finish(|l| {
                out.push(l.to_owned());
                Ok(())
            })
            .unwrap();
        let got: Vec<i64> = out
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        let mut sorted = times.to_vec();
        sorted.sort();
        assert_eq!(got, sorted);
    }
}
