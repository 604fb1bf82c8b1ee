//! Progress bars for long jobs: the ground crate's, under the path the routes use.

pub use brainrecon_core::progress::bar;
