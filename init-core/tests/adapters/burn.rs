//! The burn adapter on burn-nn's own layers (ndarray backend): the fans of burn's `[in, out]`
//! Linear and `[out, in/g, k…]` / `[in, out/g, k…]` convs (against PyTorch's numbers for the
//! same layers, written out), the std of what lands in the layer (against the closed form),
//! and bit equality with init-core's own fill.

use super::sample_std;
use burn_core::module::Param;
use burn_ndarray::{NdArray, NdArrayDevice};
use burn_nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn_nn::{LinearConfig, LinearLayout};
use burn_tensor::{DType, Tensor, TensorData};
use half::{bf16, f16};
use init_core::burn::{Error, LINEAR, conv, conv_transpose, init_param, tensor, tensor_data};
use init_core::{Element, FanRule, Fans, Scheme, SchemeExt as _, Seed};

type B = NdArray;

fn scheme(s: &str) -> Scheme {
    s.parse().unwrap()
}

fn values<const D: usize>(t: &Tensor<B, D>) -> Vec<f64> {
    t.to_data().convert::<f64>().to_vec::<f64>().unwrap()
}

fn filled_f32(scheme: &Scheme, shape: &[usize], rule: FanRule, seed: u64, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; shape.iter().product()];
    scheme.fill(&mut v, shape, rule, Seed(seed), name).unwrap();
    v
}

fn assert_std(name: &str, v: &[f64], want: f64, kurtosis: f64) {
    // The sample std of n draws has relative standard error √(κ − 1)/(2√n) (κ = 3 normal,
    // 1.8 uniform); allow 6 of them.
    let tol = 6.0 * (kurtosis - 1.0).sqrt() / (2.0 * (v.len() as f64).sqrt());
    let got = sample_std(v);
    assert!(
        (got / want - 1.0).abs() <= tol,
        "{name}: std {got}, want {want} ± {tol}"
    );
}

#[test]
fn layers_get_the_fans_and_std_of_the_closed_form() {
    let device = NdArrayDevice::default();
    let mut fc1 = LinearConfig::new(256, 128).init::<B>(&device);
    let mut dw = Conv2dConfig::new([16, 32], [3, 3])
        .with_groups(4)
        .init::<B>(&device);
    let mut up = ConvTranspose2dConfig::new([16, 32], [3, 3]).init::<B>(&device);

    // burn's shapes: Linear [in, out]; Conv2d [out, in/g, kh, kw]; ConvTranspose2d
    // [in, out/g, kh, kw].
    assert_eq!(fc1.weight.dims(), [256, 128]);
    assert_eq!(dw.weight.dims(), [32, 4, 3, 3]);
    assert_eq!(up.weight.dims(), [16, 32, 3, 3]);
    // PyTorch's numbers for the same layers: nn.Linear(256, 128) fans (256, 128); a
    // Conv2d(16, 32, 3, groups=4) truly has fan_in 4·9 = 36 and fan_out 8·9 = 72;
    // ConvTranspose2d(16, 32, 3) truly has fan_in 16·9 = 144, fan_out 32·9 = 288.
    let f = |fan_in, fan_out| Fans { fan_in, fan_out };
    assert_eq!(Fans::of(&fc1.weight.dims(), LINEAR).unwrap(), f(256, 128));
    assert_eq!(
        Fans::of(&dw.weight.dims(), conv(dw.groups)).unwrap(),
        f(36, 72)
    );
    assert_eq!(
        Fans::of(&up.weight.dims(), conv_transpose(1)).unwrap(),
        f(144, 288)
    );
    // PyTorch's default rule on burn's Linear would swap them.
    assert_eq!(
        Fans::of(&fc1.weight.dims(), FanRule::default()).unwrap(),
        f(128, 256)
    );

    let he = scheme("he_normal");
    let xavier = scheme("xavier_uniform");
    let zeros = scheme("zeros");
    let id = fc1.weight.id;
    // Always false on a backend without autodiff, but kept whatever it is.
    let grad = fc1.weight.is_require_grad();
    init_param(&mut fc1.weight, &he, LINEAR, Seed(7), "fc1.weight").unwrap();
    init_param(
        fc1.bias.as_mut().unwrap(),
        &zeros,
        LINEAR,
        Seed(7),
        "fc1.bias",
    )
    .unwrap();
    init_param(&mut dw.weight, &he, conv(dw.groups), Seed(7), "dw.weight").unwrap();
    init_param(
        &mut up.weight,
        &xavier,
        conv_transpose(1),
        Seed(7),
        "up.weight",
    )
    .unwrap();
    assert_eq!(fc1.weight.id, id, "the parameter keeps its id");
    assert_eq!(fc1.weight.is_require_grad(), grad);

    assert_std(
        "fc1",
        &values(&fc1.weight.val()),
        (2.0f64 / 256.0).sqrt(),
        3.0,
    );
    assert_std("dw", &values(&dw.weight.val()), (2.0f64 / 36.0).sqrt(), 3.0);
    assert_std(
        "up",
        &values(&up.weight.val()),
        (2.0f64 / (144.0 + 288.0)).sqrt(),
        1.8,
    );

    // The layer computes with it: y = x·W + b for x = e_0 is W's first row (b = 0).
    let mut e0 = vec![0f32; 256];
    e0[0] = 1.0;
    let x = Tensor::<B, 2>::from_data(TensorData::new(e0, [1, 256]), &device);
    let y = values(&fc1.forward(x));
    assert_eq!(y, values(&fc1.weight.val())[..128]);

    // Bit equality with init-core's own fill for the same (seed, name, scheme, shape, rule).
    let got = fc1.weight.val().to_data().to_vec::<f32>().unwrap();
    assert_eq!(got, filled_f32(&he, &[256, 128], LINEAR, 7, "fc1.weight"));
    let got = dw.weight.val().to_data().to_vec::<f32>().unwrap();
    assert_eq!(
        got,
        filled_f32(&he, &[32, 4, 3, 3], conv(4), 7, "dw.weight")
    );
}

#[test]
fn col_layout_linear_has_the_same_in_out_shape_and_values() {
    let device = NdArrayDevice::default();
    let mut l = LinearConfig::new(6, 12)
        .with_layout(LinearLayout::Col)
        .init::<B>(&device);
    assert_eq!(l.weight.dims(), [6, 12]);
    let s = scheme("he_uniform");
    init_param(&mut l.weight, &s, LINEAR, Seed(1), "l.weight").unwrap();
    let got = l.weight.val().to_data().to_vec::<f32>().unwrap();
    assert_eq!(got, filled_f32(&s, &[6, 12], LINEAR, 1, "l.weight"));
}

fn bits_equal<T: Element + burn_tensor::Element>(s: &Scheme, to_bits: fn(T) -> u64) {
    let shape = [64, 48, 3];
    let dtype = <T as burn_tensor::Element>::dtype();
    let data = tensor_data(s, &shape, dtype, LINEAR, Seed(3), "w").unwrap();
    assert_eq!(data.dtype, dtype);
    assert_eq!(data.shape.as_slice(), shape);
    let got: Vec<u64> = data
        .to_vec::<T>()
        .unwrap()
        .into_iter()
        .map(to_bits)
        .collect();
    let mut want = vec![<T as Element>::ZERO; got.len()];
    s.fill(&mut want, &shape, LINEAR, Seed(3), "w").unwrap();
    let want: Vec<u64> = want.into_iter().map(to_bits).collect();
    assert_eq!(got, want, "{dtype:?}");
}

#[test]
fn tensor_data_equals_fill_bit_for_bit_in_every_float_dtype() {
    for name in [
        "he_uniform",
        "xavier_normal",
        "truncated_normal(mean = 0, std = 0.02)",
    ] {
        let s = scheme(name);
        bits_equal::<f32>(&s, |x| u64::from(x.to_bits()));
        bits_equal::<f64>(&s, f64::to_bits);
        bits_equal::<f16>(&s, |x| u64::from(x.to_bits()));
        bits_equal::<bf16>(&s, |x| u64::from(x.to_bits()));
        let t = tensor::<B, 3>(
            &s,
            [64, 48, 3],
            &NdArrayDevice::default(),
            LINEAR,
            Seed(3),
            "w",
        )
        .unwrap();
        let got = t.to_data().to_vec::<f32>().unwrap();
        assert_eq!(got, filled_f32(&s, &[64, 48, 3], LINEAR, 3, "w"), "{name}");
    }
}

#[test]
fn errors_name_the_tensor_and_leave_the_param_alone() {
    let he = scheme("he_normal");
    let e = tensor_data(&he, &[4, 4], DType::I32, LINEAR, Seed(1), "head.w").unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    assert!(e.to_string().starts_with("head.w: burn dtype I32"), "{e}");

    let device = NdArrayDevice::default();
    let mut bias = Param::from_tensor(Tensor::<B, 1>::ones([4], &device));
    let id = bias.id;
    let e = init_param(&mut bias, &he, LINEAR, Seed(1), "head.b").unwrap_err();
    assert!(matches!(e, Error::Init { .. }), "{e}");
    assert!(e.to_string().starts_with("head.b: "), "{e}");
    assert_eq!(values(&bias.val()), [1.0; 4]);
    assert_eq!(bias.id, id);
}
