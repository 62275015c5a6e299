//! Neural-network weight initialization: exact formulas, deterministic seeded sampling, and
//! fills bound by memory bandwidth rather than by the generator.
//!
//! ```
//! use init_core::{Fans, Scheme, Stream, init_tensor};
//! let scheme: Scheme = "he_uniform".parse().unwrap();
//! let mut w = vec![0f32; 128 * 256];
//! init_tensor(&scheme, &mut w, &[128, 256], Some(Fans { fan_in: 256, fan_out: 128 }),
//!             Stream { seed: 42, key: init_core::rng::key_of("fc1.weight") }).unwrap();
//! let bound = (6.0f32 / 256.0).sqrt();
//! assert!(w.iter().all(|x| x.abs() <= bound));
//! ```
//!
//! # Determinism contract
//! The values written for a tensor are a pure function of (seed, tensor key, scheme, fans,
//! shape, element type): not of the thread count, the order tensors are filled in, or which
//! other tensors are initialized. See [`rng`] for the generator and the stream layout.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

extern crate alloc;

pub mod element;
pub mod error;
pub mod fans;
mod init;
#[cfg(any(feature = "ndarray", feature = "nalgebra"))]
mod interop;
mod kernel;
pub mod rng;
pub mod sample;
/// The schemes: names, parameters, gains, the text grammar and rank requirements (the
/// dependency-free `init-scheme` crate, which init-derive shares).
#[doc(inline)]
pub use init_scheme as scheme;
pub mod shape;
pub mod shard;
mod structured;

pub use element::{DType, Element};
pub use error::{InitError, SchemeError};
pub use fans::{Convention, FanRule, Fans, Layout};
pub use init::{Initialize, Initializer, Record, Seed, Site, Zeroed};
pub use sample::{Sampler, Stream};
pub use scheme::{
    Distribution, Family, FanMode, Nonlinearity, RankRequirement, Scheme, SchemeKind,
};
pub use shape::{Dims, Shape, Tensor};

#[cfg(feature = "derive")]
pub use init_derive::Initialize;

use scheme::TRUNC_STD_CORRECTION;

/// What init-core does with a [`Scheme`]: its sampler, its shape check and its expected std.
///
/// A trait because [`Scheme`] lives in the dependency-free `init-scheme` crate (which the
/// derive shares), while these need init-core's samplers and errors. Sealed: implemented for
/// [`Scheme`] only. Bring it into scope with `use init_core::SchemeExt as _;`.
pub trait SchemeExt: sealed::Sealed {
    /// The concrete distribution for these fans, or `None` for the structured schemes
    /// (orthogonal, eye, dirac), which are not element-wise. Fan-based schemes need fans > 0.
    ///
    /// For a fan-scaled scheme with target variance σ² (see [`Scheme::scaled_variance`]):
    /// uniform → U(−√3σ, √3σ); normal → N(0, σ²); truncated normal → N(0, (σ/T)²) cut at ±2σ/T,
    /// T = 0.87962566103423978, whose realised std is σ.
    fn sampler(&self, fans: Option<Fans>) -> Result<Option<Sampler>, InitError>;

    /// Whether [`init_tensor`] accepts this scheme for a tensor of `shape` with `fans`, without
    /// computing anything: `Ok` exactly when `init_tensor` on a buffer of the shape's length
    /// would succeed. Lets a caller that fills lazily (onnx-reinit computes each orthogonal
    /// matrix only when its first piece is written) refuse a bad plan before writing.
    fn check(&self, shape: &[usize], fans: Option<Fans>) -> Result<(), InitError>;

    /// The standard deviation the scheme gives a tensor of this shape and fans (for reports
    /// and the inspector): the sampler's std; for orthogonal gain/√cols of the rows × cols view
    /// when rows ≤ cols, else gain/√rows; for eye and dirac the std of their fixed values.
    fn expected_std(&self, shape: &[usize], fans: Option<Fans>) -> Result<f64, InitError>;

    /// Fill `out` (the elements of `shape`, row-major) with this scheme, in one call: the fans
    /// are read from `shape` by `rule` ([`Fans::of`]) when the scheme uses them, and the
    /// stream is `seed` with the key [`rng::key_of`]`(name)`.
    ///
    /// `name` is the tensor's path: the same name gives the same values as onnx-reinit gives
    /// the initializer of that name, and as `#[derive(Initialize)]` gives the field at that
    /// path (`"layer.weight"`), for the same scheme, fans, shape and element type.
    ///
    /// ```
    /// use init_core::{FanRule, Scheme, SchemeExt as _, Seed};
    /// // nn.Linear(256, 128)'s weight: U(±1/√256) (PyTorch's kaiming_uniform_(a = √5)).
    /// let scheme: Scheme = "kaiming_uniform(a = 2.23606797749979)".parse().unwrap();
    /// let mut w = vec![0f32; 128 * 256];
    /// scheme.fill(&mut w, &[128, 256], FanRule::default(), Seed(42), "fc1.weight").unwrap();
    /// assert!(w.iter().all(|x| x.abs() <= 1.0 / 16.0));
    /// ```
    fn fill<T: Element>(
        &self,
        out: &mut [T],
        shape: &[usize],
        rule: FanRule,
        seed: Seed,
        name: &str,
    ) -> Result<(), InitError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Scheme {}
}

impl SchemeExt for Scheme {
    fn sampler(&self, fans: Option<Fans>) -> Result<Option<Sampler>, InitError> {
        Ok(Some(match self.kind() {
            SchemeKind::Constant(v) => Sampler::Constant(v),
            SchemeKind::Uniform { lo, hi } => Sampler::Uniform { lo, hi },
            SchemeKind::Normal { mean, std } => Sampler::Normal { mean, std },
            SchemeKind::TruncatedNormal {
                mean, std, lo, hi, ..
            } => Sampler::TruncatedNormal { mean, std, lo, hi },
            SchemeKind::Scaled { distribution, .. } => {
                let f = match fans {
                    Some(f) if f.fan_in > 0 && f.fan_out > 0 => f,
                    Some(f) => {
                        return Err(InitError::ZeroFan {
                            scheme: self.name(),
                            fan_in: f.fan_in,
                            fan_out: f.fan_out,
                        });
                    }
                    None => {
                        return Err(InitError::NeedsFans {
                            scheme: self.name(),
                        });
                    }
                };
                let var = self
                    .scaled_variance(f.fan_in as f64, f.fan_out as f64)
                    .unwrap_or(f64::NAN);
                let sigma = libm::sqrt(var);
                match distribution {
                    Distribution::Uniform => {
                        let bound = libm::sqrt(3.0) * sigma;
                        Sampler::Uniform {
                            lo: -bound,
                            hi: bound,
                        }
                    }
                    Distribution::Normal => Sampler::Normal {
                        mean: 0.0,
                        std: sigma,
                    },
                    Distribution::TruncatedNormal => {
                        let std = sigma / TRUNC_STD_CORRECTION;
                        Sampler::TruncatedNormal {
                            mean: 0.0,
                            std,
                            lo: -2.0 * std,
                            hi: 2.0 * std,
                        }
                    }
                }
            }
            SchemeKind::Orthogonal { .. } | SchemeKind::Eye { .. } | SchemeKind::Dirac { .. } => {
                return Ok(None);
            }
        }))
    }

    fn fill<T: Element>(
        &self,
        out: &mut [T],
        shape: &[usize],
        rule: FanRule,
        seed: Seed,
        name: &str,
    ) -> Result<(), InitError> {
        let fans = if self.needs_fans() {
            Some(Fans::of(shape, rule)?)
        } else {
            None
        };
        init_tensor(
            self,
            out,
            shape,
            fans,
            Stream {
                seed: seed.0,
                key: rng::key_of(name),
            },
        )
    }

    fn check(&self, shape: &[usize], fans: Option<Fans>) -> Result<(), InitError> {
        fans::checked_product(shape)?;
        if self.sampler(fans)?.is_some() {
            return Ok(());
        }
        match self.kind() {
            SchemeKind::Eye { .. } => structured::rows_cols(shape, "eye").map(drop),
            SchemeKind::Dirac { groups } => structured::check_dirac(shape, groups),
            #[cfg(feature = "orthogonal")]
            SchemeKind::Orthogonal { .. } => structured::rows_cols(shape, "orthogonal").map(drop),
            #[cfg(not(feature = "orthogonal"))]
            SchemeKind::Orthogonal { .. } => Err(no_orthogonal()),
            _ => unreachable!("element-wise schemes have a sampler"),
        }
    }

    fn expected_std(&self, shape: &[usize], fans: Option<Fans>) -> Result<f64, InitError> {
        if let Some(s) = self.sampler(fans)? {
            return Ok(s.std_dev());
        }
        let rows = shape.first().copied().unwrap_or(1) as f64;
        let numel = fans::checked_product(shape)? as f64;
        let cols = if rows > 0.0 { numel / rows } else { 0.0 };
        Ok(match self.kind() {
            SchemeKind::Orthogonal { gain } => gain.abs() / libm::sqrt(rows.max(cols)),
            SchemeKind::Eye { gain } => {
                let p = rows.min(cols) / numel;
                gain.abs() * libm::sqrt(p * (1.0 - p))
            }
            SchemeKind::Dirac { groups } => {
                let per = (shape.first().copied().unwrap_or(0) as f64) / groups as f64;
                let ones = groups as f64 * per.min(shape.get(1).copied().unwrap_or(0) as f64);
                let p = ones / numel;
                libm::sqrt(p * (1.0 - p))
            }
            _ => unreachable!("element-wise schemes have a sampler"),
        })
    }
}

/// Initialize one tensor: `out` holds the `shape`'s elements in row-major order.
///
/// `fans` is needed by the fan-based schemes (see [`Fans::of`] for computing them from a
/// shape). The written values are a pure function of (`stream`, scheme, fans, shape, `T`).
pub fn init_tensor<T: Element>(
    scheme: &Scheme,
    out: &mut [T],
    shape: &[usize],
    fans: Option<Fans>,
    stream: Stream,
) -> Result<(), InitError> {
    let numel = fans::checked_product(shape)?;
    if numel != out.len() {
        return Err(InitError::LengthMismatch {
            expected: numel,
            got: out.len(),
        });
    }
    if let Some(sampler) = scheme.sampler(fans)? {
        sampler.fill(out, stream);
        return Ok(());
    }
    match scheme.kind() {
        SchemeKind::Eye { gain } => structured::eye(out, shape, gain),
        SchemeKind::Dirac { groups } => structured::dirac(out, shape, groups),
        #[cfg(feature = "orthogonal")]
        SchemeKind::Orthogonal { gain } => structured::orthogonal(out, shape, gain, stream),
        #[cfg(not(feature = "orthogonal"))]
        SchemeKind::Orthogonal { .. } => Err(no_orthogonal()),
        _ => unreachable!("element-wise schemes have a sampler"),
    }
}

/// Initialize one shard of a tensor: `out` receives the box `ranges` (one index range per
/// dimension of the row-major `shape`) in the box's row-major order, with exactly the bits
/// [`init_tensor`] writes at those positions for the whole tensor — whatever the shard layout,
/// thread count or instruction set. See [`shard`] for how row blocks, column blocks and
/// `Shard(d)` placements are boxes, and what a shard costs.
///
/// Element-wise schemes and eye/dirac (functions of the position) shard exactly; orthogonal is
/// a QR of the whole matrix and returns [`InitError::WholeTensorOnly`] (initialize the full
/// tensor and slice it instead).
pub fn init_shard<T: Element>(
    scheme: &Scheme,
    out: &mut [T],
    shape: &[usize],
    fans: Option<Fans>,
    stream: Stream,
    ranges: &[core::ops::Range<usize>],
) -> Result<(), InitError> {
    shard::check_box(shape, ranges, out.len())?;
    if let Some(sampler) = scheme.sampler(fans)? {
        return sampler.fill_box(out, stream, shape, ranges);
    }
    match scheme.kind() {
        SchemeKind::Eye { gain } => {
            structured::rows_cols(shape, "eye")?;
            out.fill(T::ZERO);
            let g = T::from_f64(gain);
            structured::eye_positions(shape, |p| {
                if let Some(i) = shard::box_offset(shape, ranges, p) {
                    out[i] = g;
                }
            })
        }
        SchemeKind::Dirac { groups } => {
            structured::check_dirac(shape, groups)?;
            out.fill(T::ZERO);
            structured::dirac_positions(shape, groups, |p| {
                if let Some(i) = shard::box_offset(shape, ranges, p) {
                    out[i] = T::ONE;
                }
            })
        }
        SchemeKind::Orthogonal { .. } => Err(InitError::WholeTensorOnly {
            scheme: scheme.name(),
        }),
        _ => unreachable!("element-wise schemes have a sampler"),
    }
}

/// The error of an orthogonal fill in a build without the `orthogonal` feature.
#[cfg(not(feature = "orthogonal"))]
fn no_orthogonal() -> InitError {
    InitError::BadShape(alloc::string::String::from(
        "orthogonal initialization needs init-core's `orthogonal` feature (QR by faer), which \
         this build leaves out to keep the default build light",
    ))
}

#[doc(hidden)]
pub use init::__private;

// The READMEs' Rust snippets, compiled and run as doctests so that they stay correct as written
// (`cargo test -p init-core --features derive --doc`).
#[cfg(all(doctest, feature = "derive"))]
#[doc = include_str!("../../README.md")]
mod readme_workspace {}
#[cfg(all(doctest, feature = "derive"))]
#[doc = include_str!("../README.md")]
mod readme_init_core {}
#[cfg(all(doctest, feature = "derive"))]
#[doc = include_str!("../../init-derive/README.md")]
mod readme_init_derive {}
