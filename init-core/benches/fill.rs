//! Fill throughput next to a plain memory fill measured in the same run.
//!
//! `cargo bench -p init-core --bench fill` prints, for 1 and 2 threads, the rate of
//! `slice.fill(1.5)` over 256 MiB of f32 and of the uniform, normal and truncated-normal fills
//! (f32; f16, bf16 and f64 with the same element count), each with its ratio to the memory fill
//! of the same thread count; then orthogonal init of 1024² and 2048² f32 (4096² with
//! `INIT_BENCH_ORTHO_4096=1`). `INIT_BENCH_REPS` sets the repetitions (median reported);
//! `INIT_CORE_PORTABLE=1` measures the portable fallback instead of the dispatched kernels.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use half::{bf16, f16};
use init_core::{Element, Sampler, Scheme, Stream, init_tensor};
use rayon::prelude::*;

const ELEMS: usize = 64 << 20; // 256 MiB of f32

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f(); // warm up (and fault the pages in)
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

struct Row {
    case: String,
    threads: usize,
    secs: f64,
    bytes: usize,
    elems: usize,
    base_gbs: f64,
}

impl Row {
    fn print(&self) {
        let gbs = self.bytes as f64 / self.secs / 1e9;
        println!(
            "| {:<28} | {:>7} | {:>8.2} | {:>7.2} | {:>9.3} | {:>13.2} |",
            self.case,
            self.threads,
            self.secs * 1e3,
            gbs,
            self.elems as f64 / self.secs / 1e9,
            gbs / self.base_gbs,
        );
    }
}

fn fill_case<T: Element>(
    name: &str,
    sampler: Sampler,
    buf: &mut [T],
    threads: usize,
    reps: usize,
    base_gbs: f64,
) -> Row {
    let stream = Stream { seed: 7, key: 11 };
    let secs = time(reps, || {
        sampler.fill(buf, stream);
        black_box(&buf[buf.len() - 1]);
    });
    Row {
        case: format!("{name} {}", T::DTYPE.as_str()),
        threads,
        secs,
        bytes: std::mem::size_of_val(buf),
        elems: buf.len(),
        base_gbs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    let reps: usize = std::env::var("INIT_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "init-core fill benchmark: {} f32 elements (256 MiB); kernels: {:?}; median of {reps}",
        ELEMS,
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
        "| case                         | threads |       ms |    GB/s |  Gelem/s | × memory fill |"
    );
    println!(
        "|------------------------------|---------|----------|---------|-----------|---------------|"
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let secs = time(reps + 2, || {
                f32s.par_chunks_mut(init_core::rng::CHUNK)
                    .for_each(|c| c.fill(1.5));
                black_box(&f32s[ELEMS - 1]);
            });
            let base = (ELEMS * 4) as f64 / secs / 1e9;
            let mut rows = vec![Row {
                case: "memory fill(1.5) f32".into(),
                threads,
                secs,
                bytes: ELEMS * 4,
                elems: ELEMS,
                base_gbs: base,
            }];
            rows.push(fill_case(
                "uniform", uniform, &mut f32s, threads, reps, base,
            ));
            rows.push(fill_case(
                "uniform", uniform, &mut f16s, threads, reps, base,
            ));
            rows.push(fill_case(
                "uniform", uniform, &mut bf16s, threads, reps, base,
            ));
            rows.push(fill_case(
                "uniform", uniform, &mut f64s, threads, reps, base,
            ));
            rows.push(fill_case("normal", normal, &mut f32s, threads, reps, base));
            rows.push(fill_case("normal", normal, &mut f16s, threads, reps, base));
            rows.push(fill_case("normal", normal, &mut bf16s, threads, reps, base));
            rows.push(fill_case("normal", normal, &mut f64s, threads, reps, base));
            rows.push(fill_case(
                "he_truncated_normal",
                trunc,
                &mut f32s,
                threads,
                reps,
                base,
            ));
            rows.push(fill_case(
                "he_truncated_normal",
                trunc,
                &mut f16s,
                threads,
                reps,
                base,
            ));
            rows.push(fill_case(
                "he_truncated_normal",
                trunc,
                &mut f64s,
                threads,
                reps,
                base,
            ));
            for r in &rows {
                r.print();
            }
        });
    }
    drop((f32s, f16s, bf16s, f64s));

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
            let r = if n >= 4096 { 1 } else { 3 };
            let secs = pool.install(|| {
                time(r, || {
                    init_tensor(&scheme, &mut w, &[n, n], None, Stream { seed: 1, key: 2 })
                        .unwrap();
                    black_box(&w[0]);
                })
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
