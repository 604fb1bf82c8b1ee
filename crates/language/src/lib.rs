//! Language networks.
//!
//! [`generate`]: next-token search (beam search with the three scorings transformers has used,
//! greedy, seeded sampling) over any model that gives next-token logits.
//!
//! [`blip`]: BLIP's captioner (ViT image tower, BERT text decoder with cross-attention and a
//! reorderable key/value cache) in transformers' layout; [`wordpiece`]: its tokenizer.
//!
//! [`word2vec`]: skip-gram word vectors (training, the word2vec file formats), the baseline
//! text features of the naturalistic encoding route.
//!
//! [`text_model`]: language-model features of annotations — GPT-2 ([`gpt2`]), BERT ([`bert`])
//! and Llama ([`llama`]) as transformers computes them, every hidden state, mean-pooled per
//! annotation; [`text_tokenizer`]: their tokenizers as transformers 5's `AutoTokenizer` builds
//! them; [`checkpoint`]: what the three share (config fields, checkpoint names, masks).

#![warn(missing_docs)]

pub mod bert;
pub mod blip;
pub mod checkpoint;
pub mod generate;
pub mod gpt2;
pub mod japanese;
pub mod llama;
pub mod roberta;
pub mod t5;
pub mod t5_tokenizer;
pub mod text_model;
pub mod text_tokenizer;
pub mod word2vec;
pub mod wordpiece;
