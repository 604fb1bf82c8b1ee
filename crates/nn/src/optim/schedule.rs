//! The learning-rate schedule of the project's training runs.

/// Learning rate at `step` (0-based) of `total`: linear warm-up over the first 5% of steps,
/// then a cosine decay to a tenth of `peak`.
pub fn learning_rate(peak: f64, step: usize, total: usize) -> f64 {
    let warmup = (total / 20).max(1);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()))
}
