//! The statistical tests insights run, each answering a z score (the standard normal deviate of
//! the change, its sign the direction) and a two-sided p-value, plus the Holm correction.
//!
//! Every test is a large-sample normal approximation: insights test only segments with at least
//! a minimum of traces on each side (30 by default), where these are accurate.

use std::collections::BTreeMap;

/// What one test found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    /// The standard normal deviate; positive when the current side is higher.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

impl TestResult {
    fn of_z(z: f64) -> Self {
        let z = if z.is_finite() { z } else { 0.0 };
        Self {
            z,
            p_value: two_sided_p(z),
        }
    }

    /// A test that found nothing (no variance to test against).
    pub fn none() -> Self {
        Self {
            z: 0.0,
            p_value: 1.0,
        }
    }
}

/// The complementary error function, with a fractional error below 1.2e-7 everywhere
/// (Numerical Recipes' Chebyshev fit, `erfcc`).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let polynomial = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * polynomial.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// P(|Z| ≥ |z|) for a standard normal Z.
pub fn two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// Two proportions `x1 / n1` (baseline) and `x2 / n2` (current), pooled z test.
pub fn two_proportions(x1: u64, n1: u64, x2: u64, n2: u64) -> TestResult {
    if n1 == 0 || n2 == 0 {
        return TestResult::none();
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64);
    if variance <= 0.0 {
        return TestResult::none();
    }
    TestResult::of_z((p2 - p1) / variance.sqrt())
}

/// Cohen's h, the effect size of a change of proportion from `p1` to `p2`.
pub fn cohens_h(p1: f64, p2: f64) -> f64 {
    2.0 * p2.sqrt().asin() - 2.0 * p1.sqrt().asin()
}

/// Two event counts over exposures of different lengths (`a1` over `t1`: baseline; `a2` over
/// `t2`: current), as Poisson rates: conditioned on their sum, `a2` is binomial with
/// probability `t2 / (t1 + t2)` when the rates are equal.
pub fn poisson_rates(a1: u64, t1: f64, a2: u64, t2: f64) -> TestResult {
    let n = (a1 + a2) as f64;
    if n == 0.0 || t1 <= 0.0 || t2 <= 0.0 {
        return TestResult::none();
    }
    let p = t2 / (t1 + t2);
    let variance = n * p * (1.0 - p);
    TestResult::of_z((a2 as f64 - n * p) / variance.sqrt())
}

/// The Mann-Whitney U test of two samples given as counts per ordered bin (the log-scale bins
/// of `store::sketch`: values in one bin are ties), with the normal approximation and the tie
/// correction. Also answers the rank-biserial correlation, the effect size: +1 when every
/// current value is above every baseline value, 0 when neither side tends higher.
pub fn mann_whitney(
    baseline: &BTreeMap<u16, i64>,
    current: &BTreeMap<u16, i64>,
) -> (TestResult, f64) {
    let n1: f64 = baseline.values().filter(|c| **c > 0).sum::<i64>() as f64;
    let n2: f64 = current.values().filter(|c| **c > 0).sum::<i64>() as f64;
    if n1 == 0.0 || n2 == 0.0 {
        return (TestResult::none(), 0.0);
    }
    let mut bins: Vec<u16> = baseline.keys().chain(current.keys()).copied().collect();
    bins.sort_unstable();
    bins.dedup();
    // U of the current side: for each current value, the baseline values below it, and half of
    // those tied with it.
    let (mut u, mut below, mut ties) = (0.0, 0.0, 0.0);
    for bin in bins {
        let b = baseline.get(&bin).copied().unwrap_or(0).max(0) as f64;
        let c = current.get(&bin).copied().unwrap_or(0).max(0) as f64;
        u += c * (below + 0.5 * b);
        below += b;
        let t = b + c;
        ties += t * t * t - t;
    }
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let effect = 2.0 * u / (n1 * n2) - 1.0;
    if variance <= 0.0 {
        return (TestResult::none(), effect);
    }
    (TestResult::of_z((u - mean) / variance.sqrt()), effect)
}

/// Count, mean and variance accumulated one value at a time (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Values added.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    m2: f64,
}

impl Moments {
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// The sample variance; 0 below two values.
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            self.m2 / (self.count - 1) as f64
        }
    }
}

/// Welch's t test of two means (`baseline`, `current`), its t turned into a z of the same
/// tail probability (Wallace's approximation: `z = t (1 − 1/(4 df)) / sqrt(1 + t²/(2 df))`,
/// with Welch–Satterthwaite's df). Also answers Cohen's d, the effect size.
pub fn welch(baseline: &Moments, current: &Moments) -> (TestResult, f64) {
    let (n1, n2) = (baseline.count as f64, current.count as f64);
    if n1 < 2.0 || n2 < 2.0 {
        return (TestResult::none(), 0.0);
    }
    let (v1, v2) = (baseline.variance() / n1, current.variance() / n2);
    let pooled_sd = (((n1 - 1.0) * baseline.variance() + (n2 - 1.0) * current.variance())
        / (n1 + n2 - 2.0))
        .sqrt();
    let difference = current.mean - baseline.mean;
    let effect = if pooled_sd > 0.0 {
        difference / pooled_sd
    } else {
        0.0
    };
    if v1 + v2 <= 0.0 {
        return (TestResult::none(), effect);
    }
    let t = difference / (v1 + v2).sqrt();
    let df = (v1 + v2).powi(2) / (v1 * v1 / (n1 - 1.0) + v2 * v2 / (n2 - 1.0));
    let z = t * (1.0 - 1.0 / (4.0 * df)) / (1.0 + t * t / (2.0 * df)).sqrt();
    (TestResult::of_z(z), effect)
}

/// Holm's step-down adjustment of p-values for `count` comparisons (at least as many as
/// given): the adjusted p-values, in the order given. Controls the chance of any false
/// positive among all the comparisons at the level it is compared with.
pub fn holm(p_values: &[f64], count: usize) -> Vec<f64> {
    let count = count.max(p_values.len());
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]));
    let mut adjusted = vec![1.0; p_values.len()];
    let mut running: f64 = 0.0;
    for (rank, index) in order.into_iter().enumerate() {
        let value = ((count - rank) as f64 * p_values[index]).min(1.0);
        running = running.max(value);
        adjusted[index] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, expected) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (-1.0, 1.842_700_792_949_715),
            (5.0, 1.537_459_794_428_034_8e-12),
        ] {
            let got = erfc(x);
            assert!(
                ((got - expected) / expected).abs() < 2e-7,
                "erfc({x}) = {got}, expected {expected}"
            );
        }
        assert!((two_sided_p(1.959_964) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn proportions_find_a_tenfold_error_rate_and_not_noise() {
        let planted = two_proportions(20, 1000, 200, 1000);
        assert!(planted.z > 10.0 && planted.p_value < 1e-20, "{planted:?}");
        let same = two_proportions(20, 1000, 22, 1000);
        assert!(same.p_value > 0.5, "{same:?}");
        assert_eq!(two_proportions(0, 100, 0, 100), TestResult::none());
        assert!(cohens_h(0.02, 0.2) > 0.6);
    }

    #[test]
    fn poisson_rates_scale_by_exposure() {
        // The same rate over twice the time is no change.
        assert!(poisson_rates(1000, 2.0, 500, 1.0).z.abs() < 1e-9);
        assert!(poisson_rates(500, 1.0, 800, 1.0).z > 5.0);
    }

    #[test]
    fn mann_whitney_sees_a_shift_and_ties_are_no_shift() {
        let bins = |pairs: &[(u16, i64)]| pairs.iter().copied().collect::<BTreeMap<u16, i64>>();
        let low = bins(&[(10, 50), (11, 50)]);
        let high = bins(&[(20, 50), (21, 50)]);
        let (test, effect) = mann_whitney(&low, &high);
        assert!(test.z > 10.0, "{test:?}");
        assert!((effect - 1.0).abs() < 1e-12);
        let (test, effect) = mann_whitney(&low, &low);
        assert!(test.z.abs() < 1e-12 && effect.abs() < 1e-12);
        // All values in one bin: no variance, no test.
        let one = bins(&[(7, 40)]);
        assert_eq!(mann_whitney(&one, &one).0, TestResult::none());
    }

    #[test]
    fn welch_and_its_effect_size() {
        let mut a = Moments::default();
        let mut b = Moments::default();
        for index in 0..100 {
            a.add(f64::from(index % 10));
            b.add(f64::from(index % 10) + 3.0);
        }
        assert!((a.mean - 4.5).abs() < 1e-12);
        let (test, effect) = welch(&a, &b);
        assert!(test.z > 6.0, "{test:?}");
        assert!(effect > 0.9, "{effect}");
        assert!(welch(&a, &a).0.z.abs() < 1e-12);
    }

    #[test]
    fn holm_is_monotone_and_multiplies_by_what_remains() {
        let adjusted = holm(&[0.01, 0.04, 0.03], 3);
        assert_eq!(adjusted, vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.5], 10), vec![1.0]);
    }
}
