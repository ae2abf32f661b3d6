//! A mergeable sketch of durations for the dashboard's percentiles: log-spaced bins with a
//! relative accuracy of 1 % (the DDSketch construction), exact counts per bin.
//!
//! Both backends keep the same bins (computed here, never in SQL), so the same traces give the
//! same figures on either. Counts may go negative while a delta is built (a trace's old
//! contribution retracted); a stored sketch only holds positive counts.

use std::collections::BTreeMap;

/// The relative error of a percentile read from a sketch: the value reported lies within 1 %
/// of the exact nearest-rank value.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Durations at or below this many milliseconds (1 µs) share bin 0 and read as 0.
const MIN_MS: f64 = 1e-3;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bin of a duration in milliseconds: 0 up to 1 µs (and for NaN or negatives), else `k` for
/// durations in `(MIN·γ^(k-1), MIN·γ^k]`.
pub fn bin_of(duration_ms: f64) -> u16 {
    if duration_ms.is_nan() || duration_ms <= MIN_MS {
        return 0;
    }
    let key = ((duration_ms / MIN_MS).ln() / gamma().ln()).ceil();
    key.clamp(1.0, f64::from(u16::MAX)) as u16
}

/// The value a bin stands for: the point whose relative distance to both ends of the bin is
/// at most [`RELATIVE_ACCURACY`], rounded to a nanosecond.
pub fn value_of(bin: u16) -> f64 {
    if bin == 0 {
        return 0.0;
    }
    let gamma = gamma();
    let value = MIN_MS * 2.0 * gamma.powi(i32::from(bin)) / (gamma + 1.0);
    (value * 1e6).round() / 1e6
}

/// Counts of durations per bin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurationSketch {
    bins: BTreeMap<u16, i64>,
}

/// A stored sketch could not be read.
#[derive(Debug, thiserror::Error)]
#[error("damaged duration sketch")]
pub struct DamagedSketch;

impl DurationSketch {
    /// Adds `count` durations of `duration_ms` (a negative count takes them away).
    pub fn add(&mut self, duration_ms: f64, count: i64) {
        self.add_bin(bin_of(duration_ms), count);
    }

    /// Adds `count` to a bin; a bin whose count reaches 0 is dropped.
    pub fn add_bin(&mut self, bin: u16, count: i64) {
        if count == 0 {
            return;
        }
        let entry = self.bins.entry(bin).or_insert(0);
        *entry += count;
        if *entry == 0 {
            self.bins.remove(&bin);
        }
    }

    /// Adds every bin of `other`.
    pub fn merge(&mut self, other: &DurationSketch) {
        for (&bin, &count) in &other.bins {
            self.add_bin(bin, count);
        }
    }

    /// The bins and their counts, in ascending order of bin.
    pub fn bins(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.bins.iter().map(|(&bin, &count)| (bin, count))
    }

    /// Whether no bin holds a count.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The number of durations counted (bins with negative counts subtract).
    pub fn count(&self) -> i64 {
        self.bins.values().sum()
    }

    /// The nearest-rank percentile (`level` in 0..=1): the value of the bin holding rank
    /// `floor(level · n)` of the sorted durations, as ClickHouse's `quantileExact` ranks them.
    /// `None` when the sketch counts nothing. Bins with counts at or below 0 are skipped.
    pub fn quantile(&self, level: f64) -> Option<f64> {
        let total: i64 = self.bins.values().filter(|count| **count > 0).sum();
        if total <= 0 {
            return None;
        }
        let rank = ((level * total as f64) as i64).min(total - 1);
        let mut seen = 0;
        for (&bin, &count) in &self.bins {
            if count <= 0 {
                continue;
            }
            seen += count;
            if seen > rank {
                return Some(value_of(bin));
            }
        }
        None
    }

    /// The sketch as bytes: per bin, the varint distance from the previous bin and the
    /// zig-zag varint count.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bins.len() * 3);
        let mut previous = 0u64;
        for (&bin, &count) in &self.bins {
            prost::encoding::encode_varint(u64::from(bin) - previous, &mut out);
            prost::encoding::encode_varint(((count << 1) ^ (count >> 63)) as u64, &mut out);
            previous = u64::from(bin);
        }
        out
    }

    /// Reads what [`DurationSketch::encode`] wrote.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, DamagedSketch> {
        let mut sketch = Self::default();
        let mut bin = 0u64;
        while !bytes.is_empty() {
            bin += prost::encoding::decode_varint(&mut bytes).map_err(|_| DamagedSketch)?;
            let zigzag = prost::encoding::decode_varint(&mut bytes).map_err(|_| DamagedSketch)?;
            let count = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            let bin = u16::try_from(bin).map_err(|_| DamagedSketch)?;
            sketch.add_bin(bin, count);
        }
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bins_keep_one_percent() {
        for value in [0.002, 0.5, 1.0, 7.3, 840.0, 2210.5, 86_400_000.0] {
            let read = value_of(bin_of(value));
            assert!(
                (read - value).abs() <= value * RELATIVE_ACCURACY + 1e-6,
                "{value} read as {read}"
            );
        }
        assert_eq!(value_of(bin_of(0.0)), 0.0);
        assert_eq!(bin_of(f64::NAN), 0);
        assert_eq!(bin_of(-3.0), 0);
    }

    #[test]
    fn quantiles_rank_like_quantile_exact() {
        let mut sketch = DurationSketch::default();
        assert_eq!(sketch.quantile(0.5), None);
        for value in [1.0, 2.0, 3.0, 4.0] {
            sketch.add(value, 1);
        }
        assert_eq!(sketch.quantile(0.5), Some(value_of(bin_of(3.0))));
        assert_eq!(sketch.quantile(0.95), Some(value_of(bin_of(4.0))));
        sketch.add(4.0, -1);
        assert_eq!(sketch.count(), 3);
        assert_eq!(sketch.quantile(0.95), Some(value_of(bin_of(3.0))));
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        #[test]
        fn encoding_round_trips(values in proptest::collection::vec((0.0f64..1e9, -3i64..4), 0..64)) {
            let mut sketch = DurationSketch::default();
            for (value, count) in values {
                sketch.add(value, count);
            }
            prop_assert_eq!(DurationSketch::decode(&sketch.encode()).unwrap(), sketch);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = DurationSketch::decode(&bytes);
        }

        #[test]
        fn percentiles_within_accuracy(mut values in proptest::collection::vec(0.01f64..1e7, 1..200), level in 0.0f64..1.0) {
            let mut sketch = DurationSketch::default();
            for value in &values {
                sketch.add(*value, 1);
            }
            values.sort_by(f64::total_cmp);
            let rank = ((level * values.len() as f64) as usize).min(values.len() - 1);
            let exact = values[rank];
            let read = sketch.quantile(level).unwrap();
            prop_assert!((read - exact).abs() <= exact * RELATIVE_ACCURACY + 1e-6, "{} vs {}", read, exact);
        }
    }
}
