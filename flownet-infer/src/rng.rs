//! A small deterministic random number generator for the diffusion noise.
//!
//! The noise must be the same for a seed on every machine and every release of every
//! dependency, since the output image is part of what a requester pays for and can check.
//! A crate's RNG may change its algorithm between versions, so the generator is written
//! here: xoshiro256** (Blackman and Vigna) seeded through SplitMix64, and Box–Muller for
//! normal samples.

/// SplitMix64: expands a 64-bit seed into well-mixed words for xoshiro's state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256**, a fast generator with a 2^256 − 1 period and good statistical quality.
#[derive(Debug, Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    /// A generator whose whole sequence is a function of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        // SplitMix64 never yields four zero words in a row, so the state is never the
        // all-zero fixed point.
        Self {
            s: std::array::from_fn(|_| splitmix64(&mut sm)),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with standard normal samples, two per Box–Muller step.
    ///
    /// The transform runs in f64 and rounds to f32 at the end: `ln`, `sin` and `cos` come
    /// from the platform's maths library and may differ in the last f64 bit between
    /// platforms, which the rounding to f32 absorbs in all but a vanishing fraction of
    /// samples.
    pub fn fill_standard_normal(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let radius = (-2.0 * self.next_open01().ln()).sqrt();
            let angle = std::f64::consts::TAU * self.next_f64();
            pair[0] = (radius * angle.cos()) as f32;
            if let Some(second) = pair.get_mut(1) {
                *second = (radius * angle.sin()) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // SplitMix64's first outputs for seed 0, from the reference C implementation.
        let mut sm = 0;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut sm), 0x6E78_9E6A_A1B9_65F4);
        // xoshiro256** outputs for seed 42, computed independently (Python, from the
        // reference algorithm). A change here changes every generated image.
        let mut rng = Xoshiro256::new(42);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(first, PINNED_SEED_42);
    }

    const PINNED_SEED_42: [u64; 3] = [
        0x1578_0B2E_0C2E_C716,
        0x6104_D986_6D11_3A7E,
        0xAE17_5332_39E4_99A1,
    ];

    #[test]
    fn same_seed_same_samples_other_seed_other_samples() {
        let sample = |seed| {
            let mut v = vec![0.0f32; 1001];
            Xoshiro256::new(seed).fill_standard_normal(&mut v);
            v
        };
        assert_eq!(sample(7), sample(7));
        assert_ne!(sample(7), sample(8));
    }

    #[test]
    fn samples_look_standard_normal() {
        let mut v = vec![0.0f32; 200_000];
        Xoshiro256::new(1).fill_standard_normal(&mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
