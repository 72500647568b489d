//! SVG plots, drawn with plotters: a metric against the training step on a log y axis, and
//! (for eval returns, which can be negative) bands on a linear axis.
//!
//! Every piece of text is drawn as a plain `Text` element, which the SVG backend writes as an SVG
//! `<text>` without measuring it. plotters' mesh labels, captions and legends measure text with a
//! registered font file, which CI machines may not have; by placing labels ourselves the plots need
//! no font file at all and are identical on every machine.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
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
    let (series, left_out) = highest_peaks(series);
    let Some((x, (d_lo, d_hi))) = log_extent(&series, thresholds) else {
        return Ok(None);
    };
    let y = (10f64.powi(d_lo), 10f64.powi(d_hi));
    let mut buf = String::new();
    {
        let root = blank_canvas(&mut buf)?;
        let mut plot = Plot::new(&root, x, y, (y.0..y.1).log_scale())?;
        for d in d_lo..=d_hi {
            plot.y_tick(10f64.powi(d))?;
        }
        for x in ticks(x, nice_step(x.1 - x.0)) {
            plot.x_grid(x)?;
            plot.x_label(x)?;
        }
        plot.frame("training step", title)?;
        for m in markers.iter().filter(|m| m.x >= x.0 && m.x <= x.1) {
            plot.marker(m)?;
        }
        let mut legend = Legend::new();
        for t in thresholds
            .iter()
            .filter(|t| t.value >= y.0 && t.value <= y.1)
        {
            let style = ShapeStyle::from(&t.color).stroke_width(2);
            plot.h_line(t.value, style)?;
            legend.row(&root, style, None, &t.label)?;
        }
        let named = legend.series_named(series.len(), left_out);
        for (i, s) in series.iter().enumerate() {
            let (style, dash) = plot.series_line(i, s)?;
            if i < named {
                legend.row(&root, style, dash, &s.label)?;
            }
        }
        if named < series.len() || left_out > 0 {
            let text = match (series.len() - named, left_out) {
                (0, l) => format!("{l} more, with lower peaks, not drawn"),
                (n, 0) => format!("… and {n} more (see the Overview)"),
                (n, l) => format!("… {n} more drawn, {l} with lower peaks not"),
            };
            legend.note(&root, text)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(buf))
}

/// The series to draw, in their order, and how many are left out: past [`MAX_SERIES`], those
/// with the highest peaks.
fn highest_peaks(series: &[Series]) -> (Vec<&Series>, usize) {
    let peak = |s: &Series| {
        s.points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let left_out = series.len().saturating_sub(MAX_SERIES);
    if left_out == 0 {
        return (series.iter().collect(), 0);
    }
    let mut order: Vec<usize> = (0..series.len()).collect();
    order.sort_by(|a, b| peak(&series[*b]).total_cmp(&peak(&series[*a])));
    let mut keep: Vec<usize> = order[..MAX_SERIES].to_vec();
    keep.sort_unstable();
    (keep.into_iter().map(|i| &series[i]).collect(), left_out)
}

/// Whether a point has a place on a log axis.
fn on_log_axis(p: &(f64, f64)) -> bool {
    p.1.is_finite() && p.1 > 0.0
}

/// The x range (from 0 or below, at least to 1) and the decades the y axis spans (at least one),
/// covering the series' points and the positive thresholds. `None` when no point is drawable.
fn log_extent(series: &[&Series], thresholds: &[Threshold]) -> Option<((f64, f64), (i32, i32))> {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| on_log_axis(p))
    };
    pts().next()?;
    let x_max = pts().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let x_min = pts().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0);
    let ys = pts()
        .map(|p| p.1)
        .chain(thresholds.iter().map(|t| t.value).filter(|v| *v > 0.0));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let d_lo = lo.log10().floor() as i32;
    let d_hi = (hi.log10().ceil() as i32).max(d_lo + 1);
    Some(((x_min, x_max), (d_lo, d_hi)))
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
    let Some((x, y)) = band_extent(&bands) else {
        return Ok(None);
    };
    let mut buf = String::new();
    {
        let root = blank_canvas(&mut buf)?;
        let mut plot = Plot::new(&root, x, y, y.0..y.1)?;
        for y in ticks(y, nice_step(y.1 - y.0)) {
            plot.y_tick(y)?;
        }
        for x in ticks(x, nice_step(x.1 - x.0)) {
            plot.x_label(x)?;
        }
        plot.frame(x_label, title)?;
        let mut legend = Legend::new();
        for (i, b) in bands.iter().enumerate() {
            let style = plot.band(PALETTE[i % PALETTE.len()], b)?;
            legend.row(&root, style, None, &b.label)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(buf))
}

/// The x range (from 0 or below, at least 1 wide) and the y range (every band's low to high,
/// padded by 5%) of non-empty `bands`. `None` when there are none.
fn band_extent(bands: &[&Band]) -> Option<((f64, f64), (f64, f64))> {
    let all = || bands.iter().flat_map(|b| b.points.iter());
    all().next()?;
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0);
    let x_max = all()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x_min + 1.0);
    let lo = all().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let hi = all().map(|p| p.3).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo).abs() * 0.05).max(1e-9);
    Some(((x_min, x_max), (lo - pad, hi + pad)))
}

/// The multiples of `step` in `range` (by repeated addition, as the axis labels them).
fn ticks((lo, hi): (f64, f64), step: f64) -> impl Iterator<Item = f64> {
    std::iter::successors(Some((lo / step).ceil() * step), move |x| Some(x + step))
        .take_while(move |x| *x <= hi + 1e-9)
}

fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

type Canvas<'b> = DrawingArea<SVGBackend<'b>, Shift>;

/// A white `W`×`H` canvas drawing into `buf`.
fn blank_canvas(buf: &mut String) -> Result<Canvas<'_>, String> {
    let root = SVGBackend::with_string(buf, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

const GRID: RGBColor = RGBColor(225, 225, 225);

/// A plot being drawn: the canvas (text is placed on it in pixels) and the chart area (lines are
/// drawn in it in data coordinates, x linear, y per `Y`), with its ranges.
struct Plot<'r, 'b, Y: Ranged<ValueType = f64>> {
    root: &'r Canvas<'b>,
    chart: ChartContext<'r, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    x: (f64, f64),
    y: (f64, f64),
}

impl<'r, 'b, Y: Ranged<ValueType = f64>> Plot<'r, 'b, Y> {
    /// The chart area of `root`: room for the title above, the axis labels left and below, and
    /// the legend right.
    fn new(
        root: &'r Canvas<'b>,
        x: (f64, f64),
        y: (f64, f64),
        y_axis: impl AsRangedCoord<CoordDescType = Y, Value = f64>,
    ) -> Result<Self, String> {
        let chart = ChartBuilder::on(root)
            .margin_top(36)
            .margin_right(LEGEND_W)
            .margin_left(10)
            .x_label_area_size(44)
            .y_label_area_size(90)
            .build_cartesian_2d(x.0..x.1, y_axis)
            .map_err(err)?;
        Ok(Plot { root, chart, x, y })
    }

    fn line(
        &mut self,
        from: (f64, f64),
        to: (f64, f64),
        style: impl Into<ShapeStyle>,
    ) -> Result<(), String> {
        self.chart
            .draw_series(std::iter::once(PathElement::new(vec![from, to], style)))
            .map_err(err)?;
        Ok(())
    }

    fn h_line(&mut self, y: f64, style: impl Into<ShapeStyle>) -> Result<(), String> {
        self.line((self.x.0, y), (self.x.1, y), style)
    }

    fn v_line(&mut self, x: f64, style: impl Into<ShapeStyle>) -> Result<(), String> {
        self.line((x, self.y.0), (x, self.y.1), style)
    }

    fn text(&self, text: &str, at: (i32, i32), style: &TextStyle) -> Result<(), String> {
        self.root
            .draw(&Text::new(text, at, style.clone()))
            .map_err(err)
    }

    /// A horizontal grid line at `y`, labelled left of the axis.
    fn y_tick(&mut self, y: f64) -> Result<(), String> {
        self.h_line(y, GRID)?;
        let (px, py) = self.chart.backend_coord(&(self.x.0, y));
        let style = text_style(12.0, HPos::Right, VPos::Center);
        self.text(&fmt_num(y), (px - 6, py), &style)
    }

    fn x_grid(&mut self, x: f64) -> Result<(), String> {
        self.v_line(x, GRID)
    }

    /// The label of `x` below the axis.
    fn x_label(&self, x: f64) -> Result<(), String> {
        let (px, py) = self.chart.backend_coord(&(x, self.y.0));
        self.text(&fmt_num(x), (px, py + 6), &below())
    }

    /// The axis lines, the x axis's name below them and the title at the top left.
    fn frame(&self, x_label: &str, title: &str) -> Result<(), String> {
        let (ax0, ay0) = self.chart.backend_coord(&(self.x.0, self.y.0));
        let (ax1, ay1) = self.chart.backend_coord(&(self.x.1, self.y.1));
        self.root
            .draw(&PathElement::new(
                vec![(ax0, ay1), (ax0, ay0), (ax1, ay0)],
                BLACK,
            ))
            .map_err(err)?;
        self.text(x_label, ((ax0 + ax1) / 2, ay0 + 26), &below())?;
        self.text(title, (10, 10), &text_style(16.0, HPos::Left, VPos::Top))
    }

    /// A vertical line at the marker's step, labelled above the chart area.
    fn marker(&mut self, m: &Marker) -> Result<(), String> {
        self.v_line(m.x, ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(1))?;
        let (px, py) = self.chart.backend_coord(&(m.x, self.y.1));
        let top = text_style(11.0, HPos::Center, VPos::Bottom);
        self.text(&m.label, (px, py - 2), &top)
    }

    /// Series number `i`'s drawable points, thinned, as a line (with dots when there are few);
    /// returns the line's style and dashes for its legend key.
    fn series_line(&mut self, i: usize, s: &Series) -> Result<(ShapeStyle, Dash), String> {
        let color = PALETTE[i % PALETTE.len()];
        let line: Vec<(f64, f64)> = s.points.iter().copied().filter(on_log_axis).collect();
        let line = thin(&line);
        // Past the palette's 8 colours, lines are dashed, then thin, so no two look alike up
        // to 24 series. (Dots would be many small elements along a noisy line.)
        let cycle = (i / PALETTE.len()) % 3;
        let dash = (cycle == 1).then_some((10, 6));
        let style = ShapeStyle::from(&color).stroke_width(if cycle == 2 { 1 } else { 2 });
        match dash {
            None => self.chart.draw_series(LineSeries::new(line.clone(), style)),
            Some((size, gap)) => {
                self.chart
                    .draw_series(DashedLineSeries::new(line.clone(), size, gap, style))
            }
        }
        .map_err(err)?;
        if line.len() <= DOTS_UP_TO {
            self.chart
                .draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(err)?;
        }
        Ok((style, dash))
    }

    /// A band's seed range shaded in `color`, and its mean as a line with dots; returns the
    /// line's style for its legend key.
    fn band(&mut self, color: RGBColor, b: &Band) -> Result<ShapeStyle, String> {
        let mut outline: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.3)).collect();
        outline.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
        self.chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.15).filled(),
            )))
            .map_err(err)?;
        let line: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.1)).collect();
        let style = ShapeStyle::from(&color).stroke_width(2);
        self.chart
            .draw_series(LineSeries::new(line.clone(), style))
            .map_err(err)?;
        self.chart
            .draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(err)?;
        Ok(style)
    }
}

/// A line's dash length and gap in pixels; `None` for a solid line.
type Dash = Option<(i32, i32)>;

/// Centred below a point: the x axis's labels and name.
fn below() -> TextStyle<'static> {
    text_style(12.0, HPos::Center, VPos::Top)
}

/// The legend right of the chart area: one row per line, top down.
struct Legend {
    x: i32,
    y: i32,
}

impl Legend {
    fn new() -> Self {
        Legend {
            x: (W as i32) - LEGEND_W + 16,
            y: LEGEND_TOP,
        }
    }

    fn style() -> TextStyle<'static> {
        text_style(12.0, HPos::Left, VPos::Center)
    }

    /// A key line in the line's style, then its label.
    fn row(
        &mut self,
        root: &Canvas,
        style: ShapeStyle,
        dash: Dash,
        label: &str,
    ) -> Result<(), String> {
        let (lx, ly) = (self.x, self.y);
        let key = vec![(lx, ly), (lx + 24, ly)];
        match dash {
            None => root.draw(&PathElement::new(key, style)),
            Some((size, gap)) => root.draw(&DashedPathElement::new(key, size, gap, style)),
        }
        .map_err(err)?;
        root.draw(&Text::new(label, (lx + 30, ly), Self::style()))
            .map_err(err)?;
        self.y += LEGEND_ROW;
        Ok(())
    }

    /// A line of text with no key (how many series it does not name).
    fn note(&self, root: &Canvas, text: String) -> Result<(), String> {
        root.draw(&Text::new(text, (self.x, self.y), Self::style()))
            .map_err(err)
    }

    /// How many of `drawn` series get a row, after the rows already taken: all when they fit
    /// and none are left out, else one fewer than fit, to leave a row for [`Legend::note`]. The
    /// Overview table lists them all.
    fn series_named(&self, drawn: usize, left_out: usize) -> usize {
        let rows_fit = ((H as i32 - LEGEND_ROW - LEGEND_TOP) / LEGEND_ROW).max(1) as usize;
        let taken = ((self.y - LEGEND_TOP) / LEGEND_ROW) as usize;
        let series_rows = rows_fit.saturating_sub(taken);
        if drawn <= series_rows && left_out == 0 {
            drawn
        } else {
            drawn.min(series_rows.saturating_sub(1))
        }
    }
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
