//! [`Frame`]: a timestamp column and named `f64` columns of equal length.

use std::ops::Range;

use crate::error::SeriesError;

/// A time series in memory: one row per timestamp, columns stored apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamps: Vec<i64>,
    pub columns: Vec<Column>,
}

/// One named column of a [`Frame`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<f64>,
}

impl Column {
    pub fn new(name: impl Into<String>, values: Vec<f64>) -> Self {
        Column { name: name.into(), values }
    }
}

impl Frame {
    /// A frame whose columns are checked: each as long as `timestamps`, names unique.
    pub fn new(timestamps: Vec<i64>, columns: Vec<Column>) -> Result<Frame, SeriesError> {
        let frame = Frame { timestamps, columns };
        frame.check()?;
        Ok(frame)
    }

    /// Check that every column is as long as the timestamps and names are unique.
    pub fn check(&self) -> Result<(), SeriesError> {
        for (i, c) in self.columns.iter().enumerate() {
            if c.values.len() != self.timestamps.len() {
                return Err(SeriesError::ColumnLength {
                    column: c.name.clone(),
                    expected: self.timestamps.len(),
                    actual: c.values.len(),
                });
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(SeriesError::DuplicateColumn { column: c.name.clone() });
            }
        }
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The values of column `name`.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find(|c| c.name == name).map(|c| c.values.as_slice())
    }

    /// The values of column `name`, or an error that lists the columns there are.
    pub fn require(&self, name: &str) -> Result<&[f64], SeriesError> {
        self.column(name).ok_or_else(|| SeriesError::MissingColumn {
            column: name.to_string(),
            available: self.column_names().map(str::to_string).collect(),
        })
    }

    /// Column names in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Rows `range` as a new frame. The range is clamped to the frame, so an
    /// out-of-range request yields fewer (or no) rows instead of a panic.
    pub fn slice(&self, range: Range<usize>) -> Frame {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Frame {
            timestamps: self.timestamps[start..end].to_vec(),
            columns: self
                .columns
                .iter()
                .map(|c| Column { name: c.name.clone(), values: c.values[start..end].to_vec() })
                .collect(),
        }
    }

    /// The rows at `rows` (in that order; indices past the end are skipped).
    pub fn take(&self, rows: &[usize]) -> Frame {
        let rows: Vec<usize> = rows.iter().copied().filter(|&r| r < self.len()).collect();
        Frame {
            timestamps: rows.iter().map(|&r| self.timestamps[r]).collect(),
            columns: self
                .columns
                .iter()
                .map(|c| Column { name: c.name.clone(), values: rows.iter().map(|&r| c.values[r]).collect() })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::new(vec![0, 10, 20, 30], vec![Column::new("a", vec![1.0, 2.0, 3.0, 4.0])]).expect("valid frame")
    }

    #[test]
    fn slice_copies_rows_and_clamps() {
        let f = frame();
        let s = f.slice(1..3);
        assert_eq!(s.timestamps, vec![10, 20]);
        assert_eq!(s.column("a"), Some(&[2.0, 3.0][..]));
        assert_eq!(f.slice(3..9).len(), 1);
        assert!(f.slice(7..9).is_empty());
        assert_eq!(f.len(), 4);
        assert!(!f.is_empty());
    }

    #[test]
    fn new_rejects_ragged_and_duplicate_columns() {
        let e = Frame::new(vec![0, 1], vec![Column::new("a", vec![1.0])]).unwrap_err();
        assert_eq!(e.to_string(), "column `a` has 1 values but the frame has 2 timestamps");
        let e = Frame::new(vec![0], vec![Column::new("a", vec![1.0]), Column::new("a", vec![2.0])]).unwrap_err();
        assert_eq!(e.to_string(), "column `a` appears twice");
    }

    #[test]
    fn require_lists_the_columns() {
        let e = frame().require("b").unwrap_err();
        assert_eq!(e.to_string(), "column `b` not found (columns: [\"a\"])");
    }
}
