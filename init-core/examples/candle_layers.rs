//! A small candle model built the candle way (a `VarMap` behind a `VarBuilder`), then
//! re-initialized by scheme: He for the convs (a depthwise one with its groups), Xavier for the
//! head, zeros for biases. Prints each variable's fans and the std it got against the formula.
//!
//! `cargo run -p init-core --example candle_layers --features candle`

use candle_core::{DType, Device};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use init_core::candle::init_varmap;
use init_core::{FanRule, Fans, Scheme, SchemeExt as _, Seed};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let depthwise = Conv2dConfig {
        groups: 32,
        padding: 1,
        ..Conv2dConfig::default()
    };
    let _stem = candle_nn::conv2d(3, 32, 3, Conv2dConfig::default(), vb.pp("stem"))?;
    let _dw = candle_nn::conv2d(32, 32, 3, depthwise, vb.pp("dw"))?;
    let _head = candle_nn::linear(32 * 7 * 7, 10, vb.pp("head"))?;

    let he: Scheme = "he_normal".parse()?;
    let xavier: Scheme = "xavier_uniform".parse()?;
    let zeros: Scheme = "zeros".parse()?;
    // candle's layouts are PyTorch's (OutIn); only the depthwise conv needs its groups.
    let rule = |name: &str| FanRule {
        groups: if name.starts_with("dw.") { 32 } else { 1 },
        ..FanRule::default()
    };
    let report = init_varmap(&varmap, Seed(42), |name, _shape| {
        Some(match name {
            n if leaf(n) == "bias" => (zeros, FanRule::default()),
            n if n.starts_with("head.") => (xavier, rule(n)),
            n => (he, rule(n)),
        })
    })?;

    let vars = varmap.data().lock().map_err(|e| e.to_string())?;
    for name in &report.filled {
        let var = &vars[name];
        let dims = var.dims();
        let values = var.flatten_all()?.to_vec1::<f32>()?;
        let n = values.len() as f64;
        let mean = values.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let std = (values
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        if leaf(name) == "weight" {
            let scheme = if name.starts_with("head.") {
                xavier
            } else {
                he
            };
            let fans = Fans::of(dims, rule(name))?;
            let want = scheme.expected_std(dims, Some(fans))?;
            println!("{name:12} {dims:?}  {fans}  std {std:.5} (formula {want:.5})");
        } else {
            println!("{name:12} {dims:?}  std {std:.5} (zeros)");
        }
    }
    for name in &report.left_alone {
        println!("{name:12} left alone: the plan gave it no scheme");
    }
    Ok(())
}

/// The last component of a variable's path (`"weight"` of `"head.weight"`).
fn leaf(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}
