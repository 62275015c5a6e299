use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(normal, std = -1.0)]
    a: [[f32; 16]; 16],
    #[init(uniform(1.0, -1.0))]
    b: [[f32; 16]; 16],
    #[init(glorot_uniform, gain = 0)]
    c: [[f32; 16]; 16],
    #[init(he_normal, nonlinearity = leaky_relu(0.2, 0.3))]
    d: [[f32; 16]; 16],
    #[init(constant)]
    e: [f32; 16],
    #[init(normal, std = "wide")]
    f: [f32; 16],
    #[init(he_uniform, layout = diagonal)]
    g: [[f32; 16]; 16],
    #[init(he_uniform, fans = 3)]
    h: [f32; 16],
}

fn main() {}
