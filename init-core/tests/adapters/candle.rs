//! The candle adapter on candle_nn's own layers: the fans the plan reads from the shapes
//! candle gives its Linear and Conv2d weights (against PyTorch's numbers for the same layers,
//! written out), the std of what lands in the layer (against the closed form), and bit
//! equality with init-core's own fill for every float dtype.

use super::sample_std;
use candle_core::{DType, Device, Module as _, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use half::{bf16, f16};
use init_core::candle::{Error, fill_var, init_varmap, tensor};
use init_core::{Element, FanRule, Fans, Scheme, SchemeExt as _, Seed};
use std::collections::BTreeMap;

fn scheme(s: &str) -> Scheme {
    s.parse().unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The rule a caller who knows the model gives each weight (candle's layouts are PyTorch's:
/// OutIn for Linear and Conv; the grouped conv says its groups).
fn rule_for(name: &str) -> FanRule {
    if name.starts_with("dw.") {
        FanRule {
            groups: 4,
            ..FanRule::default()
        }
    } else {
        FanRule::default()
    }
}

#[test]
fn varmap_layers_get_the_fans_and_std_of_the_closed_form() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let fc1 = candle_nn::linear(256, 128, vb.pp("fc1")).unwrap();
    let conv = candle_nn::conv2d(16, 32, 3, Conv2dConfig::default(), vb.pp("conv")).unwrap();
    let dw_cfg = Conv2dConfig {
        groups: 4,
        ..Conv2dConfig::default()
    };
    let dw = candle_nn::conv2d(16, 32, 3, dw_cfg, vb.pp("dw")).unwrap();
    let emb = candle_nn::embedding(10, 8, vb.pp("emb")).unwrap();

    let he = scheme("he_normal");
    let zeros = scheme("zeros");
    let mut fans = BTreeMap::new();
    let report = init_varmap(&varmap, Seed(7), |name, shape| {
        if name.starts_with("emb.") {
            return None;
        }
        if name.rsplit('.').next() == Some("weight") {
            fans.insert(name.to_string(), Fans::of(shape, rule_for(name)).unwrap());
            Some((he, rule_for(name)))
        } else {
            Some((zeros, FanRule::default()))
        }
    })
    .unwrap();
    assert_eq!(
        report.filled,
        [
            "conv.bias",
            "conv.weight",
            "dw.bias",
            "dw.weight",
            "fc1.bias",
            "fc1.weight"
        ]
    );
    assert_eq!(report.left_alone, ["emb.weight"]);

    // PyTorch's nn.Linear(256, 128): weight [128, 256], fans (256, 128); nn.Conv2d(16, 32, 3):
    // [32, 16, 3, 3], fans (144, 288); with groups=4: [32, 4, 3, 3], true fans (36, 72).
    let f = |fan_in, fan_out| Fans { fan_in, fan_out };
    assert_eq!(fans["fc1.weight"], f(256, 128));
    assert_eq!(fans["conv.weight"], f(144, 288));
    assert_eq!(fans["dw.weight"], f(36, 72));
    assert_eq!(fc1.weight().dims(), [128, 256]);
    assert_eq!(dw.weight().dims(), [32, 4, 3, 3]);

    // he_normal: N(0, 2/fan_in). The sample std of n normal draws has relative standard error
    // 1/√(2n); allow 6 of them.
    for (name, w, fan_in) in [
        ("fc1", fc1.weight(), 256.0),
        ("conv", conv.weight(), 144.0),
        ("dw", dw.weight(), 36.0),
    ] {
        let v = values(w);
        let want = (2.0f64 / fan_in).sqrt();
        let tol = 6.0 / (2.0 * v.len() as f64).sqrt();
        let got = sample_std(&v);
        assert!(
            (got / want - 1.0).abs() <= tol,
            "{name}: std {got}, want {want} ± {tol}"
        );
    }
    for b in [
        fc1.bias().unwrap(),
        conv.bias().unwrap(),
        dw.bias().unwrap(),
    ] {
        assert!(values(b).iter().all(|&x| x == 0.0));
    }
    // Left alone: candle's own N(0, 1) init of the embedding is still there.
    let e = values(emb.embeddings());
    assert!(sample_std(&e) > 0.5, "the embedding was not touched");

    // What the layer computes uses the new weight: y = W·x for x = e_0 is W's first column.
    let x = Tensor::eye(256, DType::F32, &Device::Cpu)
        .unwrap()
        .narrow(0, 0, 1)
        .unwrap();
    let y = values(&fc1.forward(&x).unwrap());
    let w = values(fc1.weight());
    let col0: Vec<f64> = (0..128).map(|r| w[r * 256]).collect();
    assert_eq!(y, col0);

    // Bit equality with init-core's own fill for the same (seed, name, scheme, shape).
    let mut want = vec![0f32; 32 * 4 * 9];
    he.fill(
        &mut want,
        &[32, 4, 3, 3],
        rule_for("dw.weight"),
        Seed(7),
        "dw.weight",
    )
    .unwrap();
    let got = dw.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

fn bits_equal<T: Element + candle_core::WithDType>(
    scheme: &Scheme,
    shape: &[usize],
    to_bits: fn(T) -> u64,
) {
    let dtype = <T as candle_core::WithDType>::DTYPE;
    let t = tensor(
        scheme,
        shape,
        dtype,
        &Device::Cpu,
        FanRule::default(),
        Seed(3),
        "w",
    )
    .unwrap();
    assert_eq!(t.dtype(), dtype);
    assert_eq!(t.dims(), shape);
    let got = t.flatten_all().unwrap().to_vec1::<T>().unwrap();
    let mut want = vec![T::ZERO; got.len()];
    scheme
        .fill(&mut want, shape, FanRule::default(), Seed(3), "w")
        .unwrap();
    let (g, w): (Vec<u64>, Vec<u64>) = (
        got.into_iter().map(to_bits).collect(),
        want.into_iter().map(to_bits).collect(),
    );
    assert_eq!(g, w, "{dtype:?}");
}

#[test]
fn tensor_equals_fill_bit_for_bit_in_every_float_dtype() {
    for s in [
        "he_uniform",
        "xavier_normal",
        "truncated_normal(mean = 0, std = 0.02)",
    ] {
        let s = scheme(s);
        bits_equal::<f32>(&s, &[64, 48, 3], |x| u64::from(x.to_bits()));
        bits_equal::<f64>(&s, &[64, 48, 3], f64::to_bits);
        bits_equal::<f16>(&s, &[64, 48, 3], |x| u64::from(x.to_bits()));
        bits_equal::<bf16>(&s, &[64, 48, 3], |x| u64::from(x.to_bits()));
    }
}

#[test]
fn errors_name_the_tensor() {
    let he = scheme("he_normal");
    let e = tensor(
        &he,
        &[4, 4],
        DType::U8,
        &Device::Cpu,
        FanRule::default(),
        Seed(1),
        "head.w",
    )
    .unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    assert!(e.to_string().starts_with("head.w: candle dtype U8"), "{e}");

    // A fan-based scheme on a rank-1 bias: init-core's rank error, with the name.
    let e = tensor(
        &he,
        &[4],
        DType::F32,
        &Device::Cpu,
        FanRule::default(),
        Seed(1),
        "head.b",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Init { .. }), "{e}");
    assert!(e.to_string().starts_with("head.b: "), "{e}");

    // The variable keeps its values when the fill is refused, and `?` into candle works.
    let var = candle_core::Var::ones(4, DType::F32, &Device::Cpu).unwrap();
    let r: candle_core::Result<()> =
        (|| Ok(fill_var(&var, &he, FanRule::default(), Seed(1), "b")?))();
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("b: "), "{msg}");
    assert_eq!(values(var.as_tensor()), [1.0; 4]);
}
