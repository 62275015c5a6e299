use init_core::Initialize;

#[derive(Initialize)]
enum Layer {
    Dense([[f32; 4]; 4]),
    Identity,
}

#[derive(Initialize)]
union Bits {
    f: f32,
    u: u32,
}

fn main() {}
