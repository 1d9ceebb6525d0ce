//! Prophet models served from their saved parameters (`prophet.json`).
//!
//! Prophet forecasts by time, not from the input window: it needs the
//! forecast timestamps and ignores the input values. The fit is on the
//! processed (scaled) target columns, like every other model of a dataset,
//! so its `yhat` is in scaled units and [`crate::model::Model`] inverse-scales
//! it like a network's output. Intervals are not simulated when serving
//! (`uncertainty_samples = 0`): forecasts are `yhat` only, which keeps a
//! request at microseconds instead of a thousand draws per timestamp.

use prophet_model::FittedSet;

use crate::net::{Net, NetError, NetInput};

/// A fitted Prophet set, one model per target.
pub struct ProphetNet {
    set: FittedSet,
    /// For each model target (in artifact order), its index in `set.targets`.
    order: Vec<usize>,
    output_len: usize,
}

impl ProphetNet {
    /// Read `prophet.json`; every target of the artifact must have a fitted model.
    pub fn load(bytes: &[u8], targets: &[String], output_len: usize) -> Result<Self, NetError> {
        let text = std::str::from_utf8(bytes).map_err(|e| NetError::Invalid(format!("not UTF-8: {e}")))?;
        let mut set = FittedSet::from_json(text).map_err(|e| NetError::Invalid(e.to_string()))?;
        set.config.uncertainty_samples = 0;
        let order = targets
            .iter()
            .map(|t| {
                set.targets.iter().position(|f| &f.name == t).ok_or_else(|| {
                    NetError::Invalid(format!(
                        "no fitted Prophet model for target `{t}` (fitted: {:?})",
                        set.targets.iter().map(|f| &f.name).collect::<Vec<_>>()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if output_len == 0 {
            return Err(NetError::Invalid("output_len must be positive".into()));
        }
        Ok(ProphetNet { set, order, output_len })
    }
}

impl Net for ProphetNet {
    fn kind(&self) -> &'static str {
        "prophet"
    }

    fn needs_timestamps(&self) -> bool {
        true
    }

    fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError> {
        let ts = input
            .forecast_timestamps
            .ok_or_else(|| NetError::Input("Prophet forecasts by time: forecast timestamps are required".into()))?;
        if ts.len() != input.n * self.output_len {
            return Err(NetError::Input(format!(
                "expected {} forecast timestamps ({} windows x {} steps), got {}",
                input.n * self.output_len,
                input.n,
                self.output_len,
                ts.len()
            )));
        }
        let forecasts = self.set.predict(ts).map_err(|e| NetError::Run(e.to_string()))?;
        let k = self.order.len();
        let mut out = vec![0f32; ts.len() * k];
        for (j, &fi) in self.order.iter().enumerate() {
            let yhat = &forecasts
                .get(fi)
                .ok_or_else(|| NetError::Run(format!("Prophet returned no forecast for target #{fi}")))?
                .yhat;
            if yhat.len() != ts.len() {
                return Err(NetError::Run(format!(
                    "Prophet returned {} values for {} timestamps",
                    yhat.len(),
                    ts.len()
                )));
            }
            for (row, v) in yhat.iter().enumerate() {
                out[row * k + j] = *v as f32;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use prophet_model::{FittedTarget, ProphetConfig};

    use super::*;

    const DAY_MS: i64 = 86_400_000;

    /// y = 10 * trend; slope 1 up to t = 0.5, then -1 (t spans 10 days).
    pub(crate) fn hand_made() -> FittedSet {
        let target = FittedTarget {
            name: "load".into(),
            train_start_ms: 0,
            train_end_ms: 10 * DAY_MS,
            train_rows: 241,
            y_scale: 10.0,
            t_start_s: 0,
            t_span_s: (10 * DAY_MS / 1000) as f64,
            k: 1.0,
            m: 0.5,
            changepoints_t: vec![0.5],
            deltas: vec![-2.0],
            sigma_obs: 0.01,
            columns: vec![],
        };
        FittedSet { format_version: 1, config: ProphetConfig::default(), targets: vec![target] }
    }

    #[test]
    fn forecasts_are_prophets_yhat_at_the_requested_times() {
        let set = hand_made();
        let net = ProphetNet::load(set.to_json().as_bytes(), &["load".into()], 2).unwrap();
        assert!(net.needs_timestamps());
        // Two windows, two steps each: days 2.5, 3 and 7.5, 8.
        let ts = [5 * DAY_MS / 2, 3 * DAY_MS, 15 * DAY_MS / 2, 8 * DAY_MS];
        let got = net.forecast(&NetInput { x: &[0.0; 4], n: 2, forecast_timestamps: Some(&ts) }).unwrap();
        // t = 0.25 -> 10 * (0.25 + 0.5) = 7.5; t = 0.75 -> 10 * (1.0 - 0.25) = 7.5.
        assert!((got[0] - 7.5).abs() < 1e-5 && (got[2] - 7.5).abs() < 1e-5, "{got:?}");
        let want: Vec<f32> = set.predict(&ts).unwrap()[0].yhat.iter().map(|v| *v as f32).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn missing_targets_and_timestamps_are_explained() {
        let json = hand_made().to_json();
        let e = ProphetNet::load(json.as_bytes(), &["temp".into()], 1).err().expect("no temp model");
        assert_eq!(e.to_string(), "invalid model: no fitted Prophet model for target `temp` (fitted: [\"load\"])");
        let net = ProphetNet::load(json.as_bytes(), &["load".into()], 1).unwrap();
        let e = net.forecast(&NetInput { x: &[0.0], n: 1, forecast_timestamps: None }).unwrap_err();
        assert!(e.to_string().contains("forecast timestamps are required"), "{e}");
        let e = net.forecast(&NetInput { x: &[0.0], n: 1, forecast_timestamps: Some(&[1, 2]) }).unwrap_err();
        assert!(e.to_string().starts_with("expected 1 forecast timestamps"), "{e}");
        assert!(ProphetNet::load(b"{}", &["load".into()], 1).is_err());
    }
}
