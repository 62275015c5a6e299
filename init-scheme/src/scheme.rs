//! The closed set of initialization schemes, their parameters, and the one name grammar (see
//! the crate documentation).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Std of a standard normal truncated to (−2, 2):
/// √(1 − 4φ(2)/(Φ(2) − Φ(−2))) = 0.87962566103423978 (the Keras/JAX correction constant).
pub const TRUNC_STD_CORRECTION: f64 = 0.879_625_661_034_239_8;

/// Why a scheme name or parameter was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemeError {
    /// Not a scheme name; `suggestions` are the closest valid names.
    UnknownScheme {
        /// The name as written.
        name: String,
        /// Closest valid names, best first.
        suggestions: Vec<&'static str>,
    },
    /// Not a nonlinearity name.
    UnknownNonlinearity {
        /// The name as written.
        name: String,
        /// Closest valid names.
        suggestions: Vec<&'static str>,
    },
    /// A parameter the scheme does not take, or given twice.
    BadParameter {
        /// Scheme name.
        scheme: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A parameter value out of its domain (negative std, lo ≥ hi, NaN, …).
    BadValue {
        /// Scheme name.
        scheme: &'static str,
        /// Parameter name.
        param: &'static str,
        /// The value.
        value: f64,
        /// The constraint it breaks.
        expected: &'static str,
    },
    /// The text does not follow the grammar.
    Syntax {
        /// Byte offset in the text.
        offset: usize,
        /// What was expected.
        message: String,
    },
}

impl fmt::Display for SchemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemeError::UnknownScheme { name, suggestions } => {
                write!(f, "unknown initialization scheme `{name}`")?;
                write_suggestions(f, suggestions)?;
                if let Some((class, ours)) = keras_class(name) {
                    write!(f, " (Keras's `{class}` is `{ours}`")?;
                    if ours.ends_with("_truncated_normal") {
                        write!(
                            f,
                            ": a normal cut at ±2σ and rescaled so its std is the target; \
                             PyTorch's untruncated `kaiming_normal_`/`xavier_normal_` are \
                             `he_normal`/`glorot_normal`"
                        )?;
                    }
                    f.write_str(")")?;
                }
                write!(f, " (valid schemes: {})", SCHEME_NAMES.join(", "))
            }
            SchemeError::UnknownNonlinearity { name, suggestions } => {
                write!(f, "unknown nonlinearity `{name}`")?;
                write_suggestions(f, suggestions)?;
                write!(f, " (valid: {})", NONLINEARITY_NAMES.join(", "))
            }
            SchemeError::BadParameter { scheme, message } => write!(f, "{scheme}: {message}"),
            SchemeError::BadValue {
                scheme,
                param,
                value,
                expected,
            } => write!(f, "{scheme}: {param} = {value} is invalid: {expected}"),
            SchemeError::Syntax { offset, message } => {
                write!(f, "syntax error at byte {offset}: {message}")
            }
        }
    }
}

fn write_suggestions(f: &mut fmt::Formatter<'_>, suggestions: &[&str]) -> fmt::Result {
    if !suggestions.is_empty() {
        write!(f, "; did you mean ")?;
        for (i, s) in suggestions.iter().enumerate() {
            if i > 0 {
                write!(f, " or ")?;
            }
            write!(f, "`{s}`")?;
        }
        write!(f, "?")?;
    }
    Ok(())
}

impl core::error::Error for SchemeError {}

/// Every scheme name the parser accepts (canonical names and aliases).
pub const SCHEME_NAMES: &[&str] = &[
    "zeros",
    "ones",
    "constant",
    "uniform",
    "normal",
    "truncated_normal",
    "truncated_normal_sd",
    "fan_in_uniform",
    "glorot",
    "glorot_uniform",
    "glorot_normal",
    "glorot_truncated_normal",
    "xavier",
    "xavier_uniform",
    "xavier_normal",
    "he",
    "he_uniform",
    "he_normal",
    "he_truncated_normal",
    "kaiming",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun",
    "lecun_uniform",
    "lecun_normal",
    "lecun_truncated_normal",
    "variance_scaling",
    "orthogonal",
    "eye",
    "identity",
    "dirac",
];

/// Keras initializer classes and the scheme each one is, keyed by the class name lower-cased
/// without underscores (the parser lower-cases names). Keras's `*Normal` classes draw from a
/// truncated normal (`keras.initializers.HeNormal` uses `truncated_normal` with the 0.8796
/// correction), so they map to `*_truncated_normal`, not to PyTorch's untruncated `*_normal`.
const KERAS_CLASSES: &[(&str, &str, &str)] = &[
    ("henormal", "HeNormal", "he_truncated_normal"),
    ("heuniform", "HeUniform", "he_uniform"),
    ("glorotnormal", "GlorotNormal", "glorot_truncated_normal"),
    ("glorotuniform", "GlorotUniform", "glorot_uniform"),
    ("lecunnormal", "LecunNormal", "lecun_truncated_normal"),
    ("lecununiform", "LecunUniform", "lecun_uniform"),
    ("truncatednormal", "TruncatedNormal", "truncated_normal"),
    ("randomnormal", "RandomNormal", "normal"),
    ("randomuniform", "RandomUniform", "uniform"),
    ("variancescaling", "VarianceScaling", "variance_scaling"),
];

/// `(Keras class, scheme)` when `name` is a Keras initializer class name (any case, with or
/// without underscores) that is not itself a scheme name here.
fn keras_class(name: &str) -> Option<(&'static str, &'static str)> {
    if canonical_scheme_name(name).is_some() {
        return None;
    }
    let flat: String = name
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    KERAS_CLASSES
        .iter()
        .find(|(k, _, _)| *k == flat)
        .map(|&(_, class, ours)| (class, ours))
}

/// The suggestions for an unknown scheme name: the Keras mapping first when it is a Keras
/// class name, then the closest names by spelling.
fn scheme_suggestions(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some((_, ours)) = keras_class(name) {
        out.push(ours);
    }
    for s in closest(name, SCHEME_NAMES) {
        if !out.contains(&s) && out.len() < 3 {
            out.push(s);
        }
    }
    out
}

/// Every nonlinearity name the parser accepts: PyTorch's `calculate_gain` names (the conv ops
/// have gain 1, as `linear`) and the others of [`Nonlinearity`].
pub const NONLINEARITY_NAMES: &[&str] = &[
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "elu",
    "mish",
];

/// Which fan a variance-scaling scheme divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FanMode {
    /// n = fan_in: preserves the forward signal's variance.
    FanIn,
    /// n = fan_out: preserves the backward gradient's variance.
    FanOut,
    /// n = (fan_in + fan_out) / 2 (Glorot's compromise).
    FanAvg,
    /// n = √(fan_in · fan_out) (JAX's `fan_geo_avg`).
    FanGeoAvg,
}

impl FanMode {
    /// The canonical name (`fan_in`, `fan_out`, `fan_avg`, `fan_geo_avg`).
    pub fn as_str(self) -> &'static str {
        match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
            FanMode::FanAvg => "fan_avg",
            FanMode::FanGeoAvg => "fan_geo_avg",
        }
    }

    /// The divisor n for the given fans.
    pub fn n(self, fan_in: f64, fan_out: f64) -> f64 {
        match self {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
            FanMode::FanAvg => 0.5 * (fan_in + fan_out),
            FanMode::FanGeoAvg => sqrt(fan_in * fan_out),
        }
    }

    fn parse(s: &str) -> Option<FanMode> {
        Some(match s {
            "fan_in" | "in" => FanMode::FanIn,
            "fan_out" | "out" => FanMode::FanOut,
            "fan_avg" | "avg" => FanMode::FanAvg,
            "fan_geo_avg" | "geo_avg" => FanMode::FanGeoAvg,
            _ => return None,
        })
    }
}

/// The shape of the distribution a variance-scaling scheme draws from, for a target variance σ².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// U(−√3σ, √3σ).
    Uniform,
    /// N(0, σ²), untruncated (PyTorch's `kaiming_normal_`/`xavier_normal_`, the seed's He/Xavier
    /// normal).
    Normal,
    /// N(0, (σ/T)²) cut at ±2σ/T with T = 0.87962566103423978, so the *realised* std is σ
    /// (Keras's `HeNormal`/`GlorotNormal`/`LecunNormal`, JAX's `he_normal` …).
    TruncatedNormal,
}

impl Distribution {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::TruncatedNormal => "truncated_normal",
        }
    }

    fn parse(s: &str) -> Option<Distribution> {
        Some(match s {
            "uniform" => Distribution::Uniform,
            "normal" | "untruncated_normal" => Distribution::Normal,
            "truncated_normal" => Distribution::TruncatedNormal,
            _ => return None,
        })
    }
}

/// A nonlinearity, for the gain of He/Kaiming initialization.
///
/// Gains copy PyTorch's `calculate_gain` where it defines one (linear and sigmoid 1, tanh 5/3,
/// relu √2, leaky_relu(α) √(2/(1+α²)) with α = 0.01 by default, selu 3/4). PyTorch has no gain for
/// GELU, SiLU, ELU or Mish; for those we use the rule ReLU's √2 comes from, g = 1/√E[f(z)²] for
/// z ~ N(0, 1), which keeps the second moment of the signal constant through the layer:
/// gelu 1.5335304, silu/swish 1.6765325, elu(1) 1.2451983, mish 1.4868476.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity (also every conv op in PyTorch's table): gain 1.
    Linear,
    /// Logistic sigmoid: gain 1.
    Sigmoid,
    /// tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with negative slope α: gain √(2/(1+α²)).
    LeakyRelu(f64),
    /// SELU: gain 3/4 (PyTorch's empirical value; for self-normalising networks use
    /// `lecun_normal`, i.e. gain 1).
    Selu,
    /// GELU: gain 1.5335304 (second-moment rule).
    Gelu,
    /// SiLU / swish: gain 1.6765325 (second-moment rule).
    Silu,
    /// ELU with α = 1: gain 1.2451983 (second-moment rule).
    Elu,
    /// Mish: gain 1.4868476 (second-moment rule).
    Mish,
}

impl Nonlinearity {
    /// The recommended gain (see the type's documentation for the table).
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => core::f64::consts::SQRT_2,
            Nonlinearity::LeakyRelu(a) => sqrt(2.0 / (1.0 + a * a)),
            Nonlinearity::Selu => 0.75,
            Nonlinearity::Gelu => 1.533_530_441_195_589,
            Nonlinearity::Silu => 1.676_532_470_331_114_6,
            Nonlinearity::Elu => 1.245_198_300_700_735_4,
            Nonlinearity::Mish => 1.486_847_581_273_240_7,
        }
    }

    /// Parse a nonlinearity name: `relu`, `leaky_relu`, `leaky_relu(0.2)`, `tanh`, ….
    pub fn parse(text: &str) -> Result<Nonlinearity, SchemeError> {
        let value = Parser::new(text).parse_value_complete()?;
        Nonlinearity::from_value(&value)
    }

    fn from_value(value: &Value) -> Result<Nonlinearity, SchemeError> {
        let Value::Call(call) = value else {
            return Err(SchemeError::Syntax {
                offset: 0,
                message: "expected a nonlinearity name".to_string(),
            });
        };
        let name = call.name.as_str();
        let simple = |n: Nonlinearity| -> Result<Nonlinearity, SchemeError> {
            if call.args.is_empty() {
                Ok(n)
            } else {
                Err(SchemeError::BadParameter {
                    scheme: "nonlinearity",
                    message: format!("`{name}` takes no parameters"),
                })
            }
        };
        match name {
            // PyTorch's calculate_gain: every conv op has gain 1, as linear.
            "linear" | "identity" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d"
            | "conv_transpose2d" | "conv_transpose3d" => simple(Nonlinearity::Linear),
            "sigmoid" => simple(Nonlinearity::Sigmoid),
            "tanh" => simple(Nonlinearity::Tanh),
            "relu" => simple(Nonlinearity::Relu),
            "selu" => simple(Nonlinearity::Selu),
            "gelu" => simple(Nonlinearity::Gelu),
            "silu" | "swish" => simple(Nonlinearity::Silu),
            "elu" => simple(Nonlinearity::Elu),
            "mish" => simple(Nonlinearity::Mish),
            "leaky_relu" => {
                let mut args = Args::new("leaky_relu", &call.args);
                let slope = args.number(&["negative_slope", "slope", "alpha", "a"], Some(0.01))?;
                args.finish()?;
                let slope = slope.unwrap_or(0.01);
                check_finite("leaky_relu", "negative_slope", slope)?;
                Ok(Nonlinearity::LeakyRelu(slope))
            }
            _ => Err(SchemeError::UnknownNonlinearity {
                name: name.to_string(),
                suggestions: closest(name, NONLINEARITY_NAMES),
            }),
        }
    }
}

impl fmt::Display for Nonlinearity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nonlinearity::Linear => f.write_str("linear"),
            Nonlinearity::Sigmoid => f.write_str("sigmoid"),
            Nonlinearity::Tanh => f.write_str("tanh"),
            Nonlinearity::Relu => f.write_str("relu"),
            Nonlinearity::LeakyRelu(a) => write!(f, "leaky_relu({})", Num(*a)),
            Nonlinearity::Selu => f.write_str("selu"),
            Nonlinearity::Gelu => f.write_str("gelu"),
            Nonlinearity::Silu => f.write_str("silu"),
            Nonlinearity::Elu => f.write_str("elu"),
            Nonlinearity::Mish => f.write_str("mish"),
        }
    }
}

impl core::str::FromStr for Nonlinearity {
    type Err = SchemeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nonlinearity::parse(s)
    }
}

/// A family of variance-scaling schemes; decides the printed name and the variance formula.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Family {
    /// ±1/√fan_in (σ² = 1/(3·fan_in)): the seed's sigmoid rule, PyTorch's Linear/Conv default.
    FanInUniform,
    /// Glorot/Xavier: σ² = gain²·2/(fan_in + fan_out).
    Glorot {
        /// Multiplies the std.
        gain: f64,
    },
    /// He/Kaiming: σ² = gain(nonlinearity)²/n(mode).
    He {
        /// fan_in (default) or fan_out.
        mode: FanMode,
        /// Gives the gain; ReLU by default.
        nonlinearity: Nonlinearity,
    },
    /// LeCun: σ² = 1/fan_in.
    Lecun,
    /// General variance scaling (Keras/JAX): σ² = scale/n(mode).
    VarianceScaling {
        /// Multiplies the variance.
        scale: f64,
        /// Which fan.
        mode: FanMode,
    },
}

/// What a scheme is: a constant, a fixed distribution, a fan-scaled distribution, or a
/// structured matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SchemeKind {
    /// Every element `value` (`zeros`, `ones`, `constant(v)`).
    Constant(f64),
    /// U(lo, hi).
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// N(mean, std²).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// N(mean, std²) conditioned on [lo, hi]: `std` is the parent (pre-truncation) std and the
    /// bounds are absolute, as PyTorch's `trunc_normal_(mean, std, a, b)`.
    TruncatedNormal {
        /// Parent mean.
        mean: f64,
        /// Parent std.
        std: f64,
        /// Absolute lower bound.
        lo: f64,
        /// Absolute upper bound.
        hi: f64,
        /// How the bounds were written (for printing back).
        form: TruncForm,
    },
    /// A fan-scaled scheme: the family gives σ², `distribution` the shape.
    Scaled {
        /// The family (glorot, he, lecun, …).
        family: Family,
        /// Uniform, normal or corrected truncated normal.
        distribution: Distribution,
    },
    /// A (semi-)orthogonal matrix times `gain`: rows = dim 0, the trailing dims flattened
    /// (PyTorch's `orthogonal_` convention).
    Orthogonal {
        /// Multiplies the matrix.
        gain: f64,
    },
    /// `gain` on the main diagonal of the 2-D (rows = dim 0) view, zero elsewhere.
    Eye {
        /// The diagonal value.
        gain: f64,
    },
    /// Identity convolution kernel (PyTorch's `dirac_`): 1 at the centre tap for output channel
    /// d < min(out/groups, in) of each group.
    Dirac {
        /// Number of groups; must divide dim 0.
        groups: u64,
    },
}

/// How a truncated normal's bounds were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncForm {
    /// `truncated_normal(mean, std)`: ±2 std about the mean (Keras `TruncatedNormal`, JAX).
    TwoSigma,
    /// `truncated_normal(mean, std, lo, hi)`: absolute bounds (PyTorch `trunc_normal_`).
    Absolute,
    /// `truncated_normal_sd(mean, std, lower, upper)`: bounds in std units (JAX's
    /// `truncated_normal(lower, upper)`, timm's `trunc_normal_tf_`).
    StdUnits,
}

/// An initialization scheme, validated at construction.
///
/// Parse one with [`str::parse`] (the grammar in the module docs) or build it with the
/// constructors; [`fmt::Display`] prints the canonical name, which parses back to an equal
/// scheme.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheme {
    kind: SchemeKind,
}

impl Scheme {
    /// All zeros.
    pub const ZEROS: Scheme = Scheme {
        kind: SchemeKind::Constant(0.0),
    };
    /// All ones.
    pub const ONES: Scheme = Scheme {
        kind: SchemeKind::Constant(1.0),
    };
    /// ±1/√fan_in.
    pub const FAN_IN_UNIFORM: Scheme = Scheme::scaled(Family::FanInUniform, Distribution::Uniform);
    /// Glorot uniform, ±√(6/(fan_in+fan_out)).
    pub const GLOROT_UNIFORM: Scheme =
        Scheme::scaled(Family::Glorot { gain: 1.0 }, Distribution::Uniform);
    /// Glorot normal, σ = √(2/(fan_in+fan_out)), untruncated.
    pub const GLOROT_NORMAL: Scheme =
        Scheme::scaled(Family::Glorot { gain: 1.0 }, Distribution::Normal);
    /// He uniform, ±√(6/fan_in).
    pub const HE_UNIFORM: Scheme = Scheme::scaled(
        Family::He {
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::Relu,
        },
        Distribution::Uniform,
    );
    /// He normal, σ = √(2/fan_in), untruncated.
    pub const HE_NORMAL: Scheme = Scheme::scaled(
        Family::He {
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::Relu,
        },
        Distribution::Normal,
    );
    /// LeCun uniform, ±√(3/fan_in).
    pub const LECUN_UNIFORM: Scheme = Scheme::scaled(Family::Lecun, Distribution::Uniform);
    /// LeCun normal, σ = √(1/fan_in), untruncated.
    pub const LECUN_NORMAL: Scheme = Scheme::scaled(Family::Lecun, Distribution::Normal);

    const fn scaled(family: Family, distribution: Distribution) -> Scheme {
        Scheme {
            kind: SchemeKind::Scaled {
                family,
                distribution,
            },
        }
    }

    /// What this scheme is.
    pub fn kind(&self) -> SchemeKind {
        self.kind
    }

    /// Every element `value` (finite).
    pub fn constant(value: f64) -> Result<Scheme, SchemeError> {
        check_finite("constant", "value", value)?;
        Ok(Scheme {
            kind: SchemeKind::Constant(value),
        })
    }

    /// U(lo, hi), lo < hi, both finite.
    pub fn uniform(lo: f64, hi: f64) -> Result<Scheme, SchemeError> {
        check_finite("uniform", "lo", lo)?;
        check_finite("uniform", "hi", hi)?;
        if lo >= hi {
            return Err(SchemeError::BadValue {
                scheme: "uniform",
                param: "lo",
                value: lo,
                expected: "lo < hi",
            });
        }
        Ok(Scheme {
            kind: SchemeKind::Uniform { lo, hi },
        })
    }

    /// N(mean, std²), std > 0.
    pub fn normal(mean: f64, std: f64) -> Result<Scheme, SchemeError> {
        check_finite("normal", "mean", mean)?;
        check_positive("normal", "std", std)?;
        Ok(Scheme {
            kind: SchemeKind::Normal { mean, std },
        })
    }

    /// N(mean, std²) cut at mean ± 2·std (Keras `TruncatedNormal`, JAX `truncated_normal`);
    /// `std` is the parent std.
    pub fn truncated_normal(mean: f64, std: f64) -> Result<Scheme, SchemeError> {
        Scheme::truncated(
            mean,
            std,
            mean - 2.0 * std,
            mean + 2.0 * std,
            TruncForm::TwoSigma,
        )
    }

    /// N(mean, std²) conditioned on the absolute interval [lo, hi] (PyTorch `trunc_normal_`).
    pub fn truncated_normal_abs(
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    ) -> Result<Scheme, SchemeError> {
        Scheme::truncated(mean, std, lo, hi, TruncForm::Absolute)
    }

    /// N(mean, std²) conditioned on [mean + lower·std, mean + upper·std] (JAX, timm
    /// `trunc_normal_tf_`).
    pub fn truncated_normal_sd(
        mean: f64,
        std: f64,
        lower: f64,
        upper: f64,
    ) -> Result<Scheme, SchemeError> {
        check_finite("truncated_normal_sd", "lower", lower)?;
        check_finite("truncated_normal_sd", "upper", upper)?;
        Scheme::truncated(
            mean,
            std,
            mean + lower * std,
            mean + upper * std,
            TruncForm::StdUnits,
        )
    }

    fn truncated(
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
        form: TruncForm,
    ) -> Result<Scheme, SchemeError> {
        const NAME: &str = "truncated_normal";
        check_finite(NAME, "mean", mean)?;
        check_positive(NAME, "std", std)?;
        check_finite(NAME, "lo", lo)?;
        check_finite(NAME, "hi", hi)?;
        if lo >= hi {
            return Err(SchemeError::BadValue {
                scheme: NAME,
                param: "lo",
                value: lo,
                expected: "lo < hi",
            });
        }
        // Beyond ~37 std the mass of the interval underflows f64; sampling there is meaningless.
        let (a, b) = ((lo - mean) / std, (hi - mean) / std);
        if a > 37.0 || b < -37.0 {
            return Err(SchemeError::BadValue {
                scheme: NAME,
                param: "lo",
                value: lo,
                expected: "an interval within 37 std of the mean",
            });
        }
        Ok(Scheme {
            kind: SchemeKind::TruncatedNormal {
                mean,
                std,
                lo,
                hi,
                form,
            },
        })
    }

    /// Glorot/Xavier with a gain (> 0).
    pub fn glorot(distribution: Distribution, gain: f64) -> Result<Scheme, SchemeError> {
        check_positive("glorot", "gain", gain)?;
        Ok(Scheme::scaled(Family::Glorot { gain }, distribution))
    }

    /// He/Kaiming with a fan mode and the nonlinearity that gives the gain.
    pub fn he(
        distribution: Distribution,
        mode: FanMode,
        nonlinearity: Nonlinearity,
    ) -> Result<Scheme, SchemeError> {
        if let Nonlinearity::LeakyRelu(a) = nonlinearity {
            check_finite("he", "negative_slope", a)?;
        }
        Ok(Scheme::scaled(
            Family::He { mode, nonlinearity },
            distribution,
        ))
    }

    /// LeCun: σ² = 1/fan_in.
    pub fn lecun(distribution: Distribution) -> Scheme {
        Scheme::scaled(Family::Lecun, distribution)
    }

    /// General variance scaling: σ² = scale/n(mode), scale > 0.
    pub fn variance_scaling(
        scale: f64,
        mode: FanMode,
        distribution: Distribution,
    ) -> Result<Scheme, SchemeError> {
        check_positive("variance_scaling", "scale", scale)?;
        Ok(Scheme::scaled(
            Family::VarianceScaling { scale, mode },
            distribution,
        ))
    }

    /// Orthogonal × gain (gain finite, ≠ 0).
    pub fn orthogonal(gain: f64) -> Result<Scheme, SchemeError> {
        check_nonzero("orthogonal", "gain", gain)?;
        Ok(Scheme {
            kind: SchemeKind::Orthogonal { gain },
        })
    }

    /// Identity matrix × gain.
    pub fn eye(gain: f64) -> Result<Scheme, SchemeError> {
        check_nonzero("eye", "gain", gain)?;
        Ok(Scheme {
            kind: SchemeKind::Eye { gain },
        })
    }

    /// Dirac (identity-convolution) kernel with `groups` ≥ 1 groups.
    pub fn dirac(groups: u64) -> Result<Scheme, SchemeError> {
        if groups == 0 {
            return Err(SchemeError::BadValue {
                scheme: "dirac",
                param: "groups",
                value: 0.0,
                expected: "groups >= 1",
            });
        }
        Ok(Scheme {
            kind: SchemeKind::Dirac { groups },
        })
    }

    /// Whether the scheme's values depend on fan_in/fan_out.
    pub fn needs_fans(&self) -> bool {
        matches!(self.kind, SchemeKind::Scaled { .. })
    }

    /// Whether every element gets the same value (the seed's "what not to do" for weights:
    /// every unit would compute, and learn, the same thing).
    pub fn is_symmetric(&self) -> bool {
        matches!(self.kind, SchemeKind::Constant(_))
    }

    /// The target variance σ² of a fan-scaled scheme for these fans; `None` for other schemes.
    /// Zero fans give an infinite variance, which the sampler rejects.
    pub fn scaled_variance(&self, fan_in: f64, fan_out: f64) -> Option<f64> {
        let SchemeKind::Scaled { family, .. } = self.kind else {
            return None;
        };
        Some(match family {
            Family::FanInUniform => 1.0 / (3.0 * fan_in),
            Family::Glorot { gain } => gain * gain * 2.0 / (fan_in + fan_out),
            Family::He { mode, nonlinearity } => {
                let g = nonlinearity.gain();
                g * g / mode.n(fan_in, fan_out)
            }
            Family::Lecun => 1.0 / fan_in,
            Family::VarianceScaling { scale, mode } => scale / mode.n(fan_in, fan_out),
        })
    }

    /// The canonical name without parameters (`he_uniform`, `glorot_normal`, `normal`, …).
    pub fn name(&self) -> &'static str {
        match self.kind {
            SchemeKind::Constant(0.0) => "zeros",
            SchemeKind::Constant(1.0) => "ones",
            SchemeKind::Constant(_) => "constant",
            SchemeKind::Uniform { .. } => "uniform",
            SchemeKind::Normal { .. } => "normal",
            SchemeKind::TruncatedNormal { form, .. } => match form {
                TruncForm::StdUnits => "truncated_normal_sd",
                _ => "truncated_normal",
            },
            SchemeKind::Scaled {
                family,
                distribution,
            } => {
                let d = distribution as usize;
                match family {
                    Family::FanInUniform => "fan_in_uniform",
                    Family::Glorot { .. } => {
                        ["glorot_uniform", "glorot_normal", "glorot_truncated_normal"][d]
                    }
                    Family::He { .. } => ["he_uniform", "he_normal", "he_truncated_normal"][d],
                    Family::Lecun => ["lecun_uniform", "lecun_normal", "lecun_truncated_normal"][d],
                    Family::VarianceScaling { .. } => "variance_scaling",
                }
            }
            SchemeKind::Orthogonal { .. } => "orthogonal",
            SchemeKind::Eye { .. } => "eye",
            SchemeKind::Dirac { .. } => "dirac",
        }
    }

    /// Parse the grammar in the module documentation.
    pub fn parse(text: &str) -> Result<Scheme, SchemeError> {
        let value = Parser::new(text).parse_value_complete()?;
        let Value::Call(call) = value else {
            return Err(SchemeError::Syntax {
                offset: 0,
                message: "expected a scheme name".to_string(),
            });
        };
        Scheme::from_call(&call)
    }

    fn from_call(call: &Call) -> Result<Scheme, SchemeError> {
        let name = canonical_scheme_name(&call.name).ok_or_else(|| SchemeError::UnknownScheme {
            name: call.name.clone(),
            suggestions: scheme_suggestions(&call.name),
        })?;
        let mut args = Args::new(name, &call.args);
        let scheme = match name {
            "zeros" => Scheme::ZEROS,
            "ones" => Scheme::ONES,
            "constant" => {
                let v = args.required(&["value", "val", "v"])?;
                Scheme::constant(v)?
            }
            "uniform" => {
                if call.args.is_empty() {
                    Scheme::FAN_IN_UNIFORM
                } else {
                    let lo = args.required(&["lo", "a", "low", "minval"])?;
                    let hi = args.required(&["hi", "b", "high", "maxval"])?;
                    Scheme::uniform(lo, hi)?
                }
            }
            "fan_in_uniform" => Scheme::FAN_IN_UNIFORM,
            "normal" => {
                let mean = args.number(&["mean", "mu"], Some(0.0))?.unwrap_or(0.0);
                let std = args
                    .number(&["std", "stddev", "sigma"], Some(1.0))?
                    .unwrap_or(1.0);
                Scheme::normal(mean, std)?
            }
            "truncated_normal" => {
                let mean = args.required(&["mean", "mu"])?;
                let std = args.required(&["std", "stddev", "sigma"])?;
                let lo = args.number(&["lo", "a"], None)?;
                let hi = args.number(&["hi", "b"], None)?;
                match (lo, hi) {
                    (None, None) => Scheme::truncated_normal(mean, std)?,
                    (Some(lo), Some(hi)) => Scheme::truncated_normal_abs(mean, std, lo, hi)?,
                    _ => {
                        return Err(SchemeError::BadParameter {
                            scheme: "truncated_normal",
                            message: "give both bounds (lo, hi) or neither (±2 std)".to_string(),
                        });
                    }
                }
            }
            "truncated_normal_sd" => {
                let mean = args.required(&["mean", "mu"])?;
                let std = args.required(&["std", "stddev", "sigma"])?;
                let lower = args.number(&["lower"], Some(-2.0))?.unwrap_or(-2.0);
                let upper = args.number(&["upper"], Some(2.0))?.unwrap_or(2.0);
                Scheme::truncated_normal_sd(mean, std, lower, upper)?
            }
            "glorot_uniform" | "glorot_normal" | "glorot_truncated_normal" => {
                let gain = args.number(&["gain"], Some(1.0))?.unwrap_or(1.0);
                Scheme::glorot(distribution_of(name), gain)?
            }
            "he_uniform" | "he_normal" | "he_truncated_normal" => {
                // PyTorch's `kaiming_*_(w, a, mode, nonlinearity='leaky_relu')`: `a` is the
                // negative slope of the leaky ReLU whose gain is used (a = 0 is ReLU's √2), so
                // `he_uniform(a = 2.2360679774997896)` is nn.Linear/Conv's default init.
                let a = args.number_by_key(&["a", "negative_slope"])?;
                let mode = args.fan_mode("mode", FanMode::FanIn)?;
                let nonlinearity = args.nonlinearity("nonlinearity", Nonlinearity::Relu)?;
                let nonlinearity = match (a, args.was_given("nonlinearity")) {
                    (None, _) => nonlinearity,
                    (Some(a), false) => Nonlinearity::LeakyRelu(a),
                    (Some(a), true) => match nonlinearity {
                        Nonlinearity::LeakyRelu(s) if s == 0.01 || s == a => {
                            Nonlinearity::LeakyRelu(a)
                        }
                        other => {
                            return Err(SchemeError::BadParameter {
                                scheme: name,
                                message: format!(
                                    "`a = {a}` is the negative slope of a leaky ReLU, but \
                                     `nonlinearity = {other}`: give one or the other \
                                     (PyTorch ignores `a` unless the nonlinearity is leaky_relu)"
                                ),
                            });
                        }
                    },
                };
                Scheme::he(distribution_of(name), mode, nonlinearity)?
            }
            "lecun_uniform" | "lecun_normal" | "lecun_truncated_normal" => {
                Scheme::lecun(distribution_of(name))
            }
            "variance_scaling" => {
                let scale = args.number(&["scale"], Some(1.0))?.unwrap_or(1.0);
                let mode = args.fan_mode("mode", FanMode::FanIn)?;
                let distribution =
                    args.distribution("distribution", Distribution::TruncatedNormal)?;
                Scheme::variance_scaling(scale, mode, distribution)?
            }
            "orthogonal" => {
                let gain = args.number(&["gain", "scale"], Some(1.0))?.unwrap_or(1.0);
                Scheme::orthogonal(gain)?
            }
            "eye" => {
                let gain = args.number(&["gain"], Some(1.0))?.unwrap_or(1.0);
                Scheme::eye(gain)?
            }
            "dirac" => {
                let groups = args.number(&["groups"], Some(1.0))?.unwrap_or(1.0);
                if !(1.0..=1e15).contains(&groups) || groups != (groups as u64) as f64 {
                    return Err(SchemeError::BadValue {
                        scheme: "dirac",
                        param: "groups",
                        value: groups,
                        expected: "a whole number >= 1",
                    });
                }
                Scheme::dirac(groups as u64)?
            }
            _ => unreachable!("canonical_scheme_name returned an unhandled name"),
        };
        args.finish()?;
        Ok(scheme)
    }
}

impl core::str::FromStr for Scheme {
    type Err = SchemeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::parse(s)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self.kind {
            SchemeKind::Constant(v) if v == 0.0 || v == 1.0 => f.write_str(name),
            SchemeKind::Constant(v) => write!(f, "constant({})", Num(v)),
            SchemeKind::Uniform { lo, hi } => write!(f, "uniform({},{})", Num(lo), Num(hi)),
            SchemeKind::Normal { mean, std } => write!(f, "normal({},{})", Num(mean), Num(std)),
            SchemeKind::TruncatedNormal {
                mean,
                std,
                lo,
                hi,
                form,
            } => match form {
                TruncForm::TwoSigma => write!(f, "truncated_normal({},{})", Num(mean), Num(std)),
                TruncForm::Absolute => write!(
                    f,
                    "truncated_normal({},{},{},{})",
                    Num(mean),
                    Num(std),
                    Num(lo),
                    Num(hi)
                ),
                TruncForm::StdUnits => write!(
                    f,
                    "truncated_normal_sd({},{},{},{})",
                    Num(mean),
                    Num(std),
                    Num((lo - mean) / std),
                    Num((hi - mean) / std)
                ),
            },
            SchemeKind::Scaled {
                family,
                distribution,
            } => match family {
                Family::FanInUniform | Family::Lecun | Family::Glorot { gain: 1.0 } => {
                    f.write_str(name)
                }
                Family::Glorot { gain } => write!(f, "{name}(gain={})", Num(gain)),
                Family::He { mode, nonlinearity } => {
                    f.write_str(name)?;
                    let mut sep = '(';
                    if mode != FanMode::FanIn {
                        write!(f, "{sep}mode={}", mode.as_str())?;
                        sep = ',';
                    }
                    if nonlinearity != Nonlinearity::Relu {
                        write!(f, "{sep}nonlinearity={nonlinearity}")?;
                        sep = ',';
                    }
                    if sep == ',' {
                        f.write_str(")")?;
                    }
                    Ok(())
                }
                Family::VarianceScaling { scale, mode } => write!(
                    f,
                    "variance_scaling({},{},{})",
                    Num(scale),
                    mode.as_str(),
                    distribution.as_str()
                ),
            },
            SchemeKind::Orthogonal { gain } | SchemeKind::Eye { gain } if gain == 1.0 => {
                f.write_str(name)
            }
            SchemeKind::Orthogonal { gain } | SchemeKind::Eye { gain } => {
                write!(f, "{name}(gain={})", Num(gain))
            }
            SchemeKind::Dirac { groups: 1 } => f.write_str(name),
            SchemeKind::Dirac { groups } => write!(f, "dirac(groups={groups})"),
        }
    }
}

/// Prints an f64 in its shortest round-trip form (`0.1`, `2`, `-0.5`, `1e-8`).
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v == 0.0 {
            // -0 prints as 0: the sign of a zero parameter never matters here.
            return f.write_str("0");
        }
        let a = v.abs();
        if (1e-5..1e16).contains(&a) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

fn distribution_of(canonical: &str) -> Distribution {
    if canonical.ends_with("_truncated_normal") {
        Distribution::TruncatedNormal
    } else if canonical.ends_with("_normal") {
        Distribution::Normal
    } else {
        Distribution::Uniform
    }
}

/// Maps every accepted spelling to the canonical name the constructor match handles.
fn canonical_scheme_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "zeros" | "zero" => "zeros",
        "ones" | "one" => "ones",
        "constant" | "const" => "constant",
        "uniform" => "uniform",
        "fan_in_uniform" => "fan_in_uniform",
        "normal" | "randn" => "normal",
        "truncated_normal" | "trunc_normal" => "truncated_normal",
        "truncated_normal_sd" | "trunc_normal_sd" => "truncated_normal_sd",
        "glorot" | "glorot_uniform" | "xavier" | "xavier_uniform" => "glorot_uniform",
        "glorot_normal" | "xavier_normal" => "glorot_normal",
        "glorot_truncated_normal" | "xavier_truncated_normal" => "glorot_truncated_normal",
        "he" | "he_uniform" | "kaiming" | "kaiming_uniform" => "he_uniform",
        "he_normal" | "kaiming_normal" => "he_normal",
        "he_truncated_normal" | "kaiming_truncated_normal" => "he_truncated_normal",
        "lecun" | "lecun_uniform" => "lecun_uniform",
        "lecun_normal" => "lecun_normal",
        "lecun_truncated_normal" => "lecun_truncated_normal",
        "variance_scaling" => "variance_scaling",
        "orthogonal" => "orthogonal",
        "eye" | "identity" => "eye",
        "dirac" => "dirac",
        _ => return None,
    })
}

/// Up to three valid names closest to `name` by edit distance (≤ ⌈len/3⌉ + 1 edits), or names
/// that contain it.
pub fn closest(name: &str, candidates: &[&'static str]) -> Vec<&'static str> {
    let limit = name.len() / 3 + 1;
    let mut scored: Vec<(usize, &'static str)> = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= limit || (name.len() >= 3 && c.contains(name)))
        .collect();
    scored.sort_by_key(|(d, c)| (*d, c.len()));
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions
/// of adjacent characters (the commonest typo, `rleu` for `relu`) each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the DP table: i − 2, i − 1 and i.
    let mut prev2: Vec<usize> = alloc::vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = alloc::vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let sub = prev[j] + usize::from(a[i] != b[j]);
            let mut d = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(prev2[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        core::mem::swap(&mut prev2, &mut prev);
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn check_finite(scheme: &'static str, param: &'static str, v: f64) -> Result<(), SchemeError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(SchemeError::BadValue {
            scheme,
            param,
            value: v,
            expected: "a finite number",
        })
    }
}

fn check_positive(scheme: &'static str, param: &'static str, v: f64) -> Result<(), SchemeError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SchemeError::BadValue {
            scheme,
            param,
            value: v,
            expected: "a finite number > 0",
        })
    }
}

fn check_nonzero(scheme: &'static str, param: &'static str, v: f64) -> Result<(), SchemeError> {
    if v.is_finite() && v != 0.0 {
        Ok(())
    } else {
        Err(SchemeError::BadValue {
            scheme,
            param,
            value: v,
            expected: "a finite, non-zero number",
        })
    }
}

/// √x without `std` (correctly rounded through the IEEE operation).
fn sqrt(x: f64) -> f64 {
    // Newton's iteration from a bit-level estimate, refined to the correctly rounded result;
    // only used for parameter arithmetic (gains, modes), never in sampling loops.
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    let mut y = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..8 {
        y = 0.5 * (y + x / y);
    }
    // Final correction to the nearest representable root.
    let down = f64::from_bits(y.to_bits() - 1);
    let up = f64::from_bits(y.to_bits() + 1);
    let err = |r: f64| (r * r - x).abs();
    [down, y, up]
        .into_iter()
        .min_by(|a, b| err(*a).total_cmp(&err(*b)))
        .unwrap_or(y)
}

// ---------------------------------------------------------------------------------------------
// The parser.

/// A parsed `name(args)` term.
#[derive(Clone, Debug, PartialEq)]
struct Call {
    name: String,
    args: Vec<Arg>,
}

#[derive(Clone, Debug, PartialEq)]
struct Arg {
    key: Option<String>,
    value: Value,
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Num(f64),
    Call(Call),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { text, pos: 0 }
    }

    fn err(&self, message: &str) -> SchemeError {
        SchemeError::Syntax {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn parse_value_complete(mut self) -> Result<Value, SchemeError> {
        let v = self.value()?;
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(self.err("unexpected text after the scheme"));
        }
        Ok(v)
    }

    fn value(&mut self) -> Result<Value, SchemeError> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(Value::Call(self.call()?)),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                Ok(Value::Num(self.number()?))
            }
            Some(_) => Err(self.err("expected a name or a number")),
            None => Err(self.err("expected a name or a number, found the end")),
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.pos += 1;
        }
        self.text[start..self.pos]
            .to_ascii_lowercase()
            .replace('-', "_")
    }

    fn number(&mut self) -> Result<f64, SchemeError> {
        let start = self.pos;
        let mut num = self.signed_number()?;
        // A ratio such as `5/3` (tanh's gain) is accepted where a number is.
        if self.eat('/') {
            self.skip_ws();
            let den = self.signed_number()?;
            if den == 0.0 {
                self.pos = start;
                return Err(self.err("division by zero"));
            }
            num /= den;
        }
        Ok(num)
    }

    fn signed_number(&mut self) -> Result<f64, SchemeError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        if i < bytes.len() && (bytes[i] == b'-' || bytes[i] == b'+') {
            i += 1;
        }
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            let mut j = i + 1;
            if j < bytes.len() && (bytes[j] == b'-' || bytes[j] == b'+') {
                j += 1;
            }
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                i = j;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        let text = &self.text[start..i];
        match text.parse::<f64>() {
            Ok(v) => {
                self.pos = i;
                Ok(v)
            }
            Err(_) => Err(self.err("expected a number")),
        }
    }

    fn call(&mut self) -> Result<Call, SchemeError> {
        let name = self.ident();
        let mut args = Vec::new();
        if self.eat('(') && !self.eat(')') {
            loop {
                args.push(self.arg()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.err("expected `,` or `)`"));
                }
            }
        }
        Ok(Call { name, args })
    }

    fn arg(&mut self) -> Result<Arg, SchemeError> {
        self.skip_ws();
        let save = self.pos;
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            let key = self.ident();
            if self.eat('=') {
                let value = self.value()?;
                return Ok(Arg {
                    key: Some(key),
                    value,
                });
            }
            self.pos = save;
        }
        Ok(Arg {
            key: None,
            value: self.value()?,
        })
    }
}

/// Consumes a call's arguments positionally or by key, in the order the scheme asks for them.
struct Args<'a> {
    scheme: &'static str,
    items: &'a [Arg],
    used: Vec<bool>,
    next_positional: usize,
    /// Every key (with its aliases) the scheme asked for: its valid parameters, for
    /// "did you mean" on an unknown one.
    asked: Vec<&'static str>,
    /// The first key of every parameter asked for: the names the error lists.
    primary: Vec<&'static str>,
}

impl<'a> Args<'a> {
    fn new(scheme: &'static str, args: &'a [Arg]) -> Self {
        Args {
            scheme,
            items: args,
            used: alloc::vec![false; args.len()],
            next_positional: 0,
            asked: Vec::new(),
            primary: Vec::new(),
        }
    }

    /// Whether an argument named `key` was written.
    fn was_given(&self, key: &str) -> bool {
        self.items.iter().any(|a| a.key.as_deref() == Some(key))
    }

    /// A number given by one of `keys` only (never positionally).
    fn number_by_key(&mut self, keys: &[&'static str]) -> Result<Option<f64>, SchemeError> {
        self.asked.extend_from_slice(keys);
        self.primary.push(keys[0]);
        let Some(i) = self
            .items
            .iter()
            .position(|a| a.key.as_ref().is_some_and(|k| keys.contains(&k.as_str())))
        else {
            return Ok(None);
        };
        if self.items[i + 1..]
            .iter()
            .any(|a| a.key.as_ref().is_some_and(|k| keys.contains(&k.as_str())))
        {
            return Err(SchemeError::BadParameter {
                scheme: self.scheme,
                message: format!("`{}` is given twice", keys[0]),
            });
        }
        self.used[i] = true;
        match &self.items[i].value {
            Value::Num(v) => Ok(Some(*v)),
            Value::Call(c) => Err(SchemeError::BadParameter {
                scheme: self.scheme,
                message: format!("`{}` must be a number, found `{}`", keys[0], c.name),
            }),
        }
    }

    /// Takes the argument named by any of `keys`, else the next positional one.
    fn take(&mut self, keys: &[&'static str]) -> Result<Option<&'a Value>, SchemeError> {
        self.asked.extend_from_slice(keys);
        self.primary.push(keys[0]);
        let mut found = None;
        for (i, a) in self.items.iter().enumerate() {
            if let Some(k) = &a.key
                && keys.contains(&k.as_str())
            {
                if found.is_some() {
                    return Err(SchemeError::BadParameter {
                        scheme: self.scheme,
                        message: format!("`{}` is given twice", keys[0]),
                    });
                }
                found = Some(i);
            }
        }
        if found.is_none() {
            while self.next_positional < self.items.len() {
                let i = self.next_positional;
                self.next_positional += 1;
                if self.items[i].key.is_none() && !self.used[i] {
                    found = Some(i);
                    break;
                }
            }
        }
        Ok(found.map(|i| {
            self.used[i] = true;
            &self.items[i].value
        }))
    }

    fn number(
        &mut self,
        keys: &[&'static str],
        _default: Option<f64>,
    ) -> Result<Option<f64>, SchemeError> {
        match self.take(keys)? {
            None => Ok(None),
            Some(Value::Num(v)) => Ok(Some(*v)),
            Some(Value::Call(c)) => Err(SchemeError::BadParameter {
                scheme: self.scheme,
                message: format!("`{}` must be a number, found `{}`", keys[0], c.name),
            }),
        }
    }

    fn required(&mut self, keys: &[&'static str]) -> Result<f64, SchemeError> {
        self.number(keys, None)?
            .ok_or_else(|| SchemeError::BadParameter {
                scheme: self.scheme,
                message: format!("missing parameter `{}`", keys[0]),
            })
    }

    fn word(&mut self, key: &'static str) -> Result<Option<&'a Call>, SchemeError> {
        match self.take(&[key])? {
            None => Ok(None),
            Some(Value::Call(c)) => Ok(Some(c)),
            Some(Value::Num(v)) => Err(SchemeError::BadParameter {
                scheme: self.scheme,
                message: format!("`{key}` must be a name, found {v}"),
            }),
        }
    }

    fn fan_mode(&mut self, key: &'static str, default: FanMode) -> Result<FanMode, SchemeError> {
        self.named(
            key,
            default,
            FanMode::parse,
            "mode",
            "fan_in, fan_out, fan_avg, fan_geo_avg",
        )
    }

    fn distribution(
        &mut self,
        key: &'static str,
        default: Distribution,
    ) -> Result<Distribution, SchemeError> {
        self.named(
            key,
            default,
            Distribution::parse,
            "distribution",
            "uniform, normal, truncated_normal",
        )
    }

    /// A parameter that is one of a fixed set of names (without arguments): `default` when it
    /// is absent, else `parse`d, or an error naming `what` and the `choices`.
    fn named<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: fn(&str) -> Option<T>,
        what: &str,
        choices: &str,
    ) -> Result<T, SchemeError> {
        match self.word(key)? {
            None => Ok(default),
            Some(c) => parse(&c.name).filter(|_| c.args.is_empty()).ok_or_else(|| {
                SchemeError::BadParameter {
                    scheme: self.scheme,
                    message: format!("{what} `{}` is not one of {choices}", c.name),
                }
            }),
        }
    }

    fn nonlinearity(
        &mut self,
        key: &'static str,
        default: Nonlinearity,
    ) -> Result<Nonlinearity, SchemeError> {
        match self.word(key)? {
            None => Ok(default),
            Some(c) => Nonlinearity::from_value(&Value::Call(c.clone())),
        }
    }

    /// " (`he_uniform` takes: mode, nonlinearity)" or " (`zeros` takes no parameters)".
    fn valid_parameters(&self) -> String {
        if self.primary.is_empty() {
            return format!(" (`{}` takes no parameters)", self.scheme);
        }
        let mut names: Vec<&str> = Vec::new();
        for k in &self.primary {
            if !names.contains(k) {
                names.push(k);
            }
        }
        format!(" (`{}` takes: {})", self.scheme, names.join(", "))
    }

    fn finish(self) -> Result<(), SchemeError> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            let message = match &self.items[i].key {
                Some(k) => {
                    let hint = closest(k, &self.asked)
                        .first()
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    format!("unknown parameter `{k}`{hint}{}", self.valid_parameters())
                }
                None => format!("too many parameters{}", self.valid_parameters()),
            };
            return Err(SchemeError::BadParameter {
                scheme: self.scheme,
                message,
            });
        }
        Ok(())
    }
}
