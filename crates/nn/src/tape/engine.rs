//! Which engine differentiates a training step: the tape or candle's autograd. One enum for
//! every trainer that has both (re-exported where the first trainer defined it).

/// Which engine differentiates a training step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrainEngine {
    /// The project's tape (the default: equal to candle's within f32 rounding, tested per
    /// trainer).
    #[default]
    Tape,
    /// candle's autograd.
    Candle,
}

impl TrainEngine {
    /// `tape` or `candle`; errors (naming the field and both choices) on anything else.
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "tape" => Ok(TrainEngine::Tape),
            "candle" => Ok(TrainEngine::Candle),
            other => Err(format!("engine: tape or candle, found '{other}'")),
        }
    }

    /// The name [`TrainEngine::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            TrainEngine::Tape => "tape",
            TrainEngine::Candle => "candle",
        }
    }
}
