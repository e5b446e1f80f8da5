//! The predictive autoscaler: scale before utilization crosses the threshold.

use super::{Autoscaler, Decision, PoolSample, ScaleInput, fallback_or_hold, percent};

pub(super) struct Settings {
    pub lookback_window: usize,
    pub growth_factor: f64,
    pub scale_up_at: f64,
}

/// A least-squares line through utilization over time.
struct Trend {
    /// The fitted utilization at the newest sample.
    latest: f64,
    /// Fitted change per evaluation: slope times the mean spacing of the samples.
    per_step: f64,
}

/// Fits a line through `samples` (sorted by time), or `None` when the samples share one
/// instant and have no time axis to fit along.
fn fit(samples: &[PoolSample]) -> Option<Trend> {
    let (first, last) = (samples.first()?, samples.last()?);
    // Seconds since the first sample keep the sums small whatever the epoch.
    let seconds = |s: &PoolSample| (s.at.unix_micros() - first.at.unix_micros()) as f64 / 1e6;
    let n = samples.len() as f64;
    let mean_x = samples.iter().map(seconds).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.utilization).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for s in samples {
        let dx = seconds(s) - mean_x;
        sxy += dx * (s.utilization - mean_y);
        sxx += dx * dx;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let step = seconds(last) / (n - 1.0);
    Some(Trend { latest: mean_y + slope * (seconds(last) - mean_x), per_step: slope * step })
}

pub(super) fn decide(settings: Settings, fallback: Option<&Autoscaler>, input: &ScaleInput<'_>) -> Decision {
    let Settings { lookback_window, growth_factor, scale_up_at } = settings;
    let current = input.current;
    // Sorted here, whatever the caller promised: a trend over samples in arrival order is
    // noise (Navarch concatenated per-node histories). NaN samples carry no information.
    let mut samples: Vec<PoolSample> = input.history.iter().filter(|s| s.utilization.is_finite()).copied().collect();
    samples.sort_by_key(|s| s.at);
    let recent = &samples[samples.len().saturating_sub(lookback_window)..];
    if recent.len() < 2 {
        let why = format!("{} usable samples in the lookback window, a trend needs 2", recent.len());
        return fallback_or_hold(fallback, input, why);
    }
    let Some(trend) = fit(recent) else {
        return fallback_or_hold(fallback, input, "all samples share one timestamp, no trend");
    };
    // The growth factor exaggerates the trend, not the level: applied to the level, a pool
    // flat at 70 % would be predicted at 84 % and grow forever.
    let predicted = trend.latest + growth_factor * trend.per_step;
    let seen = format!(
        "trend {:+.2} points per sample over {} samples, predicted {}",
        trend.per_step,
        recent.len(),
        percent(predicted)
    );
    // Also false for NaN (a NaN growth factor or threshold), which then falls back.
    if !(predicted > scale_up_at && scale_up_at > 0.0 && predicted.is_finite()) {
        let why = format!("{seen} is not above scale_up_at {}", percent(scale_up_at));
        return fallback_or_hold(fallback, input, why);
    }
    // Enough nodes to spread the predicted load back down to the threshold. The float is
    // finite and positive here; `as` saturates at u32::MAX.
    let target = (f64::from(current) * predicted / scale_up_at).ceil() as u32;
    Decision::new(target, format!("{seen} > scale_up_at {}: {current} -> {target}", percent(scale_up_at)))
}
