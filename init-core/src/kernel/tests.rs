//! The kernels' unit tests: accuracy of the fixed polynomials, exactness of the conversions
//! (the vector bf16 rounding against the scalar one), and the portable kernels' pinned values.

use super::B32;
use super::block::{run, signed_u01_f64, u01_f64, u1_f64, uniform32};
use super::math::{ln_f32, ln_f64, sincos_turn_f32, sincos_turn_f64};
use super::params::KernelParams;
use super::tail::{TailSampler, normal_mass};
use super::target::Portable;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::x86;
use crate::rng::Lanes;

#[test]
fn ln_f32_is_accurate() {
    let mut worst = 0f64;
    for i in 1..=100_000u32 {
        let x = i as f32 / 100_000.0;
        let got = f64::from(ln_f32(x));
        let want = libm::log(f64::from(x));
        let err = (got - want).abs() / want.abs().max(1e-3);
        worst = worst.max(err);
    }
    let tiny = 1.0f32 / 2_147_483_648.0;
    assert!((f64::from(ln_f32(tiny)) - libm::log(f64::from(tiny))).abs() < 1e-5);
    assert!(worst < 2e-6, "worst relative error {worst}");
}

#[test]
fn ln_f64_is_accurate() {
    let mut worst = 0f64;
    let mut x = 1.0f64 / (1u64 << 53) as f64;
    while x <= 1.0 {
        for k in 0..64 {
            let y = x * (1.0 + f64::from(k) / 64.0);
            if y > 1.0 {
                break;
            }
            let (got, want) = (ln_f64(y), libm::log(y));
            let ulp = f64::EPSILON * want.abs().max(f64::MIN_POSITIVE);
            worst = worst.max((got - want).abs() / ulp);
        }
        x *= 2.0;
    }
    assert_eq!(ln_f64(1.0), 0.0);
    assert!(worst <= 2.0, "worst error {worst} ulp");
}

#[test]
fn sincos_f32_is_accurate_in_every_quadrant() {
    for m in (0..(1u32 << 24)).step_by(997) {
        let (s, c) = sincos_turn_f32(m);
        let t = core::f64::consts::TAU * f64::from(m) / f64::from(1u32 << 24);
        assert!((f64::from(s) - libm::sin(t)).abs() < 3e-7, "sin at {m}");
        assert!((f64::from(c) - libm::cos(t)).abs() < 3e-7, "cos at {m}");
    }
}

#[test]
fn sincos_f64_is_accurate_in_every_quadrant() {
    let mut worst = 0f64;
    for i in 0..200_000u64 {
        let m = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        let (s, c) = sincos_turn_f64(m);
        let t = core::f64::consts::TAU * (m as f64 / (1u64 << 53) as f64);
        worst = worst
            .max((s - libm::sin(t)).abs())
            .max((c - libm::cos(t)).abs());
    }
    assert!(worst < 1e-15, "worst absolute error {worst}");
    assert_eq!(sincos_turn_f64(0), (0.0, 1.0));
}

#[test]
fn signed_u01_is_exact() {
    for w in [
        0u64,
        1 << 11,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        0x1234_5678_9ABC_DEF0,
    ] {
        let want = 2.0 * u01_f64(w) - 1.0;
        assert_eq!(signed_u01_f64(w), want, "{w:#x}");
        let odd = ((w >> 11) | 1) as f64 / (1u64 << 53) as f64;
        assert_eq!(u1_f64(w), odd, "{w:#x}");
    }
}

#[test]
fn uniform32_matches_its_definition() {
    for w in [0u32, 255, 256, 0x8000_0000, u32::MAX, 0x1234_5678] {
        let u = (w >> 8) as f32 / (1u32 << 24) as f32;
        let want = (0.25 + 1.5 * (2.0 * u - 1.0)).clamp(-1.25, 1.75);
        assert_eq!(uniform32(w, 0.25, 1.5, -1.25, 1.75), want);
    }
}

#[test]
fn normal_mass_matches_known_values() {
    assert!((normal_mass(-2.0, 2.0) - 0.954_499_736_103_642).abs() < 1e-14);
    assert!((normal_mass(5.0, f64::INFINITY) - 2.866_515_718_791_939e-7).abs() < 1e-20);
    assert!((normal_mass(f64::NEG_INFINITY, -5.0) - 2.866_515_718_791_939e-7).abs() < 1e-20);
}

#[test]
fn invalid_samplers_fill_nan_without_panicking_or_hanging() {
    use crate::Sampler;
    let lanes = || Lanes::for_chunk(1, 2, 0);
    for s in [
        Sampler::Uniform { lo: 1.0, hi: 0.0 },
        Sampler::Uniform {
            lo: f64::NAN,
            hi: 0.0,
        },
        Sampler::Normal {
            mean: 0.0,
            std: -1.0,
        },
        Sampler::Normal {
            mean: f64::NAN,
            std: 1.0,
        },
        Sampler::TruncatedNormal {
            mean: 0.0,
            std: f64::NAN,
            lo: -1.0,
            hi: 1.0,
        },
        Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: 1.0,
            hi: -1.0,
        },
        Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: 50.0,
            hi: 60.0,
        },
        Sampler::TruncatedNormal {
            mean: 0.0,
            std: 0.0,
            lo: -1.0,
            hi: 1.0,
        },
    ] {
        assert!(!s.is_valid(), "{s:?}");
        let mut v = [0f32; 40];
        run::<f32, Portable>(&KernelParams::new(&s, false), &mut v, lanes());
        assert!(v.iter().all(|x| x.is_nan()), "{s:?}");
    }
    // Degenerate but valid: a point interval.
    let point = Sampler::Uniform { lo: 0.5, hi: 0.5 };
    assert!(point.is_valid());
    let mut v = [0f64; 20];
    run::<f64, Portable>(&KernelParams::new(&point, true), &mut v, lanes());
    assert!(v.iter().all(|&x| x == 0.5));
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[test]
fn bf16_vector_rounding_matches_the_scalar_rounding() {
    use crate::element::f32_to_bf16_bits;
    let has = |f| match f {
        "bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        _ => std::arch::is_x86_feature_detected!("avx512bf16"),
    };
    if !has("bw") {
        eprintln!("note: no AVX-512BW here; bf16 vector rounding not tested");
        return;
    }
    let edges = [
        0u32,
        1,
        0x8000,
        0x0001_8000,
        0x007F_FFFF,
        0x0080_0000,
        0x3F80_8000,
        0x3F81_8000,
        0x3F80_7FFF,
        0x3F80_8001,
        0x7F7F_FFFF,
        0x7F80_0000,
        0x7F80_0001,
        0x7FC0_0000,
        0x7FFF_FFFF,
        0x4049_0FDB,
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..20_000 {
        let mut v = [0f32; B32];
        for (k, o) in v.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = if round % 4 == 0 {
                edges[(x as usize + k) % edges.len()]
            } else {
                x as u32
            };
            // Mostly normal numbers, so whole blocks take the instruction.
            let b = if round % 4 == 1 {
                (b & 0x807F_FFFF) | 0x3F00_0000
            } else {
                b
            };
            *o = f32::from_bits(b | (u32::from(k % 2 == 1) << 31));
        }
        let want: [u16; B32] = core::array::from_fn(|k| f32_to_bf16_bits(v[k]));
        // SAFETY: AVX-512F/BW detected above.
        assert_eq!(unsafe { x86::bf16x32_avx512(&v) }, want, "{v:?}");
        if has("bf16") {
            // SAFETY: AVX512-BF16 detected.
            assert_eq!(unsafe { x86::bf16x32_hw(&v) }, want, "{v:?}");
        }
    }
}

/// The first values of tests/core.rs's pins, from the portable kernels: run by
/// `cargo test --no-default-features --lib` too, so the no_std build (libm's square roots)
/// is held to the same bits.
#[test]
fn portable_kernels_match_the_pins() {
    use crate::Sampler;
    let lanes = || Lanes::for_chunk(42, crate::rng::key_of("pin"), 0);
    let f32s = |s: Sampler| {
        let mut v = [0f32; 4];
        run::<f32, Portable>(&KernelParams::new(&s, false), &mut v, lanes());
        v.map(f32::to_bits)
    };
    let f64s = |s: Sampler| {
        let mut v = [0f64; 4];
        run::<f64, Portable>(&KernelParams::new(&s, true), &mut v, lanes());
        v.map(f64::to_bits)
    };
    let u = Sampler::Uniform { lo: -0.5, hi: 1.5 };
    let n = Sampler::Normal {
        mean: 0.25,
        std: 2.0,
    };
    let t = Sampler::TruncatedNormal {
        mean: 0.0,
        std: 1.0,
        lo: -2.0,
        hi: 2.0,
    };
    assert_eq!(f32s(u), [0x3f8c1bb7, 0x3f4ca7a0, 0x3e1fab98, 0x3e91b368]);
    assert_eq!(f32s(n), [0xbf0b0fa5, 0xbf5671e0, 0xc005011f, 0x4007b452]);
    assert_eq!(f32s(t), [0xbecb0fa5, 0xbf0b38f0, 0xbf95011f, 0x3f6f68a5]);
    assert_eq!(
        f64s(u),
        [
            0x3fe994f414f306ec,
            0x3fd2366d0229fab8,
            0xbfb5d2f72c48c790,
            0x3fe6c032b2f60e2c
        ]
    );
    assert_eq!(
        f64s(n),
        [
            0x3fd3166837c8ddd1,
            0xbf809d82b61a8e20,
            0x400e1587c187b607,
            0xbff685bc9105c45a
        ]
    );
    assert_eq!(
        f64s(t),
        [
            0x3f98b341be46ee85,
            0xbfc084ec15b0d471,
            0x3ffc1587c187b607,
            0xbfea85bc9105c45a
        ]
    );
}

#[test]
fn tail_methods_are_chosen_by_shape() {
    assert!(TailSampler::new(3.0, f64::INFINITY).is_exponential());
    assert!(TailSampler::new(f64::NEG_INFINITY, -3.0).is_exponential());
    assert!(!TailSampler::new(0.1, 0.3).is_exponential());
    assert!(!TailSampler::new(3.0, 3.2).is_exponential());
}
