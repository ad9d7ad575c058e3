//! A line reader with a size limit: an oversized line is measured and skipped, never held
//! in memory whole.

use std::io::BufRead;

/// One line as read.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// The line's bytes, without the line ending.
    Text(&'a [u8]),
    /// The line was longer than the limit; this is its length in bytes.
    TooLong(u64),
}

/// Reads lines of at most `max` bytes from a buffered reader, counting them from 1.
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// Gives back the reader, positioned after the last line returned.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// The next line and its 1-based number, or `None` at the end of input.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut overflow = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            total += chunk.len() as u64;
            if !overflow {
                if self.buf.len() + chunk.len() > self.max {
                    overflow = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            let consumed = done.unwrap_or(available.len());
            self.inner.consume(consumed);
            if done.is_some() {
                total += 1;
                break;
            }
        }
        self.number += 1;
        if overflow {
            return Ok(Some((self.number, Line::TooLong(total))));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((self.number, Line::Text(&self.buf))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_flags_oversized_ones() {
        let input = b"one\r\ntwo-too-long\nthree".as_slice();
        let mut reader = LineReader::new(std::io::BufReader::with_capacity(4, input), 5);
        let mut seen = Vec::new();
        while let Some((n, line)) = reader.next_line().unwrap() {
            seen.push(match line {
                Line::Text(t) => format!("{n}:{}", String::from_utf8_lossy(t)),
                Line::TooLong(len) => format!("{n}:too long {len}"),
            });
        }
        assert_eq!(seen, ["1:one", "2:too long 13", "3:three"]);
    }
}
