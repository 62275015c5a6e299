//! `#[derive(Initialize)]`.
