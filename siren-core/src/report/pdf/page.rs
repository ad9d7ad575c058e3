//! The page: A4 in points, margins, the colours of the report, the embedded fonts.

pub(super) static REGULAR: &[u8] =
    include_bytes!("../../../../templates/report/fonts/DejaVuSans.ttf");
pub(super) static BOLD: &[u8] =
    include_bytes!("../../../../templates/report/fonts/DejaVuSans-Bold.ttf");

/// A4 in points.
pub(super) const PAGE_W: f32 = 595.28;
pub(super) const PAGE_H: f32 = 841.89;
pub(super) const LEFT: f32 = 42.0;
pub(super) const RIGHT: f32 = PAGE_W - 42.0;
pub(super) const TOP: f32 = 58.0;
pub(super) const BOTTOM: f32 = PAGE_H - 52.0;
pub(super) const CONTENT_W: f32 = RIGHT - LEFT;

pub(super) type Colour = (u8, u8, u8);
pub(super) const INK: Colour = (17, 24, 39);
pub(super) const MUTED: Colour = (107, 114, 128);
pub(super) const ACCENT: Colour = (30, 58, 138);
pub(super) const RULE: Colour = (229, 231, 235);
pub(super) const HEADER_BG: Colour = (243, 244, 246);

/// Lines a table cell shows at most (the rest is cut with "…").
pub(super) const MAX_CELL_LINES: usize = 14;
