//! Behaviour of `#[derive(Initialize)]`: every field gets its scheme with the right fans, skipped
//! fields are untouched, nested layers are recursed, values are deterministic and keyed by the
//! field's path.

use half::{bf16, f16};
use init_core::rng::key_of;
use init_core::{
    Element, Initialize, Initializer, Scheme, Seed, Shape, Stream, Zeroed, init_tensor,
};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Mean, std, min, max of the elements.
fn stats<T: Element>(xs: &[T]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|x| x.to_f64()).sum::<f64>() / n;
    let var = xs.iter().map(|x| (x.to_f64() - mean).powi(2)).sum::<f64>() / n;
    let min = xs.iter().map(|x| x.to_f64()).fold(f64::INFINITY, f64::min);
    let max = xs
        .iter()
        .map(|x| x.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

/// U(−bound, bound): inside the bounds, std bound/√3 within 6 standard errors, mean ≈ 0.
#[track_caller]
fn assert_uniform<T: Element>(xs: &[T], bound: f64) {
    let (mean, std, min, max) = stats(xs);
    let n = xs.len() as f64;
    let want = bound / 3f64.sqrt();
    // The sample std of a uniform has relative standard error √(0.8/(4n)).
    let tol = 6.0 * (0.2 / n).sqrt() * want + 1e-3 * want;
    assert!(
        min >= -bound * 1.001 && max <= bound * 1.001,
        "outside ±{bound}: [{min}, {max}]"
    );
    assert!(
        min < -0.9 * bound && max > 0.9 * bound,
        "does not fill ±{bound}: [{min}, {max}]"
    );
    assert!(
        (std - want).abs() < tol,
        "std {std}, expected {want} ± {tol}"
    );
    assert!(mean.abs() < 6.0 * want / n.sqrt(), "mean {mean}");
}

/// N(0, σ²): std within 6 standard errors, mean ≈ 0, unbounded (some |x| > 2σ).
#[track_caller]
fn assert_normal<T: Element>(xs: &[T], sigma: f64) {
    let (mean, std, min, max) = stats(xs);
    let n = xs.len() as f64;
    let tol = 6.0 * (0.5 / n).sqrt() * sigma + 1e-3 * sigma;
    assert!(
        (std - sigma).abs() < tol,
        "std {std}, expected {sigma} ± {tol}"
    );
    assert!(mean.abs() < 6.0 * sigma / n.sqrt(), "mean {mean}");
    assert!(
        max > 2.0 * sigma && min < -2.0 * sigma,
        "looks truncated: [{min}, {max}]"
    );
}

#[track_caller]
fn assert_all<T: Element>(xs: &[T], v: f64) {
    assert!(xs.iter().all(|x| x.to_f64() == v), "not all {v}");
}

/// What `init_tensor` writes for `scheme` on a `[out][in]`-style shape at `path` under `seed`.
fn reference<T: Element>(
    scheme: &str,
    dims: &[usize],
    fans: Option<(u64, u64)>,
    seed: u64,
    path: &str,
) -> Vec<T> {
    let mut v = vec![T::ZERO; dims.iter().product()];
    let fans = fans.map(|(fan_in, fan_out)| init_core::Fans { fan_in, fan_out });
    init_tensor(
        &Scheme::parse(scheme).unwrap(),
        &mut v,
        dims,
        fans,
        Stream {
            seed,
            key: key_of(path),
        },
    )
    .unwrap();
    v
}

// ---------------------------------------------------------------------------------------------
// The model from the issue (sizes chosen so each field has enough elements to measure).

#[derive(Initialize, Debug)]
struct Conv2d<const C: usize, const M: usize, const K: usize> {
    #[init(he_uniform)]
    w: [[[[f32; K]; K]; C]; M],
    #[init(zeros)]
    b: [f32; M],
}

#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct Mlp<const H: usize> {
    #[init(he_uniform)]
    w1: [[f32; 784]; H],
    #[init(zeros)]
    b1: [f32; H],
    #[init(glorot_normal, gain = 1.0)]
    w2: [[f32; H]; 10],
    #[init(constant = 0.01)]
    b2: [f32; 10],
    #[init(he_normal, mode = fan_out, nonlinearity = leaky_relu(0.2))]
    w3: [[f32; 256]; 64],
    #[init(layout = in_out, he_uniform)]
    w4: [[f32; 16]; 512],
    conv: Conv2d<16, 32, 3>,
    #[init(skip)]
    steps: u64,
}

/// The model, moved to the heap at once so tests that hold several stay within a test thread's
/// 2 MiB stack (debug builds keep a few copies of a by-value struct on the way out).
#[inline(never)]
fn mlp(seed: u64) -> Box<Mlp<128>> {
    Box::new(Mlp::initialized(Seed(seed)))
}

#[test]
fn every_field_gets_its_scheme_and_fans() {
    let m = mlp(42);
    // w1 [128][784]: fan_in 784.
    assert_uniform(m.w1.flat(), (6.0f64 / 784.0).sqrt());
    assert_all(m.b1.flat(), 0.0);
    // w2 [10][128]: σ = √(2/(128+10)).
    assert_normal(m.w2.flat(), (2.0f64 / 138.0).sqrt());
    assert_all(m.b2.flat(), f64::from(0.01f32));
    // w3 [64][256], mode fan_out = 64, gain √(2/(1+0.2²)).
    assert_normal(m.w3.flat(), (2.0f64 / 1.04).sqrt() / 64f64.sqrt());
    // w4 [512][16] in_out: [in][out], fan_in 512 (out_in would give 16).
    assert_uniform(m.w4.flat(), (6.0f64 / 512.0).sqrt());
    // conv.w [32][16][3][3]: fan_in 16·9.
    assert_uniform(m.conv.w.flat(), (6.0f64 / 144.0).sqrt());
    assert_all(m.conv.b.flat(), 0.0);
    assert_eq!(m.steps, 0);
}

#[test]
fn values_are_the_stream_of_the_field_path() {
    let m = mlp(7);
    assert_eq!(
        m.w1.flat(),
        reference::<f32>("he_uniform", &[128, 784], Some((784, 128)), 7, "w1")
    );
    assert_eq!(
        m.w4.flat(),
        reference::<f32>("he_uniform", &[512, 16], Some((512, 16)), 7, "w4")
    );
    assert_eq!(
        m.conv.w.flat(),
        reference::<f32>("he_uniform", &[32, 16, 3, 3], Some((144, 288)), 7, "conv.w")
    );
}

#[test]
fn skipped_fields_are_untouched() {
    let mut m = mlp(1);
    m.steps = 1234;
    m.initialize(&mut Initializer::new(Seed(2)));
    assert_eq!(m.steps, 1234);
    assert_eq!(m.w1.flat(), mlp(2).w1.flat());
}

#[test]
fn same_seed_same_values_other_seed_other_values() {
    let (a, b, c) = (mlp(42), mlp(42), mlp(43));
    for (x, y, z) in [
        (a.w1.flat(), b.w1.flat(), c.w1.flat()),
        (a.w2.flat(), b.w2.flat(), c.w2.flat()),
        (a.conv.w.flat(), b.conv.w.flat(), c.conv.w.flat()),
    ] {
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
    // initialize on an existing value writes exactly what `initialized` builds.
    let mut d = mlp(0);
    d.initialize_with_seed(Seed(42));
    assert_eq!(d.w3.flat(), a.w3.flat());
}

#[derive(Initialize)]
struct Twins {
    #[init(he_uniform)]
    left: [[f32; 64]; 32],
    #[init(he_uniform)]
    right: [[f32; 64]; 32],
}

#[derive(Initialize)]
struct OnlyRight {
    #[init(he_uniform)]
    right: [[f32; 64]; 32],
}

#[test]
fn identical_fields_differ_and_do_not_depend_on_other_fields() {
    let t = Twins::initialized(Seed(5));
    assert_ne!(t.left.flat(), t.right.flat());
    // `right`'s values depend on its path only, not on `left` existing.
    assert_eq!(t.right.flat(), OnlyRight::initialized(Seed(5)).right.flat());
}

// ---------------------------------------------------------------------------------------------
// Struct-level defaults.

#[derive(Initialize)]
#[init(default = glorot_uniform, bias = constant(0.5))]
struct Defaults {
    w: [[f32; 300]; 100],
    b: [f32; 100],
    k: Box<[[[f32; 5]; 40]; 50]>,
    #[init(layout = in_out)]
    v: [[f32; 100]; 300],
    #[init(normal(0, 0.02))]
    e: [[f32; 64]; 100],
    conv: Conv2d<2, 4, 3>,
}

#[test]
fn struct_defaults_apply_by_rank() {
    let d = Defaults::initialized(Seed(3));
    assert_uniform(d.w.flat(), (6.0f64 / 400.0).sqrt());
    assert_all(d.b.flat(), 0.5);
    // [50][40][5]: fan_in 40·5, fan_out 50·5.
    assert_uniform(d.k.flat(), (6.0f64 / 450.0).sqrt());
    assert_uniform(d.v.flat(), (6.0f64 / 400.0).sqrt());
    assert_normal(d.e.flat(), 0.02);
    // The nested layer keeps its own attributes; the outer defaults do not leak in.
    assert_all(d.conv.b.flat(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Generic and const-generic structs, element types.

#[derive(Initialize)]
struct Dense<E, const I: usize, const O: usize> {
    #[init(he_normal)]
    w: [[E; I]; O],
    #[init(zeros)]
    b: [E; O],
}

impl<E, const I: usize, const O: usize> Dense<E, I, O>
where
    [[E; I]; O]: Shape,
{
    /// Fans are constants of the monomorphized type.
    const FANS: (usize, usize) = (
        <[[E; I]; O] as Shape>::FAN_IN,
        <[[E; I]; O] as Shape>::FAN_OUT,
    );
}

const CONV_FANS: (usize, usize) = (
    <[[[[f32; 3]; 3]; 16]; 32] as Shape>::FAN_IN,
    <[[[[f32; 3]; 3]; 16]; 32] as Shape>::FAN_OUT,
);

#[test]
fn fans_are_compile_time_constants() {
    const DENSE: (usize, usize) = Dense::<f32, 784, 128>::FANS;
    assert_eq!(DENSE, (784, 128));
    assert_eq!(CONV_FANS, (144, 288));
    const _: () = assert!(<[[f32; 784]; 128] as Shape>::FAN_IN == 784);
    const _: () = assert!(<[[f32; 10]; 4] as Shape>::RANK == 2);
}

#[test]
fn generic_element_types() {
    let sigma = (2.0f64 / 400.0).sqrt();
    let a = Dense::<f32, 400, 50>::initialized(Seed(9));
    assert_normal(a.w.flat(), sigma);
    let b = Dense::<f64, 400, 50>::initialized(Seed(9));
    assert_normal(b.w.flat(), sigma);
    let c = Dense::<f16, 400, 50>::initialized(Seed(9));
    assert_normal(c.w.flat(), sigma);
    assert_all(c.b.flat(), 0.0);
    let d = Dense::<bf16, 400, 50>::initialized(Seed(9));
    assert_normal(d.w.flat(), sigma);
    // f16 is f32's stream rounded.
    let rounded: Vec<f16> = a.w.flat().iter().map(|&x| f16::from_f32(x)).collect();
    assert_eq!(c.w.flat(), rounded.as_slice());
}

#[derive(Initialize)]
struct Wrapper<L> {
    inner: L,
    #[init(skip)]
    tag: &'static str,
}

#[test]
fn generic_layer_parameter() {
    let w = Wrapper::<Dense<f32, 100, 80>>::initialized(Seed(4));
    assert_eq!(w.tag, "");
    assert_eq!(
        w.inner.w.flat(),
        reference::<f32>("he_normal", &[80, 100], Some((100, 80)), 4, "inner.w")
    );
}

#[derive(Initialize)]
#[init(default = lecun_normal, bias = zeros)]
struct Pair([[f32; 500]; 20], [f32; 20], #[init(skip)] u8);

#[test]
fn tuple_structs_use_indices_as_paths() {
    let p = Pair::initialized(Seed(11));
    assert_normal(p.0.flat(), (1.0f64 / 500.0).sqrt());
    assert_all(p.1.flat(), 0.0);
    assert_eq!(p.2, 0);
    assert_eq!(
        p.0.flat(),
        reference::<f32>("lecun_normal", &[20, 500], Some((500, 20)), 11, "0")
    );
}

#[derive(Initialize)]
struct Scalars {
    #[init(constant = 1.5)]
    scale: f32,
    #[init(he_uniform, fans = (100, 10))]
    v: [f32; 5000],
    #[init(orthogonal)]
    q: [[f64; 32]; 16],
}

#[test]
fn scalars_explicit_fans_and_structured_schemes() {
    let s = Scalars::initialized(Seed(8));
    assert_eq!(s.scale, 1.5);
    assert_uniform(s.v.flat(), (6.0f64 / 100.0).sqrt());
    // 16 orthonormal rows.
    for i in 0..16 {
        for j in 0..16 {
            let dot: f64 = (0..32).map(|k| s.q[i][k] * s.q[j][k]).sum();
            assert!(
                (dot - f64::from(u8::from(i == j))).abs() < 1e-9,
                "rows {i}, {j}: {dot}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lists of layers, boxes, run-time shapes.

#[derive(Initialize)]
struct Stack {
    layers: [Conv2d<2, 8, 3>; 3],
    #[init(len = 2)]
    extra: Vec<Dense<f32, 40, 30>>,
    head: Box<Dense<f32, 30, 10>>,
    maybe: Option<Dense<f32, 30, 10>>,
}

#[test]
fn arrays_and_vecs_of_layers() {
    let s = Stack::initialized(Seed(12));
    assert_eq!(s.extra.len(), 2);
    assert!(s.maybe.is_none());
    assert_ne!(s.layers[0].w.flat(), s.layers[1].w.flat());
    assert_ne!(s.extra[0].w.flat(), s.extra[1].w.flat());
    assert_eq!(
        s.layers[2].w.flat(),
        reference::<f32>(
            "he_uniform",
            &[8, 2, 3, 3],
            Some((18, 72)),
            12,
            "layers.2.w"
        )
    );
    assert_eq!(
        s.extra[1].w.flat(),
        reference::<f32>("he_normal", &[30, 40], Some((40, 30)), 12, "extra.1.w")
    );
    assert_eq!(
        s.head.w.flat(),
        reference::<f32>("he_normal", &[10, 30], Some((30, 10)), 12, "head.w")
    );
    // A Vec of layers built by hand is initialized whatever its length.
    let mut t = Stack::initialized(Seed(12));
    t.extra.push(Dense::zeroed());
    t.maybe = Some(Dense::zeroed());
    t.initialize_with_seed(Seed(12));
    assert_normal(t.extra[2].w.flat(), (2.0f64 / 40.0).sqrt());
    assert_eq!(t.extra[0].w.flat(), s.extra[0].w.flat());
    assert_eq!(
        t.maybe.as_ref().unwrap().w.flat(),
        reference::<f32>("he_normal", &[10, 30], Some((30, 10)), 12, "maybe.w")
    );
}

#[derive(Initialize)]
struct Big {
    /// 8 MiB: more than a test thread's stack; must be built on the heap.
    #[init(he_uniform)]
    w: Box<[[f32; 2048]; 1024]>,
}

#[test]
fn boxed_arrays_are_built_on_the_heap() {
    let b = Big::initialized(Seed(13));
    assert_uniform(b.w.flat(), (6.0f64 / 2048.0).sqrt());
}

const HIDDEN: usize = 64;

#[derive(Initialize)]
struct Flat {
    #[init(he_uniform, shape = [HIDDEN, 300])]
    w: Vec<f32>,
    #[init(zeros, shape = [HIDDEN])]
    b: Box<[f64]>,
    #[init(glorot_normal, shape = [20, 30, 4], layout = in_out)]
    k: Vec<bf16>,
}

#[test]
fn runtime_shaped_buffers() {
    let f = Flat::initialized(Seed(14));
    assert_eq!(f.w.len(), 64 * 300);
    assert_uniform(&f.w, (6.0f64 / 300.0).sqrt());
    assert_eq!(f.b.len(), 64);
    assert_all(&f.b, 0.0);
    // in_out [20][30][4]: receptive field 20, fan_in 30·20, fan_out 4·20.
    assert_normal(&f.k, (2.0f64 / 680.0).sqrt());
    assert_eq!(
        f.w,
        reference::<f32>("he_uniform", &[64, 300], Some((300, 64)), 14, "w")
    );
}

#[test]
#[should_panic(
    expected = "field `w`: invalid shape: `shape = [64, 300]` holds 19200 elements but the buffer has 100"
)]
fn runtime_length_is_checked() {
    let mut f = Flat::initialized(Seed(14));
    f.w = vec![0.0; 100];
    f.initialize_with_seed(Seed(1));
}

// ---------------------------------------------------------------------------------------------
// ndarray and nalgebra.

#[derive(Initialize)]
struct NdLayer {
    #[init(he_uniform, shape = [64, 256])]
    w: ndarray::Array2<f32>,
    #[init(zeros, shape = [64])]
    b: ndarray::Array1<f32>,
    #[init(glorot_uniform, shape = [32, 16, 3, 3])]
    k: ndarray::ArrayD<f64>,
}

#[test]
fn ndarray_fields_have_runtime_shapes() {
    let l = NdLayer::initialized(Seed(15));
    assert_eq!(l.w.shape(), &[64, 256]);
    assert_uniform(l.w.as_slice().unwrap(), (6.0f64 / 256.0).sqrt());
    assert_all(l.b.as_slice().unwrap(), 0.0);
    // [32][16][3][3]: fans 144 and 288.
    assert_uniform(l.k.as_slice().unwrap(), (6.0f64 / 432.0).sqrt());
    assert_eq!(
        l.w.as_slice().unwrap(),
        reference::<f32>("he_uniform", &[64, 256], Some((256, 64)), 15, "w")
    );
}

#[test]
fn ndarray_in_any_memory_order_is_filled_in_logical_order() {
    let mut l = NdLayer::initialized(Seed(15));
    let standard = l.w.clone();
    // Same shape, column-major memory.
    l.w = ndarray::Array2::zeros((256, 64)).reversed_axes();
    assert!(!l.w.is_standard_layout());
    l.initialize_with_seed(Seed(15));
    assert_eq!(l.w, standard);
}

#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct NoShape {
    w: ndarray::Array2<f32>,
    b: ndarray::Array1<f32>,
}

#[test]
fn ndarray_fields_take_the_shape_of_the_value() {
    let mut l = NoShape {
        w: ndarray::Array2::zeros((30, 70)),
        b: ndarray::Array1::ones(30),
    };
    l.initialize_with_seed(Seed(16));
    assert_uniform(l.w.as_slice().unwrap(), (6.0f64 / 70.0).sqrt());
    assert_all(l.b.as_slice().unwrap(), 0.0);
}

#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct NaLayer {
    /// y = W·x: 64 outputs (rows), 256 inputs (columns).
    w: nalgebra::SMatrix<f32, 64, 256>,
    b: nalgebra::SVector<f32, 64>,
}

#[derive(Initialize)]
struct NaExplicit {
    #[init(he_uniform)]
    w: nalgebra::SMatrix<f32, 64, 256>,
    #[init(zeros)]
    b: nalgebra::SVector<f32, 64>,
}

impl Initialize for NaLayerManual {
    fn initialize(&mut self, init: &mut Initializer) {
        self.0.initialize(init);
    }
}
struct NaLayerManual(NaExplicit);

#[test]
fn nalgebra_matrices_are_column_major() {
    assert_eq!(<nalgebra::SMatrix<f32, 64, 256> as Shape>::FAN_IN, 256);
    assert_eq!(<nalgebra::SMatrix<f32, 64, 256> as Shape>::FAN_OUT, 64);
    assert_eq!(<nalgebra::SVector<f32, 64> as Shape>::RANK, 1);
    let l = NaExplicit::initialized(Seed(17));
    assert_uniform(l.w.as_slice(), (6.0f64 / 256.0).sqrt());
    assert_all(l.b.as_slice(), 0.0);
    // Struct defaults reach nalgebra (and ndarray) fields written with a float element.
    let d = NaLayer::initialized(Seed(17));
    assert_eq!(d.w, l.w);
    assert_all(d.b.as_slice(), 0.0);
    let mut m = NaLayerManual(NaExplicit::zeroed());
    m.initialize(&mut Initializer::new(Seed(17)));
    assert_eq!(m.0.w, l.w);
}

#[test]
fn a_logging_initializer_records_each_tensor() {
    // `len = 2`: two extra layers.
    let mut s = Stack::zeroed();
    let mut init = Initializer::logging(Seed(12));
    s.initialize(&mut init);
    let paths: Vec<&str> = init.log().iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "layers.0.w",
            "layers.0.b",
            "layers.1.w",
            "layers.1.b",
            "layers.2.w",
            "layers.2.b",
            "extra.0.w",
            "extra.0.b",
            "extra.1.w",
            "extra.1.b",
            "head.w",
            "head.b"
        ]
    );
    let w = &init.log()[6];
    assert_eq!(w.scheme, "he_normal");
    assert_eq!(w.dims, [30, 40]);
    assert_eq!(
        w.fans,
        Some(init_core::Fans {
            fan_in: 40,
            fan_out: 30
        })
    );
    assert!((w.expected_std - (2.0f64 / 40.0).sqrt()).abs() < 1e-12);
    assert!((w.std - w.expected_std).abs() < 0.1 * w.expected_std);
    // Logging does not change the values.
    let mut t = Stack::zeroed();
    t.initialize_with_seed(Seed(12));
    assert_eq!(t.extra[0].w.flat(), s.extra[0].w.flat());
}

#[derive(Initialize)]
struct Unit;

#[derive(Initialize)]
struct Empty {}

#[test]
fn structs_without_parameters() {
    let Unit = Unit::initialized(Seed(1));
    let Empty {} = Empty::initialized(Seed(1));
}

/// Keras-style layer: every weight `[in][out]` (struct-level `layout`), one field overriding it.
#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros, layout = in_out)]
struct KerasDense {
    kernel: [[f32; 32]; 600],
    bias: [f32; 32],
    #[init(layout = out_in)]
    torch: [[f32; 600]; 32],
}

#[test]
fn struct_level_layout() {
    let k = KerasDense::initialized(Seed(18));
    assert_uniform(k.kernel.flat(), (6.0f64 / 600.0).sqrt());
    assert_all(k.bias.flat(), 0.0);
    assert_uniform(k.torch.flat(), (6.0f64 / 600.0).sqrt());
}

// ---------------------------------------------------------------------------------------------
// Grouped, depthwise and transposed convolutions, embeddings, and the framework convention.
//
// Expected fans are PyTorch's numbers, copied from the ground truth of the exported fixtures
// (`tests/fixtures/cnn.gt.json` and `transformer.gt.json`, fields `torch_fan_in`/`torch_fan_out`,
// written by `make_models.py` with `torch.nn.init._calculate_fan_in_and_fan_out`):
//   dw.weight [16, 1, 3, 3] (Conv2d(16, 16, 3, groups=16))  torch (9, 144)
//   up.weight [32, 8, 2, 2] (ConvTranspose2d(32, 8, 2))     torch (32, 128)
//   emb.weight [100, 32]    (Embedding(100, 32))            torch (32, 100)
// The true fans follow from the layer definitions: a depthwise output reads one channel's 3×3
// taps (in 9) and each input feeds one channel's 9 taps (out 9); ConvTranspose2d(32, 8, 2) maps
// each of 32 input channels to 8·4 outputs (out 32) and each output reads 32·4 inputs (in 128);
// an embedding output reads one row (in 1) of D = 32 values (out 32).

#[derive(Initialize)]
struct ConvFamily {
    #[init(he_uniform, groups = 16)]
    dw: [[[[f32; 3]; 3]; 1]; 16],
    #[init(he_uniform, groups = 16, convention = framework)]
    dw_torch: [[[[f32; 3]; 3]; 1]; 16],
    #[init(he_uniform, transposed)]
    up: [[[[f32; 2]; 2]; 8]; 32],
    #[init(he_uniform, transposed, convention = framework)]
    up_torch: [[[[f32; 2]; 2]; 8]; 32],
    #[init(glorot_normal, embedding)]
    emb: Box<[[f32; 32]; 100]>,
    #[init(glorot_normal, embedding, convention = framework)]
    emb_torch: Box<[[f32; 32]; 100]>,
    #[init(dirac, groups = 2)]
    ident: [[[f32; 3]; 2]; 4],
}

#[test]
fn grouped_transposed_and_embedding_fans_match_torch() {
    let mut init = Initializer::logging(Seed(5));
    let mut m = ConvFamily::zeroed();
    m.initialize(&mut init);
    let fans = |path: &str| {
        let r = init.log().iter().find(|r| r.path == path).unwrap();
        let f = r.fans.unwrap();
        (f.fan_in, f.fan_out)
    };
    // PyTorch's numbers (the fixtures' ground truth) under `convention = framework`.
    assert_eq!(fans("dw_torch"), (9, 144));
    assert_eq!(fans("up_torch"), (32, 128));
    assert_eq!(fans("emb_torch"), (32, 100));
    // True connectivity by default.
    assert_eq!(fans("dw"), (9, 9));
    assert_eq!(fans("up"), (128, 32));
    assert_eq!(fans("emb"), (1, 32));
    // And the values are those of the scheme with those fans, at the field's path.
    assert_eq!(
        m.dw.flat(),
        reference::<f32>("he_uniform", &[16, 1, 3, 3], Some((9, 9)), 5, "dw")
    );
    assert_eq!(
        m.up_torch.flat(),
        reference::<f32>("he_uniform", &[32, 8, 2, 2], Some((32, 128)), 5, "up_torch")
    );
    assert_eq!(
        m.emb.flat(),
        reference::<f32>("glorot_normal", &[100, 32], Some((1, 32)), 5, "emb")
    );
    // he_uniform with fan_in 9: U(±√(6/9)).
    assert_uniform(m.dw.flat(), (6.0f64 / 9.0).sqrt());
    // dirac's own `groups`: 2 groups of 2 identity channels.
    let mut want = [[[0f32; 3]; 2]; 4];
    for (o, c) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
        want[o][c][1] = 1.0;
    }
    assert_eq!(m.ident, want);
}

#[derive(Initialize)]
#[init(default = he_normal(mode = fan_out), convention = framework)]
struct TorchCompat {
    #[init(groups = 4)]
    w: [[[[f32; 3]; 3]; 2]; 8],
}

#[test]
fn struct_level_convention() {
    let mut init = Initializer::logging(Seed(1));
    let mut m = TorchCompat::zeroed();
    m.initialize(&mut init);
    // _calculate_fan_in_and_fan_out on [8, 2, 3, 3]: (2·9, 8·9), groups ignored.
    let f = init.log()[0].fans.unwrap();
    assert_eq!((f.fan_in, f.fan_out), (18, 72));
}

// ---------------------------------------------------------------------------------------------
// Config-driven models: shapes and lengths known at run time, read from `self`.

#[derive(Initialize)]
struct Linear {
    #[init(skip)]
    d_in: usize,
    #[init(skip)]
    d_out: usize,
    #[init(he_uniform, shape = [self.d_out, self.d_in])]
    w: Vec<f32>,
    #[init(zeros, shape = [self.d_out])]
    b: Vec<f32>,
}

impl Linear {
    fn new(d_in: usize, d_out: usize) -> Linear {
        Linear {
            d_in,
            d_out,
            w: vec![0.0; d_in * d_out],
            b: vec![1.0; d_out],
        }
    }
}

#[derive(Initialize)]
struct ConfigMlp {
    layers: Vec<Linear>,
    #[init(glorot_uniform, shape = [self.dims().0, self.dims().1])]
    head: Vec<f64>,
    #[init(skip)]
    classes: usize,
}

impl ConfigMlp {
    fn new(widths: &[usize], classes: usize) -> ConfigMlp {
        ConfigMlp {
            layers: widths.windows(2).map(|w| Linear::new(w[0], w[1])).collect(),
            head: vec![0.0; classes * widths[widths.len() - 1]],
            classes,
        }
    }
    /// (classes, last width): a method of `self`, not only a field.
    fn dims(&self) -> (usize, usize) {
        (self.classes, self.layers.last().map_or(0, |l| l.d_out))
    }
}

#[test]
fn runtime_shapes_read_from_self() {
    let widths = [64, 48, 32];
    let mut m = ConfigMlp::new(&widths, 10);
    m.initialize_with_seed(Seed(9));
    assert_eq!(m.layers.len(), 2);
    for (i, l) in m.layers.iter().enumerate() {
        let (d_in, d_out) = (widths[i], widths[i + 1]);
        assert_eq!(
            l.w,
            reference::<f32>(
                "he_uniform",
                &[d_out, d_in],
                Some((d_in as u64, d_out as u64)),
                9,
                &format!("layers.{i}.w")
            )
        );
        assert_all(&l.b, 0.0);
    }
    assert_eq!(
        m.head,
        reference::<f64>("glorot_uniform", &[10, 32], Some((32, 10)), 9, "head")
    );
}

#[test]
#[should_panic(expected = "field `layers.0.w`")]
fn a_runtime_shape_that_disagrees_with_the_buffer_names_the_field() {
    let mut m = ConfigMlp::new(&[4, 3], 2);
    m.layers[0].w.pop();
    m.initialize_with_seed(Seed(0));
}

// ---------------------------------------------------------------------------------------------
// Custom initializers.

/// A user's scheme: N(0, 1/fan_in) from the field's own stream, so it keeps the determinism
/// contract. Generic over the element type, as the derive's fields are.
fn my_scaled_normal<E: Element>(out: &mut [E], site: &init_core::Site<'_>) {
    let fans = site.fans.expect("a weight");
    let std = (1.0f64 / fans.fan_in as f64).sqrt();
    init_core::Sampler::Normal { mean: 0.0, std }.fill(out, site.stream);
}

mod user_inits {
    /// Writes the element index, to check order and the site's data.
    pub(crate) fn index(out: &mut [f32], site: &init_core::Site<'_>) {
        assert_eq!(site.path, "ramp");
        assert_eq!(site.dims, &[2, 3]);
        for (i, x) in out.iter_mut().enumerate() {
            *x = i as f32;
        }
    }
}

#[derive(Initialize)]
struct WithCustom {
    #[init(with = my_scaled_normal, groups = 2)]
    w: [[[f32; 5]; 2]; 8],
    #[init(with = user_inits::index)]
    ramp: [[f32; 3]; 2],
}

#[test]
fn custom_initializers_get_the_fans_and_the_stream() {
    let m = WithCustom::initialized(Seed(3));
    // groups = 2: fan_in 2·5 = 10; N(0, 1/10) from the stream of "w".
    let mut want = vec![0f32; 80];
    init_core::Sampler::Normal {
        mean: 0.0,
        std: (0.1f64).sqrt(),
    }
    .fill(
        &mut want,
        Stream {
            seed: 3,
            key: key_of("w"),
        },
    );
    assert_eq!(m.w.flat(), want.as_slice());
    assert_eq!(m.ramp, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]);
}

#[test]
fn hand_written_impls_fill_like_the_derive() {
    struct Hand {
        w: Vec<f32>,
        v: Vec<f32>,
    }
    impl Initialize for Hand {
        fn initialize(&mut self, init: &mut Initializer) {
            let he: Scheme = "he_uniform".parse().unwrap();
            init.fill(
                "w",
                &he,
                &mut self.w,
                &[3, 4],
                init_core::FanRule::default(),
            )
            .unwrap();
            init.fill_with(
                "v",
                &mut self.v,
                &[3, 4],
                init_core::FanRule::default(),
                my_scaled_normal,
            )
            .unwrap();
        }
    }
    let mut h = Hand {
        w: vec![0.0; 12],
        v: vec![0.0; 12],
    };
    h.initialize_with_seed(Seed(4));
    assert_eq!(
        h.w,
        reference::<f32>("he_uniform", &[3, 4], Some((4, 3)), 4, "w")
    );
    let mut want = vec![0f32; 12];
    init_core::Sampler::Normal {
        mean: 0.0,
        std: 0.5,
    }
    .fill(
        &mut want,
        Stream {
            seed: 4,
            key: key_of("v"),
        },
    );
    assert_eq!(h.v, want);
}
