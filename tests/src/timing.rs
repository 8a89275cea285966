//! Timing helpers of the benchmark harnesses: single-request edits, log timestamps, quantiles and a CDF plot.

use std::{path::Path, time::SystemTime};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use plotters::prelude::*;

use crate::{Broker, Cluster, cluster::CONFIGMAP};

/// Writes `broker.toml = toml` with one merge patch (one request, no read first); returns when the API server
/// has stored it.
pub async fn patch_config(cluster: &Cluster, toml: &str) {
    let api = Api::<ConfigMap>::namespaced(cluster.admin.clone(), &cluster.namespace);
    let body = serde_json::json!({ "data": { "broker.toml": toml } });
    api.patch(CONFIGMAP, &PatchParams::default(), &Patch::Merge(&body)).await.expect("patch ConfigMap");
}

/// When the broker logged "configuration applied" for `generation`, from its JSON log's timestamp.
#[must_use]
pub fn applied_at(broker: &Broker, generation: u64) -> Option<SystemTime> {
    broker.log_lines().into_iter().find_map(|line| {
        let applied = line["message"] == "configuration applied" && line["generation"].as_u64() == Some(generation);
        applied.then(|| line["timestamp"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok())).flatten()
    })
}

/// Every "configuration applied" time in the broker's log, in order.
#[must_use]
pub fn all_applied(broker: &Broker) -> Vec<SystemTime> {
    broker
        .log_lines()
        .into_iter()
        .filter(|line| line["message"] == "configuration applied")
        .filter_map(|line| line["timestamp"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()))
        .collect()
}

/// Milliseconds from `from` to `to` (negative if `to` is earlier).
#[must_use]
pub fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// The `q` quantile (nearest rank) of sorted `samples`.
#[must_use]
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * q).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// One labelled series of a CDF plot: milliseconds, sorted.
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// Sorted samples in ms.
    pub sorted_ms: &'a [f64],
}

/// Draws the empirical CDFs of `series` into a PNG at `path` (text in DejaVu Sans, read from the system fonts).
pub fn plot_cdf(path: &Path, title: &str, x_label: &str, series: &[Series<'_>]) -> Result<(), String> {
    let font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let font = std::fs::read(font_path).map_err(|e| format!("{font_path}: {e} (install fonts-dejavu-core)"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font).map_err(|_| "font does not load")?;
    let max = series.iter().flat_map(|s| s.sorted_ms.last().copied()).fold(1.0_f64, f64::max);
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max * 1.05, 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("fraction of edits")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, s) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let n = s.sorted_ms.len() as f64;
        let points = s.sorted_ms.iter().enumerate().map(|(k, v)| (*v, (k + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
