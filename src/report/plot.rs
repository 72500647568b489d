//! SVG plots, drawn with plotters: a metric against the training step on a log y axis, and
//! (for eval returns, which can be negative) bands on a linear axis.
//!
//! Every piece of text is drawn as a plain `Text` element, which the SVG backend writes as an SVG
//! `<text>` without measuring it. plotters' mesh labels, captions and legends measure text with a
//! registered font file, which CI machines may not have; by placing labels ourselves the plots need
//! no font file at all and are identical on every machine.

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::verdict::fmt_num;

/// One line: a label and `(train_step, value)` points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A horizontal threshold line.
pub struct Threshold {
    pub label: String,
    pub value: f64,
    /// True for a FAIL threshold (red), false for INVESTIGATE (orange) or a band edge (grey).
    pub color: RGBColor,
}

const W: u32 = 960;
const H: u32 = 480;
const LEGEND_W: i32 = 260;
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];
/// Colour of FAIL threshold lines.
pub const FAIL_RED: RGBColor = RGBColor(214, 39, 40);
/// Colour of INVESTIGATE threshold lines.
pub const INVESTIGATE_ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Colour of expected-band lines.
pub const BAND_GREY: RGBColor = RGBColor(160, 160, 160);

/// Points drawn per series at most. A long run (a 1M-step run logs 10,000 rows) is thinned to this:
/// each of `MAX_DRAWN / 2` equal spans of training steps keeps its lowest and its highest point,
/// so every spike and dip is still drawn and the file stays small.
const MAX_DRAWN: usize = 400;
/// Series drawn at most: 8 colours × solid, dashed, thin. A sweep with more variant groups draws
/// those with the highest peaks (the legend says how many are left out; the tables list all).
const MAX_SERIES: usize = 3 * PALETTE.len();
/// Series with at most this many points also get a dot per point.
const DOTS_UP_TO: usize = 60;
/// Line height of the legend, and where it starts.
const LEGEND_ROW: i32 = 20;
const LEGEND_TOP: i32 = 50;

/// `points` (sorted by step) thinned to about [`MAX_DRAWN`], keeping each span's extremes.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_DRAWN {
        return points.to_vec();
    }
    let spans = MAX_DRAWN / 2;
    let (x0, x1) = (points[0].0, points[points.len() - 1].0);
    let width = ((x1 - x0) / spans as f64).max(f64::MIN_POSITIVE);
    let mut out = Vec::with_capacity(MAX_DRAWN + 2);
    let mut i = 0;
    while i < points.len() {
        let span = (((points[i].0 - x0) / width) as usize).min(spans - 1);
        let (mut lo, mut hi) = (i, i);
        let mut j = i;
        while j < points.len() && (((points[j].0 - x0) / width) as usize).min(spans - 1) == span {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        out.push(points[lo.min(hi)]);
        if lo != hi {
            out.push(points[lo.max(hi)]);
        }
        i = j;
    }
    out
}

fn text_style(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(h, v))
}

fn nice_step(span: f64) -> f64 {
    let raw = (span / 6.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Renders the plot to an SVG string. Non-positive and non-finite values are left out (a log axis
/// has no place for them). `None` when there is nothing to draw.
pub fn render_svg(
    title: &str,
    series: &[Series],
    thresholds: &[Threshold],
) -> Result<Option<String>, String> {
    render_svg_marked(title, series, thresholds, &[])
}

/// A vertical marker line at a training step (a ladder's stage boundary), labelled at the top.
pub struct Marker {
    /// Training step.
    pub x: f64,
    /// Label drawn above the plot area.
    pub label: String,
}

/// [`render_svg`] with vertical markers (stage boundaries).
pub fn render_svg_marked(
    title: &str,
    series: &[Series],
    thresholds: &[Threshold],
    markers: &[Marker],
) -> Result<Option<String>, String> {
    let peak = |s: &Series| {
        s.points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let left_out = series.len().saturating_sub(MAX_SERIES);
    let series: Vec<&Series> = if left_out > 0 {
        let mut order: Vec<usize> = (0..series.len()).collect();
        order.sort_by(|a, b| peak(&series[*b]).total_cmp(&peak(&series[*a])));
        let mut keep: Vec<usize> = order[..MAX_SERIES].to_vec();
        keep.sort_unstable();
        keep.into_iter().map(|i| &series[i]).collect()
    } else {
        series.iter().collect()
    };
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
    };
    if pts().next().is_none() {
        return Ok(None);
    }
    let x_max = pts().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let x_min = pts().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0);
    let ys = pts()
        .map(|p| p.1)
        .chain(thresholds.iter().map(|t| t.value).filter(|v| *v > 0.0));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (d_lo, d_hi) = (
        lo.log10().floor() as i32,
        (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
    );
    let (y_min, y_max) = (10f64.powi(d_lo), 10f64.powi(d_hi));
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(36)
            .margin_right(LEGEND_W)
            .margin_left(10)
            .x_label_area_size(44)
            .y_label_area_size(90)
            .build_cartesian_2d(x_min..x_max, (y_min..y_max).log_scale())
            .map_err(err)?;
        let grid = RGBColor(225, 225, 225);
        let small = text_style(12.0, HPos::Right, VPos::Center);
        for d in d_lo..=d_hi {
            let y = 10f64.powi(d);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x_min, y), (x_max, y)],
                    grid,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x_min, y));
            root.draw(&Text::new(fmt_num(y), (px - 6, py), small.clone()))
                .map_err(err)?;
        }
        let step = nice_step(x_max - x_min);
        let below = text_style(12.0, HPos::Center, VPos::Top);
        let mut x = (x_min / step).ceil() * step;
        while x <= x_max + 1e-9 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y_min), (x, y_max)],
                    grid,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x, y_min));
            root.draw(&Text::new(fmt_num(x), (px, py + 6), below.clone()))
                .map_err(err)?;
            x += step;
        }
        let (ax0, ay0) = chart.backend_coord(&(x_min, y_min));
        let (ax1, ay1) = chart.backend_coord(&(x_max, y_max));
        root.draw(&PathElement::new(
            vec![(ax0, ay1), (ax0, ay0), (ax1, ay0)],
            BLACK,
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            "training step",
            ((ax0 + ax1) / 2, ay0 + 26),
            below.clone(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            text_style(16.0, HPos::Left, VPos::Top),
        ))
        .map_err(err)?;

        let top = text_style(11.0, HPos::Center, VPos::Bottom);
        for m in markers.iter().filter(|m| m.x >= x_min && m.x <= x_max) {
            let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(1);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m.x, y_min), (m.x, y_max)],
                    style,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(m.x, y_max));
            root.draw(&Text::new(m.label.clone(), (px, py - 2), top.clone()))
                .map_err(err)?;
        }
        let legend = text_style(12.0, HPos::Left, VPos::Center);
        let lx = (W as i32) - LEGEND_W + 16;
        let mut ly = LEGEND_TOP;
        // Legend rows that fit below the top; a sweep with more variants names the first ones
        // and says how many more there are (the Overview table lists them all).
        let rows_fit = ((H as i32 - LEGEND_ROW - LEGEND_TOP) / LEGEND_ROW).max(1) as usize;
        for t in thresholds
            .iter()
            .filter(|t| t.value >= y_min && t.value <= y_max)
        {
            let style = ShapeStyle::from(&t.color).stroke_width(2);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x_min, t.value), (x_max, t.value)],
                    style,
                )))
                .map_err(err)?;
            root.draw(&PathElement::new(vec![(lx, ly), (lx + 24, ly)], style))
                .map_err(err)?;
            root.draw(&Text::new(t.label.clone(), (lx + 30, ly), legend.clone()))
                .map_err(err)?;
            ly += LEGEND_ROW;
        }
        let thresholds_shown = ((ly - LEGEND_TOP) / LEGEND_ROW) as usize;
        let series_rows = rows_fit.saturating_sub(thresholds_shown);
        let named = if series.len() <= series_rows && left_out == 0 {
            series.len()
        } else {
            series.len().min(series_rows.saturating_sub(1))
        };
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let style = ShapeStyle::from(&color).stroke_width(2);
            let line: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.1.is_finite() && p.1 > 0.0)
                .collect();
            let line = thin(&line);
            // Past the palette's 8 colours, lines are dashed, then thin, so no two look alike up
            // to 24 series. (Dots would be many small elements along a noisy line.)
            let cycle = (i / PALETTE.len()) % 3;
            let dash = (cycle == 1).then_some((10, 6));
            let style = if cycle == 2 {
                ShapeStyle::from(&color).stroke_width(1)
            } else {
                style
            };
            match dash {
                None => {
                    chart
                        .draw_series(LineSeries::new(line.clone(), style))
                        .map_err(err)?;
                }
                Some((size, gap)) => {
                    chart
                        .draw_series(DashedLineSeries::new(line.clone(), size, gap, style))
                        .map_err(err)?;
                }
            }
            if line.len() <= DOTS_UP_TO {
                chart
                    .draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))
                    .map_err(err)?;
            }
            if i < named {
                let key = vec![(lx, ly), (lx + 24, ly)];
                match dash {
                    None => root.draw(&PathElement::new(key, style)).map_err(err)?,
                    Some((size, gap)) => root
                        .draw(&DashedPathElement::new(key, size, gap, style))
                        .map_err(err)?,
                }
                root.draw(&Text::new(s.label.clone(), (lx + 30, ly), legend.clone()))
                    .map_err(err)?;
                ly += LEGEND_ROW;
            }
        }
        if named < series.len() || left_out > 0 {
            let text = match (series.len() - named, left_out) {
                (0, l) => format!("{l} more, with lower peaks, not drawn"),
                (n, 0) => format!("… and {n} more (see the Overview)"),
                (n, l) => format!("… {n} more drawn, {l} with lower peaks not"),
            };
            root.draw(&Text::new(text, (lx, ly), legend.clone()))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(buf))
}

/// One variant group's curve on a linear axis: at each x, the mean over its seeds and the band
/// from the lowest to the highest seed.
pub struct Band {
    pub label: String,
    /// `(x, mean, low, high)`, sorted by x.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A linear-axis plot of bands (eval return against env step): each group's mean as a line with
/// its seeds' range shaded. `None` when there is nothing to draw. At most [`PALETTE`]'s colours
/// of groups are drawn (the table lists them all).
pub fn render_bands(title: &str, x_label: &str, bands: &[Band]) -> Result<Option<String>, String> {
    let bands: Vec<&Band> = bands
        .iter()
        .filter(|b| !b.points.is_empty())
        .take(PALETTE.len())
        .collect();
    let all = || bands.iter().flat_map(|b| b.points.iter());
    if all().next().is_none() {
        return Ok(None);
    }
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0);
    let x_max = all()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x_min + 1.0);
    let lo = all().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let hi = all().map(|p| p.3).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo).abs() * 0.05).max(1e-9);
    let (y_min, y_max) = (lo - pad, hi + pad);
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(36)
            .margin_right(LEGEND_W)
            .margin_left(10)
            .x_label_area_size(44)
            .y_label_area_size(90)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)
            .map_err(err)?;
        let grid = RGBColor(225, 225, 225);
        let small = text_style(12.0, HPos::Right, VPos::Center);
        let ystep = nice_step(y_max - y_min);
        let mut y = (y_min / ystep).ceil() * ystep;
        while y <= y_max + 1e-9 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x_min, y), (x_max, y)],
                    grid,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x_min, y));
            root.draw(&Text::new(fmt_num(y), (px - 6, py), small.clone()))
                .map_err(err)?;
            y += ystep;
        }
        let below = text_style(12.0, HPos::Center, VPos::Top);
        let xstep = nice_step(x_max - x_min);
        let mut x = (x_min / xstep).ceil() * xstep;
        while x <= x_max + 1e-9 {
            let (px, py) = chart.backend_coord(&(x, y_min));
            root.draw(&Text::new(fmt_num(x), (px, py + 6), below.clone()))
                .map_err(err)?;
            x += xstep;
        }
        let (ax0, ay0) = chart.backend_coord(&(x_min, y_min));
        let (ax1, ay1) = chart.backend_coord(&(x_max, y_max));
        root.draw(&PathElement::new(
            vec![(ax0, ay1), (ax0, ay0), (ax1, ay0)],
            BLACK,
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            x_label.to_string(),
            ((ax0 + ax1) / 2, ay0 + 26),
            below,
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            text_style(16.0, HPos::Left, VPos::Top),
        ))
        .map_err(err)?;
        let legend = text_style(12.0, HPos::Left, VPos::Center);
        let (lx, mut ly) = ((W as i32) - LEGEND_W + 16, LEGEND_TOP);
        for (i, b) in bands.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut outline: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.3)).collect();
            outline.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    color.mix(0.15).filled(),
                )))
                .map_err(err)?;
            let line: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.1)).collect();
            let style = ShapeStyle::from(&color).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line.clone(), style))
                .map_err(err)?;
            chart
                .draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(err)?;
            root.draw(&PathElement::new(vec![(lx, ly), (lx + 24, ly)], style))
                .map_err(err)?;
            root.draw(&Text::new(b.label.clone(), (lx + 30, ly), legend.clone()))
                .map_err(err)?;
            ly += LEGEND_ROW;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_without_fonts() {
        let s = Series {
            label: "lr=1e-4".into(),
            points: vec![(100.0, 5191.0), (500.0, 7_475_702.0)],
        };
        let t = Threshold {
            label: "FAIL > 50,000".into(),
            value: 50_000.0,
            color: FAIL_RED,
        };
        let svg = render_svg("actor_cnn_grad_norm", &[s], &[t])
            .unwrap()
            .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(
            svg.contains("lr=1e-4") && svg.contains("10,000,000"),
            "{svg}"
        );
        assert_eq!(render_svg("empty", &[], &[]).unwrap(), None);
    }

    #[test]
    fn a_long_run_is_thinned_but_keeps_its_spikes() {
        // 100,000 rows of a 1M-step run with log_every 10: flat, one spike and one dip.
        let mut points: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64 * 10.0, 5.0)).collect();
        points[31_337].1 = 9.0e6;
        points[77_777].1 = 1.0e-3;
        let t = thin(&points);
        assert!(t.len() <= MAX_DRAWN + 2, "{}", t.len());
        assert!(t.contains(&(313_370.0, 9.0e6)) && t.contains(&(777_770.0, 1.0e-3)));
        assert!(
            t.windows(2).all(|w| w[0].0 <= w[1].0),
            "still in step order"
        );
        assert_eq!(thin(&points[..10]), points[..10].to_vec());
    }

    #[test]
    fn many_variants_fit_the_legend_and_the_file_stays_small() {
        let series: Vec<Series> = (0..108)
            .map(|g| Series {
                label: format!("variant {g}"),
                points: (0..10_001)
                    .map(|i| (i as f64 * 100.0, 1.0 + g as f64 + (i % 7) as f64))
                    .collect(),
            })
            .collect();
        let svg = render_svg("q_abs_max", &series, &[]).unwrap().unwrap();
        assert!(svg.len() < 8_000_000, "{} bytes", svg.len());
        assert!(svg.contains("variant 84") && svg.contains("84 with lower peaks not"));
        assert!(!svg.contains("variant 0<"), "a low peak is not drawn");
        assert!(!svg.contains("<circle"), "no dots on long series");
    }
}
