//! `#[derive(Initialize)]` on an MLP, a small CNN and a block sized at run time (grouped,
//! transposed, embedding): each field's scheme and fans and the std of the values written
//! against the std the scheme promises.
//!
//! Run: `cargo run -p init-core --example derive_models --features derive`

use init_core::{Initialize, Initializer, Record, Seed, Shape, Zeroed};

/// A dense layer in PyTorch's layout: `w` is `[out][in]`.
#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct Dense<const I: usize, const O: usize> {
    w: [[f32; I]; O],
    b: [f32; O],
}

/// A 784-256-128-10 MLP: ReLU hidden layers, a LeakyReLU one, and a linear head.
#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct Mlp {
    /// Boxed: built zeroed on the heap, not on the stack.
    w1: Box<[[f32; 784]; 256]>,
    b1: [f32; 256],
    #[init(he_normal, nonlinearity = leaky_relu(0.2))]
    w2: [[f32; 256]; 128],
    #[init(constant = 0.01)]
    b2: [f32; 128],
    /// The head feeds a softmax: Glorot.
    #[init(glorot_uniform)]
    head: [[f32; 128]; 10],
    #[init(skip)]
    steps: u64,
}

/// A 3×3 convolution, `[out][in][kh][kw]`.
#[derive(Initialize)]
struct Conv2d<const C: usize, const M: usize, const K: usize> {
    #[init(he_normal, mode = fan_out)]
    w: [[[[f32; K]; K]; C]; M],
    #[init(zeros)]
    b: [f32; M],
}

/// A small CNN: two conv layers, a Keras-layout dense layer (`[in][out]`), a list of heads.
#[derive(Initialize)]
struct Cnn {
    conv1: Conv2d<3, 32, 3>,
    conv2: Conv2d<32, 64, 3>,
    #[init(lecun_normal, layout = in_out)]
    proj: [[f32; 128]; 1024],
    #[init(len = 2)]
    heads: Vec<Dense<128, 10>>,
}

/// A MobileNet-style block sized from a config at run time: a depthwise conv (`groups`), a
/// pointwise one, and a transposed conv upsampling, each read with PyTorch's `[out, in/g, k…]`
/// (`[in, out/g, k…]` for the transposed one). Shapes read `self`, so the block is built by its
/// constructor and initialized in place.
#[derive(Initialize)]
struct Block {
    #[init(skip)]
    c: usize,
    #[init(he_normal, groups = self.c, shape = [self.c, 1, 3, 3])]
    dw: Vec<f32>,
    #[init(he_normal, shape = [2 * self.c, self.c, 1, 1])]
    pw: Vec<f32>,
    #[init(he_uniform, transposed, shape = [2 * self.c, self.c, 2, 2])]
    up: Vec<f32>,
    /// Token embeddings `[V, D]`: fans (1, D).
    #[init(glorot_normal, embedding, shape = [1000, self.c])]
    emb: Vec<f32>,
}

impl Block {
    fn new(c: usize) -> Block {
        Block {
            c,
            dw: vec![0.0; c * 9],
            pw: vec![0.0; 2 * c * c],
            up: vec![0.0; 2 * c * c * 4],
            emb: vec![0.0; 1000 * c],
        }
    }
}

fn print(title: &str, log: &[Record]) {
    println!("{title}");
    println!(
        "  {:<10} {:<15} {:<40} {:>6} {:>7} {:>9} {:>12} {:>12}",
        "field", "dims", "scheme", "fan_in", "fan_out", "mean", "expected std", "measured std"
    );
    for r in log {
        let (fi, fo) = r.fans.map_or(("-".into(), "-".into()), |f| {
            (f.fan_in.to_string(), f.fan_out.to_string())
        });
        let dims = format!("{:?}", r.dims);
        println!(
            "  {:<10} {dims:<15} {:<40} {fi:>6} {fo:>7} {:>9.5} {:>12.6} {:>12.6}",
            r.path, r.scheme, r.mean, r.expected_std, r.std
        );
    }
    println!();
}

fn main() {
    // Fans are constants of the field types, per monomorphization.
    const W1_FANS: (usize, usize) = (
        <[[f32; 784]; 256] as Shape>::FAN_IN,
        <[[f32; 784]; 256] as Shape>::FAN_OUT,
    );
    const CONV2_FANS: (usize, usize) = (
        <[[[[f32; 3]; 3]; 32]; 64] as Shape>::FAN_IN,
        <[[[[f32; 3]; 3]; 32]; 64] as Shape>::FAN_OUT,
    );
    println!("compile-time fans: w1 {W1_FANS:?}, conv2.w {CONV2_FANS:?}\n");

    let seed = Seed(42);
    let mut mlp = Mlp::zeroed();
    let mut init = Initializer::logging(seed);
    mlp.initialize(&mut init);
    print("MLP 784-256-128-10 (seed 42)", init.log());
    assert_eq!(mlp.steps, 0);

    let mut cnn = Box::new(Cnn::zeroed());
    let mut init = Initializer::logging(seed);
    cnn.initialize(&mut init);
    print(
        "CNN conv3x3(3→32) conv3x3(32→64) proj(1024→128) 2 heads (seed 42)",
        init.log(),
    );

    let mut block = Block::new(64);
    let mut init = Initializer::logging(seed);
    block.initialize(&mut init);
    print(
        "Block(c = 64): depthwise, pointwise, transposed conv, embedding (seed 42)",
        init.log(),
    );

    // The same seed gives the same model; `initialized` is zeroed + initialize at the root.
    let again = Mlp::initialized(seed);
    assert_eq!(again.w2, mlp.w2);
    println!("same seed, same values: ok");
}
