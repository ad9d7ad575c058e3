//! The xml reader.

use std::io::BufRead;

use super::{EventSink, ReadOptions};

pub(super) fn read(
    _name: &str,
    _reader: impl BufRead,
    _options: &ReadOptions,
    _sink: &mut dyn EventSink,
) -> Result<(), String> {
    Err("the xml reader is not built yet".to_owned())
}
