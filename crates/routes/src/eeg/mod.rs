//! The EEG route (after NICE and ATM): seen images decoded from EEG epochs by zero-shot
//! retrieval. [`decoder`] holds the verbs (`eeg embed`, `eeg fit`, `eeg eval`) over the
//! pieces: image embeddings ([`embed`]), the linear baseline ([`ridge_decoder`]), NICE's
//! contrastive encoder trained on the nn path ([`nice_train`]; the architecture is
//! `brainrecon_brain::nice`) and the papers' scores ([`retrieval`]); reconstructions from the
//! decoded embedding through img2img ([`reconstruct`]). The data come from
//! `brainrecon_datasets::things_eeg2`.

pub mod decoder;
pub mod embed;
pub mod live;
pub mod nice_train;
pub mod preprocess;
pub mod reconstruct;
pub mod retrieval;
pub mod ridge_decoder;
