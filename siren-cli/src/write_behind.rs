//! A buffered writer whose full buffers are written by a thread of their own, so that
//! whoever fills them (the timeline's merge) goes on while the system copies the last one
//! out: a hunt's timeline is tens of megabytes, written after every event is read.

use std::io::Write;
use std::sync::mpsc;

/// The size of each buffer handed to the writing thread.
const BUFFER: usize = 1 << 20;

/// Full buffers that may wait for the writing thread while it writes another.
const IN_FLIGHT: usize = 2;

/// Writes to `sink` on a thread of its own. [`WriteBehind::finish`] hands over the last
/// buffer, waits for the thread and returns the first error it met.
pub struct WriteBehind {
    buffer: Vec<u8>,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    empty: mpsc::Receiver<Vec<u8>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl WriteBehind {
    /// Starts the writing thread.
    pub fn new(mut sink: impl Write + Send + 'static) -> Self {
        let (full, to_write) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (written, empty) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let writer = std::thread::spawn(move || {
            for mut buffer in to_write {
                sink.write_all(&buffer)?;
                buffer.clear();
                // The filling side may be gone (it failed, or it finished); then the buffer
                // is simply dropped.
                let _ = written.try_send(buffer);
            }
            sink.flush()
        });
        Self {
            buffer: Vec::with_capacity(BUFFER),
            full: Some(full),
            empty,
            writer: Some(writer),
        }
    }

    /// Hands the current buffer to the writing thread and takes an empty one.
    fn hand_over(&mut self) -> std::io::Result<()> {
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        let buffer = std::mem::replace(&mut self.buffer, next);
        let sent = self.full.as_ref().map(|full| full.send(buffer));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped: it failed, and `finish` returns its error.
            _ => self
                .finish_thread()
                .and(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    /// Waits for the writing thread; its error, if it met one.
    fn finish_thread(&mut self) -> std::io::Result<()> {
        self.full = None;
        match self.writer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the output thread panicked")),
            None => Ok(()),
        }
    }

    /// Writes what is left and waits until everything is written.
    pub fn finish(mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.hand_over()?;
        }
        self.finish_thread()
    }
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.buffer.len() + data.len() > BUFFER && !self.buffer.is_empty() {
            self.hand_over()?;
        }
        self.buffer.extend_from_slice(data);
        Ok(())
    }

    /// Buffers are written whole; `finish` writes the last one.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Dropped without `finish` (an error on the filling side): stop the thread.
        self.buffer.clear();
        let _ = self.finish_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that keeps what it is given, or fails after `fail_after` bytes.
    #[derive(Clone)]
    struct Sink {
        got: Arc<Mutex<Vec<u8>>>,
        fail_after: Option<usize>,
    }

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let mut got = self.got.lock().unwrap();
            if self.fail_after.is_some_and(|n| got.len() + data.len() > n) {
                return Err(std::io::Error::other("disk full"));
            }
            got.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_everything_in_order_across_buffers() {
        let sink = Sink {
            got: Arc::default(),
            fail_after: None,
        };
        let mut out = WriteBehind::new(sink.clone());
        let mut expected = Vec::new();
        for i in 0..200_000u32 {
            let line = format!("line {i} {}\n", "x".repeat((i % 97) as usize));
            out.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        // One write larger than a buffer.
        let big = vec![b'y'; 3 * BUFFER + 5];
        out.write_all(&big).unwrap();
        expected.extend_from_slice(&big);
        out.finish().unwrap();
        assert_eq!(*sink.got.lock().unwrap(), expected);
    }

    #[test]
    fn a_failing_sink_is_reported() {
        let sink = Sink {
            got: Arc::default(),
            fail_after: Some(BUFFER + 10),
        };
        let mut out = WriteBehind::new(sink);
        let line = vec![b'z'; 1000];
        let mut result = Ok(());
        for _ in 0..10_000 {
            result = out.write_all(&line);
            if result.is_err() {
                break;
            }
        }
        let error = result.and_then(|()| out.finish()).unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
    }
}
