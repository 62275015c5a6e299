//! `inspect --plot FILE.svg`: the report drawn with plotters' SVG backend (no system libraries,
//! no fonts needed: text is left to the SVG viewer).
//!
//! Up to two panels, stacked:
//! - with `--forward`, the std of every recorded layer output in graph order, log scale, one
//!   curve per pass (`current`, and `reinit` with `--compare`): the vanishing/exploding picture;
//! - the std of every weight (weights, recurrent weights, embeddings) against the std of its
//!   recommended scheme, log scale, two curves.
//!
//! Each curve is one `<polyline>` with its own stroke colour (axes and ticks are black
//! polylines, grid lines are `<line>`s, legend swatches `<rect>`s), with a `<circle>` per point;
//! values ≤ 0 (a zero std) cannot sit on a log axis and are left out of their curve.

use plotters::prelude::*;

use super::{ForwardRun, InspectReport};

/// Stroke colours of the curves, in order (never black, which the axes use).
pub const SERIES_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// One curve: a label and its points (x, y), y > 0.
struct Curve {
    label: String,
    points: Vec<(f64, f64)>,
}

/// A panel: title, axis descriptions and curves.
struct Panel {
    title: String,
    x_desc: String,
    curves: Vec<Curve>,
}

fn positive(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .into_iter()
        .filter(|&(_, y)| y.is_finite() && y > 0.0)
        .collect()
}

fn forward_panel(runs: &[ForwardRun]) -> Option<Panel> {
    let curves: Vec<Curve> = runs
        .iter()
        .filter(|r| r.error.is_none() && !r.layers.is_empty())
        .map(|r| Curve {
            label: match &r.rules {
                Some(rules) => format!("{} ({rules})", r.label),
                None => r.label.clone(),
            },
            points: positive(r.layers.iter().map(|l| ((l.index + 1) as f64, l.std))),
        })
        .collect();
    (!curves.is_empty()).then(|| Panel {
        title: "activation std per layer (forward pass)".to_owned(),
        x_desc: "recorded output, graph order".to_owned(),
        curves,
    })
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
    Some(Panel {
        title: "weight std vs recommended".to_owned(),
        x_desc: "weight, model order".to_owned(),
        curves: vec![
            Curve {
                label: "current std".to_owned(),
                points: positive(
                    rows.iter()
                        .enumerate()
                        .map(|(i, t)| (x(i), t.std.unwrap_or(0.0))),
                ),
            },
            Curve {
                label: "recommended std".to_owned(),
                points: positive(
                    rows.iter()
                        .enumerate()
                        .map(|(i, t)| (x(i), t.recommended_std.unwrap_or(0.0))),
                ),
            },
        ],
    })
}

/// The panels [`svg`] draws for this report, as (title, curve labels): for tests and for
/// callers that want to say what the file holds.
pub fn panels(report: &InspectReport) -> Vec<(String, Vec<String>)> {
    all_panels(report)
        .into_iter()
        .map(|p| (p.title, p.curves.into_iter().map(|c| c.label).collect()))
        .collect()
}

fn all_panels(report: &InspectReport) -> Vec<Panel> {
    let mut panels = Vec::new();
    if let Some(p) = report.forward.as_ref().and_then(|f| forward_panel(&f.runs)) {
        panels.push(p);
    }
    if let Some(p) = weight_panel(report) {
        panels.push(p);
    }
    panels
}

fn draw_err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing the plot: {e:?}")
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    first_color: usize,
) -> Result<(), String> {
    let all: Vec<(f64, f64)> = panel
        .curves
        .iter()
        .flat_map(|c| c.points.iter().copied())
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let y_min = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = all.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let (y_lo, y_hi) = if all.is_empty() {
        (1e-3, 1.0)
    } else {
        (y_min / 2.0, y_max * 2.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..x_max + 0.5, (y_lo..y_hi).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc.as_str())
        .y_desc("std (log scale)")
        .x_labels((x_max as usize + 1).min(24))
        .y_labels(10)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round())
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;
    for (k, curve) in panel.curves.iter().enumerate() {
        let color = SERIES_COLORS[(first_color + k) % SERIES_COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(curve.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
        chart
            .draw_series(
                curve
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// The report drawn as an SVG document.
pub fn svg(report: &InspectReport) -> Result<String, String> {
    let panels = all_panels(report);
    let height = 60 + 420 * panels.len().max(1) as u32;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!("onnx-reinit inspect: {}", report.model);
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
            for (area, panel) in areas.iter().zip(&panels) {
                draw_panel(area, panel, color)?;
                color += panel.curves.len();
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// Writes [`svg`] to `path`.
pub fn write_svg(path: &std::path::Path, report: &InspectReport) -> Result<(), String> {
    let text = svg(report)?;
    std::fs::write(path, text)
        .map_err(|e| format!("{}: cannot write the plot: {e}", path.display()))
}
