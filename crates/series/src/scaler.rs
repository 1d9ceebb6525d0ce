//! [`Scaler`]: per-column `scaled = (x - offset) / scale`, fitted on the
//! training part only, stored as JSON next to the data (see the contract).

use serde::{Deserialize, Serialize};

use crate::error::SeriesError;
use crate::frame::{Column, Frame};
use crate::roles::Roles;

/// How offsets and scales are fitted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScalerKind {
    /// offset = min, scale = max - min: training values land in [0, 1].
    MinMax,
    /// offset = mean, scale = population standard deviation.
    Standard,
}

/// The transform of one column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ScalerColumn {
    pub name: String,
    pub offset: f64,
    pub scale: f64,
}

/// A fitted scaler: one entry per feature column, in feature order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Scaler {
    pub kind: ScalerKind,
    pub columns: Vec<ScalerColumn>,
}

/// What processed Parquet carries in its key-value metadata (`flts.*`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProcessedMeta {
    /// SHA-256 hex of the canonical config (`flts.config_hash`).
    pub config_hash: String,
    /// The canonical config (`flts.config`).
    pub config: serde_json::Value,
    /// The scaler fitted on the training part (`flts.scaler`).
    pub scaler: Scaler,
    /// Column roles (`flts.roles`).
    pub roles: Roles,
    /// Rows whose values preprocess invented to fill a gap longer than
    /// `clean.fill_limit` (`flts.gaps`): inclusive `[first, last]` timestamps
    /// (ms UTC) of each run of such rows, sorted, not overlapping, covering
    /// both parts. No window may read or score a row inside one. Empty (and
    /// the key absent) when there are none.
    #[serde(default)]
    pub gaps: Vec<[i64; 2]>,
}

impl Scaler {
    /// Fit one entry per column of `names` on `frame` (the training part).
    /// Columns in `passthrough` (calendar features) get offset 0 and scale 1;
    /// a constant column gets scale 1. Any NaN or infinity is an error naming
    /// its column and row: clean the frame first.
    pub fn fit(
        kind: ScalerKind,
        frame: &Frame,
        names: &[String],
        passthrough: &[String],
    ) -> Result<Scaler, SeriesError> {
        if frame.is_empty() {
            return Err(SeriesError::Empty { what: "frame to fit the scaler on" });
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            if columns.iter().any(|c: &ScalerColumn| &c.name == name) {
                return Err(SeriesError::DuplicateColumn { column: name.clone() });
            }
            let values = frame.require(name)?;
            if passthrough.contains(name) {
                columns.push(ScalerColumn { name: name.clone(), offset: 0.0, scale: 1.0 });
                continue;
            }
            if let Some(row) = values.iter().position(|v| !v.is_finite()) {
                return Err(SeriesError::NonFinite { column: name.clone(), row, value: values[row], action: "fitted" });
            }
            let (offset, spread) = match kind {
                ScalerKind::MinMax => {
                    let (min, max) =
                        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    (min, max - min)
                }
                ScalerKind::Standard => {
                    let n = values.len() as f64;
                    let mean = values.iter().sum::<f64>() / n;
                    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
            };
            let scale = if spread > 0.0 && spread.is_finite() { spread } else { 1.0 };
            columns.push(ScalerColumn { name: name.clone(), offset, scale });
        }
        Ok(Scaler { kind, columns })
    }

    fn entry(&self, name: &str) -> Result<&ScalerColumn, SeriesError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| SeriesError::UnknownScalerColumn {
            column: name.to_string(),
            available: self.columns.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Scale the columns the scaler knows; other columns are copied unchanged.
    /// Every scaler column must be in `frame`.
    pub fn transform(&self, frame: &Frame) -> Result<Frame, SeriesError> {
        for c in &self.columns {
            frame.require(&c.name)?;
        }
        let columns = frame
            .columns
            .iter()
            .map(|col| match self.columns.iter().find(|c| c.name == col.name) {
                Some(s) => Column {
                    name: col.name.clone(),
                    values: col.values.iter().map(|x| (x - s.offset) / s.scale).collect(),
                },
                None => col.clone(),
            })
            .collect();
        Ok(Frame { timestamps: frame.timestamps.clone(), columns })
    }

    /// [`Scaler::transform`] without a copy: scale the known columns of `frame` in place.
    pub fn transform_in_place(&self, frame: &mut Frame) -> Result<(), SeriesError> {
        for c in &self.columns {
            frame.require(&c.name)?;
        }
        for col in &mut frame.columns {
            if let Some(s) = self.columns.iter().find(|c| c.name == col.name) {
                col.values.iter_mut().for_each(|x| *x = (*x - s.offset) / s.scale);
            }
        }
        Ok(())
    }

    /// `(x - offset) / scale` for column `name`.
    pub fn scale_value(&self, name: &str, x: f64) -> Result<f64, SeriesError> {
        let c = self.entry(name)?;
        Ok((x - c.offset) / c.scale)
    }

    /// `scaled * scale + offset` for column `name`: back to original units.
    pub fn inverse_value(&self, name: &str, scaled: f64) -> Result<f64, SeriesError> {
        let c = self.entry(name)?;
        Ok(scaled * c.scale + c.offset)
    }

    /// The contract's JSON form, compact.
    pub fn to_json(&self) -> String {
        // A struct of strings and finite floats always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse and check the JSON form: finite offsets, finite non-zero scales,
    /// unique names.
    pub fn from_json(s: &str) -> Result<Scaler, SeriesError> {
        let scaler: Scaler = serde_json::from_str(s).map_err(SeriesError::ScalerJson)?;
        scaler.validate()?;
        Ok(scaler)
    }

    /// Check what [`Scaler::from_json`] checks (for scalers built by hand).
    pub fn validate(&self) -> Result<(), SeriesError> {
        for (i, c) in self.columns.iter().enumerate() {
            let reason = if !c.offset.is_finite() {
                Some(format!("offset {} is not finite", c.offset))
            } else if !c.scale.is_finite() || c.scale == 0.0 {
                Some(format!("scale {} is not a finite non-zero number", c.scale))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SeriesError::InvalidScaler { column: c.name.clone(), reason });
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(SeriesError::DuplicateColumn { column: c.name.clone() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::new(
            vec![0, 1, 2, 3],
            vec![
                Column::new("a", vec![2.0, 4.0, 6.0, 10.0]),
                Column::new("flat", vec![5.0; 4]),
                Column::new("hour_sin", vec![0.0, 0.5, 1.0, 0.5]),
                Column::new("extra", vec![7.0; 4]),
            ],
        )
        .unwrap()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minmax_fits_min_and_range_and_passes_calendar_columns() {
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a", "flat", "hour_sin"]), &names(&["hour_sin"]))
            .unwrap();
        assert_eq!(
            s.columns,
            vec![
                ScalerColumn { name: "a".into(), offset: 2.0, scale: 8.0 },
                ScalerColumn { name: "flat".into(), offset: 5.0, scale: 1.0 },
                ScalerColumn { name: "hour_sin".into(), offset: 0.0, scale: 1.0 },
            ]
        );
        let t = s.transform(&frame()).unwrap();
        assert_eq!(t.column("a").unwrap(), &[0.0, 0.25, 0.5, 1.0]);
        assert_eq!(t.column("flat").unwrap(), &[0.0; 4]);
        assert_eq!(t.column("hour_sin").unwrap(), frame().column("hour_sin").unwrap());
        assert_eq!(t.column("extra").unwrap(), &[7.0; 4], "unknown columns are kept");
        let mut in_place = frame();
        s.transform_in_place(&mut in_place).unwrap();
        assert_eq!(in_place, t);
    }

    #[test]
    fn standard_uses_population_std() {
        // a = 2, 4, 6, 10: mean 5.5, deviations -3.5 -1.5 .5 4.5, squares sum 35, /4 = 8.75
        let s = Scaler::fit(ScalerKind::Standard, &frame(), &names(&["a"]), &[]).unwrap();
        assert_eq!(s.columns[0].offset, 5.5);
        assert!((s.columns[0].scale - 8.75f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn round_trip_values_and_json() {
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a", "flat"]), &[]).unwrap();
        for x in [-3.0, 2.0, 7.25, 1e9] {
            let back = s.inverse_value("a", s.scale_value("a", x).unwrap()).unwrap();
            assert!((back - x).abs() <= 1e-9 * x.abs().max(1.0), "{x} -> {back}");
        }
        let json = s.to_json();
        assert_eq!(
            json,
            r#"{"kind":"minmax","columns":[{"name":"a","offset":2.0,"scale":8.0},{"name":"flat","offset":5.0,"scale":1.0}]}"#
        );
        assert_eq!(Scaler::from_json(&json).unwrap(), s);
        let std = Scaler::fit(ScalerKind::Standard, &frame(), &names(&["a"]), &[]).unwrap();
        assert!(std.to_json().starts_with(r#"{"kind":"standard""#));
    }

    #[test]
    fn errors_name_the_column_and_row() {
        let mut f = frame();
        f.columns[0].values[2] = f64::NAN;
        let e = Scaler::fit(ScalerKind::MinMax, &f, &names(&["a"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "column `a` row 2 is NaN: only finite numbers can be fitted");
        let e = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["zz"]), &[]).unwrap_err();
        assert!(e.to_string().starts_with("column `zz` not found"), "{e}");
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a"]), &[]).unwrap();
        let e = s.scale_value("b", 1.0).unwrap_err();
        assert_eq!(e.to_string(), "scaler has no column `b` (scaled columns: [\"a\"])");
        let e = Scaler::from_json(r#"{"kind":"minmax","columns":[{"name":"a","offset":0,"scale":0}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid scaler column `a`: scale 0 is not a finite non-zero number");
        assert!(Scaler::from_json(r#"{"kind":"robust","columns":[]}"#).is_err());
        let e = s.transform(&Frame::new(vec![0], vec![]).unwrap()).unwrap_err();
        assert!(e.to_string().starts_with("column `a` not found"), "{e}");
    }

    #[test]
    fn processed_meta_round_trips_through_json() {
        let meta = ProcessedMeta {
            config_hash: "ab".repeat(32),
            config: serde_json::json!({"scaler": "minmax"}),
            scaler: Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a"]), &[]).unwrap(),
            roles: Roles {
                timestamp: "timestamp".into(),
                features: names(&["a"]),
                targets: names(&["a"]),
                interval_ms: 120_000,
            },
            gaps: vec![[0, 120_000]],
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<ProcessedMeta>(&json).unwrap(), meta);
    }
}
