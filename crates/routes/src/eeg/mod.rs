//! The EEG route (after NICE and ATM): seen images decoded from EEG epochs by zero-shot
//! retrieval. [`decoder`] holds the verbs (`eeg embed`, `eeg fit`, `eeg eval`) over the
//! pieces: image embeddings ([`embed`]), the linear baseline ([`ridge_decoder`]), NICE's and
//! ATM's contrastive encoders trained on the nn path ([`nice_train`]; the architectures are
//! `brainrecon_brain::nice` and `::atm`) and the papers' scores ([`retrieval`]);
//! reconstructions from the decoded embedding through img2img ([`reconstruct`]). The data come
//! from `brainrecon_datasets::things_eeg2`, or are made into its layout ([`preprocess`]: raw
//! THINGS-EEG2, BIDS EEG, THINGS-MEG).

pub mod decoder;
pub mod embed;
pub mod live;
pub mod nice_train;
pub mod preprocess;
pub mod reconstruct;
pub mod retrieval;
pub mod ridge_decoder;
