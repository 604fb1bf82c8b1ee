//! Optimisation: [`AdamW`] as PyTorch computes it, gradient clipping by global norm
//! ([`clip_grad_norm`]) and the learning-rate schedule ([`learning_rate`]).

mod adamw;
mod clip;
mod schedule;

pub use adamw::AdamW;
pub use clip::clip_grad_norm;
pub use schedule::learning_rate;
