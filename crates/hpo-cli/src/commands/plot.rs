//! SVG figures: `hpo plot DIR` for an experiment (the d2l any-time plot, learning curves, a
//! Gantt chart of trials per worker; with several objectives, the Pareto front and the
//! hypervolume against time) and `hpo bench plot DIR` for a method comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use hpo_core::pareto::{Front, reference_point};
use hpo_core::{Decision, Entry, ExperimentResults, Mode, read_journal};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::{BenchPlotArgs, PlotArgs};
use hpo_bench::{RunResult, best_at, quartiles};

const SIZE: (u32, u32) = (960, 600);

fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart with hpo's caption font, margins and label areas.
fn chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: impl AsRef<str>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> anyhow::Result<Chart<'a, 'b>> {
    ChartBuilder::on(root)
        .caption(caption.as_ref(), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)
}

/// The chart's mesh with hpo's fonts and these axis descriptions; add options, then `draw`.
fn axes<'c, 'a, 'b>(
    chart: &'c mut Chart<'a, 'b>,
    x_desc: &str,
    y_desc: &str,
) -> MeshStyle<'a, 'c, RangedCoordf64, RangedCoordf64, SVGBackend<'b>> {
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc).label_style(("sans-serif", 15)).axis_desc_style(("sans-serif", 17));
    mesh
}

/// A value axis: logarithmic when every value is positive and the largest is over 4 times the smallest
/// (most progress of a search happens in the last few percent of a linear axis), plotted as
/// log10 with the labels in the values' own units.
#[derive(Clone, Copy)]
struct YScale {
    log: bool,
}

impl YScale {
    fn of(values: impl Iterator<Item = f64>) -> YScale {
        YScale { log: bounds(values).is_some_and(|(lo, hi)| lo > 0.0 && hi / lo > 4.0) }
    }

    fn map(self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// A tick label: whole numbers from 100 on, else three decimals without trailing zeros.
    fn label(self, y: f64) -> String {
        let v = if self.log { 10f64.powf(y) } else { y };
        if v.abs() >= 100.0 {
            return format!("{v:.0}");
        }
        format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_owned()
    }

    fn describe(self, name: &str) -> String {
        if self.log { format!("{name} (log scale)") } else { name.to_owned() }
    }
}

/// The area below a chart with the key of its series, drawn side by side so it never covers
/// the data: `(label, color, filled box or line)`.
fn key_strip(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(String, RGBAColor, bool)]) -> anyhow::Result<()> {
    let mut x = 90;
    for (label, color, boxed) in entries {
        if *boxed {
            area.draw(&Rectangle::new([(x, 10), (x + 14, 22)], color.filled())).map_err(plot_error)?;
        } else {
            area.draw(&PathElement::new([(x, 16), (x + 20, 16)], color.stroke_width(2))).map_err(plot_error)?;
        }
        area.draw(&Text::new(label.clone(), (x + 26, 9), ("sans-serif", 15))).map_err(plot_error)?;
        x += 40 + 8 * label.chars().count() as i32;
    }
    Ok(())
}

/// Splits a figure into the chart and a key strip below it.
type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;

fn with_key_strip<'b>(root: &Area<'b>) -> (Area<'b>, Area<'b>) {
    root.split_vertically(SIZE.1 - 34)
}

/// (min, max) padded so a flat series still gets an axis.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let Some((lo, hi)) = bounds(values) else { return (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// (min, max) of the finite values, if there is one.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    lo.is_finite().then_some((lo, hi))
}

pub fn plot(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let path = args.dir.join("journal.jsonl");
    if !path.exists() {
        bail!("{} has no journal.jsonl: is it an experiment folder made by `hpo run`?", args.dir.display());
    }
    let entries = read_journal(&path)?;
    let results = ExperimentResults::from_entries(&entries).with_context(|| path.display().to_string())?;
    let out = args.dir.join("plots");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = vec![
        anytime(&results, &out.join("anytime.svg"))?,
        learning_curves(&results, &out.join("learning_curves.svg"))?,
        gantt(&entries, &results, &out.join("gantt.svg"))?,
    ];
    if results.objectives().len() > 1 {
        let pareto = results.pareto();
        files.push(front(&results, &pareto, &out.join("front.svg"))?);
        files.push(hypervolume(&results, &pareto, &out.join("hypervolume.svg"))?);
    }
    for f in files {
        outln!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The time axis: simulated seconds say so.
fn time_label(results: &ExperimentResults) -> &'static str {
    if super::simulated(&results.spec["backend"]) { "simulated time (s)" } else { "time (s)" }
}

/// Best value so far against time, one step per improvement.
fn anytime(results: &ExperimentResults, path: &Path) -> anyhow::Result<PathBuf> {
    let objective = &results.objective;
    let mut best = f64::INFINITY;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for row in &results.rows {
        if let Ok(o) = objective.of(&row.metrics)
            && o < best
        {
            best = o;
            if let Some(&(_, last)) = points.last() {
                points.push((row.time, last));
            }
            points.push((row.time, objective.to_metric(o)));
        }
    }
    let end = results.end.as_ref().map_or_else(|| results.rows.last().map_or(1.0, |r| r.time), |e| e.0).max(1e-9);
    if let Some(&(_, last)) = points.last() {
        points.push((end, last));
    }
    let scale = YScale::of(points.iter().map(|p| p.1));
    let points: Vec<(f64, f64)> = points.into_iter().map(|(t, v)| (t, scale.map(v))).collect();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (lo, hi) = range(points.iter().map(|p| p.1));
    let mode = if objective.mode == Mode::Max { "max" } else { "min" };
    let caption = format!("{}: best {} so far ({mode})", results.name, objective.metric);
    let mut chart = chart(&root, caption, 0.0..end, lo..hi)?;
    let y_label = |y: &f64| scale.label(*y);
    axes(&mut chart, time_label(results), &scale.describe(&objective.metric))
        .y_label_formatter(&y_label)
        .draw()
        .map_err(plot_error)?;
    chart.draw_series(LineSeries::new(points, palette(0).stroke_width(2))).map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(path.to_owned())
}

/// Every trial's metric against its resource: colored by the trial's best value (dark: the
/// best), the rung levels where the scheduler decided as dashed lines, and where trials were
/// paused or stopped.
fn learning_curves(results: &ExperimentResults, path: &Path) -> anyhow::Result<PathBuf> {
    let resource_attr = results.spec["resource_attr"].as_str().map(str::to_owned);
    let metric = &results.objective.metric;
    let mut curves: BTreeMap<u64, Curve> = BTreeMap::new();
    let mut rungs: BTreeMap<u64, usize> = BTreeMap::new();
    for row in &results.rows {
        let Some(value) = row.metrics.get(metric).filter(|v| v.is_finite()) else { continue };
        let curve = curves.entry(row.trial_id).or_default();
        let resource =
            resource_attr.as_deref().and_then(|a| row.metrics.get(a)).unwrap_or((curve.points.len() + 1) as f64);
        curve.points.push((resource, value));
        if row.decision != Decision::Continue {
            curve.decisions.push((resource, value, row.decision));
            *rungs.entry(resource.to_bits()).or_default() += 1;
        }
    }
    let scale = YScale::of(curves.values().flat_map(|c| c.points.iter().map(|p| p.1)));
    let (x_lo, x_hi) = range(curves.values().flat_map(|c| c.points.iter().map(|p| p.0)));
    let (y_lo, y_hi) = range(curves.values().flat_map(|c| c.points.iter().map(|p| scale.map(p.1))));
    let integral = curves.values().flat_map(|c| &c.points).all(|p| p.0.fract() == 0.0);
    let total = curves.len();
    let curves = thin_curves(curves, |v| results.objective.to_minimize(v));
    let title = if curves.len() < total {
        format!(
            "{}: learning curves of {} of {total} trials (the best half, an even sample)",
            results.name,
            curves.len()
        )
    } else {
        format!("{}: learning curves of {}", results.name, super::count(total, "trial"))
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, strip) = with_key_strip(&root);
    let mut chart = chart(&top, title, x_lo.min(0.0)..x_hi, y_lo..y_hi)?;
    let y_label = |y: &f64| scale.label(*y);
    let x_label = |x: &f64| if integral { format!("{x:.0}") } else { format!("{x}") };
    let x_ticks = if integral { (x_hi as usize + 1).clamp(2, 11) } else { 10 };
    axes(&mut chart, resource_attr.as_deref().unwrap_or("report"), &scale.describe(metric))
        .x_labels(x_ticks)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()
        .map_err(plot_error)?;
    // Rung levels: where decisions were taken often enough to be levels, not stray stops.
    let levels: Vec<f64> = rungs.iter().filter(|(_, n)| **n >= 2).map(|(r, _)| f64::from_bits(*r)).collect();
    if levels.len() <= 12 {
        for r in &levels {
            chart
                .draw_series(DashedLineSeries::new(
                    [(*r, y_lo), (*r, y_hi)],
                    4,
                    4,
                    RGBColor(150, 150, 150).stroke_width(1),
                ))
                .map_err(plot_error)?;
        }
    }
    let n = curves.len().max(2) as f64;
    let dots = curves.len() <= MAX_DOTTED_CURVES;
    // Worst first, so the best lie on top.
    for (rank, curve) in curves.iter().enumerate().rev() {
        let color = shade(rank as f64 / (n - 1.0));
        let points: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, scale.map(p.1))).collect();
        chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(1))).map_err(plot_error)?;
        if dots {
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 2, color.filled()))).map_err(plot_error)?;
        }
    }
    for curve in &curves {
        for &(r, v, decision) in &curve.decisions {
            let at = (r, scale.map(v));
            match decision {
                Decision::Stop => {
                    chart.draw_series(std::iter::once(Cross::new(at, 3, STOPPED.mix(0.6).stroke_width(1))))
                }
                _ => chart.draw_series(std::iter::once(Circle::new(at, 3, PAUSED.mix(0.6).stroke_width(1)))),
            }
            .map_err(plot_error)?;
        }
    }
    let key = [
        ("best trial".to_owned(), shade(0.0), false),
        ("worst trial".to_owned(), shade(1.0), false),
        ("stopped".to_owned(), STOPPED.to_rgba(), true),
        ("paused (and maybe resumed)".to_owned(), PAUSED.to_rgba(), true),
        ("rung level".to_owned(), RGBColor(150, 150, 150).to_rgba(), false),
    ];
    key_strip(&strip, &key)?;
    root.present().map_err(plot_error)?;
    Ok(path.to_owned())
}

/// One trial's learning curve and the decisions taken on it (not `continue`).
#[derive(Default)]
struct Curve {
    points: Vec<(f64, f64)>,
    decisions: Vec<(f64, f64, Decision)>,
}

const STOPPED: RGBColor = RGBColor(214, 39, 40);
const PAUSED: RGBColor = RGBColor(255, 127, 14);

/// From dark blue (0: the best) to pale grey-blue (1: the worst).
fn shade(t: f64) -> RGBAColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + t * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(mix(8, 200), mix(48, 210), mix(107, 225)).mix(0.9 - 0.5 * t)
}

/// Past this many trials, learning curves are thinned (the file stays small and readable).
const MAX_CURVES: usize = 1000;
/// Past this many curves, reports are not marked with dots.
const MAX_DOTTED_CURVES: usize = 200;

/// At most [`MAX_CURVES`] curves: the best half of them by their best value, and an evenly
/// spaced sample (by trial id) of the rest.
/// The curves best first (by their best value), at most [`MAX_CURVES`] of them: the best
/// half, and an evenly spaced sample of the rest.
fn thin_curves(curves: BTreeMap<u64, Curve>, to_minimize: impl Fn(f64) -> f64) -> Vec<Curve> {
    let best = |c: &Curve| c.points.iter().map(|p| to_minimize(p.1)).fold(f64::INFINITY, f64::min);
    let mut ranked: Vec<(f64, Curve)> = curves.into_values().map(|c| (best(&c), c)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    if ranked.len() > MAX_CURVES {
        let rest = ranked.split_off(MAX_CURVES / 2);
        let step = rest.len().div_ceil(MAX_CURVES / 2).max(1);
        ranked.extend(rest.into_iter().step_by(step));
    }
    ranked.into_iter().map(|(_, c)| c).collect()
}

/// A trial's run on the Gantt chart: (start, end, trial, how it ended).
type Segment<'a> = (f64, f64, u64, &'a str);
/// A segment on its worker lane.
type Placed<'a> = (usize, Segment<'a>);

/// Past this many segments, the Gantt chart draws no outlines.
const MAX_OUTLINED_SEGMENTS: usize = 2000;

/// Merges back-to-back segments of one lane and kind that are narrower than a pixel, so a
/// run of 100,000 short trials draws at most about one rectangle per pixel and lane.
fn merge_narrow(mut placed: Vec<Placed<'_>>, pixel: f64) -> Vec<Placed<'_>> {
    placed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.0.total_cmp(&b.1.0)));
    let mut merged: Vec<Placed<'_>> = Vec::with_capacity(placed.len());
    for (lane, seg) in placed {
        match merged.last_mut() {
            Some((l, last))
                if *l == lane
                    && last.3 == seg.3
                    && seg.0 - last.1 < pixel
                    && (last.1 - last.0 < pixel || seg.1 - seg.0 < pixel) =>
            {
                last.1 = last.1.max(seg.1);
            }
            _ => merged.push((lane, seg)),
        }
    }
    merged
}

/// Run segments of trials (start/resume to its end), laid out on worker lanes.
fn gantt(entries: &[Entry<'_>], results: &ExperimentResults, path: &Path) -> anyhow::Result<PathBuf> {
    let mut open: BTreeMap<u64, f64> = BTreeMap::new();
    let mut segments: Vec<(f64, f64, u64, &str)> = Vec::new();
    for entry in entries {
        match entry {
            Entry::Start { t, trial, .. } | Entry::Resume { t, trial, .. } => {
                open.insert(*trial, *t);
            }
            Entry::Complete { t, trial, .. } => {
                segments.extend(open.remove(trial).map(|s| (s, *t, *trial, "completed")))
            }
            Entry::Fail { t, trial, .. } => segments.extend(open.remove(trial).map(|s| (s, *t, *trial, "failed"))),
            Entry::Stopped { t, trial } => segments.extend(open.remove(trial).map(|s| (s, *t, *trial, "stopped"))),
            Entry::Paused { t, trial } => segments.extend(open.remove(trial).map(|s| (s, *t, *trial, "paused"))),
            _ => {}
        }
    }
    let end = results.end.as_ref().map_or_else(|| segments.iter().map(|s| s.1).fold(1e-9, f64::max), |e| e.0).max(1e-9);
    segments.extend(open.into_iter().map(|(trial, s)| (s, end, trial, "running")));
    segments.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Greedy interval partitioning: as many lanes as trials ever ran at once (the workers).
    let mut lanes: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for seg in &segments {
        let lane = lanes.iter().position(|&free| free <= seg.0 + 1e-12).unwrap_or_else(|| {
            lanes.push(0.0);
            lanes.len() - 1
        });
        lanes[lane] = seg.1;
        placed.push((lane, *seg));
    }
    let placed = merge_narrow(placed, end / f64::from(SIZE.0));
    let outlines = placed.len() <= MAX_OUTLINED_SEGMENTS;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, strip) = with_key_strip(&root);
    let workers = lanes.len().max(1);
    let caption = format!("{}: trials on {}", results.name, super::count(workers, "worker"));
    let mut chart = chart(&top, caption, 0.0..end, 0.0..workers as f64)?;
    axes(&mut chart, time_label(results), "worker")
        .y_labels(2 * workers + 1)
        .y_label_formatter(&|y| if (y.fract() - 0.5).abs() < 1e-9 { format!("{}", *y as usize) } else { String::new() })
        .disable_y_mesh()
        .draw()
        .map_err(plot_error)?;
    let kinds = ["completed", "stopped", "paused", "failed", "running"];
    let mut key = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let color = palette(k);
        let series: Vec<_> = placed
            .iter()
            .filter(|(_, s)| s.3 == *kind)
            .flat_map(|(lane, s)| {
                let corners = [(s.0, *lane as f64 + 0.1), (s.1, *lane as f64 + 0.9)];
                // A white outline keeps back-to-back trials apart (while they are few).
                let outline = outlines.then(|| Rectangle::new(corners, WHITE.stroke_width(1)));
                std::iter::once(Rectangle::new(corners, color.mix(0.8).filled())).chain(outline)
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        chart.draw_series(series).map_err(plot_error)?;
        key.push(((*kind).to_owned(), color.mix(0.8), true));
    }
    key_strip(&strip, &key)?;
    root.present().map_err(plot_error)?;
    Ok(path.to_owned())
}

/// The trials over several objectives, one panel per pair of objectives: the feasible ones
/// as dots, the Pareto front larger (with two objectives, joined by the step line of the
/// region it dominates), the infeasible ones as crosses.
fn front(results: &ExperimentResults, pareto: &hpo_core::Pareto, path: &Path) -> anyhow::Result<PathBuf> {
    let objectives = &pareto.objectives;
    let on_front: Vec<&hpo_core::ParetoPoint> = pareto.fronts.first().map(|f| f.iter().collect()).unwrap_or_default();
    let feasible: Vec<&hpo_core::ParetoPoint> = pareto.fronts.iter().skip(1).flatten().collect();
    let everyone: Vec<&hpo_core::ParetoPoint> =
        on_front.iter().chain(&feasible).copied().chain(&pareto.infeasible).collect();
    let pairs: Vec<(usize, usize)> =
        (0..objectives.len()).flat_map(|a| (a + 1..objectives.len()).map(move |b| (a, b))).collect();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, strip) = with_key_strip(&root);
    let columns = pairs.len().min(3);
    let panels = top.split_evenly((pairs.len().div_ceil(columns), columns));
    for (panel, &(a, b)) in panels.iter().zip(&pairs) {
        // Objectives often span decades (a model's size): log axes then, as for values.
        let xs = YScale::of(everyone.iter().map(|p| p.values[a]));
        let ys = YScale::of(everyone.iter().map(|p| p.values[b]));
        let at = |p: &hpo_core::ParetoPoint| (xs.map(p.values[a]), ys.map(p.values[b]));
        let (x0, x1) = range(everyone.iter().map(|p| at(p).0));
        let (y0, y1) = range(everyone.iter().map(|p| at(p).1));
        let caption = if pairs.len() == 1 { format!("{}: Pareto front", results.name) } else { String::new() };
        let mut chart = chart(panel, caption, x0..x1, y0..y1)?;
        let (x_label, y_label) = (|x: &f64| xs.label(*x), |y: &f64| ys.label(*y));
        axes(&mut chart, &xs.describe(&objectives[a].metric), &ys.describe(&objectives[b].metric))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .draw()
            .map_err(plot_error)?;
        let dot = |p: &&hpo_core::ParetoPoint, size: i32, color: RGBAColor| Circle::new(at(p), size, color.filled());
        chart.draw_series(feasible.iter().map(|p| dot(p, 3, palette(7).mix(0.5)))).map_err(plot_error)?;
        chart
            .draw_series(pareto.infeasible.iter().map(|p| Cross::new(at(p), 4, palette(3).mix(0.6).stroke_width(1))))
            .map_err(plot_error)?;
        if pairs.len() == 1 {
            // The staircase the front dominates: sorted by the first objective, each member
            // holds the second until the next member improves it.
            let mut steps: Vec<(f64, f64)> = Vec::new();
            for p in &on_front {
                let (x, y) = at(p);
                if let Some(&(_, previous)) = steps.last() {
                    steps.push((x, previous));
                }
                steps.push((x, y));
            }
            chart.draw_series(LineSeries::new(steps, palette(0).stroke_width(2))).map_err(plot_error)?;
        }
        chart.draw_series(on_front.iter().map(|p| dot(p, 5, palette(0).mix(1.0)))).map_err(plot_error)?;
    }
    let key = [
        (format!("Pareto front ({})", on_front.len()), palette(0).mix(1.0), true),
        (format!("other feasible trials ({})", feasible.len()), palette(7).mix(0.5), true),
        (format!("infeasible ({})", pareto.infeasible.len()), palette(3).mix(0.6), true),
    ];
    key_strip(&strip, &key)?;
    root.present().map_err(plot_error)?;
    Ok(path.to_owned())
}

/// Times at which the hypervolume is computed at most.
const HYPERVOLUME_TIMES: usize = 200;

/// The hypervolume of every feasible report so far against time (a trial stopped early
/// counts by what it reached, so the curve never falls; `hpo bench run` measures the same),
/// up to the reference point inferred from the reports that were on the front when made
/// (per objective, the worst value plus a tenth of the range).
fn hypervolume(results: &ExperimentResults, pareto: &hpo_core::Pareto, path: &Path) -> anyhow::Result<PathBuf> {
    let constraints = results.constraints();
    // The feasible reports no earlier one dominated, with their times.
    let mut front = Front::default();
    let (mut times, mut all): (Vec<f64>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    for row in &results.rows {
        let minimized: Option<Vec<f64>> = pareto.objectives.iter().map(|o| o.of(&row.metrics).ok()).collect();
        let feasible = constraints.iter().all(|c| c.violation(&row.metrics) == 0.0);
        if let Some(point) = minimized.filter(|_| feasible)
            && front.offer(&point)
        {
            times.push(row.time);
            all.push(point);
        }
    }
    let reference = reference_point(&all);
    let end = results.end.as_ref().map_or_else(|| results.rows.last().map_or(1.0, |r| r.time), |e| e.0).max(1e-9);
    let points: Vec<(f64, f64)> = (0..=HYPERVOLUME_TIMES)
        .map(|k| {
            let t = end * k as f64 / HYPERVOLUME_TIMES as f64;
            let so_far = times.partition_point(|time| *time <= t);
            (t, hpo_core::pareto::hypervolume(&all[..so_far], &reference))
        })
        .collect();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (lo, hi) = range(points.iter().map(|p| p.1));
    let names: Vec<&str> = pareto.objectives.iter().map(|o| o.metric.as_str()).collect();
    let caption = format!("{}: hypervolume of {}", results.name, names.join(", "));
    let mut chart = chart(&root, caption, 0.0..end, lo.min(0.0)..hi)?;
    axes(&mut chart, time_label(results), "hypervolume").draw().map_err(plot_error)?;
    chart.draw_series(LineSeries::new(points, palette(0).stroke_width(2))).map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(path.to_owned())
}

/// (time, lower quartile, median, upper quartile) of the best value.
type BandPoint = (f64, f64, f64, f64);

/// Median and quartile band of the best value per method against simulated time.
pub fn bench_plot(args: BenchPlotArgs) -> anyhow::Result<ExitCode> {
    let path = args.dir.join("runs.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (made by `hpo bench run`)", path.display()))?;
    let runs: Vec<RunResult> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1)))
        .collect::<anyhow::Result<_>>()?;
    let mut methods: Vec<&str> = Vec::new();
    for r in &runs {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let end = runs.iter().map(|r| r.end_time).fold(1e-9, f64::max);
    let times: Vec<f64> = (1..=200).map(|i| end * f64::from(i) / 200.0).collect();
    let bands: Vec<(&str, Vec<BandPoint>)> = methods
        .iter()
        .map(|m| {
            let group: Vec<&RunResult> = runs.iter().filter(|r| r.method == *m).collect();
            let band = times
                .iter()
                .filter_map(|&t| {
                    let mut v: Vec<f64> = group.iter().filter_map(|r| best_at(&r.trajectory, t)).collect();
                    (v.len() * 2 >= group.len()).then_some(())?;
                    quartiles(&mut v).map(|(a, b, c)| (t, a, b, c))
                })
                .collect();
            (*m, band)
        })
        .collect();
    // What was compared, from the summary `bench run` wrote beside the runs.
    let summary: serde_json::Value = std::fs::read_to_string(args.dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let metric = summary["metric"].as_str().unwrap_or("best value");
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut caption = format!("{}: best {metric} so far", summary["blackbox"].as_str().unwrap_or("benchmark"));
    caption.push_str(&format!(", median and quartiles over {}", super::count(seeds.len(), "seed")));
    if let Some(workers) = summary["workers"].as_u64() {
        caption.push_str(&format!(", {}", super::count(workers as usize, "worker")));
    }
    let scale = YScale::of(bands.iter().flat_map(|(_, b)| b.iter().flat_map(|p| [p.1, p.3])));
    let (lo, hi) = range(bands.iter().flat_map(|(_, b)| b.iter().flat_map(|p| [scale.map(p.1), scale.map(p.3)])));
    let out = args.dir.join("comparison.svg");
    let root = SVGBackend::new(&out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, strip) = with_key_strip(&root);
    let mut chart = chart(&top, caption, 0.0..end, lo..hi)?;
    let y_label = |y: &f64| scale.label(*y);
    axes(&mut chart, "simulated time (s)", &scale.describe(&format!("best {metric}")))
        .y_label_formatter(&y_label)
        .draw()
        .map_err(plot_error)?;
    let mut key = Vec::new();
    for (i, (method, band)) in bands.iter().enumerate() {
        let color = palette(i);
        let mut polygon: Vec<(f64, f64)> = band.iter().map(|p| (p.0, scale.map(p.3))).collect();
        polygon.extend(band.iter().rev().map(|p| (p.0, scale.map(p.1))));
        chart.draw_series(std::iter::once(Polygon::new(polygon, color.mix(0.2).filled()))).map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(band.iter().map(|p| (p.0, scale.map(p.2))), color.stroke_width(2)))
            .map_err(plot_error)?;
        key.push(((*method).to_owned(), color.to_rgba(), false));
    }
    key_strip(&strip, &key)?;
    root.present().map_err(plot_error)?;
    outln!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
