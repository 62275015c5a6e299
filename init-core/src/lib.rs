//! init-core
#![no_std]
