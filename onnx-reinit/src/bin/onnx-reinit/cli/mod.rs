//! The binary's command-line layer.

pub mod inspect;
