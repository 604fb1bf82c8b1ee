//! Multi-target ridge regression with per-target alpha selection, for
//! fMRI encoding/decoding (brainrecon).
//!
//! * [`RidgeCv`] fits X (n×p) → Y (n×t), choosing one alpha per target from a
//!   grid by efficient leave-one-out ([`Cv::Loo`], scikit-learn `RidgeCV`
//!   semantics), generalized cross-validation ([`Cv::Gcv`]) or grouped K-fold
//!   ([`Cv::KFold`], himalaya semantics).
//! * One eigendecomposition (primal p×p when p ≤ n, dual n×n otherwise) serves
//!   every alpha; GCV on a wide design needs only a reduction of XXᵀ to band
//!   form. Targets are processed in chunks and can be sharded.
//! * [`RidgeModel`] predicts from raw X, merges shards, and saves/loads as
//!   `weights.safetensors` + `model.json`.
//! * [`metrics`] has per-target Pearson r and R².
//! * [`stats`] has the encoding statistics: permutation null, p-values, BH FDR.
#![warn(missing_docs)]

mod band;
mod banded;
mod bench;
pub mod bench_banded;
mod device;
mod error;
mod fit;
#[cfg(feature = "cuda")]
mod gpu;
mod io;
mod linalg;
pub mod metrics;
mod model;
pub mod partition;
mod preprocess;
mod select;
mod spectral;
pub mod stats;
pub mod temporal;

pub use banded::{dirichlet_candidates, BandedCv, BandedModel, BandedRidgeCv, Candidates};
pub use bench::{
    bench_alphas, bench_workload, generate, BenchData, BenchReport, Workload, WORKLOADS,
};
pub use device::{cuda_compiled, Device};
pub use error::{Result, RidgeError};
pub use fit::{row_major_view, Cv, CvMethod, Precision, RidgeCv, Shard};
#[cfg(feature = "cuda")]
pub use gpu::last_fit_peak_bytes;
pub use io::{merge_saved, ModelWriter, FORMAT_VERSION, MODEL_FILE, WEIGHTS_FILE};
pub use linalg::set_threads;
pub use model::{DualForm, ModelOptions, RidgeModel, TargetRange};
pub use partition::{
    correlation_score_split, partition_three, partition_two, r2_score_split, ThreeSpacePartition,
    ThreeSpaceR2, TwoSpacePartition,
};
pub use select::{fold_assignment, Scoring};
pub use spectral::Solver;
pub use stats::{
    bh_fdr, block_permutation, pearson_columns, permutation_null, permutation_p_values,
    permutation_test, seeded_block_permutations, Standardized,
};
