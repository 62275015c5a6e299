//! The rule flags, shared by the rewrite and `inspect --compare`.

use crate::plan::{NameRule, Rule, Rules};
use clap::{Args, Parser};

/// The rule flags alone, for `inspect --compare`: the same flags as the rewrite.
#[derive(Debug, Parser)]
#[command(name = "--compare", no_binary_name = true)]
struct CompareRules {
    #[command(flatten)]
    rules: RuleArgs,
}

/// Parses `inspect --compare`'s text (see [`compare_tokens`]) with the rewrite's own rule flags,
/// so both accept exactly the same rules; the error is clap's first line.
pub(crate) fn compare_rules(text: &str) -> Result<Rules, String> {
    CompareRules::try_parse_from(compare_tokens(text)?)
        .map(|c| c.rules.into_rules())
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

/// The per-class rule flags and `--rule`, flattened into the rewrite's arguments (and parsed
/// alone for `--compare`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Rules (a scheme name or `keep`)")]
pub(crate) struct RuleArgs {
    /// Before ReLU, ReLU6, Softplus [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    relu: Option<Rule>,
    /// Before LeakyRelu; He adapts its gain to the graph's alpha [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    leaky_relu: Option<Rule>,
    /// Before PRelu [default: he, gain of leaky_relu(0.25)].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    prelu: Option<Rule>,
    /// Before Elu, Celu [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    elu: Option<Rule>,
    /// Before Selu [default: lecun_normal].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    selu: Option<Rule>,
    /// Before Gelu (op or decomposition) [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    gelu: Option<Rule>,
    /// Before SiLU/Swish, HardSwish, Mish [default: he].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    silu: Option<Rule>,
    /// Before Tanh, Softsign [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    tanh: Option<Rule>,
    /// Before Sigmoid, HardSigmoid [default: uniform, i.e. ±1/√fan_in].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    sigmoid: Option<Rule>,
    /// Before Softmax, LogSoftmax [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    softmax: Option<Rule>,
    /// With no nonlinearity after the layer [default: glorot].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    linear: Option<Rule>,
    /// Biases [default: zeros].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    bias: Option<Rule>,
    /// Normalization scales; shifts and running statistics are reset to 0 (var 1) unless
    /// `keep` [default: ones].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    norm: Option<Rule>,
    /// Embedding tables [default: normal(0,1), as PyTorch].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    embedding: Option<Rule>,
    /// LSTM/GRU/RNN W and R, per direction and gate block (sets both).
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent: Option<Rule>,
    /// LSTM/GRU/RNN input weights W [default: glorot_uniform].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent_w: Option<Rule>,
    /// LSTM/GRU/RNN recurrent weights R [default: orthogonal].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    recurrent_r: Option<Rule>,
    /// PRelu slopes [default: constant(0.25)].
    #[arg(long, value_name = "SCHEME", value_parser = parse_rule)]
    prelu_slope: Option<Rule>,
    /// GLOB=SCHEME on initializer or node names; highest precedence, first match wins
    /// (repeatable).
    #[arg(long = "rule", value_name = "GLOB=SCHEME", value_parser = NameRule::parse)]
    rules: Vec<NameRule>,
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    Rule::parse(s).map_err(|e| e.to_string())
}

impl RuleArgs {
    /// The library's rules: [`Rules::from_flags`] of the flags given.
    pub(crate) fn into_rules(self) -> Rules {
        let per_flag = [
            ("relu", self.relu),
            ("leaky-relu", self.leaky_relu),
            ("prelu", self.prelu),
            ("elu", self.elu),
            ("selu", self.selu),
            ("gelu", self.gelu),
            ("silu", self.silu),
            ("tanh", self.tanh),
            ("sigmoid", self.sigmoid),
            ("softmax", self.softmax),
            ("linear", self.linear),
            ("bias", self.bias),
            ("norm", self.norm),
            ("embedding", self.embedding),
            ("recurrent", self.recurrent),
            ("recurrent-w", self.recurrent_w),
            ("recurrent-r", self.recurrent_r),
            ("prelu-slope", self.prelu_slope),
        ];
        Rules::from_flags(
            per_flag
                .into_iter()
                .filter_map(|(flag, rule)| rule.map(|rule| (flag, rule))),
            self.rules,
        )
        .expect("the flags are Rules::FLAGS")
    }
}

/// Splits `--compare`'s text into the rewrite's flags: `--relu he --tanh glorot` is split on
/// blanks (single and double quotes group); the short form `relu=he tanh=glorot` (blank- or
/// comma-separated outside parentheses) becomes `--relu he --tanh glorot`.
fn compare_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    let short = !text.trim_start().starts_with('-');
    let mut any = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '(') => {
                depth += 1;
                cur.push(c);
            }
            (None, ')') => {
                depth -= 1;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() || (short && c == ',' && depth == 0) => {
                if !cur.is_empty() || any {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("--compare `{text}`: unterminated quote"));
    }
    if !cur.is_empty() || any {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("--compare needs rules, e.g. '--relu he' or 'relu=he'".to_owned());
    }
    if !short {
        return Ok(words);
    }
    let mut flags = Vec::with_capacity(words.len() * 2);
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "--compare: `{w}` is not CLASS=SCHEME (e.g. relu=he), nor a flag"
            ));
        };
        flags.push(format!("--{}", k.trim().replace('_', "-")));
        flags.push(v.trim().to_owned());
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_text_forms() {
        assert_eq!(
            compare_tokens("--relu he --tanh 'glorot_normal'").unwrap(),
            ["--relu", "he", "--tanh", "glorot_normal"]
        );
        assert_eq!(
            compare_tokens("relu=he, leaky_relu=he_normal(mode=fan_out) bias=normal(0,0.1)")
                .unwrap(),
            [
                "--relu",
                "he",
                "--leaky-relu",
                "he_normal(mode=fan_out)",
                "--bias",
                "normal(0,0.1)"
            ]
        );
        assert!(compare_tokens("relu").is_err());
        assert!(compare_tokens("  ").is_err());
        assert!(compare_tokens("--relu 'he").is_err());
    }
}
