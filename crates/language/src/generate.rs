//! Text generation over any model that gives next-token logits.
//!
//! Three searches, each reproducing what transformers' `generate` does for a decoder-only model
//! with one batch item:
//! - [`beam_search`]: `generate(num_beams=k, do_sample=False)`, with the bookkeeping of the
//!   transformers version chosen by [`BeamScoring`] (the versions differ in how a finished
//!   hypothesis is scored and when the search stops early);
//! - [`greedy`]: `generate(num_beams=1, do_sample=False)`;
//! - [`sample`]: `generate(do_sample=True)` with temperature, top-k and top-p, drawing from a
//!   ChaCha8 stream the caller seeds (torch's random stream is not reproduced).
//!
//! Lengths (`max_length`, `min_length`) count the prompt, as transformers' do for decoder-only
//! models. Returned token sequences keep the prompt (the caller strips it) and end with the eos
//! token when the search ended on one.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A model that gives the logits of the next token for a batch of rows (beams).
///
/// Implementations keep their own key/value cache: `next_logits` receives the whole sequences
/// (all rows the same length) and runs only the tokens the cache has not seen.
///
/// The searches here call `next_logits` with `num_beams` identical prompt rows first (as
/// transformers expands the prompt over beams), then, after each step, `reorder` with the row
/// each surviving beam continues, then `next_logits` with those rows one token longer.
pub trait NextTokenLogits {
    /// rows × vocab logits (before any softmax) of the token after each sequence.
    fn next_logits(&mut self, sequences: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>>;
    /// Keeps the cached state of `rows`: new row i is old row `rows[i]` (beams reordered).
    fn reorder(&mut self, rows: &[usize]) -> candle_core::Result<()>;
}

/// How finished beam hypotheses are scored and when the search stops early.
///
/// All variants divide a hypothesis' summed log-probabilities (after the logits processors) by
/// a length raised to `length_penalty`, keep the `num_beams` best finished hypotheses, and stop
/// when the best candidate cannot beat the worst kept one (`early_stopping=False` semantics);
/// they differ in the lengths used:
///
/// | | score length | early-stop length |
/// |---|---|---|
/// | `Published` (4.15 … 4.28) | prompt + generated tokens, eos not counted | length before the step's token |
/// | `Transformers4` (4.29 … 4.35) | the same | length after the step's token |
/// | `Transformers5` (5.x) | generated tokens, eos counted | generated tokens after the step |
///
/// transformers 4.36 switched 4.x's scorer to 5's lengths; its vectorised rewrite (late 4.x
/// releases, then 5.x) also changed what happens at `max_length`: the best `num_beams` of that
/// step's candidates are kept, where the older scorer kept the running beams. 4.36 up to the
/// rewrite is not reproduced here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeamScoring {
    /// transformers 4.15 (checked against 4.15.0), the version salesforce's published BLIP code
    /// (and Takagi & Nishimoto's caption decoding, which runs it) pins.
    Published,
    /// transformers 4.29 to 4.35 (checked against 4.35.2): `BeamHypotheses.is_done` is given the
    /// length including the step's new token.
    Transformers4,
    /// transformers 5.x (checked against 5.23.0): the vectorised beam search.
    Transformers5,
}

impl BeamScoring {
    /// Every scoring, in the order of their transformers versions.
    pub const ALL: [BeamScoring; 3] = [
        BeamScoring::Published,
        BeamScoring::Transformers4,
        BeamScoring::Transformers5,
    ];

    /// `published`, `transformers4` or `transformers5`: the name on the command line and in
    /// captions.json.
    pub fn name(self) -> &'static str {
        match self {
            BeamScoring::Published => "published",
            BeamScoring::Transformers4 => "transformers4",
            BeamScoring::Transformers5 => "transformers5",
        }
    }

    /// The scoring named `text` ([`BeamScoring::name`]).
    pub fn parse(text: &str) -> Option<BeamScoring> {
        Self::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// Settings of [`beam_search`], named as transformers' `generate` arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamSearchConfig {
    /// Beams; 1 runs [`greedy`] (as transformers does), whose hypothesis has no score.
    pub num_beams: usize,
    /// Longest sequence, prompt included.
    pub max_length: usize,
    /// eos is forbidden while the sequence (prompt included) is shorter than this.
    pub min_length: usize,
    /// Divides positive, multiplies negative scores of tokens already in the sequence (1 = off).
    pub repetition_penalty: f32,
    /// Exponent of the length a finished hypothesis' summed log-probabilities are divided by.
    pub length_penalty: f32,
    /// The end-of-sequence token.
    pub eos_token_id: u32,
    /// Which transformers version's beam bookkeeping to follow.
    pub scoring: BeamScoring,
}

impl BeamSearchConfig {
    /// The settings of the published caption decoding: 3 beams, max_length 20, min_length 5,
    /// repetition_penalty 1.5, eos = BERT's `[SEP]` (102), transformers 4.15's bookkeeping.
    pub fn published() -> Self {
        BeamSearchConfig {
            num_beams: 3,
            max_length: 20,
            min_length: 5,
            repetition_penalty: 1.5,
            length_penalty: 1.0,
            eos_token_id: 102,
            scoring: BeamScoring::Published,
        }
    }

    fn processing(&self) -> Processing {
        Processing {
            min_length: self.min_length,
            repetition_penalty: self.repetition_penalty,
            eos_token_id: self.eos_token_id,
        }
    }
}

/// A finished (or, at max_length, stopped) sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Prompt and generated tokens, the final eos included when the hypothesis ended on it.
    pub tokens: Vec<u32>,
    /// The hypothesis' score as transformers reports it (`sequences_scores`); `None` for greedy
    /// search, which has none.
    pub score: Option<f32>,
    /// The hypothesis ends with `eos_token_id` (not stopped at max_length).
    pub ends_with_eos: bool,
}

/// What [`beam_search`] returns: every kept hypothesis, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamSearchOutput {
    /// The kept hypotheses, best first.
    pub hypotheses: Vec<Hypothesis>,
}

impl BeamSearchOutput {
    /// The best hypothesis. Panics when there is none.
    pub fn best(&self) -> &Hypothesis {
        &self.hypotheses[0]
    }
}

/// Settings of [`greedy`].
#[derive(Clone, Debug, PartialEq)]
pub struct GreedyConfig {
    /// Longest sequence, prompt included.
    pub max_length: usize,
    /// eos is forbidden while the sequence (prompt included) is shorter than this.
    pub min_length: usize,
    /// Divides positive, multiplies negative scores of tokens already in the sequence (1 = off).
    pub repetition_penalty: f32,
    /// The end-of-sequence token.
    pub eos_token_id: u32,
}

/// Settings of [`sample`]. Defaults as transformers' generation config: temperature 1, top-k 50,
/// top-p 1 (off).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Longest sequence, prompt included.
    pub max_length: usize,
    /// eos is forbidden while the sequence (prompt included) is shorter than this.
    pub min_length: usize,
    /// Divides positive, multiplies negative scores of tokens already in the sequence (1 = off).
    pub repetition_penalty: f32,
    /// The end-of-sequence token.
    pub eos_token_id: u32,
    /// Divides the processed logits (1 = off).
    pub temperature: f32,
    /// Keeps the `top_k` highest logits (ties at the k-th value kept too); 0 = off.
    pub top_k: usize,
    /// Keeps the smallest set of most probable tokens whose probability exceeds `top_p`
    /// (1 = off).
    pub top_p: f32,
}

impl SamplingConfig {
    /// Sequences of at most `max_length` tokens (prompt included) ending on `eos_token_id`, the
    /// rest transformers' defaults: no minimum length, no repetition penalty, temperature 1,
    /// top-k 50, top-p 1.
    pub fn new(max_length: usize, eos_token_id: u32) -> Self {
        SamplingConfig {
            max_length,
            min_length: 0,
            repetition_penalty: 1.0,
            eos_token_id,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
        }
    }
}

fn invalid(msg: String) -> candle_core::Error {
    candle_core::Error::Msg(msg)
}

/// The logits processors every search applies, in transformers' order.
#[derive(Clone, Copy, Debug)]
struct Processing {
    min_length: usize,
    repetition_penalty: f32,
    eos_token_id: u32,
}

impl Processing {
    /// Repetition penalty, then min-length (transformers' processor order), on one row's scores.
    fn apply(&self, scores: &mut [f32], sequence: &[u32]) {
        if self.repetition_penalty != 1.0 {
            // Once per distinct token, whatever its count: transformers gathers then scatters.
            let mut seen = vec![false; scores.len()];
            for &t in sequence {
                let t = t as usize;
                if t < scores.len() && !seen[t] {
                    seen[t] = true;
                    let s = scores[t];
                    scores[t] = if s < 0.0 {
                        s * self.repetition_penalty
                    } else {
                        s / self.repetition_penalty
                    };
                }
            }
        }
        if sequence.len() < self.min_length {
            scores[self.eos_token_id as usize] = f32::NEG_INFINITY;
        }
    }
}

fn check_common(
    prompt: &[u32],
    max_length: usize,
    penalty: f32,
    what: &str,
) -> candle_core::Result<()> {
    if prompt.is_empty() {
        return Err(invalid(format!(
            "{what}: the prompt is empty; expected at least one token (BLIP: [DEC])"
        )));
    }
    if max_length <= prompt.len() {
        return Err(invalid(format!(
            "{what}: max_length {max_length} leaves no room after the {}-token prompt; expected more",
            prompt.len()
        )));
    }
    if !(penalty.is_finite() && penalty > 0.0) {
        return Err(invalid(format!(
            "{what}: repetition_penalty {penalty}; expected a positive number"
        )));
    }
    Ok(())
}

/// Calls the model and checks its answer: `rows` rows of one vocabulary size that holds eos and
/// the sequences' tokens, no NaN.
fn call_model<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    sequences: &[Vec<u32>],
    eos: u32,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let logits = model.next_logits(sequences)?;
    if logits.len() != sequences.len() {
        return Err(invalid(format!(
            "the model gave {} rows of logits for {} sequences",
            logits.len(),
            sequences.len()
        )));
    }
    let vocab = logits[0].len();
    if logits.iter().any(|row| row.len() != vocab) {
        return Err(invalid("the model's logit rows differ in length".into()));
    }
    if eos as usize >= vocab {
        return Err(invalid(format!(
            "eos_token_id {eos} is outside the model's vocabulary of {vocab}"
        )));
    }
    if let Some(&t) = sequences.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(invalid(format!(
            "token id {t} is outside the model's vocabulary of {vocab}"
        )));
    }
    if logits.iter().flatten().any(|x| x.is_nan()) {
        return Err(invalid("the model gave NaN logits".into()));
    }
    Ok(logits)
}

/// log_softmax of one row (f32, max-shifted as torch computes it).
fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let log_sum = sum.ln() as f32;
    logits.iter().map(|&x| x - max - log_sum).collect()
}

/// Index of the largest value, the first one on ties (torch's argmax).
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// Greedy search: at each step the highest processed logit.
pub fn greedy<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    config: &GreedyConfig,
) -> candle_core::Result<Vec<u32>> {
    check_common(
        prompt,
        config.max_length,
        config.repetition_penalty,
        "greedy search",
    )?;
    let processing = Processing {
        min_length: config.min_length,
        repetition_penalty: config.repetition_penalty,
        eos_token_id: config.eos_token_id,
    };
    one_row_search(model, prompt, &processing, config.max_length, |scores| {
        argmax(scores)
    })
}

/// Sampling: processed logits, then temperature, top-k, top-p, then one draw from the softmax.
pub fn sample<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    config: &SamplingConfig,
    rng: &mut ChaCha8Rng,
) -> candle_core::Result<Vec<u32>> {
    check_common(
        prompt,
        config.max_length,
        config.repetition_penalty,
        "sampling",
    )?;
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        return Err(invalid(format!(
            "sampling: temperature {}; expected a positive number",
            config.temperature
        )));
    }
    if !(config.top_p > 0.0 && config.top_p <= 1.0) {
        return Err(invalid(format!(
            "sampling: top_p {}; expected a number in (0, 1]",
            config.top_p
        )));
    }
    let processing = Processing {
        min_length: config.min_length,
        repetition_penalty: config.repetition_penalty,
        eos_token_id: config.eos_token_id,
    };
    one_row_search(model, prompt, &processing, config.max_length, |scores| {
        warp(scores, config);
        draw(scores, rng)
    })
}

/// The single-row loop of greedy search and sampling: `pick` chooses a token from the processed
/// logits until eos or max_length.
fn one_row_search<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    processing: &Processing,
    max_length: usize,
    mut pick: impl FnMut(&mut [f32]) -> usize,
) -> candle_core::Result<Vec<u32>> {
    let mut sequence = prompt.to_vec();
    loop {
        let rows = std::slice::from_ref(&sequence);
        let mut scores = call_model(model, rows, processing.eos_token_id)?.swap_remove(0);
        processing.apply(&mut scores, &sequence);
        let token = pick(&mut scores) as u32;
        sequence.push(token);
        if token == processing.eos_token_id || sequence.len() >= max_length {
            return Ok(sequence);
        }
    }
}

/// Temperature, top-k and top-p, in transformers' order; removed tokens get -inf.
fn warp(scores: &mut [f32], config: &SamplingConfig) {
    if config.temperature != 1.0 {
        scores.iter_mut().for_each(|s| *s /= config.temperature);
    }
    if config.top_k > 0 && config.top_k < scores.len() {
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[config.top_k - 1];
        scores
            .iter_mut()
            .filter(|s| **s < kth)
            .for_each(|s| *s = f32::NEG_INFINITY);
    }
    if config.top_p < 1.0 {
        top_p(scores, config.top_p);
    }
}

/// transformers' TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability
/// stays at or below 1 - top_p, always keeping the most probable one.
fn top_p(scores: &mut [f32], p: f32) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let probs = softmax(scores);
    let mut cumulative = 0.0f32;
    let last = order.len() - 1;
    for (rank, &i) in order.iter().enumerate() {
        cumulative += probs[i];
        if cumulative <= 1.0 - p && rank != last {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = scores.iter().map(|&s| ((s - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

/// One draw from softmax(scores): the first token whose cumulative probability exceeds a
/// uniform draw in [0, 1).
fn draw(scores: &[f32], rng: &mut ChaCha8Rng) -> usize {
    let probs = softmax(scores);
    let u: f64 = rng.gen();
    let mut cumulative = 0.0f64;
    let mut last_positive = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p as f64;
            last_positive = i;
            if u < cumulative {
                return i;
            }
        }
    }
    // Rounding left the cumulative sum just below u: the last possible token.
    last_positive
}

/// A continuation candidate: beam `beam` followed by `token`, with summed log-probability `score`.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    beam: usize,
    token: u32,
    score: f32,
}

/// One step of every beam: processed log-probabilities plus the beams' sums, and the `keep`
/// best (beam, token) pairs, best first (lower flat index first on ties).
fn step_candidates<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    beams: &[Vec<u32>],
    beam_scores: &[f32],
    processing: &Processing,
    keep: usize,
) -> candle_core::Result<Vec<Candidate>> {
    let logits = call_model(model, beams, processing.eos_token_id)?;
    let mut all = Vec::with_capacity(logits.len() * logits[0].len());
    for (beam, row) in logits.iter().enumerate() {
        let mut scores = log_softmax(row);
        processing.apply(&mut scores, &beams[beam]);
        for (token, &s) in scores.iter().enumerate() {
            all.push(Candidate {
                beam,
                token: token as u32,
                score: s + beam_scores[beam],
            });
        }
    }
    // A stable sort keeps the flat (beam, token) order among equal scores.
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all.truncate(keep);
    Ok(all)
}

/// Beam search as transformers' `generate(num_beams=k)` runs it, for one prompt.
pub fn beam_search<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    config: &BeamSearchConfig,
) -> candle_core::Result<BeamSearchOutput> {
    check_common(
        prompt,
        config.max_length,
        config.repetition_penalty,
        "beam search",
    )?;
    if config.num_beams == 0 {
        return Err(invalid(
            "beam search: num_beams 0; expected at least 1".into(),
        ));
    }
    if !config.length_penalty.is_finite() {
        return Err(invalid(format!(
            "beam search: length_penalty {}; expected a finite number",
            config.length_penalty
        )));
    }
    if config.num_beams == 1 {
        let tokens = greedy(
            model,
            prompt,
            &GreedyConfig {
                max_length: config.max_length,
                min_length: config.min_length,
                repetition_penalty: config.repetition_penalty,
                eos_token_id: config.eos_token_id,
            },
        )?;
        let ends_with_eos = tokens.last() == Some(&config.eos_token_id);
        return Ok(BeamSearchOutput {
            hypotheses: vec![Hypothesis {
                tokens,
                score: None,
                ends_with_eos,
            }],
        });
    }
    match config.scoring {
        BeamScoring::Published | BeamScoring::Transformers4 => {
            beam_search_v4(model, prompt, config)
        }
        BeamScoring::Transformers5 => beam_search_v5(model, prompt, config),
    }
}

/// transformers 4.x's `BeamHypotheses`: the best `num_beams` finished hypotheses, scores in f64
/// as Python computes them.
struct Hypotheses4 {
    num_beams: usize,
    length_penalty: f64,
    /// (score, tokens without eos, ended on eos), in insertion order.
    beams: Vec<(f64, Vec<u32>, bool)>,
    worst_score: f64,
}

impl Hypotheses4 {
    fn new(num_beams: usize, length_penalty: f32) -> Self {
        Hypotheses4 {
            num_beams,
            length_penalty: length_penalty as f64,
            beams: Vec::new(),
            worst_score: 1e9,
        }
    }

    /// Scores by the hypothesis' length (prompt included, eos not counted).
    fn add(&mut self, tokens: Vec<u32>, sum_logprobs: f32, eos: bool) {
        let score = sum_logprobs as f64 / (tokens.len() as f64).powf(self.length_penalty);
        if self.beams.len() < self.num_beams || score > self.worst_score {
            self.beams.push((score, tokens, eos));
            if self.beams.len() > self.num_beams {
                // Python sorts (score, index) pairs: the lowest score, the first of equals, goes.
                let mut ranked: Vec<(f64, usize)> = self
                    .beams
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.0, i))
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                self.beams.remove(ranked[0].1);
                self.worst_score = ranked[1].0;
            } else {
                self.worst_score = self.worst_score.min(score);
            }
        }
    }

    fn is_done(&self, best_sum_logprobs: f32, cur_len: usize) -> bool {
        if self.beams.len() < self.num_beams {
            return false;
        }
        let highest = best_sum_logprobs as f64 / (cur_len as f64).powf(self.length_penalty);
        self.worst_score >= highest
    }

    /// Best first; among equal scores the later added first (Python's sort, then pop()).
    fn into_output(self, eos_token_id: u32) -> BeamSearchOutput {
        let mut beams = self.beams;
        beams.sort_by(|a, b| a.0.total_cmp(&b.0));
        beams.reverse();
        let hypotheses = beams
            .into_iter()
            .map(|(score, mut tokens, eos)| {
                if eos {
                    tokens.push(eos_token_id);
                }
                Hypothesis {
                    tokens,
                    score: Some(score as f32),
                    ends_with_eos: eos,
                }
            })
            .collect();
        BeamSearchOutput { hypotheses }
    }
}

/// transformers 4.x's `beam_search` with `BeamSearchScorer` (4.15–4.28 and 4.29–4.35 differ only in
/// the length `is_done` is given).
fn beam_search_v4<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    config: &BeamSearchConfig,
) -> candle_core::Result<BeamSearchOutput> {
    let k = config.num_beams;
    let processing = config.processing();
    let eos = config.eos_token_id;
    let mut beams = vec![prompt.to_vec(); k];
    // Only the first beam is live at the start, so the k copies do not pick the same tokens.
    let mut scores = vec![-1e9f32; k];
    scores[0] = 0.0;
    let mut hyps = Hypotheses4::new(k, config.length_penalty);
    let mut done = false;
    loop {
        let cur_len = beams[0].len();
        let candidates = step_candidates(model, &beams, &scores, &processing, 2 * k)?;
        let mut next: Vec<Candidate> = Vec::with_capacity(k);
        for (rank, c) in candidates.iter().enumerate() {
            if c.token == eos {
                // Only an eos among the k best candidates finishes a hypothesis.
                if rank < k {
                    hyps.add(beams[c.beam].clone(), c.score, true);
                }
            } else {
                next.push(*c);
            }
            if next.len() == k {
                break;
            }
        }
        let done_len = match config.scoring {
            BeamScoring::Published => cur_len,
            _ => cur_len + 1,
        };
        done = done || hyps.is_done(candidates[0].score, done_len);
        let rows: Vec<usize> = next.iter().map(|c| c.beam).collect();
        beams = next
            .iter()
            .map(|c| {
                let mut b = beams[c.beam].clone();
                b.push(c.token);
                b
            })
            .collect();
        scores = next.iter().map(|c| c.score).collect();
        if done || cur_len + 1 >= config.max_length {
            break;
        }
        model.reorder(&rows)?;
    }
    if !done {
        // max_length reached: the running beams compete with the finished ones.
        for (b, s) in beams.into_iter().zip(scores) {
            hyps.add(b, s, false);
        }
    }
    Ok(hyps.into_output(eos))
}

/// A kept hypothesis of transformers 5's beam search (`sequences`, `beam_scores`,
/// `is_sent_finished`); slots not yet filled hold about -1e9.
#[derive(Clone, Debug)]
struct Slot5 {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// The k best of `slots`, best first (earlier first on ties).
fn best_slots(mut slots: Vec<Slot5>, k: usize) -> Vec<Slot5> {
    slots.sort_by(|a, b| b.score.total_cmp(&a.score));
    slots.truncate(k);
    slots
}

/// transformers 5's vectorised beam search (`_beam_search` with `early_stopping=False`).
fn beam_search_v5<M: NextTokenLogits + ?Sized>(
    model: &mut M,
    prompt: &[u32],
    config: &BeamSearchConfig,
) -> candle_core::Result<BeamSearchOutput> {
    let k = config.num_beams;
    let processing = config.processing();
    let prompt_len = prompt.len();
    let lp = config.length_penalty as f64;
    let mut beams = vec![prompt.to_vec(); k];
    let mut scores = vec![-1e9f32; k];
    scores[0] = 0.0;
    let empty = Slot5 {
        tokens: prompt.to_vec(),
        score: -1e9,
        finished: false,
    };
    let mut slots = vec![empty; k];
    loop {
        let cur_len = beams[0].len();
        let candidates = step_candidates(model, &beams, &scores, &processing, 2 * k)?;
        let at_max = cur_len + 1 >= config.max_length;
        let hits: Vec<bool> = candidates
            .iter()
            .map(|c| c.token == config.eos_token_id || at_max)
            .collect();
        let extend = |c: &Candidate| {
            let mut t = beams[c.beam].clone();
            t.push(c.token);
            t
        };
        // Finished: only hits among the k best candidates, scored by generated length.
        let denominator = ((cur_len + 1 - prompt_len) as f64).powf(lp) as f32;
        let mut merged = slots;
        for (rank, (c, &hit)) in candidates.iter().zip(&hits).enumerate() {
            let eligible = hit && rank < k;
            let mut s = c.score / denominator;
            if !eligible {
                s += -1e9;
            }
            merged.push(Slot5 {
                tokens: extend(c),
                score: s,
                finished: eligible,
            });
        }
        slots = best_slots(merged, k);
        // Running: the k best candidates that did not finish.
        let mut running: Vec<(f32, usize)> = candidates
            .iter()
            .zip(&hits)
            .enumerate()
            .map(|(i, (c, &hit))| (if hit { c.score + -1e9 } else { c.score }, i))
            .collect();
        running.sort_by(|a, b| b.0.total_cmp(&a.0));
        running.truncate(k);
        let rows: Vec<usize> = running.iter().map(|&(_, i)| candidates[i].beam).collect();
        beams = running
            .iter()
            .map(|&(_, i)| extend(&candidates[i]))
            .collect();
        scores = running.iter().map(|&(s, _)| s).collect();
        if at_max || !improvement_possible(&slots, scores[0], cur_len + 1 - prompt_len, lp) {
            break;
        }
        model.reorder(&rows)?;
    }
    let hypotheses = slots
        .into_iter()
        .map(|s| Hypothesis {
            ends_with_eos: s.tokens.last() == Some(&config.eos_token_id),
            tokens: s.tokens,
            score: Some(s.score),
        })
        .collect();
    Ok(BeamSearchOutput { hypotheses })
}

/// transformers 5's early-stop heuristic: can the best running beam, scored at its current
/// generated length, beat the worst kept hypothesis? Always while a slot is unfilled.
fn improvement_possible(slots: &[Slot5], best_running: f32, generated: usize, lp: f64) -> bool {
    if slots.iter().any(|s| !s.finished) {
        return true;
    }
    let best_possible = best_running / (generated as f64).powf(lp) as f32;
    let worst = slots.iter().map(|s| s.score).fold(f32::INFINITY, f32::min);
    best_possible > worst
}
