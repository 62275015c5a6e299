//! burn adapter (feature `burn`, burn 0.21): `TensorData`, `Tensor<B, D>` and the
//! `Param<Tensor<B, D>>` of a burn module filled by a scheme, on any backend.
//!
//! burn's layouts (see [`Layout`]): `Linear`'s weight is **`[d_input, d_output]`**
//! ([`Layout::InOut`]: [`LINEAR`]), whatever its `LinearLayout` (`Col` only changes how the
//! values sit in memory and in records, not the `[in, out]` shape the parameter has);
//! `Conv1d/2d/3d` are `[out, in/g, k…]` ([`Layout::OutIn`]: [`conv`]`(groups)`);
//! `ConvTranspose*` are `[in, out/g, k…]` ([`conv_transpose`]`(groups)`). The fans are then
//! those of the same PyTorch layer: a burn `Linear(256 → 128)` gets fan_in 256, fan_out 128.
//!
//! The values are those of [`SchemeExt::fill`](crate::SchemeExt::fill) for the same (scheme,
//! shape, rule, seed, name, element type), computed on the CPU and handed to the backend.
//!
//! ```
//! use burn_core::module::Param;
//! use burn_tensor::{Tensor, backend::Backend};
//! use init_core::{Scheme, Seed, burn::{Error, LINEAR, init_param}};
//!
//! /// `weight` is a `burn_nn::Linear`'s: `[d_input, d_output]`.
//! fn reinit<B: Backend>(weight: &mut Param<Tensor<B, 2>>) -> Result<(), Error> {
//!     let he: Scheme = "he_normal".parse().expect("a known scheme");
//!     init_param(weight, &he, LINEAR, Seed(42), "fc1.weight")
//! }
//! ```
//!
//! `cargo run -p init-core --example burn_layers --features burn-ndarray` does this for a
//! small model on burn's CPU backend.

use crate::{
    Convention, Element, FanRule, InitError, Layout, Scheme, SchemeExt as _, Seed,
    fans::checked_product,
};
use alloc::string::{String, ToString};
use alloc::vec;
use burn_core::module::{Param, ParamId};
use burn_tensor::backend::Backend;
use burn_tensor::{DType, Tensor, TensorData};

/// The fan rule of burn's `Linear` weight, `[d_input, d_output]`: [`Layout::InOut`].
pub const LINEAR: FanRule = FanRule {
    layout: Layout::InOut,
    groups: 1,
    transposed: false,
    convention: Convention::True,
};

/// The fan rule of burn's `Conv1d/2d/3d` weight, `[out, in/groups, k…]`, for the layer's
/// `groups` (its public `groups` field).
pub const fn conv(groups: usize) -> FanRule {
    FanRule {
        layout: Layout::OutIn,
        groups: groups as u64,
        transposed: false,
        convention: Convention::True,
    }
}

/// The fan rule of burn's `ConvTranspose1d/2d/3d` weight, `[in, out/groups, k…]`.
pub const fn conv_transpose(groups: usize) -> FanRule {
    FanRule {
        layout: Layout::OutIn,
        groups: groups as u64,
        transposed: true,
        convention: Convention::True,
    }
}

/// Why a burn tensor could not be initialized; every variant names the tensor.
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
    /// The dtype is not one of the float types a scheme fills.
    #[error(
        "{name}: burn dtype {dtype:?} is not a float type init-core fills (F32, F64, F16, BF16)"
    )]
    DType {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
}

/// A `TensorData` of `shape` and `dtype` (F32, F64, F16 or BF16) filled by `scheme` exactly as
/// [`SchemeExt::fill`](crate::SchemeExt::fill)`(scheme, buf, shape, rule, seed, name)` fills a
/// buffer of that element type: fans from `shape` by `rule`, stream key
/// [`rng::key_of`](crate::rng::key_of)`(name)`.
pub fn tensor_data(
    scheme: &Scheme,
    shape: &[usize],
    dtype: DType,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<TensorData, Error> {
    match dtype {
        DType::F32 => filled::<f32>(scheme, shape, rule, seed, name),
        DType::F64 => filled::<f64>(scheme, shape, rule, seed, name),
        DType::F16 => filled::<half::f16>(scheme, shape, rule, seed, name),
        DType::BF16 => filled::<half::bf16>(scheme, shape, rule, seed, name),
        dtype => Err(Error::DType {
            name: name.to_string(),
            dtype,
        }),
    }
}

fn filled<T: Element + burn_tensor::Element>(
    scheme: &Scheme,
    shape: &[usize],
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<TensorData, Error> {
    let init = |source| Error::Init {
        name: name.to_string(),
        source,
    };
    let mut buf = vec![<T as Element>::ZERO; checked_product(shape).map_err(init)?];
    scheme
        .fill(&mut buf, shape, rule, seed, name)
        .map_err(init)?;
    Ok(TensorData::new(buf, shape.to_vec()))
}

/// A float tensor of `shape` on `device`, in the backend's float element type, filled as
/// [`tensor_data`] fills it.
pub fn tensor<B: Backend, const D: usize>(
    scheme: &Scheme,
    shape: [usize; D],
    device: &B::Device,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<Tensor<B, D>, Error> {
    let dtype = <B::FloatElem as burn_tensor::Element>::dtype();
    let data = tensor_data(scheme, &shape, dtype, rule, seed, name)?;
    Ok(Tensor::from_data(data, (device, dtype)))
}

/// Replace the parameter's value by [`tensor_data`] of the value's own shape, dtype and
/// device. Its id (which optimizers and records key on), its `require_grad` and its load/save
/// mappers (such as `LinearLayout::Col`'s transposes) are kept. On error the parameter is
/// unchanged.
pub fn init_param<B: Backend, const D: usize>(
    param: &mut Param<Tensor<B, D>>,
    scheme: &Scheme,
    rule: FanRule,
    seed: Seed,
    name: &str,
) -> Result<(), Error> {
    let old = param.val();
    let data = tensor_data(scheme, &old.dims(), old.dtype(), rule, seed, name)?;
    let new = Tensor::<B, D>::from_data(data, (&old.device(), old.dtype()))
        .set_require_grad(old.is_require_grad());
    // `Param::map` consumes the parameter; a throw-away one holds its place meanwhile.
    let placeholder = Param::initialized(ParamId::new(), new.clone());
    let param_now = core::mem::replace(param, placeholder);
    *param = param_now.map(|_| new);
    Ok(())
}
