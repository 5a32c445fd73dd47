//! Shared bits of the `make bench` helpers.

/// Percentile (per mille) of sorted samples.
pub fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted[rank - 1]
}

/// `{"p50":..,"p99":..,"mean":..,"min":..,"n":..}` of unsorted samples.
pub fn summary(mut samples: Vec<u64>) -> serde_json::Value {
    samples.sort_unstable();
    let n = samples.len() as u64;
    let mean = samples.iter().sum::<u64>().checked_div(n).unwrap_or(0);
    serde_json::json!({
        "p50": percentile(&samples, 500),
        "p99": percentile(&samples, 990),
        "mean": mean,
        "min": samples.first().copied().unwrap_or(0),
        "n": n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 500), 50);
        assert_eq!(percentile(&v, 990), 99);
        assert_eq!(percentile(&[], 500), 0);
        assert_eq!(summary(vec![3, 1, 2])["p50"], 2);
    }
}
