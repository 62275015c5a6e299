//! init-core's correctness evidence (everything except the statistical tests, which run in
//! release mode from the workspace's `tests` crate: `cargo test --release -p initforge-tests
//! --test stats`).
//!
//! - `schemes`: closed-form parameters of every scheme against reference values for fan_in 256,
//!   fan_out 128, worked out from the primary formulas (PyTorch `torch.nn.init` docs, Keras
//!   `VarianceScaling` source, JAX `jax.nn.initializers` docs).
//! - `fans`: fan tables for Linear, Conv1d/2d/3d, grouped, depthwise and transposed convolutions
//!   in both layouts, true connectivity and the PyTorch/Keras formulas.
//! - `grammar`: every name and alias, Display → parse round trips, suggestions, bad parameters.
//! - `stability`: pinned bits for a fixed seed and key, thread-count and instruction-set
//!   independence, sub-range fills, the prefix property, f16/bf16 rounding.
//! - `structured`: orthogonality, eye and dirac patterns.
//! - `shard`: range and box (row block, column block, `Shard(d)`) fills against the same
//!   positions of the whole-tensor fill, for random shapes and ranges, every dtype, thread
//!   count and instruction set.

use half::{bf16, f16};
use init_core::rng::{CHUNK, key_of};
use init_core::sample::Isa;
use init_core::scheme::{SCHEME_NAMES, TRUNC_STD_CORRECTION, TruncForm};
use init_core::{
    Convention, DType, Distribution, Element, FanMode, FanRule, Fans, InitError, Layout,
    Nonlinearity, Sampler, Scheme, SchemeError, SchemeExt as _, SchemeKind, Stream, init_shard,
    init_tensor,
};

const FANS: Fans = Fans {
    fan_in: 256,
    fan_out: 128,
};

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1e-300)
}

#[track_caller]
fn assert_close(got: f64, want: f64, tol: f64) {
    assert!(
        close(got, want, tol),
        "got {got:.12e}, want {want:.12e} (rel tol {tol:e})"
    );
}

fn parse(s: &str) -> Scheme {
    s.parse()
        .unwrap_or_else(|e| panic!("`{s}` should parse: {e}"))
}

fn sampler(s: &str) -> Sampler {
    parse(s)
        .sampler(Some(FANS))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .unwrap_or_else(|| panic!("{s} has no sampler"))
}

/// The bound of a symmetric uniform sampler.
fn bound(s: &str) -> f64 {
    match sampler(s) {
        Sampler::Uniform { lo, hi } => {
            assert_eq!(lo, -hi, "{s}: not symmetric");
            hi
        }
        other => panic!("{s}: expected a uniform sampler, got {other:?}"),
    }
}

/// The std of a plain normal sampler.
fn normal_std(s: &str) -> f64 {
    match sampler(s) {
        Sampler::Normal { mean, std } => {
            assert_eq!(mean, 0.0);
            std
        }
        other => panic!("{s}: expected a normal sampler, got {other:?}"),
    }
}

/// The parent std and the bound of a Keras-style truncated normal, checking the ±2 parent-std
/// support and that the realised std is `target`.
fn keras_truncated(s: &str, target: f64) -> f64 {
    match sampler(s) {
        smp @ Sampler::TruncatedNormal { mean, std, lo, hi } => {
            assert_eq!(mean, 0.0);
            assert_close(std, target / 0.879_625_661_034_239_8, 1e-14);
            assert_close(hi, 2.0 * std, 1e-15);
            assert_close(lo, -2.0 * std, 1e-15);
            assert_close(smp.std_dev(), target, 1e-12);
            std
        }
        other => panic!("{s}: expected a truncated normal sampler, got {other:?}"),
    }
}

mod schemes {
    use super::*;

    #[test]
    fn reference_vectors() {
        // fi = 256, fo = 128, from the formulas of PyTorch's `torch.nn.init` docs:
        // kaiming_uniform_ bound = gain·√(3/fan_in), xavier_uniform_ bound = gain·√(6/(fi+fo)),
        // xavier_normal_ std = gain·√(2/(fi+fo)), kaiming_normal_ std = gain/√fan_in,
        // calculate_gain("leaky_relu", α) = √(2/(1+α²)); LeCun (Keras `lecun_uniform`/
        // `lecun_normal` source: VarianceScaling(scale = 1, fan_in)) bound √(3/fi), std 1/√fi;
        // fan_in_uniform is the Linear/Conv default, U(±1/√fan_in).
        assert_close(bound("fan_in_uniform"), 0.0625, 1e-15);
        assert_close(bound("uniform"), 0.0625, 1e-15);
        assert_close(bound("glorot_uniform"), 0.125, 1e-15);
        assert_close(normal_std("glorot_normal"), 0.072_168_8, 1e-6);
        assert_close(bound("he_uniform"), 0.153_093_1, 1e-6);
        assert_close(normal_std("he_normal"), 0.088_388_3, 1e-6);
        assert_close(bound("lecun_uniform"), 0.108_253_2, 1e-6);
        assert_close(normal_std("lecun_normal"), 0.0625, 1e-15);
        assert_close(Nonlinearity::LeakyRelu(0.01).gain(), 1.414_142_9, 1e-7);
        assert_close(Nonlinearity::LeakyRelu(0.2).gain(), 1.386_750_5, 1e-7);
        // The std of U(±1/√256): 1/√(3·256).
        assert_close(sampler("fan_in_uniform").std_dev(), 0.036_084_4, 1e-5);
    }

    #[test]
    fn exact_closed_forms() {
        let (fi, fo) = (256f64, 128f64);
        assert_eq!(bound("he_uniform"), (3.0f64).sqrt() * (2.0 / fi).sqrt());
        assert_close(bound("he_uniform"), (6.0 / fi).sqrt(), 1e-15);
        assert_close(bound("glorot_uniform"), (6.0 / (fi + fo)).sqrt(), 1e-15);
        assert_close(normal_std("glorot_normal"), (2.0 / (fi + fo)).sqrt(), 1e-15);
        assert_close(bound("lecun_uniform"), (3.0 / fi).sqrt(), 1e-15);
        assert_close(
            bound("glorot_uniform(gain=2)"),
            2.0 * (6.0 / (fi + fo)).sqrt(),
            1e-15,
        );
        assert_close(
            normal_std("xavier_normal(gain=0.5)"),
            0.5 * (2.0 / (fi + fo)).sqrt(),
            1e-15,
        );
    }

    #[test]
    fn aliases_give_the_same_sampler() {
        for (a, b) in [
            ("he", "he_uniform"),
            ("kaiming", "he_uniform"),
            ("kaiming_uniform", "he_uniform"),
            ("kaiming_normal", "he_normal"),
            ("kaiming_truncated_normal", "he_truncated_normal"),
            ("glorot", "glorot_uniform"),
            ("xavier", "glorot_uniform"),
            ("xavier_uniform", "glorot_uniform"),
            ("xavier_normal", "glorot_normal"),
            ("xavier_truncated_normal", "glorot_truncated_normal"),
            ("lecun", "lecun_uniform"),
            ("uniform", "fan_in_uniform"),
            ("he_uniform(mode=fan_in, nonlinearity=relu)", "he_uniform"),
            ("variance_scaling(2, fan_in, uniform)", "he_uniform"),
            ("variance_scaling(2, fan_in, normal)", "he_normal"),
            (
                "variance_scaling(2, fan_in, truncated_normal)",
                "he_truncated_normal",
            ),
            ("variance_scaling(1, fan_avg, uniform)", "glorot_uniform"),
            (
                "variance_scaling(1, fan_avg, truncated_normal)",
                "glorot_truncated_normal",
            ),
            ("variance_scaling(1, fan_in, uniform)", "lecun_uniform"),
            (
                "variance_scaling(1, fan_in, untruncated_normal)",
                "lecun_normal",
            ),
            ("variance_scaling(1/3, fan_in, uniform)", "fan_in_uniform"),
            // PyTorch's Linear default: kaiming_uniform_(a=√5) = ±1/√fan_in.
            (
                "he_uniform(nonlinearity=leaky_relu(2.2360679774997898))",
                "fan_in_uniform",
            ),
        ] {
            let (sa, sb) = (sampler(a), sampler(b));
            match (sa, sb) {
                (Sampler::Uniform { hi: x, .. }, Sampler::Uniform { hi: y, .. })
                | (Sampler::Normal { std: x, .. }, Sampler::Normal { std: y, .. })
                | (
                    Sampler::TruncatedNormal { std: x, .. },
                    Sampler::TruncatedNormal { std: y, .. },
                ) => {
                    assert_close(x, y, 1e-14);
                }
                _ => panic!("{a} gives {sa:?}, {b} gives {sb:?}"),
            }
        }
    }

    #[test]
    fn keras_truncated_variants() {
        // Parent std σ/0.87962566103423978, support ±2 parent std, realised std σ.
        let he = keras_truncated("he_truncated_normal", (2.0f64 / 256.0).sqrt());
        assert_close(he, 0.100_484_0, 1e-6);
        assert_close(2.0 * he, 0.200_968, 1e-5);
        keras_truncated("glorot_truncated_normal", (2.0f64 / 384.0).sqrt());
        keras_truncated("lecun_truncated_normal", 0.0625);
        keras_truncated(
            "he_truncated_normal(mode=fan_out, nonlinearity=tanh)",
            5.0 / 3.0 / 128f64.sqrt(),
        );
        assert_eq!(TRUNC_STD_CORRECTION, 0.879_625_661_034_239_8);
        // The constant is the std of N(0, 1) cut to (−2, 2).
        let t = Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: -2.0,
            hi: 2.0,
        };
        assert_close(t.std_dev(), TRUNC_STD_CORRECTION, 1e-14);
    }

    #[test]
    fn variance_scaling_every_mode_and_distribution() {
        let (fi, fo) = (256f64, 128f64);
        for (mode, n) in [
            ("fan_in", fi),
            ("fan_out", fo),
            ("fan_avg", f64::midpoint(fi, fo)),
            ("fan_geo_avg", (fi * fo).sqrt()),
            ("in", fi),
            ("out", fo),
            ("avg", f64::midpoint(fi, fo)),
            ("geo_avg", (fi * fo).sqrt()),
        ] {
            for scale in [0.1, 1.0, 2.0, 3.5] {
                let sigma = (scale / n).sqrt();
                let u = format!("variance_scaling({scale}, {mode}, uniform)");
                assert_close(bound(&u), (3.0 * scale / n).sqrt(), 1e-14);
                let nn =
                    format!("variance_scaling(scale={scale}, mode={mode}, distribution=normal)");
                assert_close(normal_std(&nn), sigma, 1e-14);
                let t = format!("variance_scaling({scale}, {mode}, truncated_normal)");
                keras_truncated(&t, sigma);
                // Keras's default distribution is truncated_normal.
                keras_truncated(&format!("variance_scaling({scale}, {mode})"), sigma);
            }
        }
        keras_truncated("variance_scaling", (1.0f64 / 256.0).sqrt());
    }

    #[test]
    fn he_fan_out_with_every_gain() {
        let gains = [
            ("linear", 1.0),
            ("identity", 1.0),
            ("sigmoid", 1.0),
            ("tanh", 5.0 / 3.0),
            ("relu", 2f64.sqrt()),
            ("leaky_relu", (2.0 / (1.0 + 0.01 * 0.01f64)).sqrt()),
            ("leaky_relu(0.2)", (2.0 / 1.04f64).sqrt()),
            ("leaky_relu(negative_slope=0.3)", (2.0 / 1.09f64).sqrt()),
            ("selu", 0.75),
            ("gelu", 1.533_530_441_195_589),
            ("silu", 1.676_532_470_331_114_6),
            ("swish", 1.676_532_470_331_114_6),
            ("elu", 1.245_198_300_700_735_4),
            ("mish", 1.486_847_581_273_240_7),
        ];
        for (nl, g) in gains {
            let parsed = Nonlinearity::parse(nl).unwrap();
            assert_close(parsed.gain(), g, 1e-15);
            for (mode, n) in [("fan_in", 256f64), ("fan_out", 128f64)] {
                let std = g / n.sqrt();
                let hn = format!("he_normal(mode={mode}, nonlinearity={nl})");
                assert_close(normal_std(&hn), std, 1e-14);
                let hu = format!("kaiming_uniform(mode={mode}, nonlinearity={nl})");
                assert_close(bound(&hu), 3f64.sqrt() * std, 1e-14);
                keras_truncated(
                    &format!("he_truncated_normal(mode={mode}, nonlinearity={nl})"),
                    std,
                );
            }
        }
    }

    #[test]
    fn second_moment_gains_keep_the_signal() {
        // g = 1/√E[f(z)²], z ~ N(0, 1), by quadrature on [−12, 12].
        let erf = |x: f64| {
            // Abramowitz–Stegun 7.1.26 is too coarse; integrate the density instead.
            let n = 4000;
            let h = x / f64::from(n);
            let mut s = 0.0;
            for i in 0..=n {
                let t = f64::from(i) * h;
                let w = if i == 0 || i == n {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                s += w * (-t * t).exp();
            }
            s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
        };
        let phi = |x: f64| 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
        let gelu = |x: f64| x * phi(x);
        let silu = |x: f64| x / (1.0 + (-x).exp());
        let elu = |x: f64| if x > 0.0 { x } else { x.exp() - 1.0 };
        let mish = |x: f64| x * ((1.0 + x.exp()).ln()).tanh();
        let moment = |f: &dyn Fn(f64) -> f64| {
            let n = 24_000;
            let (a, b) = (-12.0, 12.0);
            let h = (b - a) / f64::from(n);
            let mut s = 0.0;
            for i in 0..=n {
                let x = a + f64::from(i) * h;
                let w = if i == 0 || i == n {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                let y = f(x);
                s += w * y * y * (-0.5 * x * x).exp();
            }
            s * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
        };
        for (nl, f) in [
            (Nonlinearity::Gelu, &gelu as &dyn Fn(f64) -> f64),
            (Nonlinearity::Silu, &silu),
            (Nonlinearity::Elu, &elu),
            (Nonlinearity::Mish, &mish),
        ] {
            assert_close(nl.gain(), 1.0 / moment(f).sqrt(), 1e-6);
        }
        let relu = |x: f64| x.max(0.0);
        assert_close(Nonlinearity::Relu.gain(), 1.0 / moment(&relu).sqrt(), 1e-9);
    }

    #[test]
    fn fixed_distributions() {
        assert_eq!(sampler("zeros"), Sampler::Constant(0.0));
        assert_eq!(sampler("ones"), Sampler::Constant(1.0));
        assert_eq!(sampler("constant(0.1)"), Sampler::Constant(0.1));
        assert_eq!(sampler("constant(value=-2.5)"), Sampler::Constant(-2.5));
        assert_eq!(
            sampler("uniform(-0.05, 0.05)"),
            Sampler::Uniform {
                lo: -0.05,
                hi: 0.05
            }
        );
        assert_eq!(
            sampler("uniform(a=0, b=1)"),
            Sampler::Uniform { lo: 0.0, hi: 1.0 }
        );
        assert_eq!(
            sampler("normal"),
            Sampler::Normal {
                mean: 0.0,
                std: 1.0
            }
        );
        assert_eq!(
            sampler("normal(0, 0.02)"),
            Sampler::Normal {
                mean: 0.0,
                std: 0.02
            }
        );
        assert_eq!(
            sampler("normal(std=0.5)"),
            Sampler::Normal {
                mean: 0.0,
                std: 0.5
            }
        );
        // Keras TruncatedNormal / JAX truncated_normal: ±2 std about the mean, parent std.
        assert_eq!(
            sampler("truncated_normal(1, 0.5)"),
            Sampler::TruncatedNormal {
                mean: 1.0,
                std: 0.5,
                lo: 0.0,
                hi: 2.0
            }
        );
        // PyTorch trunc_normal_: absolute bounds.
        assert_eq!(
            sampler("truncated_normal(0, 0.02, -2, 2)"),
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 0.02,
                lo: -2.0,
                hi: 2.0
            }
        );
        // JAX truncated_normal(lower, upper) / timm trunc_normal_tf_: std units.
        assert_eq!(
            sampler("truncated_normal_sd(1, 0.5, -1, 3)"),
            Sampler::TruncatedNormal {
                mean: 1.0,
                std: 0.5,
                lo: 0.5,
                hi: 2.5
            }
        );
        assert_eq!(
            sampler("truncated_normal_sd(0, 2)"),
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 2.0,
                lo: -4.0,
                hi: 4.0
            }
        );
        // Fixed distributions need no fans.
        for s in [
            "zeros",
            "constant(3)",
            "uniform(0,1)",
            "normal(0,1)",
            "truncated_normal(0,1)",
        ] {
            assert!(parse(s).sampler(None).unwrap().is_some(), "{s}");
            assert!(!parse(s).needs_fans(), "{s}");
        }
        assert!(parse("zeros").is_symmetric() && parse("constant(2)").is_symmetric());
        assert!(!parse("he").is_symmetric());
    }

    #[test]
    fn sampler_moments_and_cdf() {
        let u = Sampler::Uniform { lo: -1.0, hi: 3.0 };
        assert_eq!(u.mean(), 1.0);
        assert_close(u.std_dev(), 4.0 / 12f64.sqrt(), 1e-15);
        assert_eq!(u.cdf(-2.0), 0.0);
        assert_eq!(u.cdf(1.0), 0.5);
        assert_eq!(u.cdf(5.0), 1.0);
        assert_eq!(u.support(), (-1.0, 3.0));
        let n = Sampler::Normal {
            mean: 1.0,
            std: 2.0,
        };
        assert_close(n.cdf(3.0), 0.841_344_746_068_542_9, 1e-14);
        assert_eq!(n.support(), (f64::NEG_INFINITY, f64::INFINITY));
        let t = Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: 0.0,
            hi: f64::INFINITY,
        };
        // The half-normal: mean √(2/π), std √(1 − 2/π).
        assert_close(t.mean(), (2.0 / std::f64::consts::PI).sqrt(), 1e-13);
        assert_close(
            t.std_dev(),
            (1.0 - 2.0 / std::f64::consts::PI).sqrt(),
            1e-13,
        );
        assert_close(t.cdf(1.0), 2.0 * 0.841_344_746_068_542_9 - 1.0, 1e-13);
        assert_eq!(t.cdf(-1.0), 0.0);
        // A far one-sided tail keeps its precision (no 1 − Φ cancellation).
        let far = Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: 8.0,
            hi: f64::INFINITY,
        };
        assert!(far.mean() > 8.0 && far.mean() < 8.2, "{}", far.mean());
        assert_close(
            far.cdf(8.1),
            1.0 - (-0.5 * (8.1f64 * 8.1 - 64.0)).exp() * 8.0 / 8.1,
            2e-2,
        );
        assert_eq!(Sampler::Constant(2.0).std_dev(), 0.0);
    }

    #[test]
    fn expected_std_of_structured_schemes() {
        let o = parse("orthogonal(gain=2)");
        // rows ≤ cols: orthonormal rows of norm gain, each element std gain/√cols.
        assert_close(
            o.expected_std(&[128, 256], None).unwrap(),
            2.0 / 16.0,
            1e-15,
        );
        assert_close(
            o.expected_std(&[256, 128], None).unwrap(),
            2.0 / 16.0,
            1e-15,
        );
        let e = parse("eye");
        let p: f64 = 4.0 / 32.0;
        assert_close(
            e.expected_std(&[4, 8], None).unwrap(),
            (p * (1.0 - p)).sqrt(),
            1e-15,
        );
        let d = parse("dirac");
        let p: f64 = 4.0 / (4.0 * 4.0 * 9.0);
        assert_close(
            d.expected_std(&[4, 4, 3, 3], None).unwrap(),
            (p * (1.0 - p)).sqrt(),
            1e-15,
        );
        assert_close(
            parse("he_normal")
                .expected_std(&[128, 256], Some(FANS))
                .unwrap(),
            (2.0f64 / 256.0).sqrt(),
            1e-15,
        );
        assert!(o.sampler(Some(FANS)).unwrap().is_none());
    }

    #[test]
    fn init_tensor_checks_its_inputs() {
        let s = Stream { seed: 1, key: 2 };
        let mut w = vec![0f32; 12];
        assert!(matches!(
            init_tensor(&Scheme::HE_UNIFORM, &mut w, &[3, 5], Some(FANS), s),
            Err(InitError::LengthMismatch {
                expected: 15,
                got: 12
            })
        ));
        assert!(matches!(
            init_tensor(&Scheme::HE_UNIFORM, &mut w, &[3, 4], None, s),
            Err(InitError::NeedsFans {
                scheme: "he_uniform"
            })
        ));
        assert!(matches!(
            init_tensor(
                &Scheme::HE_UNIFORM,
                &mut w,
                &[3, 4],
                Some(Fans {
                    fan_in: 0,
                    fan_out: 3
                }),
                s
            ),
            Err(InitError::ZeroFan { fan_in: 0, .. })
        ));
        assert!(matches!(
            init_tensor(&Scheme::HE_UNIFORM, &mut w, &[usize::MAX, 2], Some(FANS), s),
            Err(InitError::BadShape(_))
        ));
        init_tensor(&Scheme::HE_UNIFORM, &mut w, &[3, 4], Some(FANS), s).unwrap();
        let b = (6.0f32 / 256.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= b) && w.iter().any(|&x| x != 0.0));
        init_tensor(&Scheme::ZEROS, &mut w, &[12], None, s).unwrap();
        assert!(w.iter().all(|&x| x == 0.0));
        init_tensor(&parse("constant(0.1)"), &mut w, &[2, 6], None, s).unwrap();
        assert!(w.iter().all(|&x| x == 0.1f32));
        let mut e: Vec<f32> = vec![];
        init_tensor(&Scheme::HE_UNIFORM, &mut e, &[0, 4], Some(FANS), s).unwrap();
    }
}

mod fans {
    use super::*;

    /// (case, weight shape, groups, transposed, true fans).
    type Row<'a> = (&'a str, &'a [usize], u64, bool, (u64, u64));

    fn of(shape: &[usize], layout: Layout, groups: u64, transposed: bool) -> [(u64, u64); 2] {
        let f = |convention| {
            let r = FanRule {
                layout,
                groups,
                transposed,
                convention,
            };
            let f = Fans::of(shape, r).unwrap_or_else(|e| panic!("{shape:?} {r:?}: {e}"));
            (f.fan_in, f.fan_out)
        };
        [f(Convention::True), f(Convention::Framework)]
    }

    /// PyTorch's `_calculate_fan_in_and_fan_out`, transcribed.
    fn torch(shape: &[usize]) -> (u64, u64) {
        let rf: usize = shape[2..].iter().product();
        ((shape[1] * rf) as u64, (shape[0] * rf) as u64)
    }

    /// Keras's `compute_fans`, transcribed.
    fn keras(shape: &[usize]) -> (u64, u64) {
        match shape.len() {
            0 => (1, 1),
            1 => (shape[0] as u64, shape[0] as u64),
            2 => (shape[0] as u64, shape[1] as u64),
            r => {
                let rf: usize = shape[..r - 2].iter().product();
                ((shape[r - 2] * rf) as u64, (shape[r - 1] * rf) as u64)
            }
        }
    }

    #[test]
    fn pytorch_layout_table() {
        use Layout::OutIn;
        // (case, weight shape, groups, transposed, true fans)
        let table: &[Row] = &[
            ("Linear(256, 128)", &[128, 256], 1, false, (256, 128)),
            ("Conv1d(8, 16, 3)", &[16, 8, 3], 1, false, (24, 48)),
            ("Conv2d(8, 16, 3)", &[16, 8, 3, 3], 1, false, (72, 144)),
            ("Conv3d(8, 16, 3)", &[16, 8, 3, 3, 3], 1, false, (216, 432)),
            (
                "Conv2d(8, 16, (3, 5))",
                &[16, 8, 3, 5],
                1,
                false,
                (120, 240),
            ),
            (
                "Conv2d(8, 16, 3, groups=4)",
                &[16, 2, 3, 3],
                4,
                false,
                (18, 36),
            ),
            (
                "Conv2d(4, 4, 3, groups=4) depthwise",
                &[4, 1, 3, 3],
                4,
                false,
                (9, 9),
            ),
            (
                "Conv2d(4, 8, 3, groups=4) depthwise ×2",
                &[8, 1, 3, 3],
                4,
                false,
                (9, 18),
            ),
            ("Conv1d(6, 6, 5, groups=6)", &[6, 1, 5], 6, false, (5, 5)),
            (
                "ConvTranspose2d(8, 16, 3)",
                &[8, 16, 3, 3],
                1,
                true,
                (72, 144),
            ),
            (
                "ConvTranspose2d(8, 16, 3, groups=2)",
                &[8, 8, 3, 3],
                2,
                true,
                (36, 72),
            ),
            (
                "ConvTranspose1d(4, 4, 3, groups=4)",
                &[4, 1, 3],
                4,
                true,
                (3, 3),
            ),
            (
                "ConvTranspose3d(2, 6, 2)",
                &[2, 6, 2, 2, 2],
                1,
                true,
                (16, 48),
            ),
        ];
        for &(case, shape, g, t, want) in table {
            let [tru, fw] = of(shape, OutIn, g, t);
            assert_eq!(tru, want, "{case}: true fans");
            assert_eq!(fw, torch(shape), "{case}: PyTorch's fans");
        }
        // The example of PyTorch issue #23854.
        assert_eq!(of(&[4, 1, 3, 3], OutIn, 4, false), [(9, 9), (9, 36)]);
    }

    #[test]
    fn keras_layout_table() {
        use Layout::InOut;
        let table: &[Row] = &[
            ("Dense(128) on 256", &[256, 128], 1, false, (256, 128)),
            ("Conv1D(16, 3) on 8", &[3, 8, 16], 1, false, (24, 48)),
            ("Conv2D(16, 3) on 8", &[3, 3, 8, 16], 1, false, (72, 144)),
            (
                "Conv3D(16, 3) on 8",
                &[3, 3, 3, 8, 16],
                1,
                false,
                (216, 432),
            ),
            (
                "Conv2D(16, 3, groups=4) on 8",
                &[3, 3, 2, 16],
                4,
                false,
                (18, 36),
            ),
            // Keras's ConvTranspose kernel is [k…, filters, in] (TensorFlow #31192).
            (
                "Conv2DTranspose(16, 3) on 8",
                &[3, 3, 16, 8],
                1,
                true,
                (72, 144),
            ),
            (
                "Conv2DTranspose(16, 3, groups=2) on 8",
                &[3, 3, 8, 8],
                2,
                true,
                (36, 72),
            ),
        ];
        for &(case, shape, g, t, want) in table {
            let [tru, fw] = of(shape, InOut, g, t);
            assert_eq!(tru, want, "{case}: true fans");
            assert_eq!(fw, keras(shape), "{case}: Keras's fans");
        }
        // Keras below rank 2.
        let k = FanRule {
            layout: InOut,
            convention: Convention::Framework,
            ..FanRule::default()
        };
        assert_eq!(
            Fans::of(&[7], k).unwrap(),
            Fans {
                fan_in: 7,
                fan_out: 7
            }
        );
        assert_eq!(
            Fans::of(&[], k).unwrap(),
            Fans {
                fan_in: 1,
                fan_out: 1
            }
        );
    }

    #[test]
    fn layouts_agree_on_transposed_shapes() {
        // The same Conv2d in both layouts: [out, in, kh, kw] and [kh, kw, in, out].
        for g in [1, 2, 4] {
            let oi = of(&[16, 8 / g as usize, 3, 5], Layout::OutIn, g, false);
            let io = of(&[3, 5, 8 / g as usize, 16], Layout::InOut, g, false);
            assert_eq!(oi[0], io[0], "groups {g}");
        }
        assert_eq!(FanRule::dense(Layout::InOut).layout, Layout::InOut);
        assert_eq!(FanRule::default(), FanRule::dense(Layout::OutIn));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let r = FanRule::default();
        for rank in 0..2 {
            let shape = vec![4; rank];
            assert!(matches!(
                Fans::of(&shape, r),
                Err(InitError::RankTooLow { min: 2, .. })
            ));
            let torch = FanRule {
                convention: Convention::Framework,
                ..r
            };
            assert!(
                Fans::of(&shape, torch).is_err(),
                "PyTorch raises below rank 2"
            );
        }
        let g0 = FanRule { groups: 0, ..r };
        assert!(matches!(Fans::of(&[4, 4], g0), Err(InitError::BadShape(_))));
        let g3 = FanRule { groups: 3, ..r };
        assert!(matches!(
            Fans::of(&[4, 4, 3], g3),
            Err(InitError::BadShape(_))
        ));
        let big = [usize::MAX / 2, 4, 4];
        assert!(Fans::of(&big, r).is_err());
        assert!(Fans::new(0, 3).is_err() && Fans::new(3, 0).is_err());
        assert_eq!(
            Fans::new(3, 4).unwrap(),
            Fans {
                fan_in: 3,
                fan_out: 4
            }
        );
    }

    #[test]
    fn explicit_axes() {
        // JAX defaults (in_axis −2, out_axis −1) on a conv kernel.
        let f = Fans::of_axes(&[3, 3, 8, 16], &[-2], &[-1], &[]).unwrap();
        assert_eq!(
            f,
            Fans {
                fan_in: 72,
                fan_out: 144
            }
        );
        // The same through positive axes and through the OutIn view of PyTorch.
        assert_eq!(
            Fans::of_axes(&[16, 8, 3, 3], &[1], &[0], &[]).unwrap(),
            Fans {
                fan_in: 72,
                fan_out: 144
            }
        );
        // Batch axes are left out (stacked / vmapped weights).
        assert_eq!(
            Fans::of_axes(&[5, 8, 16], &[1], &[2], &[0]).unwrap(),
            Fans {
                fan_in: 8,
                fan_out: 16
            }
        );
        // Several input axes (Keras EinsumDense / Flax DenseGeneral).
        assert_eq!(
            Fans::of_axes(&[4, 6, 10], &[0, 1], &[2], &[]).unwrap(),
            Fans {
                fan_in: 24,
                fan_out: 10
            }
        );
        // Flax Embed (V, D) with in_axis −2 and out_axis 0: fan_in = D.
        assert_eq!(
            Fans::of_axes(&[1000, 64], &[-2], &[0], &[]).unwrap(),
            Fans {
                fan_in: 64,
                fan_out: 64
            }
        );
        // Errors: out of range, named twice in one list, fractional fans.
        assert!(Fans::of_axes(&[3, 4], &[2], &[0], &[]).is_err());
        assert!(Fans::of_axes(&[3, 4], &[-3], &[0], &[]).is_err());
        assert!(Fans::of_axes(&[3, 4], &[0, 0], &[1], &[]).is_err());
        assert!(Fans::of_axes(&[3, 4], &[0, 1], &[0], &[1]).is_err());
        // Zero-sized axes: no connections, no error.
        assert_eq!(
            Fans::of_axes(&[0, 4], &[0], &[1], &[]).unwrap(),
            Fans {
                fan_in: 0,
                fan_out: 0
            }
        );
    }
}

mod grammar {
    use super::*;

    /// A valid spelling of each name in the grammar's list.
    fn spelled(name: &str) -> String {
        match name {
            "constant" => "constant(0.5)".into(),
            "truncated_normal" | "truncated_normal_sd" => format!("{name}(0, 0.02)"),
            _ => name.into(),
        }
    }

    #[test]
    fn every_name_and_alias_parses() {
        for name in SCHEME_NAMES {
            let s = parse(&spelled(name));
            // Every fan-based scheme gives a sampler for fans; structured ones give none.
            let smp = s.sampler(Some(FANS)).unwrap();
            assert!(smp.is_none_or(|x| x.is_valid()), "{name}");
            assert_eq!(
                smp.is_none(),
                matches!(
                    s.kind(),
                    SchemeKind::Orthogonal { .. }
                        | SchemeKind::Eye { .. }
                        | SchemeKind::Dirac { .. }
                ),
                "{name}"
            );
        }
        for alias in [
            "zero",
            "one",
            "const(2)",
            "randn",
            "trunc_normal(0,1)",
            "trunc_normal_sd(0,1)",
            "xavier_truncated_normal",
            "kaiming_truncated_normal",
            "identity",
            "He_Uniform",
            "HE-NORMAL",
            " glorot_uniform ",
            "xavier-normal( gain = 2 )",
            "Orthogonal(Gain=0.5)",
        ] {
            parse(alias);
        }
        assert_eq!(parse("zero"), Scheme::ZEROS);
        assert_eq!(parse("one"), Scheme::ONES);
        assert_eq!(parse("identity"), parse("eye"));
        assert_eq!(parse("He_Uniform"), Scheme::HE_UNIFORM);
        assert_eq!(parse("he"), Scheme::HE_UNIFORM);
        assert_eq!(parse("glorot"), Scheme::GLOROT_UNIFORM);
        assert_eq!(parse("xavier_normal"), Scheme::GLOROT_NORMAL);
        assert_eq!(parse("kaiming_normal"), Scheme::HE_NORMAL);
        assert_eq!(parse("lecun"), Scheme::LECUN_UNIFORM);
        assert_eq!(parse("lecun_normal"), Scheme::LECUN_NORMAL);
        assert_eq!(parse("uniform"), Scheme::FAN_IN_UNIFORM);
        assert_eq!(parse("fan_in_uniform"), Scheme::FAN_IN_UNIFORM);
        assert_eq!(parse("normal"), Scheme::normal(0.0, 1.0).unwrap());
        // Every nonlinearity name parses.
        for name in init_core::scheme::NONLINEARITY_NAMES {
            Nonlinearity::parse(name).unwrap();
            parse(&format!("he_normal(nonlinearity={name})"));
        }
    }

    fn all_schemes() -> Vec<Scheme> {
        let mut v = vec![
            Scheme::ZEROS,
            Scheme::ONES,
            Scheme::FAN_IN_UNIFORM,
            Scheme::GLOROT_UNIFORM,
            Scheme::GLOROT_NORMAL,
            Scheme::HE_UNIFORM,
            Scheme::HE_NORMAL,
            Scheme::LECUN_UNIFORM,
            Scheme::LECUN_NORMAL,
            Scheme::constant(0.1).unwrap(),
            Scheme::constant(-1e-8).unwrap(),
            Scheme::constant(1e20).unwrap(),
            Scheme::constant(1.0 / 3.0).unwrap(),
            Scheme::uniform(-0.05, 0.05).unwrap(),
            Scheme::uniform(0.0, 1.0).unwrap(),
            Scheme::uniform(-1e-12, 3e-7).unwrap(),
            Scheme::normal(0.0, 0.02).unwrap(),
            Scheme::normal(-1.5, 1e-30).unwrap(),
            Scheme::truncated_normal(0.0, 0.02).unwrap(),
            Scheme::truncated_normal(0.1, 0.3).unwrap(),
            Scheme::truncated_normal_abs(0.0, 1.0, -2.0, 2.0).unwrap(),
            Scheme::truncated_normal_abs(0.0, 0.02, -0.04, 1.0).unwrap(),
            Scheme::truncated_normal_sd(0.0, 1.0, -1.0, 3.0).unwrap(),
            Scheme::truncated_normal_sd(0.1, 0.3, -2.0, 2.0).unwrap(),
            Scheme::truncated_normal_sd(0.7, 0.1, 2.5, 7.0).unwrap(),
            Scheme::orthogonal(1.0).unwrap(),
            Scheme::orthogonal(2.0_f64.sqrt()).unwrap(),
            Scheme::eye(1.0).unwrap(),
            Scheme::eye(0.5).unwrap(),
            Scheme::dirac(1).unwrap(),
            Scheme::dirac(4).unwrap(),
            Scheme::lecun(Distribution::TruncatedNormal),
        ];
        for d in [
            Distribution::Uniform,
            Distribution::Normal,
            Distribution::TruncatedNormal,
        ] {
            v.push(Scheme::glorot(d, 1.0).unwrap());
            v.push(Scheme::glorot(d, 5.0 / 3.0).unwrap());
            v.push(Scheme::lecun(d));
            for mode in [
                FanMode::FanIn,
                FanMode::FanOut,
                FanMode::FanAvg,
                FanMode::FanGeoAvg,
            ] {
                v.push(Scheme::variance_scaling(2.0, mode, d).unwrap());
                v.push(Scheme::variance_scaling(0.1, mode, d).unwrap());
                for nl in [
                    Nonlinearity::Linear,
                    Nonlinearity::Sigmoid,
                    Nonlinearity::Tanh,
                    Nonlinearity::Relu,
                    Nonlinearity::LeakyRelu(0.01),
                    Nonlinearity::LeakyRelu(0.2),
                    Nonlinearity::LeakyRelu(5f64.sqrt()),
                    Nonlinearity::Selu,
                    Nonlinearity::Gelu,
                    Nonlinearity::Silu,
                    Nonlinearity::Elu,
                    Nonlinearity::Mish,
                ] {
                    v.push(Scheme::he(d, mode, nl).unwrap());
                }
            }
        }
        v
    }

    #[test]
    fn display_parse_round_trips() {
        for s in all_schemes() {
            let text = s.to_string();
            let back = Scheme::parse(&text).unwrap_or_else(|e| panic!("`{text}` ({s:?}): {e}"));
            assert_eq!(back, s, "`{text}`");
            assert_eq!(back.to_string(), text);
            assert!(text.starts_with(s.name()), "`{text}` vs name {}", s.name());
        }
        // Canonical spellings.
        assert_eq!(parse("kaiming").to_string(), "he_uniform");
        assert_eq!(parse("xavier_normal(gain=1)").to_string(), "glorot_normal");
        assert_eq!(
            parse("kaiming_normal(mode=fan_out, nonlinearity=leaky_relu(0.2))").to_string(),
            "he_normal(mode=fan_out,nonlinearity=leaky_relu(0.2))"
        );
        assert_eq!(parse("normal(0,0.02)").to_string(), "normal(0,0.02)");
        assert_eq!(parse("constant(1)").to_string(), "ones");
        assert_eq!(
            parse("truncated_normal(0,1)").to_string(),
            "truncated_normal(0,1)"
        );
        assert_eq!(
            parse("truncated_normal(0,1,-2,2)").to_string(),
            "truncated_normal(0,1,-2,2)"
        );
        assert!(matches!(
            parse("truncated_normal(0,1,-2,2)").kind(),
            SchemeKind::TruncatedNormal {
                form: TruncForm::Absolute,
                ..
            }
        ));
        assert_eq!(
            parse("variance_scaling").to_string(),
            "variance_scaling(1,fan_in,truncated_normal)"
        );
        assert_eq!(parse("dirac(groups=2)").to_string(), "dirac(groups=2)");
        assert_eq!(
            parse("glorot_uniform(gain=5/3)"),
            Scheme::glorot(Distribution::Uniform, 5.0 / 3.0).unwrap()
        );
    }

    #[test]
    fn unknown_names_get_suggestions() {
        for (bad, best) in [
            ("hee", "he"),
            ("he_unifrom", "he_uniform"),
            ("glorot_unifrom", "glorot_uniform"),
            ("xavier_norml", "xavier_normal"),
            ("orthogonl", "orthogonal"),
            ("kaiming_norm", "kaiming_normal"),
            ("lecun_nromal", "lecun_normal"),
            ("zeroes", "zeros"),
            ("diract", "dirac"),
        ] {
            match Scheme::parse(bad) {
                Err(e @ SchemeError::UnknownScheme { .. }) => {
                    let SchemeError::UnknownScheme {
                        ref suggestions, ..
                    } = e
                    else {
                        unreachable!()
                    };
                    assert_eq!(suggestions.first(), Some(&best), "{bad}: {suggestions:?}");
                    let msg = e.to_string();
                    assert!(msg.contains("did you mean") && msg.contains(best), "{msg}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for (bad, best) in [
            ("rleu", "relu"),
            ("tahn", "tanh"),
            ("leaky_rlu", "leaky_relu"),
            ("sigmod", "sigmoid"),
        ] {
            match Nonlinearity::parse(bad) {
                Err(SchemeError::UnknownNonlinearity { suggestions, .. }) => {
                    assert_eq!(suggestions.first(), Some(&best), "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        match Scheme::parse("he_normal(nonlinearity=rleu)") {
            Err(SchemeError::UnknownNonlinearity { suggestions, .. }) => {
                assert_eq!(suggestions.first(), Some(&"relu"));
            }
            other => panic!("{other:?}"),
        }
        // Nothing close: no suggestion, but the list of valid names.
        let Err(e) = Scheme::parse("qqqqqqqqqqqq") else {
            panic!()
        };
        assert!(e.to_string().contains("valid schemes"), "{e}");
    }

    #[test]
    fn bad_parameters_are_errors() {
        let bad_value = [
            "normal(0, -1)",
            "normal(0, 0)",
            "normal(0, 1e999)",
            "uniform(1, 0)",
            "uniform(1, 1)",
            "uniform(-1e999, 0)",
            "truncated_normal(0, -0.1)",
            "truncated_normal(0, 1, 2, 1)",
            "truncated_normal(0, 1, 40, 50)",
            "truncated_normal(0, 1, -50, -40)",
            "truncated_normal_sd(0, 1, 3, 3)",
            "glorot_uniform(gain=0)",
            "glorot_normal(gain=-1)",
            "variance_scaling(0, fan_in, uniform)",
            "variance_scaling(-2, fan_in, uniform)",
            "orthogonal(gain=0)",
            "eye(gain=0)",
            "dirac(groups=0)",
            "dirac(groups=1.5)",
            "dirac(groups=-2)",
            "constant(1e999)",
        ];
        for text in bad_value {
            assert!(
                matches!(Scheme::parse(text), Err(SchemeError::BadValue { .. })),
                "{text}: {:?}",
                Scheme::parse(text)
            );
        }
        let bad_parameter = [
            "he_uniform(foo=1)",
            "he_uniform(mode=fan_out, mode=fan_in)",
            "normal(std=1, std=2)",
            "normal(std=1, sigma=2)",
            "constant()",
            "constant",
            "truncated_normal(0)",
            "truncated_normal",
            "truncated_normal(0, 1, -1)",
            "normal(0, 1, 2)",
            "zeros(1)",
            "lecun_uniform(gain=2)",
            "he_uniform(mode=fan_sideways)",
            "variance_scaling(1, fan_in, cauchy)",
            "he_uniform(nonlinearity=relu(2))",
            "he_uniform(mode=1)",
            "normal(std=relu)",
            "uniform(0)",
        ];
        for text in bad_parameter {
            assert!(
                matches!(Scheme::parse(text), Err(SchemeError::BadParameter { .. })),
                "{text}: {:?}",
                Scheme::parse(text)
            );
        }
        let syntax = [
            "",
            " ",
            "(",
            "he_uniform(",
            "he_uniform)",
            "normal(0,,1)",
            "normal(0 1)",
            "he uniform",
            "5",
            "normal(0,1))",
            "constant(1/0)",
            "constant(--1)",
            "normal(0,1e)",
            "normal(0, .)",
            "normal(=1)",
            "é",
            "he_uniform(gain=)",
        ];
        for text in syntax {
            assert!(
                matches!(Scheme::parse(text), Err(SchemeError::Syntax { .. })),
                "{text:?}: {:?}",
                Scheme::parse(text)
            );
        }
        // The typed constructors check NaN and infinities.
        assert!(Scheme::constant(f64::NAN).is_err());
        assert!(Scheme::uniform(f64::NAN, 1.0).is_err());
        assert!(Scheme::uniform(0.0, f64::INFINITY).is_err());
        assert!(Scheme::normal(f64::NAN, 1.0).is_err());
        assert!(Scheme::normal(0.0, f64::NAN).is_err());
        assert!(Scheme::truncated_normal_abs(0.0, 1.0, f64::NAN, 1.0).is_err());
        assert!(Scheme::truncated_normal_sd(0.0, 1.0, -1.0, f64::NAN).is_err());
        assert!(Scheme::glorot(Distribution::Uniform, f64::NAN).is_err());
        assert!(
            Scheme::he(
                Distribution::Uniform,
                FanMode::FanIn,
                Nonlinearity::LeakyRelu(f64::NAN)
            )
            .is_err()
        );
        assert!(
            Scheme::variance_scaling(f64::INFINITY, FanMode::FanIn, Distribution::Normal).is_err()
        );
        assert!(Scheme::orthogonal(f64::NAN).is_err());
        assert!(Scheme::eye(f64::INFINITY).is_err());
        assert!(Scheme::dirac(0).is_err());
        assert!(Nonlinearity::parse("leaky_relu(1e999)").is_err());
        assert!(Nonlinearity::parse("tanh(1)").is_err());
        assert!(Nonlinearity::parse("0.5").is_err());
        // Zero fans: an error from the sampler, never a panic or an infinite bound.
        for s in [
            "he_uniform",
            "glorot_normal",
            "lecun_truncated_normal",
            "variance_scaling(1, fan_out, uniform)",
        ] {
            for f in [
                None,
                Some(Fans {
                    fan_in: 0,
                    fan_out: 5,
                }),
                Some(Fans {
                    fan_in: 5,
                    fan_out: 0,
                }),
            ] {
                // No fans at all is its own error ("needs fans"), not "fan_in = 0".
                let ok = match f {
                    None => matches!(parse(s).sampler(f), Err(InitError::NeedsFans { .. })),
                    Some(_) => matches!(parse(s).sampler(f), Err(InitError::ZeroFan { .. })),
                };
                assert!(ok, "{s} {f:?}");
            }
        }
    }

    #[test]
    fn parser_never_panics() {
        // Deterministic pseudo-random strings over the grammar's alphabet.
        let alphabet: Vec<char> = "he_unifomrlalgtzsc(),=.-+0123456789 eE/_xvkdpy\u{e9}"
            .chars()
            .collect();
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(scheme) = Scheme::parse(&s) {
                ok += 1;
                assert_eq!(Scheme::parse(&scheme.to_string()).unwrap(), scheme, "{s}");
            }
            let _ = Nonlinearity::parse(&s);
        }
        // Mutations of valid names.
        for base in [
            "he_normal(mode=fan_out,nonlinearity=leaky_relu(0.2))",
            "truncated_normal(0,1,-2,2)",
            "variance_scaling(2,fan_avg,uniform)",
        ] {
            for i in 0..=base.len() {
                for c in ['(', ')', ',', '=', '-', '1', 'e', ' '] {
                    if base.is_char_boundary(i) {
                        let mut s = base.to_string();
                        s.insert(i, c);
                        let _ = Scheme::parse(&s);
                        let mut t = base.to_string();
                        t.truncate(i);
                        let _ = Scheme::parse(&t);
                    }
                }
            }
        }
        assert!(ok > 0);
    }
}

/// Bit patterns of the native element type.
trait Bits: Element {
    fn bits(self) -> u64;
}
impl Bits for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}
impl Bits for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}
impl Bits for f16 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}
impl Bits for bf16 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

/// PyTorch parity by name, the one-call fill and the errors that point at the fix.
mod user_terms {
    use super::*;
    use init_core::Seed;

    #[test]
    fn kaiming_uniform_a_sqrt5_is_torch_linear_default() {
        // PyTorch nn.Linear / nn.Conv reset_parameters: kaiming_uniform_(w, a=√5), whose
        // documented result is U(±1/√fan_in) (gain √(2/(1+5)) = √(1/3), bound gain·√(3/fan_in)).
        for text in [
            "kaiming_uniform(a = 2.23606797749979)",
            "he_uniform(a=2.23606797749979)",
            "kaiming_uniform(a = 2.23606797749979, nonlinearity = leaky_relu)",
        ] {
            assert_close(bound(text), 1.0 / 256f64.sqrt(), 1e-12);
        }
        // a = 0 is ReLU's gain √2, as in PyTorch.
        assert_close(bound("he_uniform(a = 0)"), (6.0f64 / 256.0).sqrt(), 1e-12);
        // `a` with a nonlinearity other than leaky_relu is contradictory: an error that says so.
        let e = Scheme::parse("he_uniform(a = 2, nonlinearity = tanh)").unwrap_err();
        assert!(e.to_string().contains("negative slope"), "{e}");
    }

    #[test]
    fn conv_op_names_have_gain_one() {
        // torch.nn.init.calculate_gain: conv1d..conv_transpose3d all return 1.
        for name in [
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
        ] {
            assert_eq!(Nonlinearity::parse(name).unwrap().gain(), 1.0, "{name}");
            let s = parse(&format!("he_normal(nonlinearity = {name})"));
            assert_close(normal_std(&s.to_string()), (1.0f64 / 256.0).sqrt(), 1e-12);
        }
    }

    #[test]
    fn unknown_parameters_suggest_and_list() {
        let e = Scheme::parse("he_normal(mod = fan_out)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `mode`"), "{e}");
        assert!(e.contains("takes: a, mode, nonlinearity"), "{e}");
        let e = Scheme::parse("he_normal(nonlinearty = tanh)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `nonlinearity`"), "{e}");
        let e = Scheme::parse("zeros(1)").unwrap_err().to_string();
        assert!(e.contains("takes no parameters"), "{e}");
    }

    #[test]
    fn keras_class_names_suggest_the_keras_distribution() {
        // Keras's HeNormal/GlorotNormal/LecunNormal draw from a truncated normal
        // (keras/src/initializers/random_initializers.py: VarianceScaling with
        // distribution="truncated_normal").
        for (class, want) in [
            ("HeNormal", "he_truncated_normal"),
            ("GlorotNormal", "glorot_truncated_normal"),
            ("LecunNormal", "lecun_truncated_normal"),
            ("HeUniform", "he_uniform"),
        ] {
            match Scheme::parse(class) {
                Err(e @ SchemeError::UnknownScheme { .. }) => {
                    let SchemeError::UnknownScheme {
                        ref suggestions, ..
                    } = e
                    else {
                        unreachable!()
                    };
                    assert_eq!(suggestions.first(), Some(&want), "{class}");
                    assert!(e.to_string().contains(&format!("Keras's `{class}`")), "{e}");
                }
                other => panic!("{class}: {other:?}"),
            }
        }
    }

    #[test]
    fn fill_reads_fans_from_the_shape_and_hashes_the_name() {
        let scheme = parse("he_normal");
        let mut one = vec![0f32; 32 * 16 * 9];
        scheme
            .fill(
                &mut one,
                &[32, 16, 3, 3],
                FanRule::default(),
                Seed(42),
                "conv.weight",
            )
            .unwrap();
        let mut two = vec![0f32; 32 * 16 * 9];
        init_tensor(
            &scheme,
            &mut two,
            &[32, 16, 3, 3],
            Some(Fans {
                fan_in: 16 * 9,
                fan_out: 32 * 9,
            }),
            Stream {
                seed: 42,
                key: key_of("conv.weight"),
            },
        )
        .unwrap();
        assert_eq!(bits(&one), bits(&two));
        // Grouped rule: torch's depthwise Conv2d(32, 32, 3, groups=32) weight [32, 1, 3, 3]
        // has true fans (9, 9).
        let rule = FanRule {
            groups: 32,
            ..FanRule::default()
        };
        let mut dw = vec![0f32; 32 * 9];
        scheme
            .fill(&mut dw, &[32, 1, 3, 3], rule, Seed(1), "dw.weight")
            .unwrap();
        let mut want = vec![0f32; 32 * 9];
        init_tensor(
            &scheme,
            &mut want,
            &[32, 1, 3, 3],
            Some(Fans {
                fan_in: 9,
                fan_out: 9,
            }),
            Stream {
                seed: 1,
                key: key_of("dw.weight"),
            },
        )
        .unwrap();
        assert_eq!(bits(&dw), bits(&want));
        // A scheme without fans fills a bias; a fan scheme on a bias is a clear error.
        let mut b = vec![1f32; 8];
        parse("zeros")
            .fill(&mut b, &[8], FanRule::default(), Seed(0), "b")
            .unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
        assert!(matches!(
            scheme.fill(&mut b, &[8], FanRule::default(), Seed(0), "b"),
            Err(InitError::RankTooLow { .. })
        ));
        assert!(matches!(
            parse("zeros").fill(&mut b, &[9], FanRule::default(), Seed(0), "b"),
            Err(InitError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn no_fans_says_needs_fans() {
        let mut w = vec![0f32; 12];
        let e = init_tensor(
            &Scheme::HE_UNIFORM,
            &mut w,
            &[3, 4],
            None,
            Stream { seed: 0, key: 0 },
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs fans"), "{e}");
        assert!(!e.to_string().contains("fan_in = 0"), "{e}");
    }
}

fn bits<T: Bits>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.bits()).collect()
}

use stability::samplers as stability_samplers;

mod stability {
    use super::*;

    const STREAM: Stream = Stream {
        seed: 42,
        key: key_of("pin"),
    };

    /// The samplers whose streams are pinned, covering every kernel: uniform, normal, truncated
    /// normal by rejection (two-sigma and the Keras He variant), and both tail samplers.
    pub(super) fn samplers() -> Vec<(&'static str, Sampler)> {
        vec![
            ("uniform", Sampler::Uniform { lo: -0.5, hi: 1.5 }),
            (
                "normal",
                Sampler::Normal {
                    mean: 0.25,
                    std: 2.0,
                },
            ),
            (
                "trunc_2sigma",
                Sampler::TruncatedNormal {
                    mean: 0.0,
                    std: 1.0,
                    lo: -2.0,
                    hi: 2.0,
                },
            ),
            ("he_truncated_normal", sampler("he_truncated_normal")),
            (
                "trunc_narrow",
                Sampler::TruncatedNormal {
                    mean: 0.0,
                    std: 1.0,
                    lo: 0.1,
                    hi: 0.3,
                },
            ),
            (
                "trunc_far_tail",
                Sampler::TruncatedNormal {
                    mean: 0.0,
                    std: 1.0,
                    lo: 4.0,
                    hi: f64::INFINITY,
                },
            ),
            (
                "trunc_far_left",
                Sampler::TruncatedNormal {
                    mean: 1.0,
                    std: 0.5,
                    lo: f64::NEG_INFINITY,
                    hi: -1.0,
                },
            ),
        ]
    }

    /// The first 4 elements and elements CHUNK .. CHUNK + 2 of a 2·CHUNK tensor.
    fn pins<T: Bits>(s: Sampler) -> Vec<u64> {
        let mut v = vec![T::ZERO; 2 * CHUNK];
        s.fill(&mut v, STREAM);
        let b = bits(&v);
        [&b[..4], &b[CHUNK..CHUNK + 2]].concat()
    }

    fn all_pins() -> Vec<(String, Vec<u64>)> {
        let mut out = vec![];
        for (name, s) in samplers() {
            out.push((format!("{name} f32"), pins::<f32>(s)));
            out.push((format!("{name} f64"), pins::<f64>(s)));
            out.push((format!("{name} f16"), pins::<f16>(s)));
            out.push((format!("{name} bf16"), pins::<bf16>(s)));
        }
        out
    }

    /// Pinned on x86-64 (AVX-512, AVX2 and portable kernels give these same bits).
    const PINS: &[(&str, [u64; 6])] = &[
        // PINS-BEGIN
        (
            "uniform f32",
            [
                0x3f8c1bb7, 0x3f4ca7a0, 0x3e1fab98, 0x3e91b368, 0xbe501730, 0x3f6b74f8,
            ],
        ),
        (
            "uniform f64",
            [
                0x3fe994f414f306ec,
                0x3fd2366d0229fab8,
                0xbfb5d2f72c48c790,
                0x3fe6c032b2f60e2c,
                0x3fed6e9f16097f46,
                0x3fea2e19be8c3934,
            ],
        ),
        (
            "uniform f16",
            [0x3c61, 0x3a65, 0x30fd, 0x348e, 0xb281, 0x3b5c],
        ),
        (
            "uniform bf16",
            [0x3f8c, 0x3f4d, 0x3e20, 0x3e92, 0xbe50, 0x3f6b],
        ),
        (
            "normal f32",
            [
                0xbf0b0fa5, 0xbf5671e0, 0xc005011f, 0x4007b452, 0xbf39799d, 0xc06221c3,
            ],
        ),
        (
            "normal f64",
            [
                0x3fd3166837c8ddd1,
                0xbf809d82b61a8e20,
                0x400e1587c187b607,
                0xbff685bc9105c45a,
                0x3ffd826689f0c3e2,
                0x3fcf06df42fbc279,
            ],
        ),
        (
            "normal f16",
            [0xb858, 0xbab4, 0xc028, 0x403e, 0xb9cc, 0xc311],
        ),
        (
            "normal bf16",
            [0xbf0b, 0xbf56, 0xc005, 0x4008, 0xbf39, 0xc062],
        ),
        (
            "trunc_2sigma f32",
            [
                0xbecb0fa5, 0xbf0b38f0, 0xbf95011f, 0x3f6f68a5, 0xbef9799d, 0xbff221c3,
            ],
        ),
        (
            "trunc_2sigma f64",
            [
                0x3f98b341be46ee85,
                0xbfc084ec15b0d471,
                0x3ffc1587c187b607,
                0xbfea85bc9105c45a,
                0x3fe9826689f0c3e2,
                0xbf6f2417a087b0dd,
            ],
        ),
        (
            "trunc_2sigma f16",
            [0xb658, 0xb85a, 0xbca8, 0x3b7b, 0xb7cc, 0xbf91],
        ),
        (
            "trunc_2sigma bf16",
            [0xbecb, 0xbf0b, 0xbf95, 0x3f6f, 0xbef9, 0xbff2],
        ),
        (
            "he_truncated_normal f32",
            [
                0xbd233c38, 0xbd5fd588, 0xbdef8f9f, 0x3dc07440, 0xbd488bce, 0xbe42a4a5,
            ],
        ),
        (
            "he_truncated_normal f64",
            [
                0x3f63db1770285427,
                0xbf8a8f07101d0505,
                0x3fc6937703303d68,
                0xbfb55214eecac435,
                0x3fb4819bd29a3599,
                0xbf39088b7cd7cb67,
            ],
        ),
        (
            "he_truncated_normal f16",
            [0xa91a, 0xaaff, 0xaf7c, 0x2e04, 0xaa44, 0xb215],
        ),
        (
            "he_truncated_normal bf16",
            [0xbd23, 0xbd60, 0xbdf0, 0x3dc0, 0xbd49, 0xbe43],
        ),
        (
            "trunc_narrow f32",
            [
                0x3e6b7640, 0x3e36bd7b, 0x3e10ded0, 0x3e626709, 0x3e77c863, 0x3e6d6052,
            ],
        ),
        (
            "trunc_narrow f64",
            [
                0x3fcd6ec8086135f8,
                0x3fc21bda0a95f606,
                0x3fd128066a23ffde,
                0x3fc0b6905bae61c4,
                0x3fcef90c6f36ffb5,
                0x3fbbefca93aa5b5c,
            ],
        ),
        (
            "trunc_narrow f16",
            [0x335c, 0x31b6, 0x3087, 0x3313, 0x33be, 0x336b],
        ),
        (
            "trunc_narrow bf16",
            [0x3e6b, 0x3e37, 0x3e11, 0x3e62, 0x3e78, 0x3e6d],
        ),
        (
            "trunc_far_tail f32",
            [
                0x408341ec, 0x408711a5, 0x408be26a, 0x4083ca49, 0x408296ab, 0x4083264c,
            ],
        ),
        (
            "trunc_far_tail f64",
            [
                0x4010683d7df8edb5,
                0x40117c4d4a849d35,
                0x40102a0ca1a2a03e,
                0x4011c6096399f051,
                0x401052d557af5477,
                0x40102623942b5851,
            ],
        ),
        (
            "trunc_far_tail f16",
            [0x441a, 0x4439, 0x445f, 0x441e, 0x4415, 0x4419],
        ),
        (
            "trunc_far_tail bf16",
            [0x4083, 0x4087, 0x408c, 0x4084, 0x4083, 0x4083],
        ),
        (
            "trunc_far_left f32",
            [
                0xbf8683d8, 0xbf8e234a, 0xbf97c4d5, 0xbf879492, 0xbf852d55, 0xbf864c98,
            ],
        ),
        (
            "trunc_far_left f64",
            [
                0xbff0d07afbf1db6a,
                0xbff2f89a95093a6a,
                0xbff054194345407c,
                0xbff38c12c733e0a2,
                0xbff0a5aaaf5ea8ee,
                0xbff04c472856b0a2,
            ],
        ),
        (
            "trunc_far_left f16",
            [0xbc34, 0xbc71, 0xbcbe, 0xbc3d, 0xbc29, 0xbc32],
        ),
        (
            "trunc_far_left bf16",
            [0xbf87, 0xbf8e, 0xbf98, 0xbf88, 0xbf85, 0xbf86],
        ),
        // PINS-END
    ];

    #[test]
    fn values_are_pinned() {
        let got = all_pins();
        if std::env::var_os("INIT_CORE_PRINT_PINS").is_some() {
            for (name, v) in &got {
                let hex: Vec<String> = v.iter().map(|x| format!("{x:#x}")).collect();
                println!("        (\"{name}\", [{}]),", hex.join(", "));
            }
        }
        assert_eq!(
            got.len(),
            PINS.len(),
            "pins missing: run with INIT_CORE_PRINT_PINS=1"
        );
        for ((name, v), (pname, pv)) in got.iter().zip(PINS) {
            assert_eq!(name, pname);
            assert_eq!(v.as_slice(), pv.as_slice(), "{name}: the stream changed");
        }
    }

    #[test]
    fn key_and_chunk_derivation_are_pinned() {
        assert_eq!(key_of(""), init_core::rng::mix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(key_of("fc1.weight"), KEY_FC1);
        let mut l = init_core::rng::Lanes::for_chunk(42, key_of("pin"), 3);
        let first = l.step();
        assert_eq!(first[0], LANE0_STEP0);
        // The contract, transcribed: lane j's state is SplitMix64 outputs 4j .. 4j + 3 from
        // chunk_seed(seed, key, chunk); Xoshiro256++'s output is rotl(s0 + s3, 23) + s0.
        let mut sm = init_core::rng::SplitMix64(init_core::rng::chunk_seed(42, key_of("pin"), 3));
        for (j, &w) in first.iter().enumerate() {
            let s: Vec<u64> = (0..4).map(|_| sm.next_u64()).collect();
            assert_eq!(
                w,
                s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]),
                "lane {j}"
            );
        }
    }
    const KEY_FC1: u64 = 10_928_077_351_693_338_379;
    const LANE0_STEP0: u64 = 8_193_410_140_799_870_536;

    #[test]
    fn first_values_are_plausible() {
        // The pins are not arbitrary: spot-check them against the distributions' supports.
        let mut v = vec![0f64; 64];
        Sampler::Uniform { lo: -0.5, hi: 1.5 }.fill(&mut v, STREAM);
        assert!(v.iter().all(|&x| (-0.5..=1.5).contains(&x)));
        let t = Sampler::TruncatedNormal {
            mean: 0.0,
            std: 1.0,
            lo: 4.0,
            hi: f64::INFINITY,
        };
        t.fill(&mut v, STREAM);
        assert!(v.iter().all(|&x| (4.0..6.5).contains(&x)), "{v:?}");
    }

    fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(f)
    }

    fn thread_independent<T: Bits>(s: Sampler) {
        let len = 5 * CHUNK + 123;
        let one = with_threads(1, || {
            let mut v = vec![T::ZERO; len];
            s.fill(&mut v, STREAM);
            bits(&v)
        });
        let two = with_threads(2, || {
            let mut v = vec![T::ZERO; len];
            s.fill(&mut v, STREAM);
            bits(&v)
        });
        let mut serial = vec![T::ZERO; len];
        s.fill_serial_at(&mut serial, STREAM, 0);
        assert!(one == two, "{s:?} {:?}: 1 vs 2 threads", T::DTYPE);
        assert!(one == bits(&serial), "{s:?} {:?}: pool vs serial", T::DTYPE);
    }

    #[test]
    fn thread_count_does_not_matter() {
        for (_, s) in samplers() {
            thread_independent::<f32>(s);
            thread_independent::<f64>(s);
            thread_independent::<f16>(s);
            thread_independent::<bf16>(s);
        }
    }

    fn sub_ranges<T: Bits>(s: Sampler) {
        let len = 4 * CHUNK + 1000;
        let mut whole = vec![T::ZERO; len];
        s.fill(&mut whole, STREAM);
        // A chunk-aligned piece in the middle, and the tail piece.
        for (start, end) in [
            (CHUNK, 3 * CHUNK),
            (2 * CHUNK, 2 * CHUNK + 77),
            (4 * CHUNK, len),
            (0, 5),
        ] {
            let mut part = vec![T::ZERO; end - start];
            s.fill_at(&mut part, STREAM, start as u64);
            assert!(
                bits(&part) == bits(&whole[start..end]),
                "{s:?} {:?} {start}..{end}",
                T::DTYPE
            );
            s.fill_serial_at(&mut part, STREAM, start as u64);
            assert!(bits(&part) == bits(&whole[start..end]));
        }
        // fill_chunk is the chunk's prefix.
        let mut c = vec![T::ZERO; 333];
        s.fill_chunk(&mut c, STREAM, 2);
        assert!(bits(&c) == bits(&whole[2 * CHUNK..2 * CHUNK + 333]));
    }

    #[test]
    fn fill_at_equals_the_same_range_of_a_whole_fill() {
        for (_, s) in samplers() {
            sub_ranges::<f32>(s);
            sub_ranges::<f64>(s);
            sub_ranges::<f16>(s);
            sub_ranges::<bf16>(s);
        }
    }

    fn prefix<T: Bits>(s: Sampler) {
        // A tensor's last, short chunk holds the prefix of the full chunk; so does every
        // length that is not a multiple of the kernels' blocks.
        let mut full = vec![T::ZERO; 2 * CHUNK];
        s.fill(&mut full, STREAM);
        for len in [CHUNK + 1, CHUNK + 17, CHUNK + 31, CHUNK + 33, 2 * CHUNK - 1] {
            let mut short = vec![T::ZERO; len];
            s.fill(&mut short, STREAM);
            assert!(
                bits(&short) == bits(&full[..len]),
                "{s:?} {:?} len {len}",
                T::DTYPE
            );
        }
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100] {
            let mut short = vec![T::ZERO; len];
            s.fill(&mut short, STREAM);
            assert!(
                bits(&short) == bits(&full[..len]),
                "{s:?} {:?} len {len}",
                T::DTYPE
            );
        }
    }

    #[test]
    fn short_tensors_are_prefixes() {
        for (_, s) in samplers() {
            prefix::<f32>(s);
            prefix::<f64>(s);
            prefix::<f16>(s);
            prefix::<bf16>(s);
        }
    }

    #[test]
    #[should_panic(expected = "not a multiple of the chunk size")]
    fn unaligned_fill_at_is_a_caller_bug() {
        let mut v = vec![0f32; 10];
        Sampler::Normal {
            mean: 0.0,
            std: 1.0,
        }
        .fill_at(&mut v, STREAM, 5);
    }

    #[test]
    fn half_types_are_the_rounded_f32_values() {
        for (name, s) in samplers() {
            let len = CHUNK + 999;
            let mut x = vec![0f32; len];
            let mut h = vec![f16::ZERO; len];
            let mut b = vec![bf16::ZERO; len];
            s.fill(&mut x, STREAM);
            s.fill(&mut h, STREAM);
            s.fill(&mut b, STREAM);
            for i in 0..len {
                assert_eq!(
                    h[i].to_bits(),
                    f16::from_f32(x[i]).to_bits(),
                    "{name} f16 at {i}"
                );
                assert_eq!(
                    b[i].to_bits(),
                    bf16::from_f32(x[i]).to_bits(),
                    "{name} bf16 at {i}"
                );
            }
        }
    }

    #[test]
    fn streams_differ_by_seed_key_and_chunk() {
        let s = Sampler::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let fill = |seed, key| {
            let mut v = vec![0f32; 2 * CHUNK];
            s.fill(&mut v, Stream { seed, key });
            v
        };
        let a = fill(1, key_of("a"));
        assert_ne!(a, fill(2, key_of("a")));
        assert_ne!(a, fill(1, key_of("b")));
        assert_ne!(a[..CHUNK], a[CHUNK..]);
        assert_eq!(a, fill(1, key_of("a")));
    }

    fn isa_equal<T: Bits>(s: Sampler) {
        let len = 2 * CHUNK + 777;
        let mut base = vec![T::ZERO; len];
        s.fill_serial_with(Isa::Portable, &mut base, STREAM, 0);
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.is_available() {
                eprintln!("note: {isa:?} kernels not available here; not compared");
                continue;
            }
            let mut v = vec![T::ZERO; len];
            s.fill_serial_with(isa, &mut v, STREAM, 0);
            assert!(
                bits(&v) == bits(&base),
                "{s:?} {:?}: {isa:?} differs from portable",
                T::DTYPE
            );
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let mut extra = vec![
            // Bounds that clip some values in f32 and land between f16 steps.
            Sampler::Uniform {
                lo: -1e-5,
                hi: 3e-5,
            },
            Sampler::Uniform { lo: 1e3, hi: 7e4 },
            Sampler::Normal {
                mean: 0.0,
                std: 1e-6,
            },
            Sampler::Normal {
                mean: -3.0,
                std: 30_000.0,
            },
            Sampler::TruncatedNormal {
                mean: 0.0,
                std: 1.0,
                lo: -0.7,
                hi: 3.0,
            },
            Sampler::Constant(0.3),
            // f32 subnormal outputs (AVX512-BF16 flushes them; the kernels must not).
            Sampler::Uniform {
                lo: -1e-39,
                hi: 1e-39,
            },
            Sampler::Normal {
                mean: 0.0,
                std: 1e-39,
            },
        ];
        extra.extend(samplers().into_iter().map(|(_, s)| s));
        for s in extra {
            isa_equal::<f32>(s);
            isa_equal::<f64>(s);
            isa_equal::<f16>(s);
            isa_equal::<bf16>(s);
        }
    }

    #[test]
    fn forcing_the_portable_fallback() {
        // The global switch: every fill after force_portable(true) uses the portable kernels,
        // and the bits do not change. (Other tests running meanwhile are unaffected: the bits
        // are the same either way — that is the contract.)
        let s = sampler("he_truncated_normal");
        let len = 3 * CHUNK + 5;
        let mut dispatched = vec![0f32; len];
        let mut portable = vec![0f32; len];
        init_core::sample::force_portable(false);
        let best = init_core::sample::active_isa();
        s.fill(&mut dispatched, STREAM);
        init_core::sample::force_portable(true);
        assert_eq!(init_core::sample::active_isa(), Isa::Portable);
        s.fill(&mut portable, STREAM);
        init_core::sample::force_portable(false);
        assert_eq!(init_core::sample::active_isa(), best);
        assert!(bits(&dispatched) == bits(&portable));
        if std::env::var_os("INIT_CORE_PORTABLE").is_none() {
            assert_eq!(best, Isa::best());
        }
        eprintln!("dispatched kernels: {best:?}");
    }

    #[test]
    fn bounds_hold_in_every_type() {
        for (name, s) in samplers() {
            let (lo, hi) = s.support();
            let len = 3 * CHUNK;
            let mut x = vec![0f32; len];
            s.fill(&mut x, STREAM);
            let (l32, h32) = (lo as f32, hi as f32);
            assert!(x.iter().all(|&v| v >= l32 && v <= h32), "{name} f32");
            let mut d = vec![0f64; len];
            s.fill(&mut d, STREAM);
            assert!(d.iter().all(|&v| v >= lo && v <= hi), "{name} f64");
            let mut h = vec![f16::ZERO; len];
            s.fill(&mut h, STREAM);
            let (l16, h16) = (f16::from_f32(l32), f16::from_f32(h32));
            assert!(h.iter().all(|&v| v >= l16 && v <= h16), "{name} f16");
            assert!(x.iter().all(|v| v.is_finite()) && d.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn dtype_tags() {
        assert_eq!(<f32 as Element>::DTYPE, DType::F32);
        assert_eq!(<bf16 as Element>::DTYPE.size(), 2);
        assert_eq!(DType::F64.as_str(), "f64");
    }
}

mod structured {
    use super::*;

    fn ortho<T: Element>(shape: &[usize], gain: f64) -> Vec<f64> {
        let numel: usize = shape.iter().product();
        let mut w = vec![T::ZERO; numel];
        let s = Scheme::orthogonal(gain).unwrap();
        init_tensor(
            &s,
            &mut w,
            shape,
            None,
            Stream {
                seed: 9,
                key: key_of("q"),
            },
        )
        .unwrap();
        w.iter().map(|x| x.to_f64()).collect()
    }

    /// max |G − gain²·I| where G is the Gram matrix of the rows (rows ≤ cols) or columns.
    fn gram_error(w: &[f64], rows: usize, cols: usize, gain: f64) -> f64 {
        let (n, dot): (usize, Box<dyn Fn(usize, usize) -> f64>) = if rows <= cols {
            (
                rows,
                Box::new(|i, j| (0..cols).map(|k| w[i * cols + k] * w[j * cols + k]).sum()),
            )
        } else {
            (
                cols,
                Box::new(|i, j| (0..rows).map(|k| w[k * cols + i] * w[k * cols + j]).sum()),
            )
        };
        let mut worst = 0f64;
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { gain * gain } else { 0.0 };
                worst = worst.max((dot(i, j) - want).abs());
            }
        }
        worst
    }

    #[test]
    fn orthogonal_is_orthogonal() {
        // square, tall, wide, and conv weights (trailing dims flattened, PyTorch's convention).
        for (shape, rows, cols) in [
            (vec![64, 64], 64, 64),
            (vec![96, 32], 96, 32),
            (vec![32, 96], 32, 96),
            (vec![32, 4, 3, 3], 32, 36),
            (vec![64, 2, 3, 3], 64, 18),
            (vec![8, 3, 5], 8, 15),
            (vec![1, 10], 1, 10),
            (vec![10, 1], 10, 1),
        ] {
            for gain in [1.0, 2f64.sqrt(), -0.5] {
                let w = ortho::<f64>(&shape, gain);
                let e = gram_error(&w, rows, cols, gain);
                assert!(e < 1e-13, "{shape:?} gain {gain}: f64 error {e}");
                let w = ortho::<f32>(&shape, gain);
                let e = gram_error(&w, rows, cols, gain);
                assert!(e < 2e-6, "{shape:?} gain {gain}: f32 error {e}");
            }
        }
    }

    #[test]
    fn orthogonal_values_are_stable() {
        // Same seed, key and shape: the same matrix with any thread count; f16 is the f32
        // computation rounded, and f64 (computed in f64) agrees with f32 to f32 precision.
        let a = ortho::<f32>(&[48, 80], 1.0);
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| ortho::<f32>(&[48, 80], 1.0));
        assert_eq!(a, b);
        let h = ortho::<f16>(&[48, 80], 1.0);
        for (x, y) in h.iter().zip(&a) {
            assert_eq!(*x, f16::from_f64(*y).to_f64());
        }
        let b16 = ortho::<bf16>(&[48, 80], 1.0);
        for (x, y) in b16.iter().zip(&a) {
            assert_eq!(*x, bf16::from_f64(*y).to_f64());
        }
        // The f32 and f64 computations start from different normal streams (each type's own
        // sampler), so they are different orthogonal matrices: both orthogonal, not equal.
        let d = ortho::<f64>(&[48, 80], 1.0);
        assert!(a.iter().zip(&d).any(|(x, y)| (x - y).abs() > 1e-3));
        // The Gaussian matrix is the tensor's normal stream, so the key matters.
        let mut other = vec![0f32; 48 * 80];
        init_tensor(
            &Scheme::orthogonal(1.0).unwrap(),
            &mut other,
            &[48, 80],
            None,
            Stream {
                seed: 9,
                key: key_of("r"),
            },
        )
        .unwrap();
        assert_ne!(a, other.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        // Pinned first values (this CPU's faer kernels; see `structured.rs`).
        let first: Vec<u32> = a[..4].iter().map(|&x| (x as f32).to_bits()).collect();
        if std::env::var_os("INIT_CORE_PRINT_PINS").is_some() {
            println!("ORTHO {first:#x?}");
        }
        assert_eq!(first, ORTHO_PIN);
    }
    const ORTHO_PIN: [u32; 4] = [0xbe89_afc8, 0xbdcd_2895, 0x3dc6_eae1, 0xbe2d_9edb];

    #[test]
    fn check_agrees_with_init_tensor() {
        let fans = Some(Fans {
            fan_in: 4,
            fan_out: 6,
        });
        let shapes: [&[usize]; 9] = [
            &[],
            &[8],
            &[0, 3],
            &[6, 4],
            &[4, 6],
            &[6, 2, 3],
            &[6, 4, 3, 3],
            &[5, 4, 3, 3],
            &[2, 2, 2, 2, 2, 2],
        ];
        let mut checked = 0;
        for name in [
            "orthogonal",
            "orthogonal(gain=2)",
            "eye",
            "dirac",
            "dirac(groups=2)",
            "he_normal",
            "normal(0,1)",
        ] {
            let scheme = Scheme::parse(name).unwrap();
            for shape in shapes {
                for f in [None, fans] {
                    let numel: usize = shape.iter().product();
                    let mut w = vec![0f32; numel];
                    let st = Stream { seed: 1, key: 1 };
                    let filled = init_tensor(&scheme, &mut w, shape, f, st);
                    let check = scheme.check(shape, f);
                    assert_eq!(
                        check.is_ok(),
                        filled.is_ok(),
                        "{name} {shape:?} {f:?}: check {check:?}, init_tensor {filled:?}"
                    );
                    if let (Err(a), Err(b)) = (&check, &filled) {
                        assert_eq!(a.to_string(), b.to_string());
                    }
                    checked += usize::from(check.is_err());
                }
            }
        }
        assert!(checked > 10, "the cases include refusals");
    }

    #[test]
    fn orthogonal_rejects_bad_shapes() {
        let s = Scheme::orthogonal(1.0).unwrap();
        let st = Stream { seed: 1, key: 1 };
        let mut w = vec![0f32; 8];
        assert!(matches!(
            init_tensor(&s, &mut w, &[8], None, st),
            Err(InitError::RankTooLow { .. })
        ));
        assert!(matches!(
            init_tensor(&s, &mut w[..1], &[], None, st),
            Err(InitError::RankTooLow { .. })
        ));
        let mut e: Vec<f32> = vec![];
        init_tensor(&s, &mut e, &[0, 8], None, st).unwrap();
        init_tensor(&s, &mut e, &[8, 0], None, st).unwrap();
    }

    /// PyTorch's `eye_` (2-D) and its flattened extension, written out.
    fn eye_ref(shape: &[usize], gain: f64) -> Vec<f64> {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        let mut w = vec![0.0; rows * cols];
        for i in 0..rows.min(cols) {
            w[i * cols + i] = gain;
        }
        w
    }

    #[test]
    fn eye_pattern() {
        for shape in [
            vec![4, 4],
            vec![3, 5],
            vec![5, 3],
            vec![1, 1],
            vec![2, 3, 2],
        ] {
            for gain in [1.0, 0.5, -2.0] {
                let numel: usize = shape.iter().product();
                let mut w = vec![7f32; numel];
                init_tensor(
                    &Scheme::eye(gain).unwrap(),
                    &mut w,
                    &shape,
                    None,
                    Stream { seed: 0, key: 0 },
                )
                .unwrap();
                let w: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
                assert_eq!(w, eye_ref(&shape, gain), "{shape:?}");
            }
        }
        let mut w = vec![0f32; 4];
        assert!(matches!(
            init_tensor(
                &Scheme::eye(1.0).unwrap(),
                &mut w,
                &[4],
                None,
                Stream { seed: 0, key: 0 }
            ),
            Err(InitError::RankTooLow { .. })
        ));
    }

    /// PyTorch's `dirac_(tensor, groups)`, transcribed.
    fn dirac_ref(shape: &[usize], groups: usize) -> Vec<f64> {
        let numel: usize = shape.iter().product();
        let mut w = vec![0.0; numel];
        let out_per = shape[0] / groups;
        let min_dim = out_per.min(shape[1]);
        let k = &shape[2..];
        let idx = |o: usize, i: usize| {
            let mut off = o * shape[1] + i;
            for &d in k {
                off = off * d + d / 2;
            }
            off
        };
        for g in 0..groups {
            for d in 0..min_dim {
                w[idx(g * out_per + d, d)] = 1.0;
            }
        }
        w
    }

    #[test]
    fn dirac_pattern() {
        for (shape, groups) in [
            (vec![6, 3, 3], 1),
            (vec![3, 6, 5], 1),
            (vec![4, 4, 3, 3], 1),
            (vec![4, 2, 3, 3], 2),
            (vec![6, 1, 3, 3], 6),
            (vec![8, 4, 3, 3, 3], 2),
            (vec![4, 4, 2, 4], 1),
            (vec![2, 2, 1, 1, 1], 1),
        ] {
            let numel: usize = shape.iter().product();
            let mut w = vec![5f64; numel];
            init_tensor(
                &Scheme::dirac(groups as u64).unwrap(),
                &mut w,
                &shape,
                None,
                Stream { seed: 0, key: 0 },
            )
            .unwrap();
            assert_eq!(w, dirac_ref(&shape, groups), "{shape:?} groups {groups}");
        }
        let st = Stream { seed: 0, key: 0 };
        let mut w = vec![0f32; 64];
        for bad in [vec![8, 8], vec![64], vec![2, 2, 2, 2, 2, 2]] {
            let n: usize = bad.iter().product();
            assert!(
                init_tensor(&Scheme::dirac(1).unwrap(), &mut w[..n], &bad, None, st).is_err(),
                "{bad:?}"
            );
        }
        assert!(
            init_tensor(
                &Scheme::dirac(3).unwrap(),
                &mut w[..36],
                &[4, 1, 3, 3],
                None,
                st
            )
            .is_err()
        );
    }
}

mod shard {
    use super::stability_samplers as samplers;
    use super::*;
    use std::ops::Range;

    const STREAM: Stream = Stream {
        seed: 7,
        key: key_of("shard"),
    };

    /// A small deterministic generator for the random shapes and ranges (SplitMix64).
    struct Gen(u64);
    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % n.max(1) as u64) as usize
        }
        fn range(&mut self, n: usize) -> Range<usize> {
            let a = self.below(n + 1);
            let b = self.below(n + 1);
            a.min(b)..a.max(b)
        }
    }

    fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(f)
    }

    /// The box's elements picked out of the whole tensor, by the definition of a box.
    fn pick<T: Copy>(whole: &[T], shape: &[usize], ranges: &[Range<usize>]) -> Vec<T> {
        let mut out = vec![];
        let mut idx: Vec<usize> = ranges.iter().map(|r| r.start).collect();
        if ranges.iter().any(std::ops::Range::is_empty) {
            return out;
        }
        loop {
            let p = idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i);
            out.push(whole[p]);
            let mut d = shape.len();
            loop {
                if d == 0 {
                    return out;
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < ranges[d].end {
                    break;
                }
                idx[d] = ranges[d].start;
            }
        }
    }

    fn box_len(ranges: &[Range<usize>]) -> usize {
        ranges.iter().map(ExactSizeIterator::len).product()
    }

    /// Ranges crossing chunk boundaries, and random ones, against the whole fill.
    fn ranges_of<T: Bits>(s: Sampler, threads: usize) {
        let len = 3 * CHUNK + 4321;
        let mut whole = vec![T::ZERO; len];
        s.fill_serial_at(&mut whole, STREAM, 0);
        let want = bits(&whole);
        let mut g = Gen(threads as u64);
        let mut cases = vec![
            (CHUNK - 5, CHUNK + 5),
            (1, 2 * CHUNK + 3),
            (CHUNK + 1, len),
            (17, 18),
            (2 * CHUNK - 1, 2 * CHUNK),
            (len, len),
        ];
        cases.extend((0..4).map(|_| {
            let r = g.range(len);
            (r.start, r.end)
        }));
        with_threads(threads, || {
            for (a, b) in cases {
                let mut part = vec![T::ZERO; b - a];
                s.fill_range(&mut part, STREAM, a as u64);
                assert!(
                    bits(&part) == want[a..b],
                    "{s:?} {:?} range {a}..{b}, {threads} threads",
                    T::DTYPE
                );
            }
        });
    }

    #[test]
    fn any_range_equals_the_whole_fill() {
        for (_, s) in samplers() {
            for threads in [1, 2] {
                ranges_of::<f32>(s, threads);
                ranges_of::<f64>(s, threads);
                ranges_of::<f16>(s, threads);
                ranges_of::<bf16>(s, threads);
            }
        }
    }

    /// Random shapes of rank 1 to 4 (up to ~3 chunks), with random boxes, the row and column
    /// blocks of the rows × cols view, and every `Shard(d)` of a 4-way split, through the pool
    /// (1 and 2 threads) and every instruction set's serial path.
    fn boxes_of<T: Bits>(s: Sampler, seed: u64) {
        let mut g = Gen(seed);
        let rank = 1 + g.below(4);
        let mut shape: Vec<usize> = (0..rank).map(|_| 1 + g.below(40)).collect();
        // Stretch one dimension so the tensor spans one to two chunks.
        let numel: usize = shape.iter().product();
        let d = g.below(rank);
        shape[d] = (shape[d] * (CHUNK + g.below(CHUNK)) / numel).max(1);
        let numel: usize = shape.iter().product();
        let mut whole = vec![T::ZERO; numel];
        s.fill_serial_at(&mut whole, STREAM, 0);
        let rows = shape[0];
        let cols = numel / rows;
        let mut boxes: Vec<(Vec<usize>, Vec<Range<usize>>)> = vec![
            (shape.clone(), shape.iter().map(|&n| g.range(n)).collect()),
            (vec![rows, cols], vec![g.range(rows), 0..cols]),
            (vec![rows, cols], vec![0..rows, g.range(cols)]),
        ];
        // Shard(d) of a 3-way split: the middle part crosses chunk boundaries.
        let d = g.below(rank);
        let mut ranges: Vec<_> = shape.iter().map(|&n| 0..n).collect();
        ranges[d] = shape[d].div_ceil(3)..(2 * shape[d]).div_ceil(3);
        boxes.push((shape.clone(), ranges));
        for (view, ranges) in boxes {
            let want = bits(&pick(&whole, &view, &ranges));
            let ctx = format!("{s:?} {:?} shape {view:?} box {ranges:?}", T::DTYPE);
            for threads in [1, 2] {
                let got = with_threads(threads, || {
                    let mut part = vec![T::ZERO; box_len(&ranges)];
                    s.fill_box(&mut part, STREAM, &view, &ranges).unwrap();
                    bits(&part)
                });
                assert!(got == want, "{ctx}, {threads} threads");
            }
            for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
                if isa.is_available() {
                    let mut part = vec![T::ZERO; box_len(&ranges)];
                    s.fill_box_with(isa, &mut part, STREAM, &view, &ranges)
                        .unwrap();
                    assert!(bits(&part) == want, "{ctx}, {isa:?}");
                }
            }
        }
    }

    #[test]
    fn any_box_equals_the_whole_fill() {
        for (i, (_, s)) in samplers().into_iter().enumerate() {
            let seed = 100 * i as u64;
            boxes_of::<f32>(s, seed);
            boxes_of::<f64>(s, seed + 1);
            boxes_of::<f16>(s, seed + 2);
            boxes_of::<bf16>(s, seed + 3);
        }
    }

    #[test]
    fn column_blocks_of_wide_rows() {
        // Rows longer than two chunks take the per-run path; rows shorter than a chunk the
        // grouped one, in parallel above two chunks, in several groups above eight.
        let s = sampler("he_truncated_normal");
        for shape in [[3usize, 2 * CHUNK + 9], [10 * CHUNK / 7 + 3, 7]] {
            let numel = shape[0] * shape[1];
            let mut whole = vec![0f32; numel];
            s.fill(&mut whole, STREAM);
            for c in [0..1, 1..shape[1], 2..shape[1] - 1] {
                let ranges = [0..shape[0], c.clone()];
                for threads in [1, 2] {
                    let part = with_threads(threads, || {
                        let mut part = vec![0f32; box_len(&ranges)];
                        s.fill_box(&mut part, STREAM, &shape, &ranges).unwrap();
                        part
                    });
                    assert!(part == pick(&whole, &shape, &ranges), "{shape:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn init_shard_covers_every_scheme_but_orthogonal() {
        let shape = [8usize, 6, 3, 3];
        let numel = 8 * 6 * 9;
        let fans = Fans::of(&shape, FanRule::default()).unwrap();
        for name in [
            "he_normal",
            "glorot_uniform",
            "he_truncated_normal",
            "truncated_normal(mean=0, std=0.02)",
            "uniform(lo=-1, hi=3)",
            "constant(0.5)",
            "zeros",
            "eye(gain=2)",
            "dirac",
            "dirac(groups=2)",
        ] {
            let scheme = parse(name);
            let mut whole = vec![0f64; numel];
            init_tensor(&scheme, &mut whole, &shape, Some(fans), STREAM).unwrap();
            for ranges in [
                vec![2..5, 0..6, 0..3, 0..3],
                vec![0..8, 1..4, 0..3, 0..3],
                vec![1..7, 2..3, 1..2, 0..3],
                vec![0..8, 0..6, 0..3, 0..3],
            ] {
                let mut part = vec![0f64; box_len(&ranges)];
                init_shard(&scheme, &mut part, &shape, Some(fans), STREAM, &ranges).unwrap();
                assert_eq!(part, pick(&whole, &shape, &ranges), "{name} {ranges:?}");
            }
        }
        let mut part = vec![0f32; 4 * 6];
        assert!(matches!(
            init_shard(
                &parse("orthogonal"),
                &mut part,
                &[8, 6],
                None,
                STREAM,
                &[0..4, 0..6]
            ),
            Err(InitError::WholeTensorOnly {
                scheme: "orthogonal"
            })
        ));
    }

    #[test]
    fn bad_boxes_are_errors() {
        let s = Sampler::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let mut v = vec![0f32; 6];
        let err =
            |r: &[Range<usize>], v: &mut [f32]| s.fill_box(v, STREAM, &[4, 3], r).unwrap_err();
        assert!(
            err(std::slice::from_ref(&(0..2)), &mut v)
                .to_string()
                .contains("1 index ranges for a tensor of rank 2")
        );
        #[allow(clippy::reversed_empty_ranges)]
        let rev = [3..1, 0..3];
        assert!(
            err(&rev, &mut v)
                .to_string()
                .contains("range 3..1 of dimension 0")
        );
        assert!(
            err(&[0..2, 0..4], &mut v)
                .to_string()
                .contains("outside 0..3")
        );
        assert!(matches!(
            err(&[0..1, 0..3], &mut v),
            InitError::LengthMismatch {
                expected: 3,
                got: 6
            }
        ));
        assert!(matches!(
            s.fill_box(&mut v, STREAM, &[usize::MAX, 2], &[0..3, 0..2]),
            Err(InitError::BadShape(_))
        ));
        // Empty boxes and empty tensors write nothing.
        let mut e: Vec<f32> = vec![];
        s.fill_box(&mut e, STREAM, &[4, 3], &[2..2, 0..3]).unwrap();
        s.fill_box(&mut e, STREAM, &[0, 3], &[0..0, 0..3]).unwrap();
        s.fill_range(&mut e, STREAM, 12345);
    }
}

/// The seed table the Python package's tests compare against (`python/tests/data/pins.json`):
/// selected elements' bits of `init_tensor` for several schemes, dtypes and keys, computed here
/// by init-core. `INITFORGE_UPDATE_PINS=1` rewrites the file; otherwise it must match.
mod python_pins {
    use super::*;

    const SHAPE: [usize; 2] = [2, 40_000];
    /// First elements, both sides of the first chunk boundary, the last ones.
    const AT: [usize; 12] = [
        0, 1, 2, 3, 15, 16, 65_535, 65_536, 65_537, 79_997, 79_998, 79_999,
    ];

    fn entry<T: Bits>(scheme: &str, seed: u64, key: &str) -> String {
        let s = parse(scheme);
        let mut v = vec![T::ZERO; SHAPE[0] * SHAPE[1]];
        let fans = Fans::of(&SHAPE, FanRule::default()).unwrap();
        init_tensor(
            &s,
            &mut v,
            &SHAPE,
            Some(fans),
            Stream {
                seed,
                key: key_of(key),
            },
        )
        .unwrap();
        let b: Vec<String> = AT.iter().map(|&i| v[i].bits().to_string()).collect();
        format!(
            "  {{\"scheme\": \"{scheme}\", \"dtype\": \"{}\", \"seed\": {seed}, \"key\": \"{key}\", \"key_u64\": {}, \"bits\": [{}]}}",
            match T::DTYPE {
                DType::F32 => "float32",
                DType::F64 => "float64",
                DType::F16 => "float16",
                DType::BF16 => "bfloat16",
            },
            key_of(key),
            b.join(", ")
        )
    }

    fn table() -> String {
        let schemes = [
            "he_normal",
            "glorot_uniform",
            "he_truncated_normal",
            "lecun_normal",
            "normal(0.5, 2)",
            "uniform(-1, 3)",
            "truncated_normal(0, 1, 0.1, 0.3)",
            "constant(0.25)",
            "eye(gain=3)",
        ];
        let mut rows = vec![];
        for (i, scheme) in schemes.iter().enumerate() {
            let (seed, key) = ([0, 42, u64::MAX][i % 3], ["fc1.weight", "w", ""][i % 3]);
            rows.push(entry::<f32>(scheme, seed, key));
            rows.push(entry::<f64>(scheme, seed, key));
            rows.push(entry::<f16>(scheme, seed, key));
            rows.push(entry::<bf16>(scheme, seed, key));
        }
        format!(
            "{{\"shape\": [{}, {}], \"at\": [{}], \"entries\": [\n{}\n]}}\n",
            SHAPE[0],
            SHAPE[1],
            AT.map(|i| i.to_string()).join(", "),
            rows.join(",\n")
        )
    }

    #[test]
    fn python_pin_table_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/tests/data/pins.json"
        );
        let want = table();
        if std::env::var_os("INITFORGE_UPDATE_PINS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "{path} is not init-core's table; regenerate it with INITFORGE_UPDATE_PINS=1"
        );
    }
}
