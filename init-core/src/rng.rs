//! The portable generator behind every fill, and how streams are derived.
//!
//! # Stream contract
//! A tensor's values are cut into chunks of [`CHUNK`] elements. Chunk `c` of the tensor with key
//! `k` under seed `s` draws from its own generator: eight Xoshiro256++ lanes whose 32 state words
//! are the first 32 outputs of SplitMix64 started at `chunk_seed(s, k, c)`. Lane outputs are
//! consumed step by step, lane 0 to 7 within a step. Nothing depends on the thread count, the
//! order chunks are filled in, or what else is being initialized; a chunk cut short (the end of
//! a tensor) holds the prefix of what the full chunk would hold.
//!
//! Xoshiro256++ (Blackman & Vigna, 2019) and SplitMix64 (Steele, Lea & Flood, 2014) use only
//! wrapping integer arithmetic, shifts and rotations, so they give identical bits on every
//! platform; the eight lanes are independent so the compiler can keep them in vector registers.

/// Elements per chunk: the unit of parallelism and of stream derivation.
pub const CHUNK: usize = 1 << 16;
/// Generator lanes advanced together.
pub const LANES: usize = 8;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's Mix13 variant).
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: used only to expand a 64-bit seed into generator state.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next output.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }
}

/// The 64-bit key of a tensor name: FNV-1a over its UTF-8 bytes, finalised with [`mix64`].
/// Stable across platforms and releases (pinned by the value-stability tests).
pub const fn key_of(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    mix64(h)
}

/// The SplitMix64 start value of chunk `chunk` of tensor `key` under `seed`.
#[inline]
pub const fn chunk_seed(seed: u64, key: u64, chunk: u64) -> u64 {
    let h = mix64(seed ^ 0x6A09_E667_F3BC_C908);
    let h = mix64(h ^ key);
    mix64(h.wrapping_add(chunk.wrapping_mul(GOLDEN)))
}

/// Eight Xoshiro256++ generators in struct-of-arrays form.
#[derive(Clone, Debug)]
pub struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    /// The generator of one chunk (see the module's stream contract).
    pub fn for_chunk(seed: u64, key: u64, chunk: u64) -> Lanes {
        let mut sm = SplitMix64(chunk_seed(seed, key, chunk));
        let mut s = [[0u64; LANES]; 4];
        for j in 0..LANES {
            for w in &mut s {
                w[j] = sm.next_u64();
            }
        }
        Lanes { s }
    }

    /// The state words: `[s0, s1, s2, s3]`, lane `j` at index `j` of each.
    pub fn state(&self) -> [[u64; LANES]; 4] {
        self.s
    }

    /// Lanes with this state (as returned by [`Lanes::state`]).
    pub fn from_state(s: [[u64; LANES]; 4]) -> Lanes {
        Lanes { s }
    }

    /// One step of every lane: output `j` is lane `j`'s next Xoshiro256++ output.
    #[inline(always)]
    pub fn step(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; LANES];
        for j in 0..LANES {
            out[j] = s0[j]
                .wrapping_add(s3[j])
                .rotate_left(23)
                .wrapping_add(s0[j]);
            let t = s1[j] << 17;
            s2[j] ^= s0[j];
            s3[j] ^= s1[j];
            s1[j] ^= s2[j];
            s0[j] ^= s3[j];
            s2[j] ^= t;
            s3[j] = s3[j].rotate_left(45);
        }
        out
    }
}

/// A stream of single 64-bit words in the contract's order (step by step, lane 0 to 7), for the
/// rejection samplers whose consumption varies.
#[derive(Clone, Debug)]
pub struct Words {
    lanes: Lanes,
    buf: [u64; LANES],
    pos: usize,
}

impl Words {
    /// Words of the given chunk generator.
    pub fn new(lanes: Lanes) -> Words {
        Words {
            lanes,
            buf: [0; LANES],
            pos: LANES,
        }
    }

    /// The next word.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        if self.pos == LANES {
            self.buf = self.lanes.step();
            self.pos = 0;
        }
        let w = self.buf[self.pos];
        self.pos += 1;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_sequence() {
        // Reference outputs of xoshiro256++ from state {1, 2, 3, 4} (Vigna's C code).
        let mut l = Lanes {
            s: [[1; 8], [2; 8], [3; 8], [4; 8]],
        };
        let expect = [41943041u64, 58720359, 3588806011781223, 3591011842654386];
        for e in expect {
            assert_eq!(l.step(), [e; 8]);
        }
    }

    #[test]
    fn splitmix_matches_reference() {
        // SplitMix64 seeded with 0: first outputs from the reference implementation.
        let mut s = SplitMix64(0);
        assert_eq!(s.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(s.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
