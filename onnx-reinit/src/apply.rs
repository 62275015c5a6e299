//! Turning a [`Plan`] into values: the [`Filler`] the rewrite calls for each piece of each
//! tensor.
//!
//! Element-wise schemes are sampled piece by piece straight into the output buffer (memory does
//! not grow with the tensor); structured schemes (orthogonal, eye, dirac) and per-gate-block
//! recurrent fills need the whole matrix at once and are computed up front — they are small in
//! practice (recurrent and square matrices). Either way a tensor's values are a pure function
//! of (seed, graph path and name, scheme, fans, shape, dtype): the determinism contract of
//! init-core, so the output does not depend on the thread count or on which other tensors are
//! re-initialized.

use half::{bf16, f16};
use init_core::rng::key_of;
use init_core::{Element, Fans, Sampler, Stream, init_tensor};

use crate::analysis::Analysis;
use crate::plan::{Fill, Plan};
use crate::values::ValuesMut;

/// The stream key of an initializer: its name in the main graph, `graph/name` in a subgraph.
pub fn tensor_key(graph: &str, name: &str) -> u64 {
    if graph.is_empty() {
        key_of(name)
    } else {
        key_of(&format!("{graph}/{name}"))
    }
}

enum Prepared {
    Sampled { sampler: Sampler, stream: Stream },
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

/// The values of every planned tensor, ready to be written.
pub struct PlanFiller {
    tensors: Vec<Option<Prepared>>,
}

impl std::fmt::Debug for PlanFiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanFiller")
            .field(
                "tensors",
                &self.tensors.iter().filter(|t| t.is_some()).count(),
            )
            .finish()
    }
}

impl PlanFiller {
    /// Prepare the plan's values. Fails (naming the tensor) when a structured scheme cannot be
    /// computed for a tensor's shape.
    pub fn new(analysis: &Analysis, plan: &Plan) -> Result<PlanFiller, String> {
        let mut tensors = Vec::with_capacity(plan.entries.len());
        for e in &plan.entries {
            let t = &analysis.tensors[e.index];
            let Some(fill) = &e.fill else {
                tensors.push(None);
                continue;
            };
            let stream = Stream {
                seed: plan.seed,
                key: tensor_key(&t.graph, &t.name),
            };
            let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let numel: usize = shape.iter().product();
            let err = |e: init_core::InitError| format!("tensor `{}`: {e}", t.name);
            let prepared = match fill {
                Fill::Whole { scheme, fans } => match scheme.sampler(*fans).map_err(err)? {
                    Some(sampler) => Prepared::Sampled { sampler, stream },
                    None => precompute(t.data_type, numel, |buf| match buf {
                        Buf::F32(v) => init_tensor(scheme, v, &shape, *fans, stream),
                        Buf::F64(v) => init_tensor(scheme, v, &shape, *fans, stream),
                        Buf::F16(v) => init_tensor(scheme, v, &shape, *fans, stream),
                        Buf::BF16(v) => init_tensor(scheme, v, &shape, *fans, stream),
                    })
                    .map_err(err)?,
                },
                Fill::GateBlocks {
                    scheme,
                    blocks,
                    rows,
                    cols,
                } => {
                    let block = [*rows, *cols];
                    let fans = Some(Fans {
                        fan_in: *cols as u64,
                        fan_out: *rows as u64,
                    });
                    let per = rows * cols;
                    let name = t.name.clone();
                    let graph = t.graph.clone();
                    precompute(t.data_type, numel, |mut buf| {
                        for b in 0..*blocks {
                            let s = Stream {
                                seed: plan.seed,
                                key: tensor_key(&graph, &format!("{name}#{b}")),
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
                    .map_err(err)?
                }
            };
            tensors.push(Some(prepared));
        }
        Ok(PlanFiller { tensors })
    }

    /// Indices of the tensors that will be written.
    pub fn targets(&self) -> Vec<usize> {
        self.tensors
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|_| i))
            .collect()
    }

    /// Write elements `start .. start + out.len()` of tensor `tensor` (`start` a multiple of
    /// init-core's chunk size for sampled tensors).
    pub fn fill_values(&self, tensor: usize, start: u64, out: ValuesMut<'_>) {
        let Some(Some(p)) = self.tensors.get(tensor) else {
            return;
        };
        let s = start as usize;
        match (p, out) {
            (Prepared::Sampled { sampler, stream }, out) => match out {
                ValuesMut::F32(v) => sampler.fill_at(v, *stream, start),
                ValuesMut::F64(v) => sampler.fill_at(v, *stream, start),
                ValuesMut::F16(v) => sampler.fill_at(v, *stream, start),
                ValuesMut::BF16(v) => sampler.fill_at(v, *stream, start),
            },
            (Prepared::F32(src), ValuesMut::F32(v)) => copy_from(v, src, s),
            (Prepared::F64(src), ValuesMut::F64(v)) => copy_from(v, src, s),
            (Prepared::F16(src), ValuesMut::F16(v)) => copy_from(v, src, s),
            (Prepared::BF16(src), ValuesMut::BF16(v)) => copy_from(v, src, s),
            _ => unreachable!("values are prepared in the tensor's own dtype"),
        }
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
) -> Result<Prepared, init_core::InitError> {
    Ok(match data_type {
        11 => {
            let mut v = vec![0f64; numel];
            f(Buf::F64(&mut v))?;
            Prepared::F64(v)
        }
        10 => {
            let mut v = vec![f16::ZERO; numel];
            f(Buf::F16(&mut v))?;
            Prepared::F16(v)
        }
        16 => {
            let mut v = vec![bf16::ZERO; numel];
            f(Buf::BF16(&mut v))?;
            Prepared::BF16(v)
        }
        _ => {
            let mut v = vec![0f32; numel];
            f(Buf::F32(&mut v))?;
            Prepared::F32(v)
        }
    })
}
