//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network).

use std::fmt::Write as _;

use crate::report::Report;

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_BOTTOM: f64 = 34.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round axis maximum at or above `value`.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A line chart of `series` (name, colour, values) over `xs` (seconds).
fn line_chart(title: &str, y_label: &str, xs: &[f64], series: &[(&str, &str, Vec<f64>)]) -> String {
    let mut svg = String::new();
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x_max = xs.iter().copied().fold(0.0, f64::max).max(1.0);
    let y_max = nice_max(series.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0, f64::max));
    let x = |v: f64| MARGIN_LEFT + v / x_max * plot_w;
    let y = |v: f64| MARGIN_TOP + plot_h - v / y_max * plot_h;
    let _ = write!(
        svg,
        r#"<h3>{}</h3><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            MARGIN_LEFT + plot_w,
            y(v),
            y(v),
            MARGIN_LEFT - 6.0,
            y(v) + 4.0,
            format_number(v)
        );
    }
    for i in 0..=5 {
        let v = x_max * f64::from(i) / 5.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text>"#,
            x(v),
            HEIGHT - 12.0,
            format_time(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle" class="axis">{}</text>"#,
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        esc(y_label)
    );
    for (i, (name, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = xs.iter().zip(values).map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        let _ =
            write!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, points.join(" "));
        let ly = MARGIN_TOP + 14.0 + 18.0 * i as f64;
        let lx = WIDTH - MARGIN_RIGHT + 12.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            ly - 10.0,
            lx + 18.0,
            ly,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per (label, value).
fn bar_chart(title: &str, items: &[(String, f64)], colour: &str, unit: &str) -> String {
    let mut svg = String::new();
    let _ = write!(svg, "<h3>{}</h3>", esc(title));
    if items.is_empty() {
        svg.push_str("<p class=\"empty\">none</p>");
        return svg;
    }
    let row = 22.0;
    let label_w = 220.0;
    let height = row * items.len() as f64 + 10.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let plot_w = WIDTH - label_w - 110.0;
    let _ = write!(svg, r#"<svg viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="{}">"#, esc(title));
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (value / max * plot_w).max(1.0);
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="legend">{}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" class="legend">{}{unit}</text>"#,
            label_w - 8.0,
            y + 14.0,
            esc(label),
            row - 6.0,
            label_w + w + 6.0,
            y + 14.0,
            format_number(*value)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_number(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn format_time(seconds: f64) -> String {
    if seconds >= 120.0 { format!("{:.0}m", seconds / 60.0) } else { format!("{seconds:.0}s") }
}

fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut html = String::from("<table><tr>");
    for h in headers {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", esc(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

pub fn render(r: &Report) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bosun sim: {name}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#222}}
h1{{font-size:22px}} h2{{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}} h3{{font-size:15px;margin:18px 0 4px}}
.pass{{color:#1a7f37}} .fail{{color:#cf222e}} svg{{width:100%;height:auto}} .axis{{font-size:11px;fill:#555}} .legend{{font-size:12px;fill:#222}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}} .empty{{color:#777}}
</style></head><body><h1>{name}</h1><p>{description}</p>"#,
        name = esc(&r.name),
        description = esc(&r.description)
    );
    let verdict =
        if r.passed { "<b class=\"pass\">PASSED</b>".to_owned() } else { "<b class=\"fail\">FAILED</b>".to_owned() };
    let _ = write!(
        html,
        "<p>{verdict} &middot; {:.0} s simulated in {:.1} s wall &middot; {} time &middot; {} store &middot; seed {}</p>",
        r.simulated_s,
        r.wall_s,
        esc(&r.pace),
        esc(&r.store),
        r.seed
    );
    if let Some(failure) = &r.failure {
        let _ = write!(html, "<p class=\"fail\">{}</p>", esc(failure));
    }
    let s = &r.summary;
    html.push_str("<h2>Summary</h2>");
    html.push_str(&table(
        &[
            "nodes started",
            "peak nodes",
            "healthy min / avg / peak",
            "peak unhealthy",
            "failures (cascading)",
            "recoveries",
            "outages",
            "replacements",
        ],
        [vec![
            s.nodes_started.to_string(),
            s.peak_nodes.to_string(),
            format!("{} / {:.0} / {}", s.min_healthy, s.avg_healthy, s.peak_healthy),
            s.peak_unhealthy.to_string(),
            format!("{} ({})", s.failures_injected, s.cascading_failures),
            s.recoveries.to_string(),
            s.outages.to_string(),
            s.replacements.to_string(),
        ]],
    ));

    html.push_str("<h2>Fleet health over time</h2>");
    let xs: Vec<f64> = r.timeline.iter().map(|p| p.t_s).collect();
    let by_health =
        |name: &str| r.timeline.iter().map(|p| p.by_health.get(name).copied().unwrap_or(0) as f64).collect();
    let by_status =
        |name: &str| r.timeline.iter().map(|p| p.by_status.get(name).copied().unwrap_or(0) as f64).collect();
    html.push_str(&line_chart(
        "Nodes by health (as the control plane reports them)",
        "nodes",
        &xs,
        &[
            ("nodes", "#888888", r.timeline.iter().map(|p| p.nodes as f64).collect()),
            ("healthy", "#2da44e", by_health("HEALTHY")),
            ("degraded", "#d4a72c", by_health("DEGRADED")),
            ("unhealthy", "#cf222e", by_health("UNHEALTHY")),
        ],
    ));
    html.push_str(&line_chart(
        "Nodes by status",
        "nodes",
        &xs,
        &[
            ("active", "#2da44e", by_status("ACTIVE")),
            ("unhealthy", "#cf222e", by_status("UNHEALTHY")),
            ("cordoned", "#8250df", by_status("CORDONED")),
            ("draining", "#0969da", by_status("DRAINING")),
            ("terminating", "#6e7781", by_status("TERMINATING")),
        ],
    ));
    html.push_str(&line_chart(
        "Failures injected and recovered (cumulative)",
        "count",
        &xs,
        &[
            ("failures", "#cf222e", r.timeline.iter().map(|p| p.failures_injected as f64).collect()),
            ("recoveries", "#2da44e", r.timeline.iter().map(|p| p.recoveries as f64).collect()),
        ],
    ));

    html.push_str("<h2>Failures</h2>");
    let types: Vec<(String, f64)> = r.failures.by_type.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    html.push_str(&bar_chart("Failures by type", &types, "#cf222e", ""));
    let xids: Vec<(String, f64)> = r
        .failures
        .by_xid
        .iter()
        .map(|x| (format!("XID {} {}{}", x.code, x.name, if x.fatal { " (hardware)" } else { "" }), x.count as f64))
        .collect();
    html.push_str(&bar_chart("Failures by XID", &xids, "#bc4c00", ""));

    html.push_str("<h2>Remediation</h2>");
    let rem = &r.remediation;
    let seconds = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} s"));
    let steps: Vec<String> = rem.steps.iter().map(|(step, n)| format!("{step}: {n}")).collect();
    html.push_str(&table(
        &["measure", "value"],
        [
            vec!["wrong replacements (application-class XIDs only)".to_owned(), rem.wrong_replacements.to_string()],
            vec!["remediation steps".to_owned(), if steps.is_empty() { "-".to_owned() } else { steps.join(", ") }],
            vec!["replace-class XIDs in pool machines".to_owned(), rem.replace_class_failures.to_string()],
            vec!["followed by a replacement serving".to_owned(), rem.replacements_measured.to_string()],
            vec!["time to replacement p50".to_owned(), seconds(rem.time_to_replacement_p50_s)],
            vec!["time to replacement max".to_owned(), seconds(rem.time_to_replacement_max_s)],
        ],
    ));
    if !rem.pools.is_empty() {
        html.push_str(&table(
            &["pool", "min_nodes", "longest below min (usable)", "in all", "boot"],
            rem.pools.iter().map(|(pool, c)| {
                vec![
                    pool.clone(),
                    c.min_nodes.to_string(),
                    format!("{:.0} s", c.longest_below_min_s),
                    format!("{:.0} s", c.total_below_min_s),
                    format!("{:.0} s", c.boot_s),
                ]
            }),
        ));
    }

    html.push_str("<h2>Policy rule hits (control plane counters)</h2>");
    let hits: Vec<(String, f64)> =
        r.policy_rule_hits.iter().map(|h| (format!("{} \u{2192} {}", h.rule, h.result), h.count as f64)).collect();
    html.push_str(&bar_chart("Health events by matched rule", &hits, "#8250df", ""));

    html.push_str("<h2>Scaling and replacement decisions</h2>");
    if r.pools.is_empty() {
        html.push_str("<p class=\"empty\">no pools in this scenario</p>");
    }
    for (pool, decisions) in &r.pools {
        let xs: Vec<f64> = decisions.iter().map(|d| d.t_s).collect();
        html.push_str(&line_chart(
            &format!("Pool {pool}: size and target"),
            "nodes",
            &xs,
            &[
                ("current", "#0969da", decisions.iter().map(|d| f64::from(d.current)).collect()),
                ("target", "#bc4c00", decisions.iter().map(|d| f64::from(d.target)).collect()),
            ],
        ));
        html.push_str(&table(
            &["at", "current", "target", "reason"],
            decisions
                .iter()
                .map(|d| vec![format_time(d.t_s), d.current.to_string(), d.target.to_string(), d.reason.clone()]),
        ));
    }

    html.push_str("<h2>RPC latency (agents' calls, wall clock)</h2>");
    let timed: Vec<_> = r.rpc.iter().filter(|m| m.method != "PollCommands").collect();
    for (label, pick, colour) in [
        ("p50", (|m: &crate::report::RpcMethod| m.p50_ms) as fn(&crate::report::RpcMethod) -> f64, "#2da44e"),
        ("p99", |m| m.p99_ms, "#bc4c00"),
    ] {
        let items: Vec<(String, f64)> = timed.iter().map(|m| (m.method.clone(), pick(m))).collect();
        html.push_str(&bar_chart(&format!("{label} latency by method"), &items, colour, " ms"));
    }
    html.push_str(&table(
        &["method", "calls", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        r.rpc.iter().map(|m| {
            vec![
                m.method.clone(),
                m.calls.to_string(),
                m.errors.to_string(),
                format!("{:.2}", m.p50_ms),
                format!("{:.2}", m.p90_ms),
                format!("{:.2}", m.p99_ms),
                format!("{:.2}", m.max_ms),
            ]
        }),
    ));

    html.push_str("<h2>Events</h2>");
    html.push_str(&table(
        &["at", "action", "target", "result"],
        r.events.iter().map(|e| {
            vec![
                format!("{:.1}s", e.at_s),
                e.action.to_string(),
                e.target.clone(),
                format!("{} {}", if e.ok { "ok" } else { "FAILED" }, e.detail),
            ]
        }),
    ));
    html.push_str("<h2>Assertions</h2>");
    html.push_str(&table(
        &["type", "target", "expected", "actual", "result"],
        r.assertions.iter().map(|a| {
            vec![
                a.kind.to_string(),
                a.target.clone(),
                a.expected.clone(),
                a.actual.clone(),
                if a.passed { "passed".into() } else { "FAILED".into() },
            ]
        }),
    ));
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1001.0), 2000.0);
        assert_eq!(nice_max(240.0), 250.0);
    }

    #[test]
    fn text_is_escaped() {
        let chart = bar_chart("<x>", &[("a&b".into(), 1.0)], "#000", "");
        assert!(chart.contains("&lt;x&gt;") && chart.contains("a&amp;b"));
    }
}
