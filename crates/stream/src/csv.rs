//! CSV recordings: one row per sample, comma-separated, with an optional header row of labels.

use crate::error::{check_rate, Result, StreamError};
use crate::source::{default_labels, Recording};
use std::path::Path;

/// Reads a CSV recording at `rate` Hz: one row per sample, one column per channel.
///
/// The first non-empty line is a header (channel labels) when none of its cells is a number;
/// otherwise it is data. Blank lines and lines starting with `#` are skipped; cells are
/// trimmed, and may be quoted in the header. `nan` reads as NaN. A cell that is not a number,
/// or a row with another column count, is an error naming the file, line and column.
pub fn read_csv(path: &Path, rate: f64) -> Result<Recording> {
    check_rate("rate", rate)?;
    let bytes = std::fs::read(path).map_err(|e| StreamError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        StreamError::invalid(
            path,
            "encoding",
            "UTF-8 text",
            format!("invalid byte at offset {}", e.utf8_error().valid_up_to()),
        )
    })?;
    parse_csv(path, brainrecon_core::text::without_bom(&text), rate)
}

/// Parses CSV `text` (see [`read_csv`]); `path` names it in messages.
pub fn parse_csv(path: &Path, text: &str, rate: f64) -> Result<Recording> {
    let mut labels: Option<Vec<String>> = None;
    let mut data: Vec<f32> = Vec::new();
    let mut columns = 0usize;
    let mut first = true;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if first {
            first = false;
            columns = cells.len();
            if cells.iter().all(|c| parse_cell(c).is_none()) {
                labels = Some(
                    cells
                        .iter()
                        .map(|c| c.trim_matches('"').trim().to_string())
                        .collect(),
                );
                continue;
            }
        }
        if cells.len() != columns {
            return Err(StreamError::Cell {
                path: path.to_path_buf(),
                line: line_number,
                column: cells.len().min(columns) + 1,
                expected: format!("{columns} columns, as in the first row"),
                found: format!("{} columns", cells.len()),
            });
        }
        for (c, cell) in cells.iter().enumerate() {
            let value = parse_cell(cell).ok_or_else(|| StreamError::Cell {
                path: path.to_path_buf(),
                line: line_number,
                column: c + 1,
                expected: "a number".into(),
                found: (*cell).to_string(),
            })?;
            data.push(value);
        }
    }
    if columns == 0 || data.is_empty() {
        return Err(StreamError::invalid(
            path,
            "rows",
            "at least one row of numbers",
            "none",
        ));
    }
    let labels = labels.unwrap_or_else(|| default_labels(columns));
    Recording::new(path, rate, labels, data)
}

/// A number, or `None`. Accepts what `f32::from_str` accepts (including `nan` and `inf`).
fn parse_cell(cell: &str) -> Option<f32> {
    if cell.is_empty() {
        return None;
    }
    cell.parse::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    #[test]
    fn header_is_detected() {
        let r = parse_csv(Path::new("t.csv"), "a, \"b\"\n1,2\n\n3,4\n", 5.0).unwrap();
        assert_eq!(r.labels(), vec!["a", "b"]);
        assert_eq!(r.data(), &[1.0, 2.0, 3.0, 4.0]);
        let r = parse_csv(Path::new("t.csv"), "# comment\r\n1,2\r\n3,nan\r\n", 5.0).unwrap();
        assert_eq!(r.labels(), vec!["ch0", "ch1"]);
        assert!(r.data()[3].is_nan());
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let err = parse_csv(Path::new("t.csv"), "a,b\n1,2\n3,x\n", 5.0).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("t.csv: line 3, column 2"), "{text}");
        let err = parse_csv(Path::new("t.csv"), "1,2\n3\n", 5.0).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse_csv(Path::new("t.csv"), "a,b\n", 5.0).unwrap_err();
        assert!(err.to_string().contains("rows"), "{err}");
        let err = parse_csv(Path::new("t.csv"), "1,\n", 5.0).unwrap_err();
        assert!(err.to_string().contains("column 2"), "{err}");
    }
}
