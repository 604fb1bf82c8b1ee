//! The hot element-wise loops (softmax exponentials, activations) on the widest vector unit the
//! CPU has, chosen at run time.
//!
//! The binaries target the x86-64 baseline so that they run on any x86-64 machine, which leaves
//! the compiler SSE2's four lanes for our own loops, while faer and PyTorch pick AVX2 or
//! AVX-512 at run time: the attention's exponentials were a third of a 512 px U-Net step.
//! [`widest_fn!`] compiles a loop once more with AVX2 and once with AVX-512 enabled, and each
//! call takes the variant the CPU supports ([`level`]). The loops use explicit lanes and no fused
//! multiply-adds (Rust does not contract `a * b + c`), so every variant performs the same IEEE
//! operations in the same order: the results are the same bits on every machine.

/// A vector unit the loops can be compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// As built: SSE2 on x86-64.
    Baseline,
    Avx2,
    Avx512,
}

/// The widest unit the CPU has, capped by `BRAINRECON_SIMD` (`avx512`, `avx2` or `baseline`;
/// other values cap nothing), read once. The cap exists to measure one variant against
/// another on the same machine.
pub(crate) fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("BRAINRECON_SIMD").as_deref() {
            Ok("baseline") => Level::Baseline,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        cpu_level().min(cap)
    })
}

fn cpu_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// `widest_fn!(vis fn name(args) -> Ret = inner);` (or without `-> Ret`) defines `name`, which
/// calls the `#[inline(always)]` function `inner` compiled for AVX-512 or AVX2 when [`level`]
/// allows it, else as built. `inner`'s loops must call only inlined functions (slices'
/// iterators, `exp_f32`), so that the whole loop is compiled into each variant.
macro_rules! widest_fn {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $inner:path) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                match $crate::kernels::simd::level() {
                    // SAFETY: `level` is at most what the CPU supports.
                    $crate::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::simd::Level::Baseline => {}
                }
            }
            $inner($($arg),*)
        }
    };
}
pub(crate) use widest_fn;

#[cfg(test)]
mod tests {
    use crate::kernels::math::exp_f32;

    #[inline(always)]
    fn exp_in_place(xs: &mut [f32]) {
        for x in xs {
            *x = exp_f32(*x);
        }
    }

    widest_fn!(fn exp_in_place_widest(xs: &mut [f32]) = exp_in_place);

    /// The dispatched loop, and each variant the CPU can run, give the bits of the loop as
    /// built (SSE2 on x86-64).
    #[test]
    fn every_variant_gives_the_same_bits() {
        let xs: Vec<f32> = (0..1031).map(|i| (i as f32 - 515.0) * 0.173).collect();
        let plain: Vec<u32> = xs.iter().map(|&x| exp_f32(x).to_bits()).collect();
        let bits = |run: &dyn Fn(&mut [f32])| {
            let mut v = xs.clone();
            run(&mut v);
            v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
        };
        assert_eq!(bits(&|v| exp_in_place_widest(v)), plain);
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            fn avx2(v: &mut [f32]) {
                exp_in_place(v)
            }
            #[target_feature(enable = "avx512f")]
            fn avx512(v: &mut [f32]) {
                exp_in_place(v)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked on the line above).
                assert_eq!(bits(&|v| unsafe { avx2(v) }), plain);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked on the line above).
                assert_eq!(bits(&|v| unsafe { avx512(v) }), plain);
            }
        }
    }
}
