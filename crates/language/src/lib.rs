//! Language networks.
//!
//! [`generate`]: next-token search (beam search with the two scorings transformers has used,
//! greedy, seeded sampling) over any model that gives next-token logits.

pub mod generate;
