//! The phase-shift plot of `replay --plot`: actual vs forecast throughput over
//! time, congestion probability below (INTERFACE.md "Plot").
//!
//! Text is drawn with DejaVu Sans from Debian's fonts-dejavu-core (installed by
//! scripts/setup.sh) through fontconfig; without it the plot is refused with a
//! clear message.

use plotters::prelude::*;
use std::path::{Path, PathBuf};

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Errors drawing the plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No font to draw text with.
    #[error("no font for the plot: install fonts-dejavu-core (apt-get install fonts-dejavu-core)")]
    NoFont,
    /// plotters failed.
    #[error("cannot draw {path}: {detail}")]
    Draw {
        /// The PNG.
        path: PathBuf,
        /// What plotters said.
        detail: String,
    },
}

/// One plotted window: its place on the time axis (s; forecast windows laid end
/// to end), its segment (a new one after each capture or gap, drawn apart),
/// actual, forecast, probability.
#[derive(Copy, Clone, Debug)]
pub struct Point {
    /// Place on the time axis, s.
    pub t_s: f64,
    /// Segment number (drawn apart from the others).
    pub segment: usize,
    /// Actual throughput, Mbit/s.
    pub actual_mbps: f64,
    /// Forecast for this window, Mbit/s.
    pub predicted_mbps: f64,
    /// Forecast probability of falling below the threshold.
    pub congestion_prob: f64,
}

/// One drawn series: legend, colour, value.
type Series = (&'static str, RGBColor, fn(&Point) -> f64);

/// plotters finds "sans-serif" through fontconfig; make sure a font is there so
/// a missing package gives a clear message instead of a drawing error.
fn require_font() -> Result<(), PlotError> {
    if FONT_PATHS.iter().any(|p| Path::new(p).exists()) {
        Ok(())
    } else {
        Err(PlotError::NoFont)
    }
}

/// An event on the plot's time axis: (from, to, kind).
pub type Span = (f64, f64, crate::events::Kind);

/// Draw a 1600x900 PNG; `events` are shaded bands along the top.
pub fn phase_shift_png(
    path: &Path,
    title: &str,
    threshold_mbps: f64,
    pts: &[Point],
    events: &[Span],
) -> Result<(), PlotError> {
    require_font()?;
    let err = |e: String| PlotError::Draw {
        path: path.to_owned(),
        detail: e,
    };
    let segments: Vec<&[Point]> = pts.chunk_by(|a, b| a.segment == b.segment).collect();
    let x_desc = if segments.len() > 1 {
        "time (s; forecast windows end to end, a gray line where a capture or a gap begins)"
    } else {
        "time (s)"
    };
    let root = BitMapBackend::new(path, (1600, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (top, bottom) = root.split_vertically(620);
    let t_max = pts.last().map(|p| p.t_s).unwrap_or(1.0).max(1e-3);
    let y_max = pts
        .iter()
        .map(|p| p.actual_mbps.max(p.predicted_mbps))
        .fold(threshold_mbps, f64::max)
        * 1.08;
    let mut c = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|e| err(e.to_string()))?;
    c.configure_mesh()
        .y_desc("throughput (Mbit/s)")
        .x_desc(x_desc)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let actual = RGBColor(40, 40, 40);
    let forecast = RGBColor(220, 80, 20);
    let boundaries: Vec<f64> = segments.iter().skip(1).map(|s| s[0].t_s).collect();
    c.draw_series(
        boundaries
            .iter()
            .map(|t| PathElement::new(vec![(*t, 0.0), (*t, y_max)], RGBColor(150, 150, 150))),
    )
    .map_err(|e| err(e.to_string()))?;
    // Events: a strip along the top of the throughput chart per kind.
    for (row, kind) in crate::events::Kind::ALL.into_iter().enumerate() {
        let color = match kind {
            crate::events::Kind::CongestionAhead => RGBColor(240, 150, 0),
            crate::events::Kind::CapacityDrop => RGBColor(200, 0, 0),
            crate::events::Kind::ForecastDegraded => RGBColor(120, 60, 180),
            crate::events::Kind::CaptureDegraded => RGBColor(90, 90, 90),
            crate::events::Kind::LinkStall => RGBColor(0, 0, 0),
            crate::events::Kind::ZeroWindow => RGBColor(0, 120, 160),
        };
        let (y1, y0) = (
            y_max * (1.0 - 0.03 * row as f64),
            y_max * (0.97 - 0.03 * row as f64),
        );
        let spans: Vec<&Span> = events.iter().filter(|e| e.2 == kind).collect();
        if spans.is_empty() {
            continue;
        }
        c.draw_series(spans.iter().map(|(a, b, _)| {
            Rectangle::new([(*a, y0), (b.max(*a + 0.05), y1)], color.mix(0.6).filled())
        }))
        .map_err(|e| err(e.to_string()))?
        .label(format!("event: {}", kind.name().replace('_', " ")))
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.mix(0.6).filled())
        });
    }
    let series: [Series; 2] = [
        ("actual", actual, |p| p.actual_mbps),
        ("forecast (at its target window)", forecast, |p| {
            p.predicted_mbps
        }),
    ];
    for (name, color, value) in series {
        for (i, seg) in segments.iter().enumerate() {
            let drawn = c
                .draw_series(LineSeries::new(
                    seg.iter().map(|p| (p.t_s, value(p))),
                    // One pixel: plotters joins wider lines with unlimited miters,
                    // and a 50 ms series has sharp turns that would spike off the chart.
                    color.stroke_width(1),
                ))
                .map_err(|e| err(e.to_string()))?;
            if i == 0 {
                drawn.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
    }
    c.draw_series(LineSeries::new(
        [(0.0, threshold_mbps), (t_max, threshold_mbps)],
        BLUE.mix(0.5),
    ))
    .map_err(|e| err(e.to_string()))?
    .label(format!("threshold {threshold_mbps} Mbit/s"))
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.5)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let mut b = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..1.0)
        .map_err(|e| err(e.to_string()))?;
    b.configure_mesh()
        .y_desc("P(below threshold)")
        .x_desc(x_desc)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for seg in &segments {
        b.draw_series(AreaSeries::new(
            seg.iter().map(|p| (p.t_s, p.congestion_prob)),
            0.0,
            RGBColor(200, 30, 60).mix(0.35),
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    b.draw_series(
        pts.iter()
            .filter(|p| p.actual_mbps < threshold_mbps)
            .map(|p| Circle::new((p.t_s, 0.02), 2, BLACK.filled())),
    )
    .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
