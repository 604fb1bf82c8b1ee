//! BIDS `_events.tsv` tables: any columns, `n/a` for missing values, typed access by name.

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// The latest time (seconds) an events table may give: 11.6 days, beyond any scan session,
/// and small enough that a time × any sample rate or 1/TR stays an exact, addressable index.
pub const MAX_SECONDS: f64 = 1e6;

/// One events table, kept as text and parsed by column on request.
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    path: PathBuf,
    columns: Vec<String>,
    /// Row-major cells; `None` is BIDS' `n/a` (or an empty cell).
    rows: Vec<Vec<Option<String>>>,
}

impl Events {
    /// Reads a tab-separated table with a header row (BIDS events, any columns).
    pub fn read(path: &Path) -> Result<Self> {
        let text = brainrecon_core::text::read_text(path)?;
        Self::parse(path, &text)
    }

    /// [`Events::read`] of the file's text; `path` names it in errors. Errors: an empty text,
    /// duplicate column names, a row whose cell count differs from the header's.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut lines = brainrecon_core::text::without_bom(text)
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| {
            DataError::invalid(
                path,
                "header",
                "a tab-separated header row",
                "an empty file",
            )
        })?;
        let columns: Vec<String> = header.split('\t').map(|c| c.trim().to_string()).collect();
        if let Some(dup) = columns
            .iter()
            .enumerate()
            .find(|(i, c)| columns[..*i].contains(c))
        {
            return Err(DataError::invalid(
                path,
                "header",
                "distinct column names",
                format!("'{}' twice", dup.1),
            ));
        }
        let mut rows = Vec::new();
        for (number, line) in lines {
            let cells: Vec<&str> = line.split('\t').collect();
            if cells.len() != columns.len() {
                return Err(DataError::invalid(
                    path,
                    format!("line {}", number + 1),
                    format!(
                        "{} tab-separated cells ({})",
                        columns.len(),
                        columns.join(", ")
                    ),
                    format!("{} cells", cells.len()),
                ));
            }
            rows.push(
                cells
                    .iter()
                    .map(|c| {
                        let c = c.trim();
                        (c != "n/a" && !c.is_empty()).then(|| c.to_string())
                    })
                    .collect(),
            );
        }
        Ok(Events {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same table with columns renamed by `rename` (`None` keeps a name).
    pub fn renamed(mut self, rename: impl Fn(&str) -> Option<String>) -> Self {
        for column in &mut self.columns {
            if let Some(name) = rename(column) {
                *column = name;
            }
        }
        self
    }

    /// Column names, in header order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Rows (events), the header excluded.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            DataError::invalid(
                &self.path,
                "header",
                format!("a column named '{name}'"),
                self.columns.join(", "),
            )
        })
    }

    /// The cells of a column as text; `None` where the table says `n/a`.
    pub fn text(&self, name: &str) -> Result<Vec<Option<&str>>> {
        let c = self.index(name)?;
        Ok(self.rows.iter().map(|r| r[c].as_deref()).collect())
    }

    /// A text column with the single or double quotes some datasets wrap values in removed
    /// (ds003720 writes genres as `'blues'`).
    pub fn unquoted(&self, name: &str) -> Result<Vec<Option<&str>>> {
        Ok(self
            .text(name)?
            .into_iter()
            .map(|v| v.map(|s| s.trim_matches(|c| c == '\'' || c == '"')))
            .collect())
    }

    /// A numeric column; `n/a` is `None`, anything else unparsable is an error naming the row.
    pub fn numbers(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let c = self.index(name)?;
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| match &r[c] {
                None => Ok(None),
                Some(s) => s.parse::<f64>().map(Some).map_err(|_| {
                    DataError::invalid(
                        &self.path,
                        format!("row {} column {name}", i + 1),
                        "a number or n/a",
                        s.as_str(),
                    )
                }),
            })
            .collect()
    }

    /// An integer column; `n/a` is `None`.
    pub fn integers(&self, name: &str) -> Result<Vec<Option<i64>>> {
        let c = self.index(name)?;
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| match &r[c] {
                None => Ok(None),
                Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
                    DataError::invalid(
                        &self.path,
                        format!("row {} column {name}", i + 1),
                        "an integer or n/a",
                        s.as_str(),
                    )
                }),
            })
            .collect()
    }

    /// `onset` in seconds from the first volume of the run as recorded: required in every row,
    /// each checked as [`Events::times`] checks them.
    pub fn onsets(&self) -> Result<Vec<f64>> {
        let onsets = self.required_numbers("onset")?;
        for (i, &v) in onsets.iter().enumerate() {
            self.check_time(i, "onset", v)?;
        }
        Ok(onsets)
    }

    /// `duration` in seconds; `n/a` is allowed by BIDS and read as `None`.
    pub fn durations(&self) -> Result<Vec<Option<f64>>> {
        self.times("duration")
    }

    /// A column of times in seconds; `n/a` is `None`. A value that is not finite, beyond
    /// ±[`MAX_SECONDS`] or (but for onsets) negative is an error naming the row and column: times become indices of
    /// volumes and samples, where such a value would saturate or loop for ever.
    pub fn times(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let values = self.numbers(name)?;
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = *v {
                self.check_time(i, name, v)?;
            }
        }
        Ok(values)
    }

    /// BIDS allows negative onsets (events before the first volume kept); other times are ≥ 0.
    fn check_time(&self, row: usize, name: &str, v: f64) -> Result<()> {
        let earliest = if name == "onset" { -MAX_SECONDS } else { 0.0 };
        if v.is_finite() && (earliest..=MAX_SECONDS).contains(&v) {
            return Ok(());
        }
        Err(DataError::invalid(
            &self.path,
            format!("row {} column {name}", row + 1),
            format!("seconds from {earliest} to {MAX_SECONDS}"),
            v.to_string(),
        ))
    }

    fn required_numbers(&self, name: &str) -> Result<Vec<f64>> {
        self.numbers(name)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    DataError::invalid(
                        &self.path,
                        format!("row {} column {name}", i + 1),
                        "a number",
                        "n/a",
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_typed_and_na_is_missing() {
        let text = "onset\tduration\tgenre\ttrack\n0.0\t15.0\t'blues'\t7\n15\tn/a\t\"jazz\"\tn/a\n";
        let events = Events::parse(Path::new("e.tsv"), text).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events.onsets().unwrap(), vec![0.0, 15.0]);
        assert_eq!(events.durations().unwrap(), vec![Some(15.0), None]);
        assert_eq!(
            events.unquoted("genre").unwrap(),
            vec![Some("blues"), Some("jazz")]
        );
        assert_eq!(events.integers("track").unwrap(), vec![Some(7), None]);
        let err = events.numbers("genre").unwrap_err().to_string();
        assert!(
            err.contains("e.tsv") && err.contains("row 1 column genre"),
            "{err}"
        );
        let err = events.text("title").unwrap_err().to_string();
        assert!(err.contains("a column named 'title'"), "{err}");
    }

    #[test]
    fn a_negative_onset_is_legal_bids() {
        let events = Events::parse(Path::new("e.tsv"), "onset\tduration\n-2.5\t1\n").unwrap();
        assert_eq!(events.onsets().unwrap(), vec![-2.5]);
    }

    #[test]
    fn times_that_would_not_make_an_index_name_the_row_and_column() {
        for (bad, column) in [
            ("9e18\t1", "row 2 column onset"),
            ("-9e18\t1", "row 2 column onset"),
            ("0\t-1", "row 2 column duration"),
            ("NaN\t1", "row 2 column onset"),
            ("0\tinf", "row 2 column duration"),
            ("0\t9e18", "row 2 column duration"),
        ] {
            let text = format!("onset\tduration\n0\t1\n{bad}\n");
            let events = Events::parse(Path::new("run-1_events.tsv"), &text).unwrap();
            let err = events
                .onsets()
                .and_then(|_| events.durations().map(|_| Vec::<f64>::new()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("run-1_events.tsv") && err.contains(column),
                "{err}"
            );
        }
    }

    #[test]
    fn ragged_rows_name_the_line() {
        let err = Events::parse(Path::new("e.tsv"), "onset\tduration\n1\t2\t3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("2 tab-separated cells"),
            "{err}"
        );
    }
}
