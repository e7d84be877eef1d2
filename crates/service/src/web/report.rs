//! `replay --html`: one self-contained HTML file with the live page's charts
//! over every window of every capture, the events, and the report's tables
//! (metrics against the baselines, per capture, calibration, band). The page's
//! script, style and uPlot are inlined and the data is embedded as JSON, so it
//! opens from a file with no network and no server.

use crate::live::{Live, stream_id};
use crate::sinks::report::ReplayReport;
use std::path::{Path, PathBuf};

/// The report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the HTML report {path}: {detail}")]
pub struct HtmlError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

/// JSON that is safe inside a `<script>` element: no `</` can close it early.
fn script_json(v: &serde_json::Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--")
}

/// The page with its assets inlined and `data` as `window.NF_STATIC`.
pub fn html(data: &serde_json::Value) -> String {
    use super::api::asset;
    let page = asset("/");
    let style = |name: &str| format!("<style>\n{}\n</style>", asset(name));
    let script = |name: &str| {
        format!(
            "<script>\n{}\n</script>",
            asset(name).replace("</script", "<\\/script")
        )
    };
    let licence = format!(
        "<footer class=\"muted\"><details><summary>uPlot © Leon Sorokin, MIT licence</summary><pre>{}</pre></details></footer>",
        asset("/vendor/uPlot.LICENSE")
            .replace('&', "&amp;")
            .replace('<', "&lt;")
    );
    // The model form needs the daemon: not in a file.
    let page = match (
        page.find("<section id=\"predict-box\">"),
        page.find("<footer"),
    ) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &page[..a], &page[b..]),
        _ => page.to_owned(),
    };
    page.replace(
        r#"<link rel="stylesheet" href="vendor/uPlot.min.css">"#,
        &style("/vendor/uPlot.min.css"),
    )
    .replace(r#"<link rel="stylesheet" href="app.css">"#, &style("/app.css"))
    .replace(
        r#"<script src="vendor/uPlot.iife.min.js"></script>"#,
        &script("/vendor/uPlot.iife.min.js"),
    )
    .replace(
        r#"<script src="app.js"></script>"#,
        &format!(
            "<script>window.NF_STATIC = {};</script>\n{}",
            script_json(data),
            script("/app.js")
        ),
    )
    .replace(
        r#"<footer class="muted">uPlot © Leon Sorokin, MIT (<a href="vendor/uPlot.LICENSE">licence</a>)</footer>"#,
        &licence,
    )
}

/// The report's data: every stream's windows and events, the report.
pub fn data(live: &Live, report: &ReplayReport) -> serde_json::Value {
    let (records, _) = live.events(0, usize::MAX);
    let streams: Vec<serde_json::Value> = live
        .streams()
        .into_iter()
        .map(|s| {
            let events: Vec<_> = records
                .iter()
                .filter(|r| stream_id(&r.event.stream) == s.id)
                .collect();
            serde_json::json!({
                "id": s.id,
                "name": s.name,
                "columns": live.windows(&s.id, 0, usize::MAX),
                "windows_not_shown": live.dropped(&s.id),
                "events": events,
                "summary": s,
            })
        })
        .collect();
    serde_json::json!({
        "title": format!("netforecast report: {}", report.captures.join(", ")),
        "model": report.model_version,
        "streams": streams,
        "report": report,
    })
}

/// Write the report to `path`.
pub fn write(path: &Path, live: &Live, report: &ReplayReport) -> Result<(), HtmlError> {
    let text = html(&data(live, report));
    std::fs::write(path, text).map_err(|e| HtmlError {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}
