//! The input under the XML reader: bytes and lines counted, and no single token allowed to
//! grow past the record size limit.

use std::io::{BufRead, Read};

/// A buffered reader that counts bytes and lines, and stops any single XML token from growing
/// past the size limit: past it, input is skipped up to the next `<` and `overflowed` is set.
pub(super) struct Counted<R> {
    inner: R,
    /// Bytes consumed.
    pub(super) position: u64,
    /// Line feeds consumed.
    newlines: u64,
    /// Where the current token started.
    token_start: u64,
    limit: u64,
    /// Whether input was skipped since the current token started.
    pub(super) overflowed: bool,
}

impl<R: BufRead> Counted<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            position: 0,
            newlines: 0,
            token_start: 0,
            limit: limit.max(1),
            overflowed: false,
        }
    }

    pub(super) fn start_token(&mut self) {
        self.token_start = self.position;
        self.overflowed = false;
    }

    /// The 1-based line of the current position.
    pub(super) fn line(&self) -> u64 {
        self.newlines + 1
    }
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position - self.token_start > self.limit {
            // One token larger than a whole record may be: skip to the next markup.
            loop {
                let available = self.inner.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                let (skip, found) = match memchr::memchr(b'<', available) {
                    Some(at) => (at, true),
                    None => (available.len(), false),
                };
                let newlines = memchr::memchr_iter(b'\n', &available[..skip]).count() as u64;
                self.newlines += newlines;
                self.position += skip as u64;
                self.inner.consume(skip);
                if found {
                    break;
                }
            }
            self.overflowed = true;
            self.token_start = self.position;
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(available) = self.inner.fill_buf() {
            let end = amount.min(available.len());
            let newlines = memchr::memchr_iter(b'\n', &available[..end]).count() as u64;
            self.newlines += newlines;
            self.position += end as u64;
        }
        self.inner.consume(amount);
    }
}
