//! The one percentile bosun reports: nearest rank, so "p99" means the same in `/metrics`,
//! the load generator and the simulator's reports.

/// The `q` quantile (0.0 to 1.0) of `sorted` (ascending) by nearest rank: the smallest
/// value with at least `q` of the values at or below it. `None` when empty. `q` is
/// clamped, so 0.0 gives the minimum and 1.0 the maximum.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    // Ranks are small enough for f64 to hold exactly.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), Some(50));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&values, 1.0), Some(100));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.5), Some(7));
        assert_eq!(percentile(&[1, 2], 0.5), Some(1), "the lower middle: half the values are at or below it");
        assert_eq!(percentile::<u32>(&[], 0.5), None);
        assert_eq!(percentile(&values, f64::NAN), Some(1));
    }
}
