// The burn pattern: sized from a config at run time, built by the user's constructor, then
// initialized in place; grouped and custom fields alongside.
use init_core::{Initialize, Seed, Site};

fn halves(out: &mut [f32], site: &Site<'_>) {
    assert_eq!(site.path, "layers.0.gate");
    out.fill(0.5);
}

#[derive(Initialize)]
struct Block {
    #[init(skip)]
    width: usize,
    #[init(he_uniform, shape = [self.width, self.width / 4, 3, 3], groups = 4)]
    conv: Vec<f32>,
    #[init(with = halves)]
    gate: [f32; 4],
}

#[derive(Initialize)]
struct Net {
    layers: Vec<Block>,
}

fn main() {
    let mut net = Net {
        layers: vec![Block {
            width: 8,
            conv: vec![0.0; 8 * 2 * 9],
            gate: [0.0; 4],
        }],
    };
    net.initialize_with_seed(Seed(1));
    assert!(net.layers[0].conv.iter().all(|x| x.abs() <= (6.0f32 / 18.0).sqrt()));
    assert_eq!(net.layers[0].gate, [0.5; 4]);
}
