//! Fill throughput next to a plain memory fill measured in the same run.
//!
//! `cargo bench -p init-core --bench fill` prints, for 1 and 2 threads, the rate of
//! `slice.fill(1.5)` over 256 MiB of f32 and of the uniform, normal and truncated-normal fills
//! (f32; f16, bf16 and f64 with the same element count), each with its ratio to the memory fill
//! of the same thread count; then the kernels' compute rate per thread for each instruction
//! set (one L2-resident chunk, best of many: insensitive to other load on the host); then
//! orthogonal init of 1024² and 2048² f32 (4096² with `INIT_BENCH_ORTHO_4096=1`; one warm-up,
//! then the median of 5, or 3 at 4096²). `INIT_BENCH_REPS` sets the rounds (the best is reported);
//! `INIT_CORE_PORTABLE=1` measures the portable fallback instead of the dispatched kernels.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use half::{bf16, f16};
use init_core::sample::Isa;
use init_core::{Element, Sampler, Scheme, SchemeExt as _, Stream, init_tensor};
use rayon::prelude::*;

const ELEMS: usize = 64 << 20; // 256 MiB of f32

fn secs<F: FnMut()>(f: &mut F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

struct Row {
    case: String,
    threads: usize,
    secs: f64,
    bytes: usize,
    elems: usize,
}

impl Row {
    fn print(&self, base_gbs: f64) {
        let gbs = self.bytes as f64 / self.secs / 1e9;
        println!(
            "| {:<26} | {:>7} | {:>8.2} | {:>7.2} | {:>9.3} | {:>13.2} |",
            self.case,
            self.threads,
            self.secs * 1e3,
            gbs,
            self.elems as f64 / self.secs / 1e9,
            gbs / base_gbs,
        );
    }
}

type Case<'a> = (String, usize, usize, Box<dyn FnMut() + 'a>);

fn fill_case<'a, T: Element>(name: &str, sampler: Sampler, buf: &'a mut [T]) -> Case<'a> {
    let stream = Stream { seed: 7, key: 11 };
    let (bytes, elems) = (std::mem::size_of_val(buf), buf.len());
    (
        format!("{name} {}", T::DTYPE.as_str()),
        bytes,
        elems,
        Box::new(move || {
            sampler.fill(buf, stream);
            black_box(&buf[buf.len() - 1]);
        }),
    )
}

fn compute_row<T: Element>(name: &str, s: Sampler, isas: &[Isa]) {
    let mut buf = vec![T::ZERO; init_core::rng::CHUNK];
    let stream = Stream { seed: 7, key: 11 };
    let mut best = vec![f64::INFINITY; isas.len()];
    // Three passes over the instruction sets, 100 fills each, the fastest fill kept: a burst of
    // other load on the host cannot cover every pass.
    for _ in 0..3 {
        for (&isa, b) in isas.iter().zip(&mut best) {
            if !isa.is_available() {
                continue;
            }
            for i in 0..100u64 {
                let t = Instant::now();
                s.fill_serial_with(
                    isa,
                    &mut buf,
                    stream,
                    (i % 64) * init_core::rng::CHUNK as u64,
                );
                *b = b.min(t.elapsed().as_secs_f64());
                black_box(&buf[0]);
            }
        }
    }
    let cells: Vec<String> = isas
        .iter()
        .zip(&best)
        .map(|(isa, b)| {
            if isa.is_available() {
                format!("{:>8.3}", b * 1e9 / buf.len() as f64)
            } else {
                "       -".to_string()
            }
        })
        .collect();
    println!(
        "| {:<26} | {} |",
        format!("{name} {}", T::DTYPE.as_str()),
        cells.join(" | ")
    );
}

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    let reps: usize = std::env::var("INIT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "init-core fill benchmark: {ELEMS} elements per fill (256 MiB of f32); kernels: {:?}; \
         best of {reps} rounds",
        init_core::sample::active_isa()
    );
    let mut f32s = vec![0f32; ELEMS];
    let mut f16s = vec![f16::ZERO; ELEMS];
    let mut bf16s = vec![bf16::ZERO; ELEMS];
    let mut f64s = vec![0f64; ELEMS];

    let uniform = Sampler::Uniform {
        lo: -0.153_093_1,
        hi: 0.153_093_1,
    };
    let normal = Sampler::Normal {
        mean: 0.0,
        std: 0.088_388_3,
    };
    let trunc = Scheme::parse("he_truncated_normal")
        .unwrap()
        .sampler(Some(init_core::Fans {
            fan_in: 256,
            fan_out: 128,
        }))
        .unwrap()
        .unwrap();

    println!();
    println!(
        "| case                       | threads |       ms |    GB/s |  Gelem/s | × memory fill |"
    );
    println!(
        "|----------------------------|---------|----------|---------|-----------|---------------|"
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut mem = vec![0f32; ELEMS];
            let mut cases: Vec<Case> = vec![
                (
                    "memory fill(1.5) f32".into(),
                    ELEMS * 4,
                    ELEMS,
                    Box::new(|| {
                        mem.par_chunks_mut(init_core::rng::CHUNK)
                            .for_each(|c| c.fill(1.5));
                        black_box(&mem[ELEMS - 1]);
                    }),
                ),
                fill_case("uniform", uniform, &mut f32s),
                fill_case("uniform", uniform, &mut f16s),
                fill_case("uniform", uniform, &mut bf16s),
                fill_case("uniform", uniform, &mut f64s),
            ];
            let mut more: Vec<Case> = Vec::new();
            // The other samplers reuse the buffers; run them in a second group.
            let run = |cases: &mut Vec<Case>| {
                // Round-robin: every case once per round, the best round reported (the host is
                // shared; the best round is the least disturbed).
                let mut best = vec![f64::INFINITY; cases.len()];
                for (c, b) in cases.iter_mut().zip(&mut best) {
                    (c.3)(); // warm up, fault pages in
                    *b = f64::INFINITY;
                }
                for _ in 0..reps {
                    for (c, b) in cases.iter_mut().zip(&mut best) {
                        *b = b.min(secs(&mut c.3));
                    }
                }
                cases
                    .iter()
                    .zip(best)
                    .map(|(c, s)| Row {
                        case: c.0.clone(),
                        threads,
                        secs: s,
                        bytes: c.1,
                        elems: c.2,
                    })
                    .collect::<Vec<_>>()
            };
            let rows = run(&mut cases);
            drop(cases);
            let base = rows[0].bytes as f64 / rows[0].secs / 1e9;
            for r in &rows {
                r.print(base);
            }
            more.push(fill_case("normal", normal, &mut f32s));
            more.push(fill_case("normal", normal, &mut f16s));
            more.push(fill_case("normal", normal, &mut bf16s));
            more.push(fill_case("normal", normal, &mut f64s));
            for r in run(&mut more) {
                r.print(base);
            }
            drop(more);
            let mut trunc_cases: Vec<Case> = vec![
                fill_case("he_truncated_normal", trunc, &mut f32s),
                fill_case("he_truncated_normal", trunc, &mut f16s),
                fill_case("he_truncated_normal", trunc, &mut bf16s),
                fill_case("he_truncated_normal", trunc, &mut f64s),
            ];
            for r in run(&mut trunc_cases) {
                r.print(base);
            }
        });
    }
    drop((f32s, f16s, bf16s, f64s));

    println!();
    println!("kernel compute rate, ns per element per thread (one 64Ki-element chunk in L2):");
    println!();
    println!("| case                       | portable |     AVX2 |  AVX-512 |");
    println!("|----------------------------|----------|----------|----------|");
    let isas = [Isa::Portable, Isa::Avx2, Isa::Avx512];
    for (name, s) in [
        ("uniform", uniform),
        ("normal", normal),
        ("he_truncated_normal", trunc),
    ] {
        compute_row::<f32>(name, s, &isas);
        compute_row::<f16>(name, s, &isas);
        compute_row::<bf16>(name, s, &isas);
        compute_row::<f64>(name, s, &isas);
    }

    println!();
    println!("| orthogonal f32 | threads |       ms |");
    println!("|----------------|---------|----------|");
    let mut sizes = vec![1024usize, 2048];
    if std::env::var_os("INIT_BENCH_ORTHO_4096").is_some() {
        sizes.push(4096);
    }
    let scheme = Scheme::orthogonal(1.0).unwrap();
    for n in sizes {
        let mut w = vec![0f32; n * n];
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // One warm-up run, then the median of `r`, as bench/peers.py times torch's
            // `orthogonal_`, so the two tables compare like with like.
            let r = if n >= 4096 { 3 } else { 5 };
            let secs = pool.install(|| {
                let mut f = || {
                    init_tensor(&scheme, &mut w, &[n, n], None, Stream { seed: 1, key: 2 })
                        .unwrap();
                    black_box(&w[0]);
                };
                secs(&mut f);
                let mut t: Vec<f64> = (0..r).map(|_| secs(&mut f)).collect();
                t.sort_by(f64::total_cmp);
                t[r / 2]
            });
            println!(
                "| {:<14} | {:>7} | {:>8.1} |",
                format!("{n}x{n}"),
                threads,
                secs * 1e3
            );
        }
    }
}
