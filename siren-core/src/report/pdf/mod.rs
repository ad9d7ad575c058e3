//! PDF reports, typeset with `krilla`: headings, wrapped paragraphs, tables that break across
//! pages with their header repeated, the SVG charts embedded as vector graphics
//! (`krilla-svg`), and "page N of M" footers. The text font is DejaVu Sans, embedded
//! (subset) from `templates/report/fonts/`.
//!
//! `page.rs` holds the page geometry, colours and fonts; `metrics.rs` the fonts' advances
//! and ASCII glyphs; `layout.rs` lays text, tables, cards and charts out into pages of
//! drawing operations; `sections.rs` says what a period report and an incident report hold;
//! `draw.rs` draws the pages with krilla, with their header and footer.

mod draw;

mod layout;

mod metrics;

mod page;

mod sections;

pub(super) use draw::render;
