//! Statistical tests of init-core's samplers. Run them optimised:
//!
//! ```text
//! cargo test --release -p initforge-tests --test stats
//! ```
//!
//! Built without optimisations (`debug_assertions` on) every test here is ignored (and reported
//! as such), so a plain `cargo test --workspace` stays fast.
//!
//! - Kolmogorov–Smirnov against the exact CDF ([`Sampler::cdf`]) for every distribution the
//!   kernels implement, n = 10⁶, critical value 1.95/√n (α ≈ 0.001), fixed seeds, in f32 and f64.
//! - Bounds never exceeded, in every element type.
//! - f16/bf16 fills equal the f32 fill rounded to nearest (ties to even), and the kernels'
//!   f32 → f16/bf16 rounding equals the `half` crate's for all 2³² f32 bit patterns.
//! - Moments, lag-1 correlation and streams pooled across tensor keys, as extra checks on the
//!   generator.
//! - Orthogonal init of a matrix large enough for the parallel QR: orthogonal, and the same bits
//!   on 1 and 2 threads.

use half::{bf16, f16};
use init_core::rng::key_of;
use init_core::{Element, Fans, Sampler, Scheme, SchemeExt as _, Stream};

const N: usize = 1_000_000;

/// The distributions under test, each with the kernel path it exercises.
fn cases() -> Vec<(&'static str, Sampler)> {
    let fans = Fans {
        fan_in: 256,
        fan_out: 128,
    };
    let scheme = |s: &str| {
        Scheme::parse(s)
            .unwrap()
            .sampler(Some(fans))
            .unwrap()
            .unwrap()
    };
    vec![
        ("uniform(-1, 3)", Sampler::Uniform { lo: -1.0, hi: 3.0 }),
        ("he_uniform", scheme("he_uniform")),
        (
            "normal(0.25, 2)",
            Sampler::Normal {
                mean: 0.25,
                std: 2.0,
            },
        ),
        ("he_normal", scheme("he_normal")),
        (
            // Keras TruncatedNormal: rejection from the normal (mass 0.954).
            "truncated two-sigma",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: -2.0,
                hi: 2.0,
            },
        ),
        (
            // Keras/JAX HeNormal: parent σ/0.8796…, cut at ±2 parent std.
            "he_truncated_normal",
            scheme("he_truncated_normal"),
        ),
        (
            // Asymmetric, rejection path (mass 0.757).
            "truncated [-0.7, 3]",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: -0.7,
                hi: 3.0,
            },
        ),
        (
            // PyTorch's default trunc_normal_(std=0.02, a=-2, b=2): effectively untruncated.
            "pytorch trunc_normal_(std=0.02)",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 0.02,
                lo: -2.0,
                hi: 2.0,
            },
        ),
        (
            // Narrow one-sided interval: uniform proposal (mass 0.078).
            "truncated narrow [0.1, 0.3]",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: 0.1,
                hi: 0.3,
            },
        ),
        (
            // Narrow interval around the mean: uniform proposal, m = 0.
            "truncated narrow [-0.2, 0.1]",
            Sampler::TruncatedNormal {
                mean: 1.0,
                std: 2.0,
                lo: 0.6,
                hi: 1.2,
            },
        ),
        (
            // One-sided far tail: Robert's exponential proposal.
            "truncated far tail [4, inf)",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: 4.0,
                hi: f64::INFINITY,
            },
        ),
        (
            // Mirrored far tail.
            "truncated far tail (-inf, -5]",
            Sampler::TruncatedNormal {
                mean: 1.0,
                std: 0.5,
                lo: f64::NEG_INFINITY,
                hi: -1.5,
            },
        ),
        (
            // Bounded tail: exponential proposal with rejection above hi.
            "truncated tail [3, 3.5]",
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: 3.0,
                hi: 3.5,
            },
        ),
    ]
}

/// The Kolmogorov–Smirnov statistic of `x` (sorted in place) against `cdf`.
fn ks(x: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let mut d = 0f64;
    let mut i = 0;
    while i < x.len() {
        // Ties: the empirical CDF jumps once over all equal values.
        let mut j = i;
        while j + 1 < x.len() && x[j + 1] == x[i] {
            j += 1;
        }
        let f = cdf(x[i]);
        d = d.max(f - i as f64 / n).max((j + 1) as f64 / n - f);
        i = j + 1;
    }
    d
}

fn sample<T: Element>(s: Sampler, seed: u64, name: &str) -> Vec<f64> {
    let mut v = vec![T::ZERO; N];
    s.fill(
        &mut v,
        Stream {
            seed,
            key: key_of(name),
        },
    );
    v.iter().map(|x| x.to_f64()).collect()
}

fn check_ks<T: Element>(name: &str, s: Sampler, seed: u64) -> f64 {
    let mut x = sample::<T>(s, seed, name);
    let (lo, hi) = s.support();
    let (lo, hi) = (T::from_f64(lo).to_f64(), T::from_f64(hi).to_f64());
    assert!(
        x.iter().all(|&v| v >= lo && v <= hi && v.is_finite()),
        "{name} {:?}: a value outside [{lo}, {hi}]",
        T::DTYPE
    );
    let d = ks(&mut x, |v| s.cdf(v));
    let crit = 1.95 / (N as f64).sqrt();
    eprintln!(
        "KS {:<34} {:>4}: D = {d:.5} (critical {crit:.5})",
        name,
        T::DTYPE.as_str()
    );
    assert!(
        d < crit,
        "{name} {:?}: KS statistic {d} exceeds {crit}",
        T::DTYPE
    );
    d
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn kolmogorov_smirnov_f32() {
    for (i, (name, s)) in cases().into_iter().enumerate() {
        check_ks::<f32>(name, s, 1000 + i as u64);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn kolmogorov_smirnov_f64() {
    for (i, (name, s)) in cases().into_iter().enumerate() {
        check_ks::<f64>(name, s, 2000 + i as u64);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn kolmogorov_smirnov_detects_a_wrong_distribution() {
    // The test has power: the He-normal sample is rejected against the plain normal's CDF of
    // the parent std (the correction is 12%), and a normal against a slightly wider one.
    let crit = 1.95 / (N as f64).sqrt();
    let Sampler::TruncatedNormal { std, .. } = cases()[5].1 else {
        panic!("case 5 is he_truncated_normal")
    };
    let mut x = sample::<f32>(cases()[5].1, 7, "power");
    let wrong = Sampler::Normal { mean: 0.0, std };
    assert!(ks(&mut x, |v| wrong.cdf(v)) > crit);
    let mut y = sample::<f32>(
        Sampler::Normal {
            mean: 0.0,
            std: 1.0,
        },
        7,
        "power2",
    );
    let wider = Sampler::Normal {
        mean: 0.0,
        std: 1.01,
    };
    assert!(ks(&mut y, |v| wider.cdf(v)) > crit);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn moments_match() {
    for (i, (name, s)) in cases().into_iter().enumerate() {
        for wide in [false, true] {
            let x = if wide {
                sample::<f64>(s, 3000 + i as u64, name)
            } else {
                sample::<f32>(s, 3000 + i as u64, name)
            };
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
            let (m, sd) = (s.mean(), s.std_dev());
            // 6 standard errors: mean ± 6σ/√n; std within 6·σ/√(2n)·(kurtosis slack 2).
            assert!(
                (mean - m).abs() < 6.0 * sd / n.sqrt(),
                "{name} wide={wide}: mean {mean} vs {m}"
            );
            assert!(
                (var.sqrt() - sd).abs() < 12.0 * sd / (2.0 * n).sqrt(),
                "{name} wide={wide}: std {} vs {sd}",
                var.sqrt()
            );
        }
    }
    // The Keras correction: he_truncated_normal's realised std is √(2/fan_in).
    let he = cases()[5].1;
    assert!((he.std_dev() - (2.0f64 / 256.0).sqrt()).abs() < 1e-12);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn lag_one_correlation_is_small() {
    for (name, s) in [
        ("uniform", Sampler::Uniform { lo: 0.0, hi: 1.0 }),
        (
            "normal",
            Sampler::Normal {
                mean: 0.0,
                std: 1.0,
            },
        ),
    ] {
        for wide in [false, true] {
            let x = if wide {
                sample::<f64>(s, 11, name)
            } else {
                sample::<f32>(s, 11, name)
            };
            let n = x.len() as f64;
            let m = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>();
            // Lags 1 (pairs within a Box–Muller pair / a 64-bit word), 2, 16 and 8.
            for lag in [1, 2, 8, 16] {
                let c: f64 = x.windows(lag + 1).map(|w| (w[0] - m) * (w[lag] - m)).sum();
                let r = c / var;
                assert!(
                    r.abs() < 5.0 / n.sqrt(),
                    "{name} wide={wide} lag {lag}: r = {r}"
                );
            }
        }
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn tensors_with_different_keys_are_independent() {
    // 1000 tensors of 1000 elements, keys from their names, pooled: still N(0, 1); and their
    // first elements alone are too.
    let s = Sampler::Normal {
        mean: 0.0,
        std: 1.0,
    };
    let mut pooled = Vec::with_capacity(N);
    let mut firsts = Vec::with_capacity(1000);
    for t in 0..1000 {
        let mut v = vec![0f32; 1000];
        s.fill(
            &mut v,
            Stream {
                seed: 5,
                key: key_of(&format!("layers.{t}.weight")),
            },
        );
        firsts.push(f64::from(v[0]));
        pooled.extend(v.iter().map(|&x| f64::from(x)));
    }
    let crit = 1.95 / (N as f64).sqrt();
    assert!(ks(&mut pooled, |v| s.cdf(v)) < crit);
    assert!(ks(&mut firsts, |v| s.cdf(v)) < 1.95 / 1000f64.sqrt());
    // Seeds 0, 1, 2, … are independent too.
    let mut by_seed: Vec<f64> = (0..2000u64)
        .map(|seed| {
            let mut v = [0f64; 1];
            s.fill(&mut v, Stream { seed, key: 0 });
            v[0]
        })
        .collect();
    assert!(ks(&mut by_seed, |v| s.cdf(v)) < 1.95 / 2000f64.sqrt());
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn half_types_are_rounded_f32_fills() {
    for (i, (name, s)) in cases().into_iter().enumerate() {
        let st = Stream {
            seed: 4000 + i as u64,
            key: key_of(name),
        };
        let mut x = vec![0f32; N];
        let mut h = vec![f16::ZERO; N];
        let mut b = vec![bf16::ZERO; N];
        s.fill(&mut x, st);
        s.fill(&mut h, st);
        s.fill(&mut b, st);
        let (lo, hi) = s.support();
        let (l16, h16) = (f16::from_f32(lo as f32), f16::from_f32(hi as f32));
        let (lb, hb) = (bf16::from_f32(lo as f32), bf16::from_f32(hi as f32));
        for k in 0..N {
            assert_eq!(
                h[k].to_bits(),
                f16::from_f32(x[k]).to_bits(),
                "{name} f16 at {k}"
            );
            assert_eq!(
                b[k].to_bits(),
                bf16::from_f32(x[k]).to_bits(),
                "{name} bf16 at {k}"
            );
            assert!(h[k] >= l16 && h[k] <= h16, "{name} f16 bound at {k}");
            assert!(b[k] >= lb && b[k] <= hb, "{name} bf16 bound at {k}");
        }
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn half_rounding_is_exact_for_every_f32() {
    // The kernels' own f32 → f16/bf16 conversions against `half` (which uses F16C when the CPU
    // has it), over all 2³² bit patterns, on every core.
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u64;
    let per = (1u64 << 32).div_ceil(threads);
    std::thread::scope(|sc| {
        for t in 0..threads {
            sc.spawn(move || {
                let end = ((t + 1) * per).min(1 << 32);
                for b in t * per..end {
                    let x = f32::from_bits(b as u32);
                    let h = init_core::element::f32_to_f16_bits(x);
                    assert_eq!(h, f16::from_f32(x).to_bits(), "f16 of {b:#010x}");
                    let g = init_core::element::f32_to_bf16_bits(x);
                    assert_eq!(g, bf16::from_f32(x).to_bits(), "bf16 of {b:#010x}");
                }
            });
        }
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "statistical: run with --release")]
fn large_orthogonal_is_thread_independent() {
    let n = 2048;
    let scheme = Scheme::orthogonal(1.0).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut w = vec![0f32; n * n];
                init_core::init_tensor(
                    &scheme,
                    &mut w,
                    &[n, n],
                    None,
                    Stream {
                        seed: 3,
                        key: key_of("big"),
                    },
                )
                .unwrap();
                w
            })
    };
    let one = run(1);
    let two = run(2);
    assert!(
        one.iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "orthogonal {n}x{n} differs between 1 and 2 threads"
    );
    // Rows orthonormal: check a sample of the Gram matrix.
    for (i, j) in [(0, 0), (0, 1), (5, 2047), (1000, 1000), (2047, 3), (77, 78)] {
        let dot: f64 = (0..n)
            .map(|k| f64::from(one[i * n + k]) * f64::from(one[j * n + k]))
            .sum();
        let want = if i == j { 1.0 } else { 0.0 };
        assert!((dot - want).abs() < 1e-5, "({i}, {j}): {dot}");
    }
}
