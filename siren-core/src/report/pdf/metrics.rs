//! Font metrics: glyph advances to wrap text before it is drawn, and the glyphs of printable
//! ASCII, drawn without shaping.

use krilla::text::{GlyphId, KrillaGlyph};

use crate::report::ReportError;

/// Glyph advances of one font, to wrap text before drawing it, and the glyphs of printable
/// ASCII, to draw such text without shaping it.
pub(super) struct Metrics {
    face: ttf_parser::Face<'static>,
    ascii: [f32; 128],
    ascii_glyphs: [u16; 128],
    units: f32,
}

impl Metrics {
    pub(super) fn new(data: &'static [u8]) -> Result<Self, ReportError> {
        let face = ttf_parser::Face::parse(data, 0)
            .map_err(|e| ReportError::Pdf(format!("embedded font: {e}")))?;
        let units = f32::from(face.units_per_em());
        let mut ascii = [0.0; 128];
        let mut ascii_glyphs = [0; 128];
        for code in 0..128u8 {
            let c = char::from(code);
            ascii[usize::from(code)] = advance(&face, c);
            ascii_glyphs[usize::from(code)] = face.glyph_index(c).map_or(0, |g| g.0);
        }
        Ok(Self {
            face,
            ascii,
            ascii_glyphs,
            units,
        })
    }

    /// The glyphs of `text` when it is printable ASCII: one per character at its advance, as
    /// [`Metrics::width`] measured them. Shaping (krilla's `draw_text`) parses the font's
    /// layout tables on every call, which costs more than the rest of a large report; the
    /// Latin text of a report needs none of it (kerning aside). Other text returns `None` and
    /// is shaped.
    pub(super) fn ascii_glyphs(&self, text: &str) -> Option<Vec<KrillaGlyph>> {
        if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        Some(
            text.bytes()
                .enumerate()
                .map(|(at, b)| {
                    KrillaGlyph::new(
                        GlyphId::new(u32::from(self.ascii_glyphs[usize::from(b)])),
                        self.ascii[usize::from(b)] / self.units,
                        0.0,
                        0.0,
                        0.0,
                        at..at + 1,
                        None,
                    )
                })
                .collect(),
        )
    }

    pub(super) fn width(&self, text: &str, size: f32) -> f32 {
        let units: f32 = text
            .chars()
            .map(|c| match self.ascii.get(c as usize) {
                Some(w) if c.is_ascii() => *w,
                _ => advance(&self.face, c),
            })
            .sum();
        units * size / self.units
    }
}

fn advance(face: &ttf_parser::Face<'_>, c: char) -> f32 {
    let glyph = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
    f32::from(face.glyph_hor_advance(glyph).unwrap_or(0))
}
