//! The real-time route: the linear route (Takagi & Nishimoto 2023) applied to one volume at a
//! time as a session is acquired.
//!
//! Per volume, the preprocessed z-scores at the subject's voxels (see `brainrecon-realtime`)
//! are averaged over the last `k` volumes ([`PatternWindow`]) and standardised per voxel with
//! the running mean and variance of the patterns so far (the online counterpart of the betas'
//! per-session z-scoring the decoders were fit on). The ridge decoders turn the pattern into z
//! and c ([`LiveDecoders`]); [`LiveDrawer`] VAE-decodes z and runs img2img from that picture
//! conditioned on c, as the linear route does, with one sample and a short schedule.
//!
//! - [`decoders`]: [`LiveDecoders`] and [`PatternWindow`];
//! - [`draw`]: the drawer, [`LiveDrawer`]; [`worker`]: the thread it draws on;
//! - [`session`]: [`LiveSession`], a session volume by volume as events (for the command line,
//!   its live page, or another host), and [`LiveOptions`];
//! - [`record`]: volumes.tsv, session.json ([`Summary`]) and the pauses it records;
//! - [`score`]: the shown images' reconstructions, live and analysed afterwards;
//! - [`run`]: a whole session with its live page ([`run_session`]).

pub mod decoders;
pub mod draw;
pub mod page;
pub mod record;
pub mod run;
pub mod score;
pub mod session;
pub mod worker;

pub use decoders::{LiveDecoders, PatternWindow};
pub use draw::{Drawn, LiveDrawer};
pub use page::LivePage;
pub use record::{PauseNotice, Summary};
pub use run::{run_session, PageOptions};
pub use score::{live_answers, offline_patterns, shown_trials, write_recons, Answer, ShownTrial};
pub use session::{Frame, LiveEvent, LiveOptions, LiveSession, VolumeOutcome};
