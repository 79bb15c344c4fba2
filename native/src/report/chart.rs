//! Line charts as inline SVG: axes with round ticks (linear, or logarithmic
//! for values spanning decades, as a loss falling from 260 to 1 does),
//! a polyline per series and a legend, without any script.

use std::fmt::Write;

use super::html::escape;

/// The viewBox; the page scales it to its column.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 215.0;
/// The plot area inside the viewBox: room for tick labels left, below and,
/// for the last one's second half, right.
const LEFT: f64 = 60.0;
const RIGHT: f64 = 615.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 195.0;
/// Series with at most this many points also get a marker (with its value
/// as a tooltip) per point: the evaluations, logged a handful of times.
const MARKED_POINTS: usize = 16;
/// Okabe–Ito colours, told apart with any colour vision.
const COLOURS: [&str; 7] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
];

/// One line of a chart: (step, value) points in step order.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart {
    /// The figure's `id` in the page (`chart-…`).
    pub id: String,
    pub title: String,
    pub series: Vec<Series>,
    /// A fixed value range (rates in [0, 1]) instead of one fitted to the data.
    pub range: Option<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

/// An axis over [lo, hi] with its tick values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub scale: Scale,
    pub ticks: Vec<f64>,
}

/// About this many ticks on a linear axis.
const TICKS: usize = 5;
/// At most this many labelled decades on a logarithmic axis.
const MAX_DECADES: i32 = 6;

impl Axis {
    /// The axis for `values` (finite ones only): logarithmic when all are
    /// positive, span a factor of 10 or more and most of them crowd the
    /// bottom tenth of a linear axis (a loss falling fast, then slowly);
    /// else linear. None if no value is finite.
    pub fn fit(values: impl IntoIterator<Item = f64>) -> Option<Axis> {
        let mut finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        finite.sort_by(f64::total_cmp);
        let (&lo, &hi) = (finite.first()?, finite.last()?);
        let median = finite[finite.len() / 2];
        Some(
            if lo > 0.0 && hi / lo >= 10.0 && (median - lo) < 0.1 * (hi - lo) {
                Axis::log(lo, hi)
            } else {
                Axis::linear(lo, hi)
            },
        )
    }

    /// [lo, hi] widened to multiples of a round step (1, 2 or 5 × 10^k);
    /// a single value gets room around it.
    pub fn linear(lo: f64, hi: f64) -> Axis {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else if lo == 0.0 {
            (0.0, 1.0)
        } else {
            let pad = lo.abs() * 0.1;
            (lo - pad, hi + pad)
        };
        let step = round_step((hi - lo) / (TICKS - 1) as f64);
        let first = (lo / step).floor() as i64;
        let last = (hi / step).ceil() as i64;
        Axis {
            lo: first as f64 * step,
            hi: last as f64 * step,
            scale: Scale::Linear,
            ticks: (first..=last).map(|k| k as f64 * step).collect(),
        }
    }

    /// [lo, hi] (both > 0) widened to whole decades, with a tick at every
    /// decade or, over many, every few.
    pub fn log(lo: f64, hi: f64) -> Axis {
        let first = floor_log10(lo);
        let decades = (((hi.log10() - 1e-9).ceil() as i32) - first).max(1);
        let stride = (decades + MAX_DECADES - 1) / MAX_DECADES;
        // The top is a labelled decade too.
        let last = first + stride * ((decades + stride - 1) / stride);
        Axis {
            lo: 10f64.powi(first),
            hi: 10f64.powi(last),
            scale: Scale::Log,
            ticks: (first..=last)
                .step_by(stride as usize)
                .map(|e| 10f64.powi(e))
                .collect(),
        }
    }

    /// Where `v` lies along the axis: 0 at lo, 1 at hi.
    pub fn fraction(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()),
        }
    }

    /// A tick's label, with as many digits as the ticks' spacing needs.
    pub fn label(&self, v: f64) -> String {
        let spacing = match (self.scale, self.ticks.as_slice()) {
            (Scale::Linear, [a, b, ..]) => b - a,
            _ => v.abs(),
        };
        format_tick(v, spacing)
    }
}

/// The least and greatest of the finite `values`, if any.
fn span(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// The round step (1, 2 or 5 × 10^k) nearest `raw`.
pub fn round_step(raw: f64) -> f64 {
    let magnitude = 10f64.powi(floor_log10(raw));
    let mantissa = raw / magnitude;
    let round = [(1.5, 1.0), (3.0, 2.0), (7.0, 5.0)]
        .into_iter()
        .find(|&(below, _)| mantissa < below)
        .map_or(10.0, |(_, m)| m);
    round * magnitude
}

/// ⌊log10 v⌋ for v > 0, exact at powers of ten despite rounding.
fn floor_log10(v: f64) -> i32 {
    (v.log10() + 1e-9).floor() as i32
}

/// `v` written to the precision of `spacing`: plainly (0.25, 1500),
/// with k/M/G from 10,000 up (64.5k), in powers of ten where the digits
/// start below 0.001 (2e-4, and 1.0e-3 among ticks 2e-4 apart).
pub fn format_tick(v: f64, spacing: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let spacing = if spacing > 0.0 { spacing } else { v.abs() };
    let decimals = |spacing: f64| (-floor_log10(spacing)).max(0) as usize;
    if v.abs() >= 1e4 {
        let (unit, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|(unit, _)| v.abs() >= *unit)
            .expect("1e3 ≤ |v|");
        return format!("{:.*}{suffix}", decimals(spacing / unit), v / unit);
    }
    if v.abs() < 1e-3 || (spacing < 1e-3 && v.abs() < 1.0) {
        let digits = (floor_log10(v.abs()) - floor_log10(spacing)).max(0) as usize;
        return format!("{:.*e}", digits, v);
    }
    format!("{:.*}", decimals(spacing), v)
}

/// `v` to four significant digits, as a chart's "last value" reads it.
pub fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = floor_log10(v.abs());
    if v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else if v.abs() >= 1e4 {
        format_tick(v, 10f64.powi(magnitude - 3))
    } else {
        format!("{:.*}", (3 - magnitude).max(0) as usize, v)
    }
}

/// The `points` attribute of an SVG polyline through `points` (already in
/// viewBox coordinates), to 0.1 of a unit.
pub fn polyline_points(points: &[(f64, f64)]) -> String {
    let mut out = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{x:.1},{y:.1}");
    }
    out
}

/// The chart as a `<figure>`: title with each series' last value, legend
/// (over one series), and the SVG. None if no series has a finite point.
pub fn figure(chart: &Chart) -> Option<String> {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let all = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied().filter(finite))
    };
    // Steps, always on a linear axis.
    let (first, last) = span(all().map(|(x, _)| x))?;
    let x_axis = Axis::linear(first, last);
    let y_axis = match chart.range {
        Some((lo, hi)) => Axis::linear(lo, hi),
        None => Axis::fit(all().map(|(_, y)| y))?,
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"{}\"><figcaption>{}",
        escape(&chart.id),
        escape(&chart.title)
    );
    if let [series] = chart.series.as_slice()
        && let Some(&(x, y)) = series.points.iter().rev().find(|p| finite(p))
    {
        let _ = write!(
            out,
            " <span class=\"last\">{} at step {x}</span>",
            format_value(y)
        );
    }
    out.push_str("</figcaption>");
    if chart.series.len() > 1 {
        out.push_str("<div class=\"legend\">");
        for (i, series) in chart.series.iter().enumerate() {
            let _ = write!(
                out,
                "<span><i style=\"background:{}\"></i>{}</span>",
                COLOURS[i % COLOURS.len()],
                escape(&series.name)
            );
        }
        out.push_str("</div>");
    }
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(&chart.title)
    );
    grid(&mut out, &x_axis, &y_axis);
    let to_view = |(x, y): (f64, f64)| {
        let clamp = |f: f64| f.clamp(-0.05, 1.05);
        (
            LEFT + clamp(x_axis.fraction(x)) * (RIGHT - LEFT),
            BOTTOM - clamp(y_axis.fraction(y)) * (BOTTOM - TOP),
        )
    };
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let shown: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(finite)
            // A logarithmic axis has no place for 0 or below.
            .filter(|&(_, y)| y_axis.scale == Scale::Linear || y > 0.0)
            .collect();
        let view: Vec<(f64, f64)> = shown.iter().copied().map(to_view).collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
            polyline_points(&view),
            escape(&series.name)
        );
        if shown.len() <= MARKED_POINTS {
            for (&(step, y), &(vx, vy)) in shown.iter().zip(&view) {
                let _ = write!(
                    out,
                    "<circle cx=\"{vx:.1}\" cy=\"{vy:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{}: {} at step {step}</title></circle>",
                    escape(&series.name),
                    format_value(y)
                );
            }
        }
    }
    out.push_str("</svg></figure>\n");
    Some(out)
}

/// Grid lines and tick labels of both axes, and the x axis's name.
fn grid(out: &mut String, x_axis: &Axis, y_axis: &Axis) {
    out.push_str("<g class=\"grid\">");
    for &t in &y_axis.ticks {
        let y = BOTTOM - y_axis.fraction(t) * (BOTTOM - TOP);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + 4.0,
            escape(&y_axis.label(t))
        );
    }
    for &t in &x_axis.ticks {
        let x = LEFT + x_axis.fraction(t) * (RIGHT - LEFT);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{BOTTOM}\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 14.0,
            escape(&x_axis.label(t))
        );
    }
    // The x axis's name, under the y labels and level with the x labels,
    // clear of the first one's left half.
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">step</text></g>",
        LEFT - 16.0,
        BOTTOM + 14.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_cover_the_values() {
        let axis = Axis::fit([0.13, 0.97, 0.5]).unwrap();
        assert_eq!(axis.scale, Scale::Linear);
        assert_eq!(axis.ticks.len(), 6);
        for (tick, want) in axis.ticks.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) {
            assert!((tick - want).abs() < 1e-12, "{:?}", axis.ticks);
        }
        assert_eq!((axis.lo, axis.hi), (axis.ticks[0], axis.ticks[5]));
        let steps = Axis::linear(1.0, 3500.0);
        assert_eq!(steps.ticks, vec![0.0, 1000.0, 2000.0, 3000.0, 4000.0]);
        assert_eq!(steps.label(2000.0), "2000");
        assert_eq!(axis.label(axis.ticks[1]), "0.2");
    }

    #[test]
    fn a_constant_gets_room_around_it() {
        let axis = Axis::fit([1.0, 1.0]).unwrap();
        assert!(axis.lo < 1.0 && axis.hi > 1.0, "{axis:?}");
        let zero = Axis::fit([0.0]).unwrap();
        assert_eq!((zero.lo, zero.hi), (0.0, 1.0));
        assert!(Axis::fit([f64::NAN]).is_none());
    }

    #[test]
    fn values_spanning_decades_get_a_log_axis() {
        let axis = Axis::fit([260.0, 1.2, 3.0]).unwrap();
        assert_eq!(axis.scale, Scale::Log);
        assert_eq!(axis.ticks, vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(axis.fraction(10.0), 1.0 / 3.0);
        assert_eq!(axis.label(100.0), "100");
        // Nine decades: a tick every second one, up to 1e2.
        let wide = Axis::fit([1.5e-8, 0.01, 3.4]).unwrap();
        assert_eq!(wide.ticks.len(), 6);
        assert_eq!(wide.label(wide.ticks[5]), "100");
        assert_eq!(wide.label(wide.ticks[0]), "1e-8");
        // A zero keeps the axis linear, as do values spread over their range
        // (a learning rate's warm-up and decay).
        assert_eq!(Axis::fit([0.0, 1e-6, 1.0]).unwrap().scale, Scale::Linear);
        let lr = Axis::fit([1.4e-5, 1e-3, 8e-4, 5e-4, 1e-4]).unwrap();
        assert_eq!(lr.scale, Scale::Linear);
    }

    #[test]
    fn tick_labels_carry_the_digits_their_spacing_needs() {
        assert_eq!(format_tick(0.95, 0.05), "0.95");
        assert_eq!(format_tick(1.0, 0.05), "1.00");
        assert_eq!(format_tick(64500.0, 500.0), "64.5k");
        assert_eq!(format_tick(3.2e9, 1e9), "3G");
        assert_eq!(format_tick(2e-4, 2e-4), "2e-4");
        assert_eq!(format_tick(-0.5, 0.5), "-0.5");
        assert_eq!(format_tick(0.001, 2e-4), "1.0e-3");
        assert_eq!(format_value(0.0123456), "0.01235");
        assert_eq!(format_value(0.000846692768), "8.467e-4");
        assert_eq!(format_value(1.2383387), "1.238");
        assert_eq!(format_value(65508.08), "65.51k");
        assert_eq!(round_step(0.23), 0.2);
        assert_eq!(round_step(0.4), 0.5);
        assert_eq!(round_step(875.0), 1000.0);
        assert_eq!(round_step(0.2), 0.2);
    }

    #[test]
    fn a_polyline_lists_its_points_to_a_tenth() {
        assert_eq!(
            polyline_points(&[(60.0, 195.0), (345.04, 10.26), (630.0, 102.5)]),
            "60.0,195.0 345.0,10.3 630.0,102.5"
        );
        assert_eq!(polyline_points(&[]), "");
    }

    #[test]
    fn a_figure_draws_each_series_within_its_plot() {
        let chart = Chart {
            id: "chart-x".into(),
            title: "x <&> y".into(),
            series: vec![
                Series {
                    name: "a".into(),
                    points: vec![(0.0, 0.0), (10.0, 1.0)],
                },
                Series {
                    name: "b\"".into(),
                    points: vec![(5.0, f64::NAN), (10.0, 0.5)],
                },
            ],
            range: None,
        };
        let html = figure(&chart).unwrap();
        assert_eq!(html.matches("<svg").count(), 1);
        assert_eq!(html.matches("<polyline").count(), 2);
        assert!(html.contains("id=\"chart-x\"") && html.contains("x &lt;&amp;&gt; y"));
        assert!(html.contains("b&quot;"));
        // The first series runs from the plot's bottom left to its top right.
        assert!(html.contains(&format!(
            "points=\"{LEFT:.1},{BOTTOM:.1} {RIGHT:.1},{TOP:.1}\""
        )));
        let empty = Chart {
            series: vec![Series {
                name: "none".into(),
                points: vec![(1.0, f64::NAN)],
            }],
            ..chart
        };
        assert!(figure(&empty).is_none());
    }
}
