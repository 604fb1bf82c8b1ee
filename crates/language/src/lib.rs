//! Language networks.
//!
//! [`generate`]: next-token search (beam search with the three scorings transformers has used,
//! greedy, seeded sampling) over any model that gives next-token logits.
//!
//! [`blip`]: BLIP's captioner (ViT image tower, BERT text decoder with cross-attention and a
//! reorderable key/value cache) in transformers' layout; [`wordpiece`]: its tokenizer.

pub mod blip;
pub mod generate;
pub mod wordpiece;
