use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform)]
    w: [[f32; 64]; 32],
    #[init(he_uniform)]
    b: [f32; 32],
    #[init(glorot_normal)]
    scale: f32,
    #[init(lecun_normal, fans = (0, 32))]
    v: [f32; 32],
    #[init(orthogonal)]
    q: [f32; 32],
}

#[derive(Initialize)]
#[init(default = he_uniform)] // no `bias`: the default reaches rank-1 fields too
struct NoBiasDefault {
    w: [[f32; 64]; 32],
    b: [f32; 32],
}

fn main() {}
