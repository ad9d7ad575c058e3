//! CSV that spreadsheets cannot run: cells that would start a formula are neutralised the way
//! OWASP recommends against CSV injection, and every text cell is quoted.
//!
//! A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`
//! (Excel, LibreOffice and Google Sheets then show it as text, without the `'`), and the writer
//! from [`writer`] wraps every cell that is not a number in double quotes (doubling the quotes
//! inside), so that no separator in a cell starts a new one, whatever separator the
//! spreadsheet assumes. Numbers — values the caller holds as numbers, never text that looks
//! like one — are written as they are: `-5` in a count or an id column stays a number.
//!
//! ```
//! use siren_core::csv_safe::{neutralise, writer};
//!
//! assert_eq!(neutralise("=1+1"), "'=1+1");
//! assert_eq!(neutralise("dc01"), "dc01");
//! let mut out = writer(Vec::new());
//! out.write_record([neutralise("@SUM(1+9)").as_ref(), "dc01", &(-5).to_string()]).unwrap();
//! let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
//! assert_eq!(text, "\"'@SUM(1+9)\",\"dc01\",-5\n");
//! ```

use std::borrow::Cow;
use std::io::Write;

/// The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
pub const FORMULA_PREFIXES: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a spreadsheet could take the text cell `text` for a formula.
pub fn starts_formula(text: &str) -> bool {
    text.starts_with(FORMULA_PREFIXES)
}

/// The text cell `text`, with a leading `'` when it starts like a formula.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if starts_formula(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A CSV writer over `out` that quotes every cell that is not a number. Text cells given to
/// it must go through [`neutralise`] first.
pub fn writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(cells: &[&str]) -> String {
        let mut out = writer(Vec::new());
        out.write_record(cells).unwrap();
        String::from_utf8(out.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn formula_starts_get_a_quote_mark() {
        for cell in [
            "=1+1",
            "+SUM(1+1)*cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+9)",
            "\t=1",
            "\r=1",
            "-",
            "-5",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
            assert!(!starts_formula(&neutralise(cell)));
        }
        for cell in [
            "",
            "dc01",
            "a=b",
            " =1",
            "'=1",
            "2026-01-01T00:00:00Z",
            "42",
            "\"=1\"",
        ] {
            assert_eq!(neutralise(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn text_cells_are_quoted_and_numbers_are_not() {
        assert_eq!(
            written(&[
                &neutralise("+SUM(1+1)*cmd|' /C calc'!A0"),
                "a;=b",
                "42",
                "-5",
                ""
            ]),
            "\"'+SUM(1+1)*cmd|' /C calc'!A0\",\"a;=b\",42,-5,\"\"\n"
        );
        // Quotes inside a cell are doubled; a reader gets the neutralised text back.
        let text = written(&[&neutralise("=HYPERLINK(\"http://x\")"), "x\ny"]);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[0], "'=HYPERLINK(\"http://x\")");
        assert_eq!(&record[1], "x\ny");
    }
}
