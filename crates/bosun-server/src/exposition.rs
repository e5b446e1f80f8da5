//! `/metrics` in the format the scraper asks for, with series in a stable order.
//!
//! prometheus-client writes OpenMetrics, where a counter family `x` has samples `x_total`
//! and the text ends in `# EOF`. Prometheus negotiates OpenMetrics and reads that as is;
//! tools that read the classic text format (`promtool check metrics`, curl, older
//! scrapers) then see `x_total` without help or type. Without an OpenMetrics `Accept`
//! header the text is turned into the classic format: counter families are named with
//! their `_total`, and `# UNIT` and `# EOF` are dropped.
//!
//! Families keep their registration order; within a family, series are sorted by their
//! labels (a histogram's buckets stay together, in bucket order), so two scrapes list
//! the same series in the same order.

/// The content type of each format.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| accept.contains("application/openmetrics-text"))
}

/// The OpenMetrics `text` with each family's series sorted by labels.
pub(crate) fn sorted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            flush_sorted(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
        } else if !line.is_empty() {
            samples.push(line);
        }
    }
    flush_sorted(&mut samples, &mut out);
    out
}

/// OpenMetrics `text` (from [`sorted`]) in the classic Prometheus text format.
pub(crate) fn to_prometheus_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let counters: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes the collected samples of one family, grouped by series and sorted.
fn flush_sorted(samples: &mut Vec<&str>, out: &mut String) {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for line in samples.drain(..) {
        let key = series_key(line);
        match groups.last_mut() {
            Some((last, lines)) if *last == key => lines.push(line),
            _ => groups.push((key, vec![line])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, lines) in groups {
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A sample's labels without `le`, which tells a histogram's buckets apart: the samples
/// of one series share it.
fn series_key(line: &str) -> String {
    let Some(open) = line.find('{') else { return String::new() };
    let mut labels = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in line[open + 1..].chars() {
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => labels.push(std::mem::take(&mut current)),
            '}' if !quoted => break,
            _ => current.push(c),
        }
    }
    labels.push(current);
    labels.retain(|label| !label.starts_with("le=") && !label.is_empty());
    labels.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS_TEXT: &str = "\
# HELP bosun_nodes Nodes.
# TYPE bosun_nodes gauge
bosun_nodes{status=\"DRAINING\"} 0
bosun_nodes{status=\"ACTIVE\"} 3
# HELP bosun_heartbeats Heartbeats accepted.
# TYPE bosun_heartbeats counter
bosun_heartbeats_total 5
# HELP bosun_rpc_duration_seconds RPC latency.
# TYPE bosun_rpc_duration_seconds histogram
# UNIT bosun_rpc_duration_seconds seconds
bosun_rpc_duration_seconds_sum{method=\"Register\"} 0.5
bosun_rpc_duration_seconds_count{method=\"Register\"} 1
bosun_rpc_duration_seconds_bucket{le=\"0.1\",method=\"Register\"} 0
bosun_rpc_duration_seconds_bucket{le=\"+Inf\",method=\"Register\"} 1
bosun_rpc_duration_seconds_sum{method=\"Heartbeat\"} 0.1
bosun_rpc_duration_seconds_count{method=\"Heartbeat\"} 2
bosun_rpc_duration_seconds_bucket{le=\"0.1\",method=\"Heartbeat\"} 2
bosun_rpc_duration_seconds_bucket{le=\"+Inf\",method=\"Heartbeat\"} 2
# EOF
";

    #[test]
    fn series_are_sorted_within_families_and_histograms_stay_whole() {
        let text = sorted(OPENMETRICS_TEXT);
        let active = text.find("ACTIVE").expect("active");
        assert!(active < text.find("DRAINING").expect("draining"));
        let heartbeat = text.find("method=\"Heartbeat\"").expect("heartbeat");
        let register = text.find("method=\"Register\"").expect("register");
        assert!(heartbeat < register, "{text}");
        let heartbeat_block: Vec<&str> = text.lines().filter(|l| l.contains("method=\"Heartbeat\"")).collect();
        assert_eq!(heartbeat_block.len(), 4);
        assert!(heartbeat_block[0].contains("_sum") && heartbeat_block[3].contains("+Inf"), "bucket order kept");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(sorted(&text), text, "stable");
    }

    #[test]
    fn the_classic_format_names_counters_with_total_and_has_no_unit_or_eof() {
        let text = to_prometheus_text(&sorted(OPENMETRICS_TEXT));
        assert!(text.contains("# HELP bosun_heartbeats_total Heartbeats accepted.\n"), "{text}");
        assert!(text.contains("# TYPE bosun_heartbeats_total counter\n"), "{text}");
        assert!(text.contains("# TYPE bosun_nodes gauge\n"), "gauges keep their names");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    }

    #[test]
    fn negotiation() {
        assert!(wants_openmetrics(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
