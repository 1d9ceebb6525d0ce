//! [`Roles`]: which columns a model reads and predicts (`flts.roles`).

use serde::{Deserialize, Serialize};

use crate::error::SeriesError;

/// Column roles of a processed dataset, as in the `flts.roles` Parquet metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Roles {
    /// Name of the timestamp column (`timestamp` in processed Parquet).
    pub timestamp: String,
    /// Model input columns, in model input order.
    pub features: Vec<String>,
    /// Predicted columns, a subset of `features`, in model output order.
    pub targets: Vec<String>,
    /// Sampling interval in milliseconds.
    pub interval_ms: i64,
}

impl Roles {
    /// For each target, its index among the features.
    pub fn target_feature_index(&self) -> Result<Vec<usize>, SeriesError> {
        self.targets
            .iter()
            .map(|t| {
                self.features
                    .iter()
                    .position(|f| f == t)
                    .ok_or_else(|| SeriesError::TargetNotFeature { target: t.clone(), features: self.features.clone() })
            })
            .collect()
    }

    /// Check the rules of the contract: features and targets non-empty and
    /// unique, targets among the features, a positive interval.
    pub fn validate(&self) -> Result<(), SeriesError> {
        if self.features.is_empty() {
            return Err(SeriesError::Empty { what: "feature list" });
        }
        if self.targets.is_empty() {
            return Err(SeriesError::Empty { what: "target list" });
        }
        for list in [&self.features, &self.targets] {
            if let Some((i, _)) = list.iter().enumerate().find(|(i, n)| list[..*i].contains(n)) {
                return Err(SeriesError::DuplicateColumn { column: list[i].clone() });
            }
        }
        if self.interval_ms <= 0 {
            return Err(SeriesError::InvalidInterval(self.interval_ms));
        }
        self.target_feature_index().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(targets: &[&str]) -> Roles {
        Roles {
            timestamp: "timestamp".into(),
            features: vec!["a".into(), "b".into(), "c".into()],
            targets: targets.iter().map(|t| t.to_string()).collect(),
            interval_ms: 120_000,
        }
    }

    #[test]
    fn target_indices_follow_target_order() {
        assert_eq!(roles(&["c", "a"]).target_feature_index().unwrap(), vec![2, 0]);
        let e = roles(&["z"]).target_feature_index().unwrap_err();
        assert_eq!(e.to_string(), "target `z` is not among the features [\"a\", \"b\", \"c\"]");
    }

    #[test]
    fn validate_checks_the_contract() {
        assert!(roles(&["a"]).validate().is_ok());
        assert!(roles(&[]).validate().is_err());
        assert!(roles(&["a", "a"]).validate().is_err());
        let mut r = roles(&["a"]);
        r.interval_ms = 0;
        assert!(r.validate().is_err());
    }

    #[test]
    fn json_matches_the_contract() {
        let json = serde_json::to_string(&roles(&["a"])).unwrap();
        assert_eq!(json, r#"{"timestamp":"timestamp","features":["a","b","c"],"targets":["a"],"interval_ms":120000}"#);
    }
}
