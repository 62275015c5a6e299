//! Turning a [`Plan`] into values: [`PlanFiller`], the [`Filler`] the rewrite calls for each
//! piece of each tensor.
//!
//! Element-wise schemes are sampled piece by piece straight into the output buffer (memory does
//! not grow with the tensor); structured schemes (orthogonal, eye, dirac) and per-gate-block
//! recurrent fills need the whole matrix at once: each is computed when its first piece is
//! written and dropped after its last, so memory holds the few being written (about one per
//! thread), not all of a model's recurrent matrices. Either way a tensor's values are a pure
//! function of (seed, graph path and name, scheme, fans, shape, dtype): the determinism contract
//! of init-core, so the output does not depend on the thread count or on which other tensors are
//! re-initialized.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use half::{bf16, f16};
use init_core::rng::key_of;
use init_core::{Element, Fans, Sampler, Scheme, SchemeExt as _, Stream, init_tensor};

use crate::analysis::Analysis;
use crate::onnx::dtype::DType;
use crate::onnx::values::ValuesMut;
use crate::plan::{Fill, Plan, PlanError, Refusal};
use crate::rewrite::Filler;

/// The stream key of an initializer: its name in the main graph, `graph/name` in a subgraph.
pub fn tensor_key(graph: &str, name: &str) -> u64 {
    if graph.is_empty() {
        key_of(name)
    } else {
        key_of(&format!("{graph}/{name}"))
    }
}

/// How one planned tensor's values are made.
enum PreparedFill {
    /// Element-wise: sampled piece by piece at the piece's offset in the stream.
    Sampled { sampler: Sampler, stream: Stream },
    /// Whole-tensor: computed once, then copied out piece by piece.
    Structured(Box<StructuredFill>),
}

/// A whole-tensor fill (orthogonal, eye, dirac, or gate blocks), computed when the first piece
/// of the tensor is asked for and dropped once every element has been handed out, so memory
/// holds the structured tensors being written, not all of them.
///
/// The first thread to ask computes it; the others wait for the result. The computation runs on
/// a thread of its own in the structured fills' shared pool ([`StructuredFill::compute_apart`]),
/// never on the rewrite's pool: a rewrite worker that waited inside a parallel QR could otherwise pick up
/// another piece of the same tensor and start the QR again below itself (measured: 25% more CPU
/// on ten 3200² orthogonal matrices), and a worker blocked on the result must not be one the QR
/// needs.
struct StructuredFill {
    recipe: Recipe,
    data_type: i32,
    numel: u64,
    state: Mutex<FillState>,
    ready: Condvar,
    /// Elements not yet handed out in this pass; reset to `numel` when it reaches 0 (an
    /// `int32_data` tensor is filled twice: once to measure, once to write).
    remaining: AtomicU64,
}

/// Where a [`StructuredFill`]'s values are.
enum FillState {
    /// Not computed, or dropped after the last piece.
    Empty,
    /// Being computed by one thread; the others wait on `ready`.
    Computing,
    /// Computed, shared by the threads copying pieces out.
    Ready(Arc<Values>),
}

/// What a [`StructuredFill`] computes.
enum Recipe {
    /// One scheme over the whole tensor.
    Whole {
        scheme: Scheme,
        shape: Vec<usize>,
        fans: Option<Fans>,
        stream: Stream,
    },
    /// The scheme per gate block, each block with its own stream (`name#b`) and fans.
    GateBlocks {
        scheme: Scheme,
        blocks: usize,
        rows: usize,
        cols: usize,
        seed: u64,
        graph: String,
        name: String,
    },
}

/// A whole tensor's values, in its element type.
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl StructuredFill {
    fn lock(&self) -> MutexGuard<'_, FillState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tensor's values: computed by the first caller of a pass, waited for by the others.
    fn values(&self) -> Arc<Values> {
        let mut st = self.lock();
        loop {
            match &*st {
                FillState::Ready(v) => return Arc::clone(v),
                FillState::Computing => {
                    st = self.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                FillState::Empty => break,
            }
        }
        *st = FillState::Computing;
        drop(st);
        // Whatever happens (a panic included), waiters are woken to a settled state.
        let mut guard = PublishOnDrop {
            fill: self,
            values: None,
        };
        let v = Arc::new(self.compute_apart());
        guard.values = Some(Arc::clone(&v));
        v
    }

    /// Counts `n` elements as handed out; drops the values after the last.
    fn handed_out(&self, n: u64) {
        let before = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(n))
            })
            .unwrap_or(0);
        if before <= n {
            *self.lock() = FillState::Empty;
            self.remaining.store(self.numel, Ordering::Release);
        }
    }

    /// [`Self::compute`] in the structured fills' shared rayon pool ([`structured_pool`]),
    /// called from a new thread that blocks without taking other work (a rewrite worker
    /// calling `install` directly would steal rewrite work while it waits). The values do not
    /// depend on the pool's size (init-core fixes how a QR is split).
    fn compute_apart(&self) -> Values {
        let threads = rayon::current_num_threads();
        std::thread::scope(|s| {
            s.spawn(|| match structured_pool(threads) {
                Some(pool) => pool.install(|| self.compute()),
                None => self.compute(),
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    fn compute(&self) -> Values {
        let numel = usize::try_from(self.numel).unwrap_or(usize::MAX);
        let result = match &self.recipe {
            Recipe::Whole {
                scheme,
                shape,
                fans,
                stream,
            } => precompute(self.data_type, numel, |buf| match buf {
                Buf::F32(v) => init_tensor(scheme, v, shape, *fans, *stream),
                Buf::F64(v) => init_tensor(scheme, v, shape, *fans, *stream),
                Buf::F16(v) => init_tensor(scheme, v, shape, *fans, *stream),
                Buf::BF16(v) => init_tensor(scheme, v, shape, *fans, *stream),
            }),
            Recipe::GateBlocks {
                scheme,
                blocks,
                rows,
                cols,
                seed,
                graph,
                name,
            } => {
                let block = [*rows, *cols];
                let fans = Some(gate_fans(*rows, *cols));
                let per = rows * cols;
                precompute(self.data_type, numel, |mut buf| {
                    for b in 0..*blocks {
                        let s = Stream {
                            seed: *seed,
                            key: tensor_key(graph, &format!("{name}#{b}")),
                        };
                        let r = b * per..(b + 1) * per;
                        match &mut buf {
                            Buf::F32(v) => init_tensor(scheme, &mut v[r], &block, fans, s)?,
                            Buf::F64(v) => init_tensor(scheme, &mut v[r], &block, fans, s)?,
                            Buf::F16(v) => init_tensor(scheme, &mut v[r], &block, fans, s)?,
                            Buf::BF16(v) => init_tensor(scheme, &mut v[r], &block, fans, s)?,
                        }
                    }
                    Ok(())
                })
            }
        };
        // `PlanFiller::new` ran `SchemeExt::check` on exactly these shapes and fans, which
        // accepts precisely what `init_tensor` accepts (init-core tests that equivalence).
        result.expect("structured fill checked by PlanFiller::new")
    }
}

/// The one rayon pool of every structured fill in the process, built on first use with
/// `threads` workers (the caller's pool size then); `None` if no thread could be started (the
/// fill then runs on the calling thread). One pool for the process's life: a pool per fill cost
/// about 10 KB that was never returned, which a long-lived user (a service, a notebook
/// re-initializing model after model) accumulated without bound.
fn structured_pool(threads: usize) -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("onnx-reinit-structured-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Publishes the result of a computation (or, when it unwound, the empty state) and wakes the
/// threads waiting for it.
struct PublishOnDrop<'a> {
    fill: &'a StructuredFill,
    values: Option<Arc<Values>>,
}

impl Drop for PublishOnDrop<'_> {
    fn drop(&mut self) {
        *self.fill.lock() = match self.values.take() {
            Some(v) => FillState::Ready(v),
            None => FillState::Empty,
        };
        self.fill.ready.notify_all();
    }
}

/// The fans of one `rows × cols` gate block: a matrix of its own.
fn gate_fans(rows: usize, cols: usize) -> Fans {
    Fans {
        fan_in: cols as u64,
        fan_out: rows as u64,
    }
}

/// The values of every planned tensor, ready to be written.
pub struct PlanFiller {
    /// (position in the plan, fill) of the tensors that change, by position: no slot for the
    /// kept ones, which in a model of millions of untouched initializers are nearly all.
    tensors: Vec<(usize, PreparedFill)>,
    /// (position in the plan, elements written as 0 after the fill): padding rows.
    zeroed: Vec<(usize, std::ops::Range<u64>)>,
}

impl std::fmt::Debug for PlanFiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanFiller")
            .field("tensors", &self.tensors.len())
            .field("zeroed", &self.zeroed)
            .finish()
    }
}

impl PlanFiller {
    /// Prepares the plan's fills. Fails (naming the tensor and its rule) when a scheme cannot
    /// apply to a tensor's shape and fans; nothing is computed yet (structured fills are
    /// computed when written, see the module docs).
    pub fn new(analysis: &Analysis, plan: &Plan) -> Result<PlanFiller, PlanError> {
        let mut tensors = Vec::new();
        let mut zeroed = Vec::new();
        for (position, e) in plan.entries.iter().enumerate() {
            let t = &analysis.tensors[e.index];
            let Some(fill) = e.fill.as_deref() else {
                continue;
            };
            if let Some(z) = &e.zeroed {
                zeroed.push((position, (**z).clone()));
            }
            let stream = Stream {
                seed: plan.seed,
                key: tensor_key(&t.graph, &t.name),
            };
            let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let numel = shape.iter().product::<usize>() as u64;
            let refused = |refusal: Refusal| PlanError {
                tensor: t.name.to_string(),
                rule: e.reason.to_string(),
                refusal: Box::new(refusal),
            };
            let init_refused = |scheme: Scheme, error| refused(Refusal::Scheme { scheme, error });
            let unrepresentable = |scheme: &Scheme, fans: Option<Fans>| {
                let sampler = scheme.sampler(fans).ok().flatten();
                check_representable(scheme, sampler.as_ref(), t.data_type).map_err(refused)
            };
            let recipe = match fill {
                Fill::Whole { scheme, fans } => {
                    unrepresentable(scheme, *fans)?;
                    if let Some(sampler) = scheme
                        .sampler(*fans)
                        .map_err(|error| init_refused(*scheme, error))?
                    {
                        tensors.push((position, PreparedFill::Sampled { sampler, stream }));
                        continue;
                    }
                    scheme
                        .check(&shape, *fans)
                        .map_err(|error| init_refused(*scheme, error))?;
                    Recipe::Whole {
                        scheme: *scheme,
                        shape,
                        fans: *fans,
                        stream,
                    }
                }
                Fill::GateBlocks {
                    scheme,
                    blocks,
                    rows,
                    cols,
                } => {
                    scheme
                        .check(&[*rows, *cols], Some(gate_fans(*rows, *cols)))
                        .map_err(|error| init_refused(*scheme, error))?;
                    unrepresentable(scheme, Some(gate_fans(*rows, *cols)))?;
                    if (blocks * rows * cols) as u64 != numel {
                        return Err(refused(Refusal::GateBlocks {
                            blocks: *blocks,
                            rows: *rows,
                            cols: *cols,
                            numel,
                        }));
                    }
                    Recipe::GateBlocks {
                        scheme: *scheme,
                        blocks: *blocks,
                        rows: *rows,
                        cols: *cols,
                        seed: plan.seed,
                        graph: t.graph.to_string(),
                        name: t.name.to_string(),
                    }
                }
            };
            tensors.push((
                position,
                PreparedFill::Structured(Box::new(StructuredFill {
                    recipe,
                    data_type: t.data_type,
                    numel,
                    state: Mutex::new(FillState::Empty),
                    ready: Condvar::new(),
                    remaining: AtomicU64::new(numel),
                })),
            ));
        }
        tensors.shrink_to_fit();
        Ok(PlanFiller { tensors, zeroed })
    }

    /// Indices of the tensors that will be written.
    pub fn targets(&self) -> Vec<usize> {
        self.tensors.iter().map(|&(i, _)| i).collect()
    }
}

impl Filler for PlanFiller {
    /// Writes the planned values of elements `start .. start + out.len()` of tensor `tensor`
    /// (`start` a multiple of init-core's chunk size for sampled tensors, as the rewrite's
    /// pieces are); a tensor the plan keeps is left as it is.
    fn fill(&self, tensor: usize, start: u64, mut out: ValuesMut<'_>) {
        let Ok(at) = self.tensors.binary_search_by_key(&tensor, |&(i, _)| i) else {
            return;
        };
        let p = &self.tensors[at].1;
        let n = out.len() as u64;
        fill_values(p, start, &mut out);
        if let Ok(z) = self.zeroed.binary_search_by_key(&tensor, |(i, _)| *i) {
            let r = &self.zeroed[z].1;
            let (lo, hi) = (r.start.max(start), r.end.min(start + n));
            if lo < hi {
                out.zero((lo - start) as usize..(hi - start) as usize);
            }
        }
    }
}

/// The prepared values of elements `start .. start + out.len()`.
fn fill_values(p: &PreparedFill, start: u64, out: &mut ValuesMut<'_>) {
    match p {
        PreparedFill::Sampled { sampler, stream } => match out {
            ValuesMut::F32(v) => sampler.fill_at(v, *stream, start),
            ValuesMut::F64(v) => sampler.fill_at(v, *stream, start),
            ValuesMut::F16(v) => sampler.fill_at(v, *stream, start),
            ValuesMut::BF16(v) => sampler.fill_at(v, *stream, start),
        },
        PreparedFill::Structured(structured) => {
            let n = out.len() as u64;
            let values = structured.values();
            let s = start as usize;
            match (&*values, out) {
                (Values::F32(src), ValuesMut::F32(v)) => copy_from(v, src, s),
                (Values::F64(src), ValuesMut::F64(v)) => copy_from(v, src, s),
                (Values::F16(src), ValuesMut::F16(v)) => copy_from(v, src, s),
                (Values::BF16(src), ValuesMut::BF16(v)) => copy_from(v, src, s),
                _ => unreachable!("values are prepared in the tensor's own dtype"),
            }
            drop(values);
            structured.handed_out(n);
        }
    }
}

/// Largest |z| the normal sampler can draw: √(106 ln 2) for f64, √(62 ln 2) for f32 (f16 and
/// bf16 hold f32 draws rounded); see `init_core::Sampler::Normal`.
fn normal_z_max(dtype: DType) -> f64 {
    if dtype == DType::F64 { 8.57 } else { 6.56 }
}

/// `x` rounded to `dtype` (as init-core writes it: f16/bf16 from the f32 value).
fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F64 => x,
        DType::F16 => f16::from_f32(x as f32).to_f64(),
        DType::BF16 => bf16::from_f32(x as f32).to_f64(),
        _ => f64::from(x as f32),
    }
}

/// Refuses a fill whose values are not finite in the tensor's type `data_type`, or whose scale
/// is zero there although the scheme is not a zero scheme.
///
/// The values lie in `[lo, hi]`: a constant's value; a uniform's bounds; `mean ± z_max·std` for
/// a normal (the sampler's largest draw, [`normal_z_max`]), cut at a truncated normal's bounds;
/// `±gain` for orthogonal (entries of an orthogonal matrix are at most 1 in magnitude) and
/// `[0, gain]` for eye; dirac writes 0 and 1. Both ends must round to finite values of the type.
/// The scale must not vanish: a fan-based scheme (`σ² = scale·gain²/fan`) whose σ is 0 (a gain
/// that underflowed, e.g. `leaky_relu(1e308)`), or non-zero values that all round to 0 in the
/// type (`max(|lo|, |hi|)` rounds to 0), would write zeros where a distribution was asked for.
fn check_representable(
    scheme: &Scheme,
    sampler: Option<&Sampler>,
    data_type: i32,
) -> Result<(), Refusal> {
    use init_core::SchemeKind;
    let dtype = DType::from_onnx(data_type);
    let (lo, hi) = match (sampler, scheme.kind()) {
        (Some(Sampler::Constant(v)), _) => (*v, *v),
        (Some(Sampler::Uniform { lo, hi }), _) => (*lo, *hi),
        (Some(Sampler::Normal { mean, std }), _) => {
            let z = normal_z_max(dtype) * std;
            (mean - z, mean + z)
        }
        (Some(Sampler::TruncatedNormal { mean, std, lo, hi }), _) => {
            let z = normal_z_max(dtype) * std;
            (lo.max(mean - z), hi.min(mean + z))
        }
        (None, SchemeKind::Orthogonal { gain }) => (-gain.abs(), gain.abs()),
        (None, SchemeKind::Eye { gain }) => (gain.min(0.0), gain.max(0.0)),
        _ => return Ok(()),
    };
    let refuse = |what: String| Refusal::NotRepresentable {
        scheme: *scheme,
        dtype: dtype.onnx_name(),
        what,
    };
    for x in [lo, hi] {
        if !round_to(dtype, x).is_finite() {
            return Err(refuse(format!(
                "values reach {x:e}, which is not finite in {} (its largest finite value is \
                 {:e}); the tensor would be written as inf",
                dtype.onnx_name(),
                largest_finite(dtype)
            )));
        }
    }
    let m = lo.abs().max(hi.abs());
    if m == 0.0 && matches!(scheme.kind(), SchemeKind::Scaled { .. }) {
        return Err(refuse(
            "its scale (σ from gain and fans) underflows to zero; every value would be 0".into(),
        ));
    }
    if m > 0.0 && round_to(dtype, m) == 0.0 {
        return Err(refuse(format!(
            "its values (at most {m:e} in magnitude) all round to 0 in {}; every value would be 0",
            dtype.onnx_name()
        )));
    }
    Ok(())
}

/// The largest finite value of a float type.
fn largest_finite(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::MAX,
        DType::F16 => f16::MAX.to_f64(),
        DType::BF16 => bf16::MAX.to_f64(),
        _ => f64::from(f32::MAX),
    }
}

fn copy_from<T: Element>(dst: &mut [T], src: &[T], start: usize) {
    dst.copy_from_slice(&src[start..start + dst.len()]);
}

enum Buf<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    F16(&'a mut [f16]),
    BF16(&'a mut [bf16]),
}

fn precompute(
    data_type: i32,
    numel: usize,
    f: impl FnOnce(Buf<'_>) -> Result<(), init_core::InitError>,
) -> Result<Values, init_core::InitError> {
    Ok(match DType::from_onnx(data_type) {
        DType::F64 => {
            let mut v = vec![0f64; numel];
            f(Buf::F64(&mut v))?;
            Values::F64(v)
        }
        DType::F16 => {
            let mut v = vec![f16::ZERO; numel];
            f(Buf::F16(&mut v))?;
            Values::F16(v)
        }
        DType::BF16 => {
            let mut v = vec![bf16::ZERO; numel];
            f(Buf::BF16(&mut v))?;
            Values::BF16(v)
        }
        _ => {
            let mut v = vec![0f32; numel];
            f(Buf::F32(&mut v))?;
            Values::F32(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structured(scheme: &str, shape: &[usize]) -> StructuredFill {
        let numel = shape.iter().product::<usize>() as u64;
        StructuredFill {
            recipe: Recipe::Whole {
                scheme: Scheme::parse(scheme).unwrap(),
                shape: shape.to_vec(),
                fans: None,
                stream: Stream { seed: 5, key: 7 },
            },
            data_type: DType::FLOAT.onnx_code(),
            numel,
            state: Mutex::new(FillState::Empty),
            ready: Condvar::new(),
            remaining: AtomicU64::new(numel),
        }
    }

    fn take(l: &StructuredFill, start: usize, n: usize) -> Vec<f32> {
        let v = l.values();
        let Values::F32(src) = &*v else {
            panic!("f32 values expected")
        };
        let out = src[start..start + n].to_vec();
        drop(v);
        l.handed_out(n as u64);
        out
    }

    #[test]
    fn structured_values_live_from_first_to_last_piece_of_each_pass() {
        let l = structured("orthogonal", &[48, 40]);
        let mut want = vec![0f32; 48 * 40];
        init_tensor(
            &Scheme::parse("orthogonal").unwrap(),
            &mut want,
            &[48, 40],
            None,
            Stream { seed: 5, key: 7 },
        )
        .unwrap();
        for _pass in 0..2 {
            assert!(matches!(*l.lock(), FillState::Empty));
            let mut got = Vec::new();
            for start in (0..48 * 40).step_by(512) {
                let n = (48 * 40 - start).min(512);
                got.extend(take(&l, start, n));
                let last = start + n == 48 * 40;
                assert_eq!(
                    matches!(*l.lock(), FillState::Empty),
                    last,
                    "piece at {start}"
                );
            }
            assert_eq!(got, want);
            assert_eq!(l.remaining.load(Ordering::Acquire), 48 * 40);
        }
    }

    #[test]
    fn concurrent_pieces_agree_and_release() {
        let l = structured("eye", &[300, 500]);
        let pieces: Vec<usize> = (0..300 * 500).step_by(1000).collect();
        let got: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = pieces
                .chunks(pieces.len().div_ceil(4))
                .map(|c| s.spawn(|| c.iter().map(|&p| take(&l, p, 1000)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let flat: Vec<f32> = got.concat();
        for (i, x) in flat.iter().enumerate() {
            let (r, c) = (i / 500, i % 500);
            assert_eq!(*x, if r == c { 1.0 } else { 0.0 }, "element {i}");
        }
        assert!(matches!(*l.lock(), FillState::Empty));
    }
}
