//! The ensemble artifact: a JSON manifest eval writes (at [`MANIFEST_PATH`] in
//! the ensemble's MLflow run) and inference serves like any model.
//!
//! Each member is a trained model whose files eval copied under the ensemble
//! run's `model/members/<i>/`, with its own scaler (trainers fit one per
//! preprocessing candidate). A forecast is the weighted mean of the members'
//! forecasts **in original units**, each member having inverted its own scaler
//! and applied its own forecast floor. Weights are fitted on validation and
//! sum to 1.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ModelArtifact, ModelType};

/// Where the manifest lives inside the ensemble run's artifacts.
pub const MANIFEST_PATH: &str = "model/ensemble.json";

/// How member forecasts are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleKind {
    /// `sum(weight_i * forecast_i)` in original units.
    WeightedMean,
}

/// One member model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnsembleMember {
    pub model_type: ModelType,
    /// The member's own MLflow run (for lineage; its files are copied).
    pub run_id: String,
    /// In (0, 1]; the members' weights sum to 1.
    pub weight: f64,
    /// Paths relative to the ensemble run's artifact root
    /// (`model/members/<i>/model.onnx`, `model/members/<i>/scaler.json`).
    pub artifact: ModelArtifact,
    /// Lower-case hex SHA-256 of the member's model file.
    pub sha256: String,
}

/// `model/ensemble.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnsembleManifest {
    pub kind: EnsembleKind,
    pub members: Vec<EnsembleMember>,
}

impl EnsembleManifest {
    /// Most members a manifest may list (a manifest is input to inference).
    pub const MAX_MEMBERS: usize = 16;

    /// Members present, weights finite, positive and summing to 1 (within 1e-6),
    /// every member a trained type with the same targets and output length.
    pub fn check(&self) -> Result<(), String> {
        if self.members.is_empty() || self.members.len() > Self::MAX_MEMBERS {
            return Err(format!("an ensemble needs 1 to {} members, got {}", Self::MAX_MEMBERS, self.members.len()));
        }
        let sum: f64 = self.members.iter().map(|m| m.weight).sum();
        if self.members.iter().any(|m| !(m.weight.is_finite() && m.weight > 0.0)) || (sum - 1.0).abs() > 1e-6 {
            return Err(format!("ensemble weights must be positive and sum to 1, got sum {sum}"));
        }
        let first = &self.members[0].artifact;
        for m in &self.members {
            if !m.model_type.is_trained() {
                return Err(format!("ensemble member {} is not a trained model type", m.model_type));
            }
            if m.artifact.targets != first.targets || m.artifact.output_len != first.output_len {
                return Err("ensemble members must forecast the same targets and output length".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelFormat;

    fn member(model_type: ModelType, weight: f64, targets: &[&str]) -> EnsembleMember {
        EnsembleMember {
            model_type,
            run_id: "r".into(),
            weight,
            artifact: ModelArtifact {
                format: ModelFormat::Onnx,
                path: "model/members/0/model.onnx".into(),
                scaler_path: "model/members/0/scaler.json".into(),
                input_len: 10,
                output_len: 1,
                features: vec!["a".into()],
                targets: targets.iter().map(|t| t.to_string()).collect(),
            },
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn weights_members_and_shapes_are_checked() {
        let ok = EnsembleManifest {
            kind: EnsembleKind::WeightedMean,
            members: vec![member(ModelType::Gru, 0.25, &["a"]), member(ModelType::Prophet, 0.75, &["a"])],
        };
        ok.check().unwrap();
        let mut bad = ok.clone();
        bad.members[0].weight = 0.5;
        assert!(bad.check().unwrap_err().contains("sum to 1"));
        let mut bad = ok.clone();
        bad.members[1] = member(ModelType::Lstm, 0.75, &["b"]);
        assert!(bad.check().unwrap_err().contains("same targets"));
        let mut bad = ok.clone();
        bad.members[1].model_type = ModelType::Ensemble;
        assert!(bad.check().unwrap_err().contains("not a trained"));
        assert!(EnsembleManifest { kind: EnsembleKind::WeightedMean, members: vec![] }.check().is_err());
    }
}
