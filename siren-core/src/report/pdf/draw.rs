//! The laid-out pages drawn with krilla: text as glyphs or shaped, shapes, the charts as
//! vector graphics, a running header and "page N of M" footer.

use std::sync::Arc;

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla_svg::{SurfaceExt as _, SvgSettings};

use super::layout::{Layout, Op};
use super::page::{
    ACCENT, BOLD, CONTENT_W, Colour, LEFT, MUTED, PAGE_H, PAGE_W, REGULAR, RIGHT, RULE,
};
use super::sections::{incident, period};
use crate::report::model::Summary;
use crate::report::source::Source;
use crate::report::{ReportError, ReportMeta};

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
