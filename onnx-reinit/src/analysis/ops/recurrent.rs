//! Recurrent layers: LSTM, GRU and RNN (W, R, B with their gate layout).

use super::{OpSpec, Walk};
use crate::analysis::roles::{Candidate, SlotCtx, not_a_parameter};
use crate::analysis::{Activation, Fans, RecurrentLayout, RecurrentOp, RecurrentPart, Role, fans};

/// The recurrent-layer specs.
pub(crate) static SPECS: &[OpSpec] =
    &[OpSpec::new(&["LSTM", "GRU", "RNN"], Walk::WeightLayer).params(recurrent)];

/// LSTM/GRU/RNN: W and R are recurrent weights with a gate layout, B a bias; initial states,
/// sequence lengths and LSTM peepholes are left alone.
pub(crate) fn recurrent(ctx: &SlotCtx<'_, '_, '_>) -> Candidate {
    let (op, gates, gate_order) = match ctx.op {
        "LSTM" => (RecurrentOp::Lstm, 4u32, "iofc"),
        "GRU" => (RecurrentOp::Gru, 3, "zrh"),
        _ => (RecurrentOp::Rnn, 1, "h"),
    };
    let which = match (ctx.slot, op) {
        (1, _) => RecurrentPart::W,
        (2, _) => RecurrentPart::R,
        (3, _) => RecurrentPart::B,
        (4, _) => return Candidate::none(format!("input 4 (sequence_lens) of {}", ctx.op)),
        (5, _) => {
            return Candidate::none(format!(
                "input 5 (initial_h) of {}: a recurrent state, not a parameter",
                ctx.op
            ));
        }
        (6, RecurrentOp::Lstm) => {
            return Candidate::none("input 6 (initial_c) of LSTM: a cell state, not a parameter");
        }
        (7, RecurrentOp::Lstm) => {
            return Candidate::none(
                "input 7 (P, peephole weights) of LSTM: no re-initialization rule",
            );
        }
        _ => return not_a_parameter(ctx),
    };
    let g = u64::from(gates);
    let directions: u32 = match ctx.n.attr("direction").and_then(|a| a.s.as_deref()) {
        Some(b"bidirectional") => 2,
        _ => 1,
    };
    let dims: Vec<u64> = ctx
        .dims
        .iter()
        .map(|&d| u64::try_from(d).unwrap_or(0))
        .collect();
    let want_rank = if which == RecurrentPart::B { 2 } else { 3 };
    if dims.len() != want_rank {
        return Candidate::none(format!(
            "{} {which:?} of rank {} (expected {want_rank})",
            ctx.op,
            dims.len()
        ));
    }
    if dims[0] != u64::from(directions) {
        return Candidate::none(format!(
            "{} {which:?} has {} directions but the node says {directions}",
            ctx.op, dims[0]
        ));
    }
    // Rows per direction: G·H for W and R, 2·G·H for B.
    let row_blocks = if which == RecurrentPart::B { 2 * g } else { g };
    let hidden = match u64::try_from(ctx.n.attr_i("hidden_size", 0)) {
        Ok(h) if h > 0 => h,
        _ => dims[1] / row_blocks,
    };
    // Checked: a hostile hidden_size (up to 2^63) must not overflow the product.
    if hidden == 0 || row_blocks.checked_mul(hidden) != Some(dims[1]) {
        return Candidate::none(format!(
            "{} {which:?} has {} rows per direction, expected {row_blocks}·{hidden}",
            ctx.op, dims[1]
        ));
    }
    if which == RecurrentPart::R && dims[2] != hidden {
        return Candidate::none(format!(
            "{} R has {} columns, expected hidden_size {hidden}",
            ctx.op, dims[2]
        ));
    }
    let input_size = match which {
        RecurrentPart::W => Some(dims[2]),
        _ => ctx
            .index
            .input(ctx.node, 1)
            .and_then(|w| ctx.index.initializer_behind(w))
            .and_then(|(_, d)| d.get(2).and_then(|&x| u64::try_from(x).ok())),
    };
    let gate_fans = match which {
        RecurrentPart::W => Some(Fans {
            fan_in: dims[2],
            fan_out: hidden,
        }),
        RecurrentPart::R => Some(Fans {
            fan_in: hidden,
            fan_out: hidden,
        }),
        RecurrentPart::B => None,
    };
    let role = if which == RecurrentPart::B {
        Role::Bias
    } else {
        Role::RecurrentWeight
    };
    Candidate {
        fans: gate_fans.map(|f| fans::recurrent(f, g, ctx.compat)),
        recurrent: Some(RecurrentLayout {
            op,
            directions,
            gates,
            gate_order,
            hidden,
            input_size,
            which,
            gate_fans,
        }),
        fixed_activation: Some(Activation::Recurrent),
        ..Candidate::role(role, ctx.out0())
    }
}
