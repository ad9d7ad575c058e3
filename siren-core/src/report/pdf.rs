//! PDF reports, typeset with `krilla`: headings, wrapped paragraphs, tables that break across
//! pages with their header repeated, the SVG charts embedded as vector graphics
//! (`krilla-svg`), and "page N of M" footers. The text font is DejaVu Sans, embedded
//! (subset) from `templates/report/fonts/`.

use std::sync::Arc;

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph, TextDirection};
use krilla_svg::{SurfaceExt as _, SvgSettings};

use super::model::{ReportIncident, Summary};
use super::source::Source;
use super::{ReportError, ReportMeta, chart};

static REGULAR: &[u8] = include_bytes!("../../../templates/report/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../../templates/report/fonts/DejaVuSans-Bold.ttf");

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 42.0;
const RIGHT: f32 = PAGE_W - 42.0;
const TOP: f32 = 58.0;
const BOTTOM: f32 = PAGE_H - 52.0;
const CONTENT_W: f32 = RIGHT - LEFT;

type Colour = (u8, u8, u8);
const INK: Colour = (17, 24, 39);
const MUTED: Colour = (107, 114, 128);
const ACCENT: Colour = (30, 58, 138);
const RULE: Colour = (229, 231, 235);
const HEADER_BG: Colour = (243, 244, 246);

/// Lines a table cell shows at most (the rest is cut with "…").
const MAX_CELL_LINES: usize = 14;

/// Glyph advances of one font, to wrap text before drawing it, and the glyphs of printable
/// ASCII, to draw such text without shaping it.
struct Metrics {
    face: ttf_parser::Face<'static>,
    ascii: [f32; 128],
    ascii_glyphs: [u16; 128],
    units: f32,
}

impl Metrics {
    fn new(data: &'static [u8]) -> Result<Self, ReportError> {
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
    fn ascii_glyphs(&self, text: &str) -> Option<Vec<KrillaGlyph>> {
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

    fn width(&self, text: &str, size: f32) -> f32 {
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

/// One drawing operation, positioned on its page.
enum Op {
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
struct Column {
    title: &'static str,
    share: f32,
    right: bool,
}

const fn col(title: &'static str, share: f32) -> Column {
    Column {
        title,
        share,
        right: false,
    }
}

const fn num(title: &'static str, share: f32) -> Column {
    Column {
        title,
        share,
        right: true,
    }
}

/// Lays the report out into pages of operations.
struct Layout {
    regular: Metrics,
    bold: Metrics,
    pages: Vec<Vec<Op>>,
    y: f32,
    svgs: Vec<(String, f32, f32)>,
}

impl Layout {
    fn new() -> Result<Self, ReportError> {
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

    fn new_page(&mut self) {
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
    fn wrap(&self, text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
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

    fn paragraph(&mut self, text: &str, size: f32, bold: bool, colour: Colour) {
        let leading = size * 1.35;
        for line in self.wrap(text, size, bold, CONTENT_W) {
            self.ensure(leading);
            self.y += leading;
            self.text(LEFT, self.y - leading * 0.25, size, bold, colour, &line);
        }
        self.y += size * 0.4;
    }

    fn title_block(&mut self, meta: &ReportMeta) {
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

    fn heading(&mut self, text: &str, size: f32) {
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
    fn cards(&mut self, cards: &[(String, &str)]) {
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

    fn chart(&mut self, svg: String, width: f32, height: f32) {
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
    fn facts(&mut self, rows: &[(&str, String)]) {
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
    fn table(&mut self, columns: &[Column], rows: impl Iterator<Item = Vec<String>>) {
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

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn opt_day(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(day).unwrap_or_else(|| "—".to_owned())
}

fn counts(list: &[super::model::Count]) -> impl Iterator<Item = Vec<String>> + '_ {
    list.iter()
        .map(|c| vec![c.name.clone(), c.count.to_string()])
}

fn period(layout: &mut Layout, summary: &Summary, source: &Arc<Source>) {
    let span = |s: &Option<super::model::Span>| {
        s.as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_else(|| "—".to_owned())
    };
    layout.heading("Summary", 13.0);
    layout.cards(&[
        (summary.total.to_string(), "INCIDENTS"),
        (summary.new_in_period.to_string(), "NEW IN PERIOD"),
        (summary.resolved_in_period.to_string(), "RESOLVED IN PERIOD"),
        (summary.open.to_string(), "STILL OPEN"),
        (
            span(&summary.mean_time_to_acknowledge),
            "MEAN TIME TO ACKNOWLEDGE",
        ),
        (span(&summary.mean_time_to_resolve), "MEAN TIME TO RESOLVE"),
        (summary.acknowledged.to_string(), "ACKNOWLEDGED"),
        (
            summary
                .first_seen
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "—".to_owned()),
            "EARLIEST ACTIVITY",
        ),
    ]);
    layout.heading("Incidents over time", 13.0);
    layout.chart(chart::over_time(summary), 720.0, 260.0);
    layout.chart(chart::by_severity(summary), 720.0, 166.0);
    layout.heading("Breakdown", 13.0);
    layout.table(
        &[col("Severity", 3.0), num("Incidents", 1.0)],
        counts(&summary.by_severity),
    );
    layout.table(
        &[col("Status", 3.0), num("Incidents", 1.0)],
        counts(&summary.by_status),
    );
    layout.table(
        &[col("Top rule", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_rules),
    );
    layout.table(
        &[col("Top host", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_hosts),
    );
    layout.table(
        &[col("Top user", 3.0), num("Incidents", 1.0)],
        counts(&summary.top_users),
    );
    layout.heading(&format!("Incidents ({})", summary.total), 13.0);
    let rows = source.iter().map(|item| {
        let i = &item.incident;
        let mut status = i.status.as_str().to_owned();
        if let Some(r) = i.resolution {
            status = format!("{status} ({})", r.as_str());
        }
        vec![
            i.id.to_string(),
            i.title.clone(),
            i.severity.as_str().to_owned(),
            status,
            day(i.first_seen),
            day(i.last_seen),
            i.alert_count.to_string(),
            i.hosts.join(", "),
        ]
    });
    layout.table(
        &[
            num("#", 0.6),
            col("Title", 4.4),
            col("Severity", 1.2),
            col("Status", 1.3),
            col("First seen", 1.5),
            col("Last seen", 1.5),
            num("Alerts", 0.9),
            col("Hosts", 2.6),
        ],
        rows,
    );
}

fn incident(layout: &mut Layout, item: &ReportIncident, first: bool) {
    let i = &item.incident;
    if !first {
        layout.new_page();
    }
    layout.paragraph(&format!("#{} · {}", i.id, i.title), 15.0, true, INK);
    layout.heading("Summary", 11.0);
    let or_dash = |list: &[String]| {
        if list.is_empty() {
            "—".to_owned()
        } else {
            list.join(", ")
        }
    };
    layout.facts(&[
        ("Severity", i.severity.as_str().to_owned()),
        ("Status", i.status.as_str().to_owned()),
        (
            "Resolution",
            i.resolution
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|| "—".to_owned()),
        ),
        (
            "Assignee",
            i.assignee
                .clone()
                .unwrap_or_else(|| "unassigned".to_owned()),
        ),
        ("First seen", day(i.first_seen)),
        ("Last seen", day(i.last_seen)),
        ("Opened", day(i.created_at)),
        ("Acknowledged", opt_day(item.acknowledged_at)),
        ("Resolved", opt_day(item.resolved_at)),
        (
            "Alerts / events",
            format!("{} / {}", i.alert_count, i.event_count),
        ),
        ("Rules", or_dash(&i.rule_ids)),
        ("ATT&CK techniques", or_dash(&i.techniques)),
    ]);
    layout.heading("Affected assets", 11.0);
    layout.facts(&[
        ("Hosts", or_dash(&i.hosts)),
        ("Users", or_dash(&i.users)),
        ("IP addresses", or_dash(&i.ips)),
    ]);
    layout.heading("Status history", 11.0);
    let history = item.status_history.clone().unwrap_or_default();
    if history.is_empty() {
        layout.paragraph("No status change yet.", 8.5, false, MUTED);
    } else {
        layout.table(
            &[
                col("When", 1.6),
                col("Who", 1.2),
                col("From", 1.2),
                col("To", 1.2),
                col("Resolution", 1.3),
            ],
            history.into_iter().map(|c| {
                vec![
                    day(c.at),
                    c.actor,
                    c.from,
                    c.to,
                    c.resolution.unwrap_or_default(),
                ]
            }),
        );
    }
    layout.heading("Timeline", 11.0);
    layout.table(
        &[
            col("When", 1.6),
            col("Who", 1.1),
            col("What", 1.3),
            col("Detail", 5.0),
        ],
        item.timeline
            .iter()
            .flatten()
            .map(|e| vec![day(e.at), e.actor.clone(), e.kind.clone(), e.detail.clone()]),
    );
    layout.heading("Triggering events", 11.0);
    let events = item.events.clone().unwrap_or_default();
    if events.is_empty() {
        layout.paragraph("No stored triggering event.", 8.5, false, MUTED);
    } else {
        layout.table(
            &[
                col("Time", 1.5),
                col("Host", 1.4),
                col("Event", 1.2),
                col("User", 1.1),
                col("Addresses", 1.2),
                col("Details", 3.6),
            ],
            events.into_iter().map(|e| {
                let mut details: Vec<String> = Vec::new();
                if let Some(c) = e.command_line.as_ref().or(e.process.as_ref()) {
                    details.push(c.clone());
                }
                details.extend(e.fields.iter().map(|(k, v)| format!("{k}: {v}")));
                vec![
                    opt_day(e.time),
                    e.host.unwrap_or_default(),
                    format!(
                        "{} {}",
                        e.source.unwrap_or_default(),
                        e.event_id.map(|i| i.to_string()).unwrap_or_default()
                    ),
                    e.user.unwrap_or_default(),
                    match (e.src_ip, e.dst_ip) {
                        (Some(s), Some(d)) => format!("{s} → {d}"),
                        (Some(s), None) => s,
                        (None, Some(d)) => format!("→ {d}"),
                        (None, None) => String::new(),
                    },
                    details.join("\n"),
                ]
            }),
        );
    }
    layout.heading("Notes", 11.0);
    let notes = item.notes.clone().unwrap_or_default();
    if notes.is_empty() {
        layout.paragraph("No notes.", 8.5, false, MUTED);
    }
    for note in notes {
        layout.paragraph(
            &format!("{} · {}", day(note.at), note.actor),
            7.5,
            false,
            MUTED,
        );
        layout.paragraph(&note.detail, 9.0, false, INK);
    }
    layout.heading("Resolution", 11.0);
    let resolution = match (i.resolution, item.resolved_at) {
        (Some(r), Some(at)) => format!("Resolved as {} on {}.", r.as_str(), day(at)),
        (Some(r), None) => format!("Resolved as {}.", r.as_str()),
        _ => format!("Not resolved yet ({}).", i.status.as_str()),
    };
    layout.paragraph(&resolution, 9.0, false, INK);
    layout.heading("Recommended next steps", 11.0);
    for step in &i.investigation {
        layout.paragraph(&format!("• {step}"), 9.0, false, INK);
    }
}

fn fill(colour: Colour) -> Fill {
    Fill {
        paint: rgb::Color::new(colour.0, colour.1, colour.2).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// Renders the report to PDF bytes.
pub fn render(
    meta: &ReportMeta,
    summary: &Summary,
    source: &Arc<Source>,
) -> Result<Vec<u8>, ReportError> {
    let mut layout = Layout::new()?;
    layout.title_block(meta);
    if meta.kind == "incident" {
        for (n, item) in source.iter().enumerate() {
            incident(&mut layout, &item, n == 0);
        }
    } else {
        period(&mut layout, summary, source);
    }

    let regular = Font::new(REGULAR.into(), 0)
        .ok_or_else(|| ReportError::Pdf("the embedded font does not load".to_owned()))?;
    let bold = Font::new(BOLD.into(), 0)
        .ok_or_else(|| ReportError::Pdf("the embedded font does not load".to_owned()))?;
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_font_data(REGULAR.to_vec());
    options.fontdb_mut().load_font_data(BOLD.to_vec());
    let trees = layout
        .svgs
        .iter()
        .map(|(svg, _, _)| {
            usvg::Tree::from_str(svg, &options).map_err(|e| ReportError::Pdf(format!("chart: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(meta.title.clone())
            .creator("SIREN".to_owned())
            .language("en".to_owned()),
    );
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| ReportError::Pdf("page size".to_owned()))?;
    let total = layout.pages.len();
    for (number, ops) in layout.pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let text = |surface: &mut krilla::surface::Surface<'_>,
                    x: f32,
                    y: f32,
                    size: f32,
                    bold_face: bool,
                    colour: Colour,
                    content: &str| {
            surface.set_fill(Some(fill(colour)));
            let (font, metrics) = if bold_face {
                (bold.clone(), &layout.bold)
            } else {
                (regular.clone(), &layout.regular)
            };
            match metrics.ascii_glyphs(content) {
                Some(glyphs) => {
                    surface.draw_glyphs(Point::from_xy(x, y), &glyphs, font, content, size, false);
                }
                None => surface.draw_text(
                    Point::from_xy(x, y),
                    font,
                    size,
                    content,
                    false,
                    TextDirection::Auto,
                ),
            }
        };
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold,
                    colour,
                    text: content,
                } => text(&mut surface, *x, *y, *size, *bold, *colour, content),
                Op::Rect { x, y, w, h, colour } => {
                    let mut path = PathBuilder::new();
                    if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                        path.push_rect(rect);
                    }
                    if let Some(path) = path.finish() {
                        surface.set_stroke(None);
                        surface.set_fill(Some(fill(*colour)));
                        surface.draw_path(&path);
                    }
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    colour,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x1, *y1);
                    path.line_to(*x2, *y2);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb::Color::new(colour.0, colour.1, colour.2).into(),
                            width: 0.6,
                            ..Default::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                }
                Op::Svg { index, x, y, w, h } => {
                    if let (Some(tree), Some(size)) = (trees.get(*index), Size::from_wh(*w, *h)) {
                        surface.push_transform(&Transform::from_translate(*x, *y));
                        surface.draw_svg(tree, size, SvgSettings::default());
                        surface.pop();
                    }
                }
            }
        }
        // Running header and footer.
        let footer_y = PAGE_H - 28.0;
        let mut path = PathBuilder::new();
        path.move_to(LEFT, footer_y - 12.0);
        path.line_to(RIGHT, footer_y - 12.0);
        if let Some(path) = path.finish() {
            surface.set_fill(None);
            surface.set_stroke(Some(Stroke {
                paint: rgb::Color::new(RULE.0, RULE.1, RULE.2).into(),
                width: 0.6,
                ..Default::default()
            }));
            surface.draw_path(&path);
            surface.set_stroke(None);
        }
        let label = format!("Page {} of {}", number + 1, total);
        let label_w = layout.regular.width(&label, 8.0);
        let title = layout
            .wrap(&meta.title, 8.0, false, CONTENT_W - label_w - 20.0)
            .into_iter()
            .next()
            .unwrap_or_default();
        text(&mut surface, LEFT, footer_y, 8.0, false, MUTED, &title);
        text(
            &mut surface,
            RIGHT - label_w,
            footer_y,
            8.0,
            false,
            MUTED,
            &label,
        );
        if number > 0 {
            text(&mut surface, LEFT, 32.0, 7.5, true, ACCENT, "SIREN");
            let tenant = format!("tenant {}", meta.tenant);
            let w = layout.regular.width(&tenant, 7.5);
            text(&mut surface, RIGHT - w, 32.0, 7.5, false, MUTED, &tenant);
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| ReportError::Pdf(format!("{e:?}")))
}
