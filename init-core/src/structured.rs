//! Structured schemes: orthogonal, identity (eye) and dirac.

use crate::element::Element;
use crate::error::InitError;
use crate::fans::checked_product;
use alloc::format;
use init_scheme::RankRequirement;

/// The 2-D view PyTorch uses: rows = dim 0, columns = the rest flattened.
pub(crate) fn rows_cols(shape: &[usize], what: &'static str) -> Result<(usize, usize), InitError> {
    let need = RankRequirement::Matrix;
    if !need.admits(shape.len(), false) {
        return Err(InitError::RankTooLow {
            what,
            min: need.min_rank(),
            rank: shape.len(),
        });
    }
    Ok((shape[0], checked_product(&shape[1..])?))
}

/// `gain` on the diagonal of the rows × cols view, 0 elsewhere (PyTorch `eye_`, Keras `Identity`).
pub(crate) fn eye<T: Element>(out: &mut [T], shape: &[usize], gain: f64) -> Result<(), InitError> {
    out.fill(T::ZERO);
    let g = T::from_f64(gain);
    eye_positions(shape, |p| out[p] = g)
}

/// The row-major positions [`eye`] sets (the others are 0), in increasing order.
pub(crate) fn eye_positions(shape: &[usize], mut f: impl FnMut(usize)) -> Result<(), InitError> {
    let (rows, cols) = rows_cols(shape, "eye")?;
    for i in 0..rows.min(cols) {
        f(i * cols + i);
    }
    Ok(())
}

/// PyTorch's `dirac_`: for each group and each d < min(out/groups, in), a 1 at the centre tap
/// of `[g·out_per_group + d, d, centre…]`. Needs rank 3 to 5 and groups dividing dim 0.
pub(crate) fn dirac<T: Element>(
    out: &mut [T],
    shape: &[usize],
    groups: u64,
) -> Result<(), InitError> {
    out.fill(T::ZERO);
    dirac_positions(shape, groups, |p| out[p] = T::ONE)
}

/// The row-major positions [`dirac`] sets to 1 (the others are 0), in increasing order.
pub(crate) fn dirac_positions(
    shape: &[usize],
    groups: u64,
    mut f: impl FnMut(usize),
) -> Result<(), InitError> {
    check_dirac(shape, groups)?;
    let g = groups as usize;
    let per_group = shape[0] / g;
    let min_dim = per_group.min(shape[1]);
    let kernel = &shape[2..];
    let kernel_size: usize = kernel.iter().product();
    // Row-major offset of the centre tap within one kernel.
    let centre = kernel.iter().fold(0usize, |acc, &k| acc * k + k / 2);
    for gi in 0..g {
        for d in 0..min_dim {
            let o = gi * per_group + d;
            f((o * shape[1] + d) * kernel_size + centre);
        }
    }
    Ok(())
}

/// The shape rules of [`dirac`]: rank 3 to 5, groups dividing dim 0.
pub(crate) fn check_dirac(shape: &[usize], groups: u64) -> Result<(), InitError> {
    let need = RankRequirement::ConvWeight;
    if !need.admits(shape.len(), false) {
        return Err(InitError::BadShape(format!(
            "dirac {}, got rank {}",
            need.message(),
            shape.len()
        )));
    }
    let g = groups as usize;
    if !shape[0].is_multiple_of(g) {
        return Err(InitError::BadShape(format!(
            "dirac: dim 0 ({}) is not divisible by groups = {groups}",
            shape[0]
        )));
    }
    Ok(())
}

/// (Semi-)orthogonal rows × cols matrix times `gain`, PyTorch's `orthogonal_`: draw A ~ N(0, 1)
/// of shape (max, min) from the tensor's stream (A column-major), A = QR (Householder, faer),
/// Q ← Q·sign(diag R)·gain, transposed when rows < cols. Rows are orthonormal (× gain) when
/// rows ≤ cols, columns otherwise.
///
/// Like PyTorch, JAX and Keras, the work is done in the tensor's precision: f64 tensors in f64
/// (A from the f64 normal sampler), f32 tensors in f32 (A from the f32 normal sampler, the same
/// values a `normal` fill of the tensor would hold), which halves the time and memory of an f32
/// QR; f16 and bf16 tensors are computed as f32 ones and rounded once at the end. Orthogonality is to the working
/// precision: max |QᵀQ − I| ≈ 1e-6 in f32 for n in the thousands, 1e-15 in f64.
///
/// QR runs on the calling thread below [`PARALLEL_QR_FLOPS`]; above it, split in a fixed
/// number ([`QR_SPLIT`]) of rayon tasks on the current pool. faer's results depend on the split
/// count but not on how many threads run the tasks, so the values never depend on the pool's
/// size (tested). They do depend on the SIMD kernels faer picks for the CPU (FMA, AVX-512), so
/// unlike the element-wise samplers, orthogonal values are bit-stable per instruction set
/// rather than across every machine (results agree to within an ulp or so elsewhere).
#[cfg(feature = "orthogonal")]
pub(crate) fn orthogonal<T: Element>(
    out: &mut [T],
    shape: &[usize],
    gain: f64,
    stream: crate::sample::Stream,
) -> Result<(), InitError> {
    let (rows, cols) = rows_cols(shape, "orthogonal")?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    if T::DTYPE == crate::element::DType::F64 {
        orthogonal_in::<f64, T>(out, rows, cols, gain, stream);
    } else {
        orthogonal_in::<f32, T>(out, rows, cols, gain, stream);
    }
    Ok(())
}

/// [`orthogonal`] computed in `F` (f32 or f64).
#[cfg(feature = "orthogonal")]
fn orthogonal_in<F, T>(
    out: &mut [T],
    rows: usize,
    cols: usize,
    gain: f64,
    stream: crate::sample::Stream,
) where
    F: Element + faer::traits::RealField,
    T: Element,
{
    use crate::sample::Sampler;
    use alloc::vec;
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::householder;
    use faer::linalg::qr::no_pivoting::factor;
    use faer::{Conj, Mat, MatMut, Par, Spec};

    let (m, n) = (rows.max(cols), rows.min(cols));
    let mut a = vec![F::ZERO; m * n];
    Sampler::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .fill(&mut a, stream);
    let par = if (m as f64) * (n as f64) * (n as f64) >= PARALLEL_QR_FLOPS {
        Par::rayon(QR_SPLIT)
    } else {
        Par::Seq
    };
    // QR in place: `a` (column-major m × n) becomes R above the diagonal and the Householder
    // basis below.
    let mut qr = MatMut::from_column_major_slice_mut(&mut a, m, n);
    let bs = factor::recommended_block_size::<F>(m, n);
    let mut coeff = Mat::<F>::zeros(bs, n);
    factor::qr_in_place(
        qr.as_mut(),
        coeff.as_mut(),
        par,
        MemStack::new(&mut MemBuffer::new(factor::qr_in_place_scratch::<F>(
            m,
            n,
            bs,
            par,
            Spec::default(),
        ))),
        Spec::default(),
    );
    // The thin Q: the first n columns of H₁⋯H_k·I.
    let mut q = vec![F::ZERO; m * n];
    for j in 0..n {
        q[j * m + j] = F::ONE;
    }
    householder::apply_block_householder_sequence_on_the_left_in_place_with_conj(
        qr.as_ref(),
        coeff.as_ref(),
        Conj::No,
        MatMut::from_column_major_slice_mut(&mut q, m, n),
        par,
        MemStack::new(&mut MemBuffer::new(
            householder::apply_block_householder_sequence_on_the_left_in_place_scratch::<F>(
                m, bs, n,
            ),
        )),
    );
    // x·(±gain) in f64 (exact for gain ±1 and any power of two), then rounded to T.
    let scale: alloc::vec::Vec<f64> = (0..n)
        .map(|j| {
            if a[j * m + j].to_f64() < 0.0 {
                -gain
            } else {
                gain
            }
        })
        .collect();
    if rows < cols {
        // out = (Q·S)ᵀ: row j of out is column j of Q, both contiguous.
        for (j, row) in out.chunks_exact_mut(cols).enumerate() {
            let col = &q[j * m..(j + 1) * m];
            for (o, &x) in row.iter_mut().zip(col) {
                *o = T::from_f64(x.to_f64() * scale[j]);
            }
        }
    } else {
        // out = Q·S, row-major from column-major: tiles keep both sides in cache.
        const TILE: usize = 64;
        for i0 in (0..m).step_by(TILE) {
            for j0 in (0..n).step_by(TILE) {
                for i in i0..(i0 + TILE).min(m) {
                    let row = &mut out[i * n..(i + 1) * n];
                    for j in j0..(j0 + TILE).min(n) {
                        row[j] = T::from_f64(q[j * m + i].to_f64() * scale[j]);
                    }
                }
            }
        }
    }
}

/// m·n² (n ≤ m) from which [`orthogonal`] factors in parallel: 1024³ / 2 (measured: a
/// 1024² f32 QR takes 23 ms on one thread and 16 ms split in two, a 512² one gains nothing).
#[cfg(feature = "orthogonal")]
pub(crate) const PARALLEL_QR_FLOPS: f64 = 536_870_912.0;

/// The fixed number of tasks a parallel QR is split into (see [`orthogonal`]).
#[cfg(feature = "orthogonal")]
pub(crate) const QR_SPLIT: usize = 2;
