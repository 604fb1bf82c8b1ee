//! The GLM as a library: GLMsingle's single-trial models of an experiment written into a folder
//! that the library owns ([`folder::fit_folder`], what `brainrecon glm` runs), its resumable
//! stage store ([`stages`]) and the comparison of an NSD fit with NSD's released betas
//! ([`compare::compare_nsd`]). The numerics are brainrecon-glm's.

pub mod compare;
pub mod folder;
pub mod stages;

pub use compare::{compare_nsd, CompareOptions, Comparison};
pub use folder::{fit_folder, model_folder, GlmOptions, GlmOutcome, Source};
