//! Multi-target ridge regression with per-target alpha selection, for
//! fMRI encoding/decoding (brainrecon).
//!
//! * [`RidgeCv`] fits X (n×p) → Y (n×t), choosing one alpha per target from a
//!   grid by efficient leave-one-out ([`Cv::Loo`], scikit-learn `RidgeCV`
//!   semantics) or grouped K-fold ([`Cv::KFold`], himalaya semantics).
//! * One eigendecomposition (primal p×p when p ≤ n, dual n×n otherwise) serves
//!   every alpha; targets are processed in chunks and can be sharded.
//! * [`RidgeModel`] predicts from raw X, merges shards, and saves/loads as
//!   `weights.safetensors` + `model.json`.
//! * [`metrics`] has per-target Pearson r and R².

mod bench;
mod error;
mod fit;
mod io;
mod linalg;
pub mod metrics;
mod model;
mod preprocess;
mod select;
mod spectral;

pub use bench::{bench_workload, BenchReport};
pub use error::{Result, RidgeError};
pub use fit::{row_major_view, Cv, CvMethod, RidgeCv, Shard};
pub use io::{FORMAT_VERSION, MODEL_FILE, WEIGHTS_FILE};
pub use model::{ModelOptions, RidgeModel, TargetRange};
pub use select::{fold_assignment, Scoring};
pub use spectral::Solver;
