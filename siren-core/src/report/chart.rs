//! Charts as SVG, drawn from the summary: incidents over time (stacked by severity) and
//! incidents by severity. The same SVG is inlined in HTML and embedded as vector graphics in
//! PDF.

use std::fmt::Write as _;

use super::model::{SEVERITIES, Summary};

/// Each severity's colour, in [`SEVERITIES`] order.
pub const COLOURS: [&str; 5] = ["#7f1d1d", "#dc2626", "#f59e0b", "#3b82f6", "#9ca3af"];

/// The chart's font family (the PDF embeds DejaVu Sans; browsers fall back to sans-serif).
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round axis maximum at or above `max` (1, 2, 5 × 10ⁿ).
fn nice_max(max: u64) -> u64 {
    let max = max.max(1);
    let mut base = 1;
    loop {
        for step in [1, 2, 5] {
            if step * base >= max {
                return step * base;
            }
        }
        base *= 10;
    }
}

/// Incidents over time: one stacked bar per bucket.
pub fn over_time(summary: &Summary) -> String {
    let (width, height) = (720.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (48.0, 12.0, 28.0, 56.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="10" role="img" aria-label="Incidents over time"><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = write!(
        svg,
        r##"<text x="{left}" y="16" font-size="12" font-weight="bold" fill="#111827">Incidents over time (first seen)</text>"##
    );
    let buckets = &summary.over_time;
    let max = nice_max(buckets.iter().map(|b| b.total).max().unwrap_or(0));
    // Whole-number gridlines: 5 for 5 × 10ⁿ and 10ⁿ, 4 for 2 × 10ⁿ.
    let ticks: u64 = if max >= 5 && max % 5 == 0 {
        5
    } else if max % 4 == 0 {
        4
    } else {
        max.min(2)
    };
    for tick in 0..=ticks {
        let value = max * tick / ticks;
        let y = top + plot_h - plot_h * tick as f64 / ticks as f64;
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e7eb" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#4b5563">{value}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 3.5
        );
    }
    if buckets.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#6b7280">No incidents in this period</text>"##,
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let label_every = buckets.len().div_ceil(12).max(1);
    for (n, bucket) in buckets.iter().enumerate() {
        let x = left + slot * n as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (count, colour) in bucket.counts.iter().zip(COLOURS) {
            if *count == 0 {
                continue;
            }
            let h = plot_h * *count as f64 / max as f64;
            y -= h;
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"/>"##
            );
        }
        if n % label_every == 0 {
            let lx = x + bar / 2.0;
            let ly = top + plot_h + 12.0;
            let _ = write!(
                svg,
                r##"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})" fill="#374151">{}</text>"##,
                escape(&bucket.label)
            );
        }
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#6b7280" stroke-width="1"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    // Legend.
    let mut lx = width - right - 5.0 * 88.0;
    for (severity, colour) in SEVERITIES.iter().zip(COLOURS) {
        let _ = write!(
            svg,
            r##"<rect x="{lx:.1}" y="8" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="17" fill="#374151">{}</text>"##,
            lx + 14.0,
            severity.as_str()
        );
        lx += 88.0;
    }
    svg.push_str("</svg>");
    svg
}

/// Incidents by severity: one horizontal bar per severity.
pub fn by_severity(summary: &Summary) -> String {
    let (width, row) = (720.0_f64, 26.0_f64);
    let (left, right, top) = (110.0, 60.0, 28.0);
    let height = top + row * SEVERITIES.len() as f64 + 8.0;
    let plot_w = width - left - right;
    let max = summary
        .by_severity
        .iter()
        .map(|c| c.count)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="11" role="img" aria-label="Incidents by severity"><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/><text x="0" y="16" font-size="12" font-weight="bold" fill="#111827">Incidents by severity</text>"##
    );
    for (n, (count, colour)) in summary.by_severity.iter().zip(COLOURS).enumerate() {
        let y = top + row * n as f64;
        let w = (plot_w * count.count as f64 / max as f64).max(0.5);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#374151">{}</text><rect x="{left}" y="{:.1}" width="{plot_w:.1}" height="{:.1}" fill="#f3f4f6"/><rect x="{left}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" fill="#111827">{}</text>"##,
            left - 8.0,
            y + row * 0.62,
            escape(&count.name),
            y + 3.0,
            row - 6.0,
            y + 3.0,
            row - 6.0,
            left + w + 6.0,
            y + row * 0.62,
            count.count
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(101), 200);
        assert_eq!(nice_max(4_999), 5_000);
    }
}
