//! `inspect --plot FILE.svg` / `FILE.png`: the report drawn with plotters, on its SVG backend
//! (text left to the SVG viewer) or, with the `png` feature, on its bitmap backend encoded as a
//! PNG; one drawing for both. With `png`, text is measured and rasterised with the DejaVu Sans
//! font shipped in `font/` (no system font library): the SVG's layout then uses the same metrics.
//!
//! Panels, stacked, each with the layers' or weights' names on the x axis (graph order):
//! - with `--forward`, the **activation std** of every recorded layer output, log scale, one
//!   curve per pass (`current`, and `reinit` with `--compare`), over the healthy band 0.1–10
//!   (the inputs are drawn with std 1): the vanishing/exploding picture;
//! - the **activation distribution** per layer: a box per pass from the 25th to the 75th
//!   percentile, whiskers from the 5th to the 95th, a tick at the median (linear scale);
//! - when some layer has them, the **dead ReLU and saturated tanh/sigmoid fractions** per layer,
//!   as bars in percent;
//! - the **weight std** of every weight (weights, recurrent weights, embeddings) against the std
//!   of its recommended scheme, log scale, over the healthy band 0.1×–10× the recommended std
//!   (the verdicts' default thresholds).
//!
//! A log axis cannot draw 0: a zero std (an all-zero or constant weight, a dead layer) is drawn
//! as a triangle on the bottom edge of its panel with the text `zero` or `constant`, so a model
//! with a zeroed layer still shows it.
//!
//! Each curve is drawn in its own stroke colour, one `<polyline>` per run of drawable points
//! (axes and ticks are black polylines, grid lines are `<line>`s); bands, boxes, whiskers, bars and legend swatches are
//! `<rect>`s, the zero markers `<polygon>`s, with a `<circle>` per curve point.

use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{ForwardRun, InspectReport, Verdict};
use crate::table::elide_middle;

/// Stroke colours of the curves, in order (never black, which the axes use).
pub const SERIES_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The fill of the healthy bands.
const BAND: RGBColor = RGBColor(200, 235, 200);
/// The colour of the zero markers.
const ZERO: RGBColor = RGBColor(230, 120, 0);

/// The text of a zero marker.
pub const ZERO_MARK: &str = "zero";
/// The text of a constant marker.
pub const CONSTANT_MARK: &str = "constant";

/// One curve: a label and its points (x, y); y ≤ 0 or non-finite values are drawn as markers.
struct Curve {
    label: String,
    points: Vec<(f64, f64)>,
}

/// A log-scale panel of std values: curves over a healthy band, with zero markers.
struct StdPanel {
    title: String,
    /// x tick labels: entry `i` names x = i + 1.
    names: Vec<String>,
    curves: Vec<Curve>,
    /// Healthy band per x: (x, lo, hi).
    band: Vec<(f64, f64, f64)>,
    band_label: String,
    /// Markers at the bottom edge: (x, text).
    zeros: Vec<(f64, &'static str)>,
}

/// One pass's distribution per layer.
struct BoxRun {
    label: String,
    quantiles: Vec<Option<[f64; 5]>>,
}

/// One pass's fractions per layer: (dead ReLU, saturated).
struct FractionRun {
    label: String,
    fractions: Vec<(Option<f64>, Option<f64>)>,
}

enum Panel {
    Std(StdPanel),
    Boxes {
        names: Vec<String>,
        runs: Vec<BoxRun>,
    },
    Fractions {
        names: Vec<String>,
        runs: Vec<FractionRun>,
    },
}

impl Panel {
    fn title(&self) -> String {
        match self {
            Panel::Std(p) => p.title.clone(),
            Panel::Boxes { .. } => "activation distribution per layer (5–25–50–75–95%)".to_owned(),
            Panel::Fractions { .. } => {
                "dead ReLU outputs and saturated tanh/sigmoid outputs (%)".to_owned()
            }
        }
    }

    fn labels(&self) -> Vec<String> {
        match self {
            Panel::Std(p) => p.curves.iter().map(|c| c.label.clone()).collect(),
            Panel::Boxes { runs, .. } => runs.iter().map(|r| r.label.clone()).collect(),
            Panel::Fractions { runs, .. } => runs.iter().map(|r| r.label.clone()).collect(),
        }
    }
}

fn run_label(r: &ForwardRun) -> String {
    match &r.rules {
        Some(rules) => format!("{} ({rules})", r.label),
        None => r.label.clone(),
    }
}

fn forward_panels(runs: &[ForwardRun]) -> Vec<Panel> {
    let ok: Vec<&ForwardRun> = runs
        .iter()
        .filter(|r| r.error.is_none() && !r.layers.is_empty())
        .collect();
    let Some(first) = ok.first() else {
        return Vec::new();
    };
    let names: Vec<String> = first.layers.iter().map(|l| l.node.clone()).collect();
    let x = |i: usize| (i + 1) as f64;
    let curves: Vec<Curve> = ok
        .iter()
        .map(|r| Curve {
            label: run_label(r),
            points: r.layers.iter().map(|l| (x(l.index), l.std)).collect(),
        })
        .collect();
    let zeros = curves
        .iter()
        .flat_map(|c| c.points.iter())
        .filter(|p| p.1 == 0.0)
        .map(|p| (p.0, ZERO_MARK))
        .collect();
    let mut panels = vec![Panel::Std(StdPanel {
        title: "activation std per layer (forward pass)".to_owned(),
        band: (0..names.len()).map(|i| (x(i), 0.1, 10.0)).collect(),
        band_label: "healthy: std 0.1–10 (inputs have std 1)".to_owned(),
        names: names.clone(),
        curves,
        zeros,
    })];
    let boxes: Vec<BoxRun> = ok
        .iter()
        .map(|r| BoxRun {
            label: run_label(r),
            quantiles: r.layers.iter().map(|l| l.quantiles).collect(),
        })
        .collect();
    if boxes
        .iter()
        .any(|b| b.quantiles.iter().any(Option::is_some))
    {
        panels.push(Panel::Boxes {
            names: names.clone(),
            runs: boxes,
        });
    }
    let fractions: Vec<FractionRun> = ok
        .iter()
        .map(|r| FractionRun {
            label: run_label(r),
            fractions: r
                .layers
                .iter()
                .map(|l| (l.zero_fraction, l.saturated_fraction))
                .collect(),
        })
        .collect();
    if fractions
        .iter()
        .any(|f| f.fractions.iter().any(|p| p.0.is_some() || p.1.is_some()))
    {
        panels.push(Panel::Fractions {
            names,
            runs: fractions,
        });
    }
    panels
}

fn weight_panel(report: &InspectReport) -> Option<Panel> {
    let rows: Vec<_> = report
        .tensors
        .iter()
        .filter(|t| matches!(t.role.as_str(), "weight" | "recurrent_weight" | "embedding"))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let x = |i: usize| (i + 1) as f64;
    let th = report.summary.thresholds;
    Some(Panel::Std(StdPanel {
        title: "weight std vs recommended".to_owned(),
        names: rows
            .iter()
            .map(|t| match (&t.node, t.name.starts_with("onnx::")) {
                // Folded names say little: the layer's node says where the weight is.
                (Some(node), true) => node.clone(),
                _ => t.name.clone(),
            })
            .collect(),
        curves: vec![
            Curve {
                label: "current std".to_owned(),
                points: rows
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (x(i), t.std.unwrap_or(f64::NAN)))
                    .collect(),
            },
            Curve {
                label: "recommended std".to_owned(),
                points: rows
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (x(i), t.recommended_std.unwrap_or(f64::NAN)))
                    .collect(),
            },
        ],
        band: rows
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let r = t.recommended_std.filter(|r| r.is_finite() && *r > 0.0)?;
                Some((x(i), r * th.too_small, r * th.too_large))
            })
            .collect(),
        band_label: format!(
            "healthy: {}×–{}× the recommended std",
            th.too_small, th.too_large
        ),
        zeros: rows
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.verdict {
                Verdict::Zero => Some((x(i), ZERO_MARK)),
                Verdict::Constant => Some((x(i), CONSTANT_MARK)),
                _ => (t.std == Some(0.0)).then_some((x(i), ZERO_MARK)),
            })
            .collect(),
    }))
}

/// The panels [`svg`] draws for this report, as (title, series labels): for tests and for
/// callers that want to say what the file holds.
pub fn panels(report: &InspectReport) -> Vec<(String, Vec<String>)> {
    all_panels(report)
        .iter()
        .map(|p| (p.title(), p.labels()))
        .collect()
}

fn all_panels(report: &InspectReport) -> Vec<Panel> {
    let mut panels = Vec::new();
    if let Some(f) = &report.forward {
        panels.extend(forward_panels(&f.runs));
    }
    panels.extend(weight_panel(report));
    panels
}

fn draw_err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing the plot: {e:?}")
}

/// Height of the x label area, which holds the names rotated by 90°.
const NAME_AREA: u32 = 130;
/// Characters of a name on the axis.
const NAME_CHARS: usize = 22;

/// Draws the names under the x axis, `names[i]` at x = i + 1, each starting just below the
/// axis and running downwards; `at(x)` is the pixel of (x, bottom of the range). Drawn as text
/// on the area rather than as the mesh's tick labels, whose anchor is the text's middle (a
/// rotated name would cross the axis).
fn draw_names<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    at: impl Fn(f64) -> (i32, i32),
    names: &[String],
) -> Result<(), String> {
    let (bx, by) = area.get_base_pixel();
    for (i, n) in names.iter().enumerate() {
        let (px, py) = at((i + 1) as f64);
        let style = ("sans-serif", 11)
            .into_font()
            .transform(FontTransform::Rotate90)
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(
            elide_middle(n, NAME_CHARS),
            (px - bx, py - by + 8),
            style,
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_std<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &StdPanel,
    first_color: usize,
) -> Result<(), String> {
    let n = p.names.len().max(1);
    let ys: Vec<f64> = p
        .curves
        .iter()
        .flat_map(|c| c.points.iter().map(|q| q.1))
        .chain(p.band.iter().flat_map(|b| [b.1, b.2]))
        .filter(|y| y.is_finite() && *y > 0.0)
        .collect();
    let (y_lo, y_hi) = match (
        ys.iter().copied().reduce(f64::min),
        ys.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => (lo / 3.0, hi * 2.0),
        _ => (1e-3, 1.0),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(NAME_AREA)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, (y_lo..y_hi).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .y_desc("std (log scale)")
        .x_labels(n.min(60) + 1)
        .x_label_formatter(&|_| String::new())
        .y_labels(10)
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;
    draw_names(area, |x| chart.backend_coord(&(x, y_lo)), &p.names)?;
    if !p.band.is_empty() {
        chart
            .draw_series(p.band.iter().map(|&(x, lo, hi)| {
                Rectangle::new([(x - 0.5, lo), (x + 0.5, hi)], BAND.mix(0.6).filled())
            }))
            .map_err(draw_err)?
            .label(p.band_label.as_str())
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BAND.filled()));
    }
    for (k, curve) in p.curves.iter().enumerate() {
        let color = SERIES_COLORS[(first_color + k) % SERIES_COLORS.len()];
        // A value the log axis cannot draw breaks the curve: a line across it would claim a
        // value where there is a zero (marked below) or nothing.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &q in &curve.points {
            if q.1.is_finite() && q.1 > 0.0 {
                segments.last_mut().expect("never empty").push(q);
            } else if !segments.last().expect("never empty").is_empty() {
                segments.push(Vec::new());
            }
        }
        for (j, seg) in segments.iter().enumerate() {
            let series = chart
                .draw_series(LineSeries::new(seg.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?;
            if j == 0 {
                series.label(curve.label.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled())
                });
            }
            chart
                .draw_series(seg.iter().map(|&q| Circle::new(q, 3, color.filled())))
                .map_err(draw_err)?;
        }
    }
    if !p.zeros.is_empty() {
        let bottom = y_lo * 1.25;
        chart
            .draw_series(
                p.zeros
                    .iter()
                    .map(|&(x, _)| TriangleMarker::new((x, bottom), 7, ZERO.filled())),
            )
            .map_err(draw_err)?
            .label("std 0 (off the log axis)")
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 6, ZERO.filled()));
        chart
            .draw_series(p.zeros.iter().map(|&(x, text)| {
                Text::new(
                    text,
                    (x, bottom * 1.6),
                    ("sans-serif", 11).into_font().color(&ZERO),
                )
            }))
            .map_err(draw_err)?;
    }
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

/// x offset of pass `k` of `m` within a layer's slot.
fn offset(k: usize, m: usize) -> f64 {
    (k as f64 - (m as f64 - 1.0) / 2.0) * 0.3
}

/// A panel with one slot per layer on x (`1..=names.len()`) and a linear y axis over `y`:
/// its caption, light grid and y label, and the layers' names under the x axis.
fn linear_panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y: std::ops::Range<f64>,
    y_desc: &str,
    names: &[String],
) -> Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let n = names.len().max(1);
    let bottom = y.start;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(NAME_AREA)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, y)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_labels(n.min(60) + 1)
        .x_label_formatter(&|_| String::new())
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;
    draw_names(area, |x| chart.backend_coord(&(x, bottom)), names)?;
    Ok(chart)
}

fn draw_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[String],
    runs: &[BoxRun],
) -> Result<(), String> {
    let all: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.quantiles.iter().flatten().flat_map(|q| [q[0], q[4]]))
        .filter(|y| y.is_finite())
        .collect();
    let lo = all.iter().copied().fold(0.0f64, f64::min);
    let hi = all.iter().copied().fold(0.0f64, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let mut chart = linear_panel(
        area,
        "activation distribution per layer (5–25–50–75–95%)",
        lo - pad..hi + pad,
        "output value",
        names,
    )?;
    let m = runs.len();
    let tick = (hi - lo).max(1e-6) * 0.004;
    for (k, r) in runs.iter().enumerate() {
        let color = SERIES_COLORS[k % SERIES_COLORS.len()];
        let boxes: Vec<(f64, [f64; 5])> = r
            .quantiles
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.map(|q| ((i + 1) as f64 + offset(k, m), q)))
            .collect();
        chart
            .draw_series(boxes.iter().map(|&(x, q)| {
                Rectangle::new(
                    [(x - 0.12, q[1]), (x + 0.12, q[3])],
                    color.mix(0.45).filled(),
                )
            }))
            .map_err(draw_err)?
            .label(r.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
        // Whiskers and the median tick, as thin rectangles.
        chart
            .draw_series(boxes.iter().flat_map(|&(x, q)| {
                [
                    Rectangle::new([(x - 0.01, q[0]), (x + 0.01, q[4])], color.filled()),
                    Rectangle::new(
                        [(x - 0.14, q[2] - tick), (x + 0.14, q[2] + tick)],
                        BLACK.filled(),
                    ),
                ]
            }))
            .map_err(draw_err)?;
    }
    legend(&mut chart)
}

fn draw_fractions<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[String],
    runs: &[FractionRun],
) -> Result<(), String> {
    let mut chart = linear_panel(
        area,
        "dead ReLU outputs and saturated tanh/sigmoid outputs (%)",
        0f64..100.0,
        "% of outputs",
        names,
    )?;
    let m = runs.len();
    for (k, r) in runs.iter().enumerate() {
        let color = SERIES_COLORS[k % SERIES_COLORS.len()];
        let bars: Vec<(f64, f64)> = r
            .fractions
            .iter()
            .enumerate()
            .filter_map(|(i, &(z, s))| z.or(s).map(|f| ((i + 1) as f64 + offset(k, m), f)))
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x, f)| {
                Rectangle::new([(x - 0.12, 0.0), (x + 0.12, f * 100.0)], color.filled())
            }))
            .map_err(draw_err)?
            .label(r.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
    }
    legend(&mut chart)
}

/// Width of the picture, in pixels (SVG user units).
const WIDTH: u32 = 1100;

/// Height of the picture: a title strip and one band of 480 pixels per panel.
fn height(panels: usize) -> u32 {
    60 + 480 * panels.max(1) as u32
}

/// Draws the whole report on `root` (any backend: the SVG and the PNG are the same drawing).
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    report: &InspectReport,
    panels: &[Panel],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(draw_err)?;
    let title = format!(
        "onnx-reinit inspect: {}",
        elide_middle(&report.model, crate::table::MAX_CELL)
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_err)?;
    if panels.is_empty() {
        root.draw(&Text::new(
            "nothing to plot: no weights with a recommended scheme and no forward pass",
            (20, 40),
            ("sans-serif", 16),
        ))
        .map_err(draw_err)?;
    } else {
        let areas = root.split_evenly((panels.len(), 1));
        let mut color = 0;
        for (area, panel) in areas.iter().zip(panels) {
            match panel {
                Panel::Std(p) => {
                    draw_std(area, p, color)?;
                    color += p.curves.len();
                }
                Panel::Boxes { names, runs } => draw_boxes(area, names, runs)?,
                Panel::Fractions { names, runs } => draw_fractions(area, names, runs)?,
            }
        }
    }
    root.present().map_err(draw_err)
}

/// The report drawn as an SVG document.
pub fn svg(report: &InspectReport) -> Result<String, String> {
    #[cfg(feature = "png")]
    register_font();
    let panels = all_panels(report);
    let mut buf = String::new();
    draw(
        &SVGBackend::with_string(&mut buf, (WIDTH, height(panels.len()))).into_drawing_area(),
        report,
        &panels,
    )?;
    Ok(buf)
}

/// Writes [`svg`] to `path` (see [`write_whole`]).
pub fn write_svg(path: &std::path::Path, report: &InspectReport) -> Result<(), String> {
    write_whole(path, svg(report)?.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file in its folder renamed over it, so that a
/// full disk or a crash leaves the old file or none, never a truncated picture.
pub fn write_whole(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let err = |e: std::io::Error| format!("{}: cannot write the plot: {e}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    // Created with mode 0666 less the umask, as a plain create would (not a temporary file's
    // private 0600).
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The font every text of the plot is drawn with: DejaVu Sans, shipped beside this file with
/// its licence (`font/LICENSE`), so that a PNG looks the same on every machine and needs no
/// system font library.
#[cfg(feature = "png")]
static FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");

/// Registers [`FONT`] as plotters' `sans-serif`. With plotters' `ab_glyph` text renderer, a
/// family must be registered before any backend (the SVG's too: it measures text with the same
/// font for its layout) can use it.
#[cfg(feature = "png")]
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The file is part of the binary: it parses, or no test passes.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The report drawn as a PNG picture (8-bit RGB, 1100 pixels wide, 480 pixels per panel),
/// the same drawing as [`svg`] rasterised with plotters' bitmap backend and encoded with the
/// `png` crate.
#[cfg(feature = "png")]
pub fn png(report: &InspectReport) -> Result<Vec<u8>, String> {
    register_font();
    let panels = all_panels(report);
    let (w, h) = (WIDTH, height(panels.len()));
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    draw(
        &BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(),
        report,
        &panels,
    )?;
    let mut out = Vec::new();
    let mut enc = ::png::Encoder::new(&mut out, w, h);
    enc.set_color(::png::ColorType::Rgb);
    enc.set_depth(::png::BitDepth::Eight);
    enc.set_compression(::png::Compression::Fast);
    let mut writer = enc
        .write_header()
        .map_err(|e| format!("encoding the PNG: {e}"))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| format!("encoding the PNG: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("encoding the PNG: {e}"))?;
    Ok(out)
}

/// Writes [`png()`] to `path` (see [`write_whole`]).
#[cfg(feature = "png")]
pub fn write_png(path: &std::path::Path, report: &InspectReport) -> Result<(), String> {
    write_whole(path, &png(report)?)
}
