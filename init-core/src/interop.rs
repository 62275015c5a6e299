//! [`Tensor`] (and [`Shape`]) impls for other crates' arrays, behind features, so their model
//! structs can `#[derive(Initialize)]`.
//!
//! - `ndarray`: `Array<T, D>` for T in f32/f64/f16/bf16 and any dimension. The shape is read
//!   from the array at run time (the rank is a constant for `Ix1`…`Ix6`, which the derive's
//!   compile-time checks use); dims are in ndarray's logical (row-major) order, so a
//!   `[out, in]` array is read as `Layout::OutIn` unless the field says otherwise. Arrays that
//!   are not in standard (C-contiguous) layout are filled in logical order through a buffer.
//!   `Initialize::initialized` builds one from the field's `shape = [..]`.
//! - `nalgebra`: `SMatrix<T, R, C>` (compile-time shape). nalgebra is **column-major**: the R×C
//!   matrix is stored as C columns of R, i.e. as `[[T; R]; C]`, so its [`Shape::DIMS`] (memory
//!   order) are `[C, R]` and its natural layout is [`Layout::InOut`]: for `y = M·x` the R rows
//!   are the outputs and the C columns the inputs, fan_in = C and fan_out = R. A column vector
//!   (`SVector<T, D>`, C = 1) has rank 1 and dims `[D]`, so it gets the struct's `bias`
//!   default.

#[cfg(feature = "nalgebra")]
#[allow(unused_imports)]
use crate::shape::{Dims, Shape};
#[allow(unused_imports)]
use crate::{element::Element, error::InitError, fans::Layout, shape::Tensor};
#[allow(unused_imports)]
use alloc::vec::Vec;

#[cfg(feature = "ndarray")]
mod nd {
    use super::{Element, InitError, Tensor};
    use crate::shape::check_declared;
    use alloc::format;
    use alloc::vec::Vec;
    use ndarray::{Array, Dimension, IntoDimension, IxDyn};

    impl<T: Element, D: Dimension> Tensor for Array<T, D> {
        type Elem = T;
        const RANK: Option<usize> = D::NDIM;

        fn dims(&self, declared: Option<&[usize]>) -> Result<Vec<usize>, InitError> {
            check_declared(self.shape(), declared)?;
            Ok(self.shape().to_vec())
        }

        fn elems_mut(&mut self) -> &mut [T] {
            if !self.is_standard_layout() {
                // Re-lay the array out in standard order (same logical values), so the flat
                // view is row-major as `dims` promises.
                let standard = self.as_standard_layout().into_owned();
                *self = standard;
            }
            self.as_slice_mut()
                .expect("an array in standard layout has a contiguous slice")
        }

        fn zeros(declared: Option<&[usize]>) -> Result<Self, InitError> {
            let d = declared.ok_or_else(|| {
                InitError::BadShape(
                    "an ndarray field needs `#[init(shape = [..])]` to be built by `initialized` \
                     (or build the struct yourself and call `initialize`)"
                        .into(),
                )
            })?;
            if let Some(n) = D::NDIM
                && n != d.len()
            {
                return Err(InitError::BadShape(format!(
                    "`shape = {d:?}` has rank {} but the array type has rank {n}",
                    d.len()
                )));
            }
            let dyn_dim: IxDyn = d.into_dimension();
            let dim = D::from_dimension(&dyn_dim)
                .ok_or_else(|| InitError::BadShape(format!("`shape = {d:?}` does not fit")))?;
            Ok(Array::from_elem(dim, T::ZERO))
        }
    }
}

#[cfg(feature = "nalgebra")]
mod na {
    use super::{Dims, Layout, Shape};
    use crate::element::Element;
    use nalgebra::SMatrix;

    // SAFETY: `SMatrix<T, R, C>` is `Matrix<T, Const<R>, Const<C>, ArrayStorage<T, R, C>>`, a
    // `#[repr(C)]` struct of its storage and a zero-sized PhantomData; `ArrayStorage` is
    // `#[repr(transparent)]` over `[[T; R]; C]`. So the matrix is exactly R·C contiguous Ts in
    // column-major order (DIMS [C, R]), and all-zero bits are a valid value.
    unsafe impl<T: Element, const R: usize, const C: usize> Shape for SMatrix<T, R, C> {
        type Elem = T;
        const DIMS: Dims = if C == 1 {
            Dims::SCALAR.prepend(R)
        } else {
            Dims::SCALAR.prepend(R).prepend(C)
        };
        const LAYOUT: Layout = Layout::InOut;
    }

    crate::shape::shape_tensor! {
        impl[T: Element, const R: usize, const C: usize] SMatrix<T, R, C>;
    }
}
