//! A small burn model (ndarray backend) built the burn way, from configs, then re-initialized
//! by scheme: He for the convs (a depthwise one with its groups), Xavier for the head, zeros for
//! biases. burn's Linear weight is `[in, out]` (`init_core::burn::LINEAR`, Layout::InOut), its
//! convs `[out, in/g, k…]`. Prints each weight's fans and the std it got against the formula.
//!
//! `cargo run -p init-core --example burn_layers --features burn-ndarray`

use burn_core::module::Param;
use burn_ndarray::{NdArray, NdArrayDevice};
use burn_nn::conv::{Conv2d, Conv2dConfig};
use burn_nn::{Linear, LinearConfig};
use burn_tensor::Tensor;
use init_core::burn::{LINEAR, conv, init_param};
use init_core::{FanRule, Fans, Scheme, SchemeExt as _, Seed};

type B = NdArray;

struct Model {
    stem: Conv2d<B>,
    dw: Conv2d<B>,
    head: Linear<B>,
}

fn report<const D: usize>(name: &str, p: &Param<Tensor<B, D>>, scheme: &Scheme, rule: FanRule) {
    let dims = p.dims();
    let v = p
        .val()
        .to_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap_or_default();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    match Fans::of(&dims, rule) {
        Ok(fans) if dims.len() >= 2 => {
            let want = scheme.expected_std(&dims, Some(fans)).unwrap_or(f64::NAN);
            println!("{name:12} {dims:?}  {fans}  std {std:.5} (formula {want:.5})");
        }
        _ => println!("{name:12} {dims:?}  std {std:.5} ({scheme})"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = NdArrayDevice::default();
    let mut m = Model {
        stem: Conv2dConfig::new([3, 32], [3, 3]).init(&device),
        dw: Conv2dConfig::new([32, 32], [3, 3])
            .with_groups(32)
            .init(&device),
        head: LinearConfig::new(32 * 7 * 7, 10).init(&device),
    };
    let he: Scheme = "he_normal".parse()?;
    let xavier: Scheme = "xavier_uniform".parse()?;
    let zeros: Scheme = "zeros".parse()?;
    let seed = Seed(42);

    for (name, layer) in [("stem", &mut m.stem), ("dw", &mut m.dw)] {
        let rule = conv(layer.groups);
        init_param(
            &mut layer.weight,
            &he,
            rule,
            seed,
            &format!("{name}.weight"),
        )?;
        report(&format!("{name}.weight"), &layer.weight, &he, rule);
        if let Some(b) = layer.bias.as_mut() {
            init_param(b, &zeros, rule, seed, &format!("{name}.bias"))?;
            report(&format!("{name}.bias"), b, &zeros, rule);
        }
    }
    init_param(&mut m.head.weight, &xavier, LINEAR, seed, "head.weight")?;
    report("head.weight", &m.head.weight, &xavier, LINEAR);
    if let Some(b) = m.head.bias.as_mut() {
        init_param(b, &zeros, LINEAR, seed, "head.bias")?;
        report("head.bias", b, &zeros, LINEAR);
    }
    Ok(())
}
