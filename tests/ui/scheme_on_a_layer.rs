use init_core::Initialize;

#[derive(Initialize)]
struct Conv {
    #[init(he_uniform)]
    w: [[[[f32; 3]; 3]; 4]; 8],
}

#[derive(Initialize)]
struct Net {
    #[init(he_uniform)]
    conv: Conv,
    // Not a tensor and not a layer.
    step: u64,
}

fn main() {}
