//! Structured schemes: orthogonal, identity (eye) and dirac.

use crate::element::Element;
use crate::error::InitError;
use crate::fans::checked_product;
use alloc::format;

/// The 2-D view PyTorch uses: rows = dim 0, columns = the rest flattened.
fn rows_cols(shape: &[usize], what: &'static str) -> Result<(usize, usize), InitError> {
    if shape.len() < 2 {
        return Err(InitError::RankTooLow {
            what,
            min: 2,
            rank: shape.len(),
        });
    }
    Ok((shape[0], checked_product(&shape[1..])?))
}

/// `gain` on the diagonal of the rows × cols view, 0 elsewhere (PyTorch `eye_`, Keras `Identity`).
pub(crate) fn eye<T: Element>(out: &mut [T], shape: &[usize], gain: f64) -> Result<(), InitError> {
    let (rows, cols) = rows_cols(shape, "eye")?;
    out.fill(T::ZERO);
    let g = T::from_f64(gain);
    for i in 0..rows.min(cols) {
        out[i * cols + i] = g;
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
    if !(3..=5).contains(&shape.len()) {
        return Err(InitError::BadShape(format!(
            "dirac needs a convolution weight of rank 3, 4 or 5, got rank {}",
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
    out.fill(T::ZERO);
    let per_group = shape[0] / g;
    let min_dim = per_group.min(shape[1]);
    let kernel = &shape[2..];
    let kernel_size: usize = kernel.iter().product();
    // Row-major offset of the centre tap within one kernel.
    let centre = kernel.iter().fold(0usize, |acc, &k| acc * k + k / 2);
    for gi in 0..g {
        for d in 0..min_dim {
            let o = gi * per_group + d;
            out[(o * shape[1] + d) * kernel_size + centre] = T::ONE;
        }
    }
    Ok(())
}

/// (Semi-)orthogonal rows × cols matrix times `gain`, PyTorch's `orthogonal_`: draw A ~ N(0, 1)
/// of shape (max, min) from the tensor's stream, A = QR, Q ← Q·sign(diag R), transpose when
/// rows < cols. Rows are orthonormal when rows ≤ cols, columns otherwise.
#[cfg(feature = "std")]
pub(crate) fn orthogonal<T: Element>(
    out: &mut [T],
    shape: &[usize],
    gain: f64,
    stream: crate::sample::Stream,
) -> Result<(), InitError> {
    use crate::sample::Sampler;
    use alloc::vec;
    let (rows, cols) = rows_cols(shape, "orthogonal")?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (m, n) = (rows.max(cols), rows.min(cols));
    let mut a = vec![0f64; m * n];
    Sampler::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .fill(&mut a, stream);
    // `a` is read as column-major m × n: column j is a[j·m .. (j+1)·m].
    let mat = faer::MatRef::from_column_major_slice(&a, m, n);
    let qr = mat.qr();
    let q = qr.compute_thin_Q();
    let r = qr.thin_R();
    for j in 0..n {
        let s = if r[(j, j)] < 0.0 { -gain } else { gain };
        for i in 0..m {
            // Element (i, j) of Q·diag(sign)·gain; written transposed when rows < cols.
            let v = T::from_f64(q[(i, j)] * s);
            if rows >= cols {
                out[i * cols + j] = v;
            } else {
                out[j * cols + i] = v;
            }
        }
    }
    Ok(())
}
