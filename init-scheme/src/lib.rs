//! The initialization-scheme grammar shared by init-core and init-derive (see `scheme`).
//! The initialization-scheme grammar shared by init-core and init-derive (see `scheme`).
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod scheme;

pub use scheme::*;
