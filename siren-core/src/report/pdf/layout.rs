//! The layout: the report as pages of positioned drawing operations (text, rectangles,
//! lines, charts), with wrapping, headings, cards, facts and tables that break across pages
//! with their header repeated.

use super::metrics::Metrics;
use super::page::*;
use crate::report::{ReportError, ReportMeta};

/// One drawing operation, positioned on its page.
pub(super) enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        colour: Colour,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        colour: Colour,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        colour: Colour,
    },
    Svg {
        index: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

/// A table column: title, share of the content width, right-aligned.
pub(super) struct Column {
    title: &'static str,
    share: f32,
    right: bool,
}

pub(super) const fn col(title: &'static str, share: f32) -> Column {
    Column {
        title,
        share,
        right: false,
    }
}

pub(super) const fn num(title: &'static str, share: f32) -> Column {
    Column {
        title,
        share,
        right: true,
    }
}

/// Lays the report out into pages of operations.
pub(super) struct Layout {
    pub(super) regular: Metrics,
    pub(super) bold: Metrics,
    pub(super) pages: Vec<Vec<Op>>,
    y: f32,
    pub(super) svgs: Vec<(String, f32, f32)>,
}

impl Layout {
    pub(super) fn new() -> Result<Self, ReportError> {
        Ok(Self {
            regular: Metrics::new(REGULAR)?,
            bold: Metrics::new(BOLD)?,
            pages: vec![Vec::new()],
            y: TOP,
            svgs: Vec::new(),
        })
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    pub(super) fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Starts a new page unless `height` still fits on this one.
    fn ensure(&mut self, height: f32) {
        if self.y + height > BOTTOM && self.y > TOP {
            self.new_page();
        }
    }

    fn metrics(&self, bold: bool) -> &Metrics {
        if bold { &self.bold } else { &self.regular }
    }

    /// Greedy word wrap; words wider than the line are broken between characters.
    pub(super) fn wrap(&self, text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
        let metrics = self.metrics(bold);
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() {
                    word.to_owned()
                } else {
                    format!("{line} {word}")
                };
                if metrics.width(&candidate, size) <= width {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                if metrics.width(word, size) <= width {
                    line = word.to_owned();
                } else {
                    for c in word.chars() {
                        let mut next = line.clone();
                        next.push(c);
                        if metrics.width(&next, size) > width && !line.is_empty() {
                            lines.push(std::mem::take(&mut line));
                            line.push(c);
                        } else {
                            line = next;
                        }
                    }
                }
            }
            lines.push(line);
        }
        lines
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, colour: Colour, text: &str) {
        if text.is_empty() {
            return;
        }
        self.push(Op::Text {
            x,
            y,
            size,
            bold,
            colour,
            text: text.to_owned(),
        });
    }

    pub(super) fn paragraph(&mut self, text: &str, size: f32, bold: bool, colour: Colour) {
        let leading = size * 1.35;
        for line in self.wrap(text, size, bold, CONTENT_W) {
            self.ensure(leading);
            self.y += leading;
            self.text(LEFT, self.y - leading * 0.25, size, bold, colour, &line);
        }
        self.y += size * 0.4;
    }

    pub(super) fn title_block(&mut self, meta: &ReportMeta) {
        self.text(LEFT, self.y, 8.0, true, ACCENT, "SIREN · INCIDENT REPORT");
        self.y += 6.0;
        self.paragraph(&meta.title, 20.0, true, INK);
        let mut line = format!(
            "Tenant {} · Generated {}",
            meta.tenant,
            meta.generated_at.format("%Y-%m-%d %H:%M UTC")
        );
        if meta.kind == "period" {
            let at = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
                t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| none.to_owned())
            };
            line = format!(
                "{line} · Period {} → {}",
                at(meta.since, "the beginning"),
                at(meta.until, "now")
            );
        }
        if !meta.redacted.is_empty() {
            line = format!("{line} · Redacted: {}", meta.redacted.join(", "));
        }
        self.paragraph(&line, 8.5, false, MUTED);
        self.push(Op::Rect {
            x: LEFT,
            y: self.y,
            w: CONTENT_W,
            h: 2.0,
            colour: ACCENT,
        });
        self.y += 12.0;
    }

    pub(super) fn heading(&mut self, text: &str, size: f32) {
        self.ensure(size * 2.0 + 40.0);
        self.y += size * 0.8;
        self.paragraph(text, size, true, ACCENT);
        self.push(Op::Line {
            x1: LEFT,
            y1: self.y - 2.0,
            x2: RIGHT,
            y2: self.y - 2.0,
            colour: RULE,
        });
        self.y += 4.0;
    }

    /// Figures as a grid of cards, four to a row.
    pub(super) fn cards(&mut self, cards: &[(String, &str)]) {
        let gap = 8.0;
        let w = (CONTENT_W - gap * 3.0) / 4.0;
        let h = 44.0;
        for row in cards.chunks(4) {
            self.ensure(h + gap);
            for (n, (value, label)) in row.iter().enumerate() {
                let x = LEFT + (w + gap) * n as f32;
                self.push(Op::Rect {
                    x,
                    y: self.y,
                    w,
                    h,
                    colour: (249, 250, 251),
                });
                self.push(Op::Rect {
                    x,
                    y: self.y,
                    w: 3.0,
                    h,
                    colour: ACCENT,
                });
                self.text(x + 10.0, self.y + 20.0, 15.0, true, INK, value);
                self.text(x + 10.0, self.y + 35.0, 7.5, false, MUTED, label);
            }
            self.y += h + gap;
        }
    }

    pub(super) fn chart(&mut self, svg: String, width: f32, height: f32) {
        let w = CONTENT_W;
        let h = height * w / width;
        self.ensure(h + 8.0);
        let index = self.svgs.len();
        self.svgs.push((svg, width, height));
        self.push(Op::Svg {
            index,
            x: LEFT,
            y: self.y,
            w,
            h,
        });
        self.y += h + 8.0;
    }

    /// Key–value rows.
    pub(super) fn facts(&mut self, rows: &[(&str, String)]) {
        let key_w = 130.0;
        let size = 8.5;
        let leading = size * 1.4;
        for (key, value) in rows {
            let lines = self.wrap(value, size, false, CONTENT_W - key_w);
            let h = leading * lines.len().max(1) as f32 + 3.0;
            self.ensure(h);
            self.text(LEFT, self.y + leading * 0.8, size, false, MUTED, key);
            for (n, line) in lines.iter().enumerate() {
                self.text(
                    LEFT + key_w,
                    self.y + leading * (n as f32 + 0.8),
                    size,
                    false,
                    INK,
                    line,
                );
            }
            self.y += h;
        }
        self.y += 4.0;
    }

    fn table_header(&mut self, columns: &[Column], widths: &[f32]) {
        let h = 16.0;
        self.push(Op::Rect {
            x: LEFT,
            y: self.y,
            w: CONTENT_W,
            h,
            colour: HEADER_BG,
        });
        let mut x = LEFT;
        for (column, w) in columns.iter().zip(widths) {
            let tx = if column.right {
                x + w - 4.0 - self.bold.width(column.title, 7.0)
            } else {
                x + 4.0
            };
            self.text(tx, self.y + 11.0, 7.0, true, (55, 65, 81), column.title);
            x += w;
        }
        self.y += h;
    }

    /// A table; rows break across pages and the header is repeated.
    pub(super) fn table(&mut self, columns: &[Column], rows: impl Iterator<Item = Vec<String>>) {
        let total: f32 = columns.iter().map(|c| c.share).sum();
        let widths: Vec<f32> = columns
            .iter()
            .map(|c| CONTENT_W * c.share / total)
            .collect();
        let size = 7.5;
        let leading = size * 1.35;
        self.ensure(40.0);
        self.table_header(columns, &widths);
        for row in rows {
            let cells: Vec<Vec<String>> = row
                .iter()
                .zip(&widths)
                .map(|(text, w)| {
                    let mut lines = self.wrap(text, size, false, w - 8.0);
                    if lines.len() > MAX_CELL_LINES {
                        lines.truncate(MAX_CELL_LINES);
                        if let Some(last) = lines.last_mut() {
                            last.push('…');
                        }
                    }
                    lines
                })
                .collect();
            let count = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let h = leading * count as f32 + 5.0;
            if self.y + h > BOTTOM {
                self.new_page();
                self.table_header(columns, &widths);
            }
            let mut x = LEFT;
            for ((lines, w), column) in cells.iter().zip(&widths).zip(columns) {
                for (n, line) in lines.iter().enumerate() {
                    let tx = if column.right {
                        x + w - 4.0 - self.regular.width(line, size)
                    } else {
                        x + 4.0
                    };
                    let ty = self.y + 3.0 + leading * (n as f32 + 0.78);
                    self.text(tx, ty, size, false, INK, line);
                }
                x += w;
            }
            self.y += h;
            self.push(Op::Line {
                x1: LEFT,
                y1: self.y,
                x2: RIGHT,
                y2: self.y,
                colour: RULE,
            });
        }
        self.y += 8.0;
    }
}
