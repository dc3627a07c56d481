//! Report helpers: CSV tables, aligned text tables, and an SVG line plot.
//!
//! - [`Table`]: a header and string rows; written as CSV (RFC 4180 quoting) or as an aligned
//!   text table for terminals.
//! - [`LinePlot`]: one line per [`Series`], optional log-scale y axis and a horizontal reference
//!   line (an SLO), rendered to SVG with plotters' SVG backend (no fonts needed). Non-finite y
//!   values (e.g. +∞ slowdown of a point with drops) are drawn at the top of the y range, so a
//!   violating point shows as off the chart, like the original notebook's 1e9 convention.
//!
//! Tested below: CSV quoting, and that a plot renders an SVG document holding every series name.

use std::io::Write;
use std::path::Path;

use plotters::prelude::*;

/// Errors from writing reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("writing {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The OS error (part of the message, so not also reported as a source).
        error: std::io::Error,
    },
    /// Plotting failed.
    #[error("plotting {title:?}: {why}")]
    Plot {
        /// The plot's title.
        title: String,
        /// plotters' message.
        why: String,
    },
}

/// A table of strings with a header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows (each as long as the header).
    pub rows: Vec<Vec<String>>,
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

impl Table {
    /// An empty table with these columns.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Writes the table as CSV.
    pub fn write_csv<W: Write>(&self, mut out: W) -> std::io::Result<()> {
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<_> = row.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))?;
        }
        Ok(())
    }

    /// Writes the table as CSV to `path`.
    pub fn write_csv_file(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        let io = |error| ReportError::Io {
            path: path.display().to_string(),
            error,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        self.write_csv(&mut out).map_err(io)?;
        out.flush().map_err(io)
    }

    /// The table as aligned text (columns padded to their widest cell).
    pub fn to_text(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .take(cols)
                .map(|(i, c)| format!("{c:>w$}", w = widths[i]))
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text
    }
}

/// A number as a table cell: `-` for NaN (no data), `inf` for ±∞ (a request never answered),
/// else `v` with `decimals` digits after the point.
pub fn fmt_cell(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.decimals$}")
    }
}

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// A line plot (e.g. p99.9 slowdown vs offered load, one line per policy).
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Optional horizontal line `(y, label)`, e.g. the SLO.
    pub reference_line: Option<(f64, String)>,
    /// The lines.
    pub series: Vec<Series>,
}

/// Width and height of the SVG (px).
pub const PLOT_SIZE_PX: (u32, u32) = (900, 560);

/// Distinct line colours, cycled.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

impl LinePlot {
    /// A plot with no series yet.
    pub fn new(title: &str, x_label: &str, y_label: &str, log_y: bool) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y,
            reference_line: None,
            series: Vec::new(),
        }
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let finite = |v: f64| v.is_finite() && (!self.log_y || v > 0.0);
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.reference_line.iter().map(|r| r.0));
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        for x in xs.filter(|&x| x.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for y in ys.filter(|&y| finite(y)) {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if !y0.is_finite() {
            (y0, y1) = (1.0, 10.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if self.log_y {
            // Whole decades around the data, with room above for off-chart (infinite) points.
            y0 = 10f64.powf(y0.log10().floor());
            y1 = 10f64.powf(y1.log10().ceil() + 1.0);
        } else {
            let pad = (y1 - y0).abs().max(1.0) * 0.1;
            y0 -= pad;
            y1 += pad;
        }
        ((x0, x1), (y0, y1))
    }

    /// Renders the plot as an SVG document.
    pub fn render_svg(&self) -> Result<String, ReportError> {
        let mut svg = String::new();
        let err = |e: &dyn std::fmt::Display| ReportError::Plot {
            title: self.title.clone(),
            why: e.to_string(),
        };
        let ((x0, x1), (y0, y1)) = self.ranges();
        let clip = move |y: f64| if y.is_finite() { y.clamp(y0, y1) } else { y1 };
        {
            let root = SVGBackend::with_string(&mut svg, PLOT_SIZE_PX).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut builder = ChartBuilder::on(&root);
            builder
                .caption(&self.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(70);
            if self.log_y {
                let mut chart = builder
                    .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(|e| err(&e))?;
                self.draw_chart(&mut chart, clip, (x0, x1))
                    .map_err(|e| err(&e))?;
            } else {
                let mut chart = builder
                    .build_cartesian_2d(x0..x1, y0..y1)
                    .map_err(|e| err(&e))?;
                self.draw_chart(&mut chart, clip, (x0, x1))
                    .map_err(|e| err(&e))?;
            }
            root.present().map_err(|e| err(&e))?;
        }
        Ok(svg)
    }

    /// Draws the mesh with its axis labels, the reference line, every series and the legend.
    fn draw_chart<'a, DB, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
        clip: impl Fn(f64) -> f64,
        (x0, x1): (f64, f64),
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend + 'a,
        Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .draw()?;
        if let Some((y, label)) = &self.reference_line {
            chart
                .draw_series(LineSeries::new(
                    [(x0, clip(*y)), (x1, clip(*y))],
                    BLACK.mix(0.5).stroke_width(1),
                ))?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
        }
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, clip(y))).collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    }

    /// Renders and writes the SVG to `path`.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        let svg = self.render_svg()?;
        std::fs::write(path, svg).map_err(|error| ReportError::Io {
            path: path.display().to_string(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_missing_and_infinite_values() {
        assert_eq!(fmt_cell(f64::NAN, 2), "-");
        assert_eq!(fmt_cell(f64::INFINITY, 2), "inf");
        assert_eq!(fmt_cell(1.2345, 2), "1.23");
        assert_eq!(fmt_cell(1234.0 / 1e3, 1), "1.2");
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let mut t = Table::new(["policy", "note"]);
        t.push(vec!["darc".into(), "a,b".into()]);
        t.push(vec!["cfcfs".into(), "say \"hi\"".into()]);
        let mut out = Vec::new();
        t.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "policy,note\ndarc,\"a,b\"\ncfcfs,\"say \"\"hi\"\"\"\n"
        );
        assert!(t.to_text().lines().count() == 3);
    }

    #[test]
    fn plot_renders_every_series() {
        let mut p = LinePlot::new("DISP2", "load", "p99.9 slowdown", true);
        p.reference_line = Some((20.0, "SLO".into()));
        p.series.push(Series {
            name: "darc".into(),
            points: vec![(0.1, 1.0), (0.5, 3.0), (0.9, 15.0)],
        });
        p.series.push(Series {
            name: "cfcfs".into(),
            points: vec![(0.1, 2.0), (0.5, 90.0), (0.9, f64::INFINITY)],
        });
        let svg = p.render_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("darc") && svg.contains("cfcfs") && svg.contains("SLO"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
