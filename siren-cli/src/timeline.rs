//! A timeline sorted by time that does not hold everything in memory: lines are buffered up
//! to a budget, then spilled to sorted temporary files that are merged at the end.
//!
//! A spilled run is a sequence of entries, each its time (8 bytes, little-endian), its
//! line's length (4 bytes, little-endian) and the line: read back without parsing text.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

/// Bytes of lines kept in memory before a sorted run is spilled to disk.
const DEFAULT_BUDGET: usize = 64 << 20;

/// The buffer size for writing and reading back spilled runs.
const RUN_BUFFER: usize = 1 << 20;

/// Lines keyed by time (microseconds; `i64::MIN` for none), emitted in (time, line) order.
/// Lines are bytes (the caller's text, UTF-8 as a rule): kept and spilled as they came, and
/// never checked again on the way out.
pub struct Timeline {
    buffer: Vec<(i64, Vec<u8>)>,
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

    /// Adds one line (which must not contain a newline). Its allocation counts against the
    /// budget, so a line should be allocated at its own size.
    pub fn push(&mut self, time: i64, line: Vec<u8>) -> std::io::Result<()> {
        self.bytes += line.capacity() + 32;
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
            let mut out = BufWriter::with_capacity(RUN_BUFFER, &mut file);
            for (time, line) in self.buffer.drain(..) {
                let len = u32::try_from(line.len()).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "line over 4 GiB")
                })?;
                out.write_all(&time.to_le_bytes())?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(&line)?;
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
        mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
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
            .map(|f| BufReader::with_capacity(RUN_BUFFER, f))
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

/// The next entry of a spilled run, `None` at its end.
fn next_entry(run: &mut BufReader<std::fs::File>) -> std::io::Result<Option<(i64, Vec<u8>)>> {
    let mut head = [0u8; 12];
    match run.read_exact(&mut head[..1]) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    run.read_exact(&mut head[1..])?;
    let (time, len) = head.split_at(8);
    let time = i64::from_le_bytes(time.try_into().unwrap_or_default());
    let len = u32::from_le_bytes(len.try_into().unwrap_or_default());
    let mut line = vec![0; len as usize];
    run.read_exact(&mut line)?;
    Ok(Some((time, line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line the timeline emits, in order.
    fn emitted(timeline: Timeline) -> Vec<String> {
        let mut out = Vec::new();
        timeline
            .finish(|l| {
                out.push(String::from_utf8(l.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn merges_spilled_runs_in_order() {
        let mut timeline = Timeline::with_budget(200);
        let times = [5, 3, 9, 1, 7, 3, 2, 8, 6, 4, 0, 11, 10];
        for (i, t) in times.iter().enumerate() {
            timeline.push(*t, format!("event {t} #{i}").into()).unwrap();
        }
        assert!(!timeline.runs.is_empty(), "the budget forces spills");
        let out = emitted(timeline);
        let got: Vec<i64> = out
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        let mut sorted = times.to_vec();
        sorted.sort();
        assert_eq!(got, sorted);
    }

    #[test]
    fn spilled_lines_come_back_byte_for_byte() {
        let mut timeline = Timeline::with_budget(64);
        let lines = [
            "tab\there, \u{e9}t\u{e9}",
            "",
            "{\"a\":1}",
            "last \u{1F600}",
        ];
        for (i, line) in lines.iter().enumerate() {
            timeline.push(i as i64, line.as_bytes().to_vec()).unwrap();
        }
        assert!(timeline.runs.len() >= 2, "every line or two is spilled");
        let out = emitted(timeline);
        assert_eq!(out, lines);
    }
}
