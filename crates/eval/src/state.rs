//! Per-(identifier, config_hash) tracking state and the decision record, both
//! kept as JSON objects in the model-promotion bucket. The state is written
//! before an event's offset is committed, so a restart loses no SUCCESS; the
//! decision record is written before model-selected is published and marked
//! `published` after, so a replay never promotes twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contracts::{ModelSelected, ModelTraining, ModelType, TrainingStatus};
use serde::{Deserialize, Serialize};

use crate::score::{Outcome, Weights};

/// What eval knows about one set of trainings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetState {
    pub identifier: String,
    pub config_hash: String,
    /// When eval first heard of the set: the timeout counts from here.
    pub first_seen: DateTime<Utc>,
    /// The latest final (SUCCESS or FAILED) event per model type.
    pub reports: BTreeMap<ModelType, ModelTraining>,
}

impl SetState {
    pub fn new(identifier: &str, config_hash: &str) -> Self {
        SetState {
            identifier: identifier.into(),
            config_hash: config_hash.into(),
            first_seen: Utc::now(),
            reports: BTreeMap::new(),
        }
    }

    /// Take in an event; returns whether the state changed. RUNNING events
    /// only start the clock; a replayed duplicate changes nothing.
    pub fn absorb(&mut self, ev: &ModelTraining) -> bool {
        if matches!(ev.status, TrainingStatus::Running { .. }) {
            return false;
        }
        if self.reports.get(&ev.model_type) == Some(ev) {
            return false;
        }
        self.reports.insert(ev.model_type, ev.clone());
        true
    }

    /// Expected model types that have not reported SUCCESS or FAILED.
    pub fn missing(&self, expected: &[ModelType]) -> Vec<ModelType> {
        expected.iter().copied().filter(|m| !self.reports.contains_key(m)).collect()
    }

    pub fn state_key(&self) -> String {
        state_key(&self.identifier, &self.config_hash)
    }
}

/// `<identifier>/<config_hash>/state.json`
pub fn state_key(identifier: &str, config_hash: &str) -> String {
    format!("{identifier}/{config_hash}/state.json")
}

/// `<identifier>/<config_hash>/decision.json`
pub fn decision_key(identifier: &str, config_hash: &str) -> String {
    format!("{identifier}/{config_hash}/decision.json")
}

/// `<identifier>/current.json`: the promotion inference serves for a dataset.
pub fn current_key(identifier: &str) -> String {
    format!("{identifier}/current.json")
}

/// `current.json`: the latest promotion over all datasets.
pub const GLOBAL_CURRENT_KEY: &str = "current.json";

/// Why a decision was taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every expected model type reported.
    Complete,
    /// The timeout ran out; the rest are listed in `missing`.
    Timeout,
}

/// One promotion decision, kept forever in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub identifier: String,
    pub config_hash: String,
    pub decided_at: DateTime<Utc>,
    pub trigger: Trigger,
    pub expected: Vec<ModelType>,
    pub missing: Vec<ModelType>,
    pub weights: Weights,
    pub baseline_gate: bool,
    pub outcome: Outcome,
    /// The promotion event, when a model was promoted.
    pub promotion: Option<ModelSelected>,
    /// Set once model-selected was acknowledged (or when there was nothing to publish).
    pub published: bool,
}
