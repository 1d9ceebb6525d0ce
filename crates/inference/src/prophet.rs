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
