// Mistyped keys: a field key (`layuot`), a scheme parameter (`mod`, `nonlinearty`), each with
// the closest valid name and the scheme's parameters; quoted values; Rust constants where the
// grammar wants a number; a Keras class name.
use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform, layuot = in_out)]
    a: [[f32; 16]; 16],
    #[init(he_normal, mod = fan_out)]
    b: [[f32; 16]; 16],
    #[init(he_normal, nonlinearty = tanh)]
    c: [[f32; 16]; 16],
    #[init(he_normal, nonlinearity = "relu")]
    d: [[f32; 16]; 16],
    #[init(glorot_uniform, gain = SQRT_2)]
    e: [[f32; 16]; 16],
    #[init(orthogonal(gain = core::f64::consts::SQRT_2))]
    f: [[f32; 16]; 16],
    #[init(HeNormal)]
    g: [[f32; 16]; 16],
}

fn main() {}
