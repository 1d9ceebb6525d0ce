//! [`ProphetError`]: what can go wrong fitting, saving, loading or forecasting.

use contracts::error::{Classified, Code};

/// A Prophet fit, load or forecast failed.
///
/// No variant is retryable: each comes from the input data, the config or the saved model (or a bug), so
/// the same call fails the same way again; its [`Classified`] codes are all permanent.
#[derive(Debug, thiserror::Error)]
pub enum ProphetError {
    /// A config field is out of range; the message names it.
    #[error("invalid Prophet config: {0}")]
    InvalidConfig(String),
    /// The input as a whole is unusable: timestamps not strictly increasing, a target name twice.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A target's values do not line up with the timestamps.
    #[error("target `{target}`: {values} values for {timestamps} timestamps")]
    LengthMismatch { target: String, values: usize, timestamps: usize },
    /// Too little history to fit.
    #[error("target `{target}`: {rows} rows, Prophet needs at least {needed} with these settings")]
    TooFewRows { target: String, rows: usize, needed: usize },
    /// NaN or infinity in a target (the data contract forbids both after preprocessing).
    #[error("target `{target}`: value at row {row} is {value}; NaN and infinity are not allowed")]
    NonFinite { target: String, row: usize, value: f64 },
    /// augurs-prophet or the optimizer rejected the data or failed to converge.
    #[error("target `{target}`: Prophet fit failed: {source}")]
    Fit {
        target: String,
        #[source]
        source: augurs_prophet::Error,
    },
    /// augurs-prophet built a model this crate cannot describe: a bug here or a changed augurs-prophet.
    #[error("internal error (a bug): {0}")]
    Internal(String),
    /// The fitted model does not have the shape this crate writes (corrupt or foreign JSON).
    #[error("invalid saved Prophet model: {0}")]
    InvalidModel(String),
    /// The JSON is not a saved Prophet model.
    #[error("Prophet model JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Never retryable (see the type's docs): every code is permanent.
impl Classified for ProphetError {
    fn code(&self) -> Code {
        match self {
            ProphetError::InvalidConfig(_) => Code::BadConfig,
            ProphetError::InvalidInput(_) | ProphetError::LengthMismatch { .. } | ProphetError::NonFinite { .. } => {
                Code::BadData
            }
            ProphetError::TooFewRows { .. } => Code::TooFewRows,
            ProphetError::Fit { .. } | ProphetError::Internal(_) => Code::TrainingFailed,
            ProphetError::InvalidModel(_) | ProphetError::Json(_) => Code::InvalidModel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prophet_error_is_retryable() {
        let errors = [
            ProphetError::InvalidConfig("x".into()),
            ProphetError::TooFewRows { target: "y".into(), rows: 1, needed: 3 },
            ProphetError::InvalidModel("z".into()),
        ];
        let codes: Vec<&str> = errors.iter().map(|e| e.code().as_str()).collect();
        assert_eq!(codes, ["bad_config", "too_few_rows", "invalid_model"]);
        assert!(errors.iter().all(|e| !e.is_retryable()));
    }
}
