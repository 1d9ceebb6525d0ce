//! PNG charts for people: training loss curves and forecast-versus-actual
//! plots, one panel per target, stacked vertically.
//!
//! Rendering is pure Rust (plotters' bitmap backend, text through ab_glyph
//! with DejaVu Sans embedded), so charts render the same on a laptop and in
//! the slim runtime image, which has no fonts installed.

use std::sync::Once;

use chrono::{DateTime, Utc};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A shaded interval (x, lower, upper), e.g. a forecast's uncertainty.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One chart of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub lines: Vec<Series>,
    pub band: Option<Band>,
}

/// A figure: a title and panels sharing the x axis kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    /// x values are milliseconds since the Unix epoch (labelled as UTC times).
    pub time_axis: bool,
    pub panels: Vec<Panel>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: {0}")]
    Empty(String),
    #[error("rendering failed: {0}")]
    Render(String),
}

const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 320;
const TITLE_HEIGHT: u32 = 40;
const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; if registration ever failed, text would
        // be missing from the chart, which is not worth failing a run for.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Render `fig` as PNG bytes.
pub fn render_png(fig: &Figure) -> Result<Vec<u8>, PlotError> {
    if fig.panels.is_empty() {
        return Err(PlotError::Empty("figure has no panels".into()));
    }
    register_fonts();
    let height = TITLE_HEIGHT + PANEL_HEIGHT * fig.panels.len() as u32;
    let mut rgb = vec![0u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, height)).into_drawing_area();
        draw(&root, fig).map_err(|e| PlotError::Render(e.to_string()))?;
        root.present().map_err(|e| PlotError::Render(e.to_string()))?;
    }
    encode_png(&rgb, WIDTH, height)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, fig: &Figure) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&fig.title, (FONT, 22).into_font().style(FontStyle::Bold)).map_err(err)?;
    let areas = root.split_evenly((fig.panels.len(), 1));
    for (area, panel) in areas.iter().zip(&fig.panels) {
        draw_panel(area, panel, fig).map_err(|e| format!("panel `{}`: {e}", panel.title))?;
    }
    Ok(())
}

fn bounds(panel: &Panel) -> Option<((f64, f64), (f64, f64))> {
    let mut xs = panel.lines.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect::<Vec<_>>();
    let mut ys = panel.lines.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect::<Vec<_>>();
    if let Some(b) = &panel.band {
        xs.extend(b.points.iter().map(|p| p.0));
        ys.extend(b.points.iter().flat_map(|p| [p.1, p.2]));
    }
    let finite = |v: &Vec<f64>| -> Option<(f64, f64)> {
        let it = v.iter().copied().filter(|x| x.is_finite());
        let lo = it.clone().fold(f64::INFINITY, f64::min);
        let hi = it.fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return None;
        }
        let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
        Some((lo - pad, hi + pad))
    };
    Some((finite(&xs)?, finite(&ys)?))
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    fig: &Figure,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let Some(((x0, x1), (y0, y1))) = bounds(panel) else {
        return Err("no finite points".into());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let time_axis = fig.time_axis;
    let x_fmt = move |x: &f64| {
        if time_axis {
            DateTime::<Utc>::from_timestamp_millis(*x as i64)
                .map(|t| t.format("%m-%d %H:%M").to_string())
                .unwrap_or_default()
        } else {
            format!("{x:.0}")
        }
    };
    let y_fmt = |y: &f64| {
        let a = y.abs();
        if a != 0.0 && !(1e-3..1e6).contains(&a) { format!("{y:.2e}") } else { format!("{y:.3}") }
    };
    chart
        .configure_mesh()
        .x_desc(&fig.x_label)
        .y_desc(&panel.y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_labels(8)
        .label_style((FONT, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    if let Some(band) = &panel.band {
        let color = RGBColor(150, 150, 220);
        let mut poly: Vec<(f64, f64)> = band.points.iter().map(|p| (p.0, p.2)).collect();
        poly.extend(band.points.iter().rev().map(|p| (p.0, p.1)));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.3).filled())))
            .map_err(err)?
            .label(&band.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.mix(0.3).filled()));
    }
    for (i, line) in panel.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = line.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(if i == 0 { 1 } else { 2 })))
            .map_err(err)?
            .label(&line.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// PNG-encode an RGB8 buffer.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let fail = |e: png::EncodingError| PlotError::Render(e.to_string());
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(rgb).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, phase: f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (1.7e12 + i as f64 * 120_000.0, (i as f64 / 20.0 + phase).sin())).collect()
    }

    #[test]
    fn renders_a_png_with_panels_and_a_band() {
        let band = Band {
            name: "80% interval".into(),
            points: sine(200, 0.0).into_iter().map(|(x, y)| (x, y - 0.2, y + 0.2)).collect(),
        };
        let fig = Figure {
            title: "forecast vs actual".into(),
            x_label: "time (UTC)".into(),
            time_axis: true,
            panels: vec![
                Panel {
                    title: "down".into(),
                    y_label: "bytes".into(),
                    lines: vec![
                        Series { name: "actual".into(), points: sine(200, 0.0) },
                        Series { name: "GRU".into(), points: sine(200, 0.1) },
                    ],
                    band: Some(band),
                },
                Panel {
                    title: "up".into(),
                    y_label: "bytes".into(),
                    lines: vec![Series { name: "actual".into(), points: sine(200, 1.0) }],
                    band: None,
                },
            ],
        };
        let png = render_png(&fig).expect("renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert!(png.len() > 10_000, "a real picture, not a blank ({} bytes)", png.len());
    }

    #[test]
    fn empty_figures_and_panels_are_errors() {
        let mut fig = Figure { title: "t".into(), x_label: "x".into(), time_axis: false, panels: vec![] };
        assert!(matches!(render_png(&fig), Err(PlotError::Empty(_))));
        fig.panels.push(Panel { title: "p".into(), y_label: "y".into(), lines: vec![], band: None });
        let e = render_png(&fig).expect_err("no points");
        assert!(e.to_string().contains("no finite points"), "{e}");
    }
}
