//! Progress bars for long jobs, drawn only when a person is watching.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `label`; hidden when `show` is false (callers pass whether
/// standard error is a terminal, or the user's `--quiet`).
pub fn bar(len: u64, label: &str, show: bool) -> ProgressBar {
    bar_aligned(len, label, show, 18)
}

/// [`bar`] with the label right-aligned in `label_width` columns, so that the bars of a job
/// whose labels are longer or shorter than most still line up with each other.
pub fn bar_aligned(len: u64, label: &str, show: bool, label_width: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>{label_width}}} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}}/{{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}
