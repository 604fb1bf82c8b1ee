//! The MT19937 generator as numpy's legacy `RandomState` drives it.
//!
//! BrainIAK draws its initial SRM transforms from `RandomState(seed)`, so reproducing its fits
//! needs the same stream: numpy seeds an integer with `init_genrand` and an array with
//! `init_by_array` (Matsumoto & Nishimura's reference seeding), `randint(2**32)` returns one raw
//! 32-bit output, and `random_sample` builds a double from two outputs.

/// Words of MT19937 state.
const N: usize = 624;
/// The twist offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// An MT19937 stream, seeded as numpy's `RandomState` seeds it.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    /// The next word of `state` to temper; `N` means the state must be regenerated first.
    pos: usize,
}

impl Mt19937 {
    /// `RandomState(seed)` for an integer seed (numpy accepts 0 ≤ seed < 2³²): the reference
    /// `init_genrand`.
    pub fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, pos: N }
    }

    /// `RandomState(np.array(key))` for a non-empty array of 32-bit words: the reference
    /// `init_by_array`.
    pub fn from_key(key: &[u32]) -> Mt19937 {
        let mut mt = Mt19937::new(19_650_218);
        let state = &mut mt.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key.get(j).copied().unwrap_or(0))
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                state[0] = state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                state[0] = state[N - 1];
                i = 1;
            }
        }
        // a non-zero initial state is assured
        state[0] = 0x8000_0000;
        mt.pos = N;
        mt
    }

    /// Regenerates all `N` words of state at once (the reference `genrand_int32` refill).
    fn twist(&mut self) {
        let s = &mut self.state;
        for k in 0..N {
            let y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            s[k] = s[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next raw 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `randint(2**32, dtype=np.int64)`: numpy's bounded draw with the full 32-bit range takes
    /// one raw output unmasked.
    pub fn randint_u32_range(&mut self) -> u32 {
        self.next_u32()
    }

    /// `random_sample()`: a double in [0, 1) with 53 random bits,
    /// `((a >> 5) · 2²⁶ + (b >> 6)) / 2⁵³` from two outputs a, b.
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_5489_matches_the_reference_outputs() {
        // the reference implementation's default seed and its first outputs
        let mut mt = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
    }

    #[test]
    fn key_seeding_matches_the_reference_outputs() {
        // mt19937ar.c's test vector: init_by_array({0x123, 0x234, 0x345, 0x456})
        let mut mt = Mt19937::from_key(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
        assert_eq!(first, [1_067_595_299, 955_945_823, 477_289_528]);
    }
}
