//! Compiles and runs: generic and const-generic structs, aliases, allow_symmetric, explicit fans,
//! nested defaults.
use init_core::{Initialize, Seed, Shape};

#[derive(Initialize)]
#[init(default = he_uniform, bias = zeros)]
struct Dense<const I: usize, const O: usize> {
    w: [[f32; I]; O],
    b: [f32; O],
}

type Weight = [[f64; 8]; 8];

#[derive(Initialize)]
struct Misc<T> {
    #[init(zeros, allow_symmetric)]
    gate: Weight,
    #[init(he_uniform, fans = (8, 8))]
    v: [f32; 8],
    #[init(glorot_normal)]
    t: T,
    #[init(skip)]
    name: String,
    #[init(len = 2)]
    layers: Vec<Dense<3, 2>>,
}

fn main() {
    const FAN_IN: usize = <[[f32; 784]; 128] as Shape>::FAN_IN;
    assert_eq!(FAN_IN, 784);
    let d = Dense::<784, 128>::initialized(Seed(1));
    assert!(
        d.w.flat()
            .iter()
            .all(|x| x.abs() <= (6.0f32 / 784.0).sqrt())
    );
    let m = Misc::<[[f32; 5]; 4]>::initialized(Seed(2));
    assert!(m.gate.flat().iter().all(|&x| x == 0.0));
    assert_eq!(m.layers.len(), 2);
    assert!(m.name.is_empty());
}
