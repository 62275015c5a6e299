//! Op knowledge of the analysis, one file per op family.

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod recurrent;
