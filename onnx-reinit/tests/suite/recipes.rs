//! Initialization recipes (`--preset`): residual structure read from the graph, checked against
//! the PyTorch module definitions of the pattern fixtures and of `tests/fixtures/recipes/`.

use std::path::Path;

use onnx_reinit::analysis::AnalysisOptions;
use onnx_reinit::analysis::residual::{self, Residuals};
use onnx_reinit::onnx::model::LoadedModel;
use onnx_reinit::pipeline;

use crate::common::fixtures_dir;

fn residuals_of(path: &Path) -> Residuals {
    let m = LoadedModel::open(path).expect("fixture loads");
    let a = pipeline::analyze_loaded(&m, &AnalysisOptions::default()).expect("analysis");
    residual::residuals(m.skeleton(), &a)
}

/// Torch parameter name of each ONNX initializer, from the fixture's ground truth.
fn torch_names(path: &Path) -> std::collections::HashMap<String, String> {
    let gt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path.with_extension("gt.json")).expect("read gt"),
    )
    .expect("parse gt");
    gt["initializers"]
        .as_array()
        .expect("initializers")
        .iter()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_owned(),
                i["torch_param"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The residual branches of the pattern fixtures end in the projections their PyTorch modules
/// add back into the stream (`hidden + o_proj(attn)`, `hidden + down_proj(mlp)`; GPT-2's
/// `c_proj`s; BERT's `attention.output.dense` and `output.dense` before the post-LN; T5's `o`
/// and `wo`), found from the graph alone (most of these exports name the weights `val_N` or
/// `onnx::MatMul_N`). Each has one block, so depth 1.
#[test]
fn residual_projections_of_transformer_fixtures() {
    let cases: &[(&str, &[&str])] = &[
        (
            "llama_dynamo",
            &[
                "m.layers.0.self_attn.o_proj.weight",
                "m.layers.0.mlp.down_proj.weight",
            ],
        ),
        (
            "gpt2_dynamo",
            &["m.h.0.attn.c_proj.weight", "m.h.0.mlp.c_proj.weight"],
        ),
        (
            "bert",
            &[
                "m.encoder.layer.0.attention.output.dense.weight",
                "m.encoder.layer.0.output.dense.weight",
            ],
        ),
        (
            "bert_dynamo",
            &[
                "m.encoder.layer.0.attention.output.dense.weight",
                "m.encoder.layer.0.output.dense.weight",
            ],
        ),
        (
            "t5",
            &[
                "m.encoder.block.0.layer.0.SelfAttention.o.weight",
                "m.encoder.block.0.layer.1.DenseReluDense.wo.weight",
            ],
        ),
    ];
    for (stem, want) in cases {
        let path = fixtures_dir().join("patterns").join(format!("{stem}.onnx"));
        let names = torch_names(&path);
        let r = residuals_of(&path);
        let got: Vec<&str> = r
            .adds
            .iter()
            .map(|a| {
                let p = a
                    .projection
                    .as_deref()
                    .expect("every branch has a projection");
                names.get(p).map_or(p, String::as_str)
            })
            .collect();
        assert_eq!(&got, want, "{stem}: {r:#?}");
        assert_eq!(r.depth, 1, "{stem}");
        assert!(
            r.adds
                .iter()
                .all(|a| a.stream_layers == 0 && a.branch_layers == 2 && a.last_norm.is_none()),
            "{stem}: {r:#?}"
        );
    }
}

/// A network without skip connections has no residual adds, and no depth.
#[test]
fn no_residuals_without_skips() {
    for stem in ["cnn_train", "mlp_relu_tanh", "mlp_relu_tanh_dynamo", "lstm"] {
        let r = residuals_of(&fixtures_dir().join(format!("{stem}.onnx")));
        assert_eq!(r, Residuals::default(), "{stem}");
    }
}
