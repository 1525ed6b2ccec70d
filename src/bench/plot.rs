//! The PNG plot of `cstore bench`: throughput against threads, one line per strategy × shard
//! count (colour = strategy, marker = shard count).
//!
//! Text needs a font. plotters' `ab_glyph` feature renders with a font handed to it as bytes
//! instead of looking up system fonts (its `ttf` feature needs fontconfig and installed
//! fonts), and the `dejavu` crate ships DejaVu Sans inside the binary: the plot works on a
//! fresh machine with no font package. The picture is rendered into memory and encoded by
//! the `png` crate, which avoids plotters' dependency on the much larger `image` crate.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::engine::Strategy;

use super::report::{Point, counted};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 750;
/// The legend's column on the right, and where its rows go.
const LEGEND_WIDTH: u32 = 230;
const LEGEND_TOP: i32 = 40;
const LEGEND_ROW_HEIGHT: i32 = 24;
/// More thread labels than this would overlap.
const MAX_X_LABELS: usize = 20;
/// The family plotters asks for when a style names none.
const FONT_FAMILY: &str = "sans-serif";

/// Draws the points as a PNG image into `out`.
pub fn write_png(points: &[Point], title: &str, out: impl Write) -> anyhow::Result<()> {
    write_png_with_x(points, title, "threads", out)
}

/// Like [`write_png`], with another name for the x axis (`Point::threads`): `cstore loadgen`
/// plots client connections there.
pub fn write_png_with_x(points: &[Point], title: &str, x_desc: &str, out: impl Write) -> anyhow::Result<()> {
    register_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, points, title, x_desc).map_err(|error| anyhow!("cannot draw the plot: {error}"))?;
        root.present().map_err(|error| anyhow!("cannot draw the plot: {error}"))?;
    }
    let mut encoder = png::Encoder::new(out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("cannot write the PNG header")?;
    writer.write_image_data(&pixels).context("cannot write the PNG image")?;
    writer.finish().context("cannot finish the PNG file")?;
    Ok(())
}

fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if registered { Ok(()) } else { Err(anyhow!("the embedded DejaVu Sans font cannot be read")) }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type PlotError<'a> = DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

fn draw<'a>(root: &Area<'a>, points: &[Point], title: &str, x_desc: &str) -> Result<(), PlotError<'a>> {
    root.fill(&WHITE)?;
    let root = root.margin(15, 0, 0, 0).titled(title, (FONT_FAMILY, 24))?;
    // The legend gets its own column on the right, where it cannot hide a line.
    let (plot_area, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let max_threads = points.iter().map(|p| p.threads).max().unwrap_or(1);
    let max_mops = points.iter().map(|p| p.throughput.mops_per_sec()).fold(0.0, f64::max);
    let x_max = u32::try_from(max_threads).unwrap_or(u32::MAX).saturating_add(1);
    let y_max = if max_mops > 0.0 { max_mops * 1.1 } else { 1.0 };

    let mut chart = ChartBuilder::on(&plot_area)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("Mops/s")
        .x_labels((x_max as usize + 1).min(MAX_X_LABELS))
        .axis_desc_style((FONT_FAMILY, 18))
        .label_style((FONT_FAMILY, 15))
        .draw()?;

    let shard_counts: Vec<u64> = points.iter().map(|p| p.shards).collect::<BTreeSet<_>>().into_iter().collect();
    let lines = lines_of(points);
    // Rows get closer together when there are too many to fit at the usual spacing.
    let rows = i32::try_from(lines.len()).unwrap_or(i32::MAX).max(1);
    let legend_height = i32::try_from(legend_area.dim_in_pixel().1).unwrap_or(i32::MAX);
    let row_height = LEGEND_ROW_HEIGHT.min((legend_height - LEGEND_TOP) / rows).max(1);
    for (row, Line { strategy, shards, points: line }) in (0..).zip(lines) {
        let color = strategy_color(strategy);
        let marker = shard_counts.iter().position(|&s| s == shards).unwrap_or(0);
        chart.draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?;
        chart.draw_series(line.iter().map(|&at| EmptyElement::at(at) + marker_shape(marker, color)))?;

        let y = LEGEND_TOP + row_height * row;
        legend_area.draw(
            &(EmptyElement::at((25, y))
                + PathElement::new([(-15, 0), (15, 0)], color.stroke_width(2))
                + marker_shape(marker, color)),
        )?;
        legend_area.draw(&Text::new(
            format!("{strategy}, {}", counted(shards, "shard")),
            (50, y - 8),
            (FONT_FAMILY, 15),
        ))?;
    }
    Ok(())
}

/// The (threads, Mops/s) points of one strategy × shard count.
struct Line {
    strategy: Strategy,
    shards: u64,
    points: Vec<(u32, f64)>,
}

/// One line per strategy × shard count, in measurement order, each sorted by threads.
fn lines_of(points: &[Point]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for point in points {
        let at = (u32::try_from(point.threads).unwrap_or(u32::MAX), point.throughput.mops_per_sec());
        match lines.iter_mut().find(|line| (line.strategy, line.shards) == (point.strategy, point.shards)) {
            Some(line) => line.points.push(at),
            None => lines.push(Line { strategy: point.strategy, shards: point.shards, points: vec![at] }),
        }
    }
    for line in &mut lines {
        line.points.sort_by_key(|&(threads, _)| threads);
    }
    lines
}

fn strategy_color(strategy: Strategy) -> RGBColor {
    match strategy {
        Strategy::Mutex => RGBColor(214, 39, 40),
        Strategy::RwLock => RGBColor(31, 119, 180),
        Strategy::LockFree => RGBColor(44, 160, 44),
        Strategy::CopyOnWrite => RGBColor(148, 103, 189),
    }
}

/// A marker drawn around the origin of its parent element: filled circle, triangle, cross
/// and hollow circle, repeating for more than four shard counts.
fn marker_shape<DB: DrawingBackend>(index: usize, color: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
    match index % 4 {
        0 => Circle::new((0, 0), 5, color.filled()).into_dyn(),
        1 => TriangleMarker::new((0, 0), 7, color.filled()).into_dyn(),
        2 => Cross::new((0, 0), 5, color.stroke_width(2)).into_dyn(),
        _ => Circle::new((0, 0), 5, color.stroke_width(2)).into_dyn(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::workload::Throughput;

    #[test]
    fn plot_is_a_png_of_the_expected_size() {
        let points: Vec<Point> =
            [(Strategy::Mutex, 1, 1, 1_000_000), (Strategy::Mutex, 1, 2, 1_500_000), (Strategy::LockFree, 16, 1, 0)]
                .into_iter()
                .map(|(strategy, shards, threads, ops)| Point {
                    strategy,
                    shards,
                    threads,
                    throughput: Throughput { ops, elapsed: Duration::from_secs(1) },
                })
                .collect();
        let mut png = Vec::new();
        write_png(&points, "test", &mut png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Width and height are the first fields of the IHDR chunk.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), WIDTH);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), HEIGHT);
    }

    #[test]
    fn plot_of_nothing_still_renders() {
        write_png(&[], "empty", std::io::sink()).unwrap();
    }
}
