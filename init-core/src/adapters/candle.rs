//! candle adapter (feature `candle`): `candle_core::Tensor`s filled by a scheme, and the
//! variables of a `candle_nn::VarMap` (how candle layers are built) re-initialized in place.
//!
//! candle stores weights as PyTorch does (see [`Layout`](crate::Layout)): Linear `[out, in]`,
//! Conv `[out, in/g, k…]`, ConvTranspose `[in, out, k…]` — all [`Layout::OutIn`](crate::Layout),
//! the default [`FanRule`]; a grouped conv needs `groups` in the rule and a transposed conv
//! `transposed`. candle tensors are row-major and contiguous when created, so the values are
//! exactly those of [`SchemeExt::fill`](crate::SchemeExt::fill) for the same (scheme, shape, rule, seed, name, element
//! type), whatever the device: they are computed on the CPU and copied to it.
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::{VarBuilder, VarMap};
//! use init_core::{FanRule, Scheme, Seed, candle::init_varmap};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let fc1 = candle_nn::linear(256, 128, vb.pp("fc1")).unwrap();
//! let he: Scheme = "he_normal".parse().unwrap();
//! let zeros: Scheme = "zeros".parse().unwrap();
//! let report = init_varmap(&varmap, Seed(42), |name, _shape| {
//!     let leaf = name.rsplit('.').next();
//!     Some((if leaf == Some("weight") { he } else { zeros }, FanRule::default()))
//! })
//! .unwrap();
//! assert_eq!(report.filled, ["fc1.bias", "fc1.weight"]);
//! // The layer sees the new values: its weight shares the variable's storage.
//! let w = fc1.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
//! let mut want = vec![0f32; 128 * 256];
//! init_core::SchemeExt::fill(&he, &mut want, &[128, 256], FanRule::default(), Seed(42), "fc1.weight")
//!     .unwrap();
//! assert_eq!(w, want);
//! ```

use crate::{Element, FanRule, InitError, Scheme, SchemeExt as _, Seed, fans::checked_product};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use candle_core::{DType, Device, Tensor, Var, WithDType};
use candle_nn::VarMap;

/// Why a candle tensor could not be initialized; every variant names the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scheme refused the tensor (bad fans, rank or shape).
    #[error("{name}: {source}")]
    Init {
        /// The tensor's name.
        name: String,
        /// What init-core said.
        source: InitError,
    },
    /// The tensor's dtype is not one of the float types a scheme fills.
    #[error(
        "{name}: candle dtype {dtype:?} is not a float type init-core fills (F32, F64, F16, BF16)"
    )]
    DType {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// candle failed to create the tensor or to copy it into a variable.
    #[error("{name}: {source}")]
    Candle {
        /// The tensor's name.
        name: String,
        /// What candle said.
        source: candle_core::Error,
    },
}

/// So that `?` works in functions returning `candle_core::Result` (the message is kept).
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// What [`init_varmap`] did: the variables it filled and those the plan left alone (sorted by
/// name), so a caller can say what kept its previous values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Variables written by a scheme.
    pub filled: Vec<String>,
    /// Variables the plan returned `None` for, unchanged.
    pub left_alone: Vec<String>,
}

/// A new tensor of `shape` and `dtype` on `device`, filled by `scheme` exactly as
/// [`SchemeExt::fill`](crate::SchemeExt::fill)`(scheme, buf, shape, rule, seed, name)` fills a buffer of that element
/// type (f32, f64, f16, bf16): fans from `shape` by `rule`, stream key
/// [`rng::key_of`](crate::rng::key_of)`(name)`. Other dtypes are an [`Error::DType`].
pub fn tensor(
    scheme: &Scheme,
    shape: &[usize],
    dtype: DType,
    device: &Device,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<Tensor, Error> {
    match dtype {
        DType::F32 => filled::<f32>(scheme, shape, device, rule, seed, name),
        DType::F64 => filled::<f64>(scheme, shape, device, rule, seed, name),
        DType::F16 => filled::<half::f16>(scheme, shape, device, rule, seed, name),
        DType::BF16 => filled::<half::bf16>(scheme, shape, device, rule, seed, name),
        dtype => Err(Error::DType {
            name: name.to_string(),
            dtype,
        }),
    }
}

fn filled<T: Element + WithDType>(
    scheme: &Scheme,
    shape: &[usize],
    device: &Device,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<Tensor, Error> {
    let init = |source| Error::Init {
        name: name.to_string(),
        source,
    };
    let mut buf = vec![T::ZERO; checked_product(shape).map_err(init)?];
    scheme
        .fill(&mut buf, shape, rule, seed, name)
        .map_err(init)?;
    Tensor::from_vec(buf, shape, device).map_err(|source| Error::Candle {
        name: name.to_string(),
        source,
    })
}

/// Overwrite a variable in place (every tensor sharing its storage, such as the weight of a
/// layer built from it, sees the new values) with [`tensor`] of the variable's own shape,
/// dtype and device.
pub fn fill_var(
    var: &Var,
    scheme: &Scheme,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<(), Error> {
    let t = tensor(
        scheme,
        var.dims(),
        var.dtype(),
        var.device(),
        rule,
        seed,
        name,
    )?;
    var.set(&t).map_err(|source| Error::Candle {
        name: name.to_string(),
        source,
    })
}

/// Re-initialize the variables of `varmap` (the store behind a `VarBuilder::from_varmap`, where
/// candle_nn's `linear`, `conv2d`, `embedding`… put their weights under their path, e.g.
/// `"fc1.weight"`): `plan(name, shape)` gives each variable's scheme and fan rule, or `None` to
/// leave it alone. Each variable gets [`fill_var`] with its name as the key, so the values do
/// not depend on the map's order or on which other variables exist.
///
/// Stops at the first error, which names the variable; the variables before it (in name
/// order) are already written.
pub fn init_varmap(
    varmap: &VarMap,
    seed: Seed,
    mut plan: impl FnMut(&str, &[usize]) -> Option<(Scheme, FanRule)>,
) -> Result<Report, Error> {
    // A poisoned lock only means another thread panicked while holding it; the variables
    // themselves are still whole tensors.
    let data = varmap
        .data()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut report = Report::default();
    for name in names {
        let var = &data[name];
        match plan(name, var.dims()) {
            Some((scheme, rule)) => {
                fill_var(var, &scheme, rule, seed, name)?;
                report.filled.push(name.clone());
            }
            None => report.left_alone.push(name.clone()),
        }
    }
    Ok(report)
}
