//! Functional alignment across subjects (brainrecon).
//!
//! Every method here gives each subject a linear map into a common space:
//! * [`procrustes`]: scaled orthogonal Procrustes, as fmralign's `Procrustes` computes it;
//! * [`ridge_align`]: ridge alignment with one alpha chosen by K-fold, as fmralign's
//!   `RidgeAlignment`;
//! * [`srm`]: the shared response model (probabilistic and deterministic), as BrainIAK's
//!   `SRM` and `DetSRM`, with `transform_subject` for a new subject;
//! * [`encoding_map`]: a new subject's map from per-voxel encoding models inverted by
//!   generalised least squares (Brain-IT's per-voxel embeddings, linear);
//! * [`shared_space`]: one k-dimensional space for a group, fitted by multi-subject
//!   reduced-rank ridge onto stimulus features (the linear form of MindEye2's shared space);
//!   [`streamed`] fits it from row blocks read on demand, in a memory bounded by the sizes;
//! * [`pooled_ridge`]: a ridge with one GCV α per target on trials that repeat their inputs,
//!   from row blocks of the distinct inputs (the group's encoder at NSD's full size).
//!
//! Matrices are faer `Mat<f64>`, samples in rows unless a function says otherwise.
#![warn(missing_docs)]

pub mod encoding_map;
pub mod mt19937;
pub mod pooled_ridge;
pub mod procrustes;
pub mod ridge_align;
pub mod shared_space;
pub mod srm;
pub mod streamed;

/// Bad shapes or values given to an alignment method.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    /// Matrices whose sizes do not fit together, named in the message.
    #[error("{0}")]
    Shape(String),
    /// Values a method cannot use (too few samples, non-finite numbers, an empty grid …).
    #[error("{0}")]
    Input(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, AlignError>;
