//! The EEG route (after NICE and ATM), being built: zero-shot retrieval scored as the EEG papers
//! score it ([`retrieval`]) and the linear baseline, a ridge decoder from epochs to image
//! embeddings ([`ridge_decoder`]). The data come from `brainrecon_datasets::things_eeg2`; the
//! contrastive encoder is `brainrecon_brain::nice`.

pub mod embed;
pub mod nice_train;
pub mod retrieval;
pub mod ridge_decoder;
