//! Shared plumbing of the FLTS trainers (`train-gru`, `train-lstm`, `prophet`).
//!
//! A trainer only knows how to fit one kind of model on prepared windows
//! ([`ModelTrainer`]). Everything around that is the same for every model type
//! and lives here: the `training-data` consumer, fetching the processed Parquet
//! through the claim-check store, the evaluation protocol (test windows,
//! metrics, naive baselines; see `docs/data-contract.md`), the MLflow run with
//! its params, metrics and artifacts, the RUNNING/SUCCESS/FAILED events on
//! `model-training`, idempotency (a finished run is looked up in MLflow and its
//! SUCCESS re-published instead of training again) and the `--once` mode.
//!
//! # Layout
//! - [`input`]: where a trainer's inputs may be and the operator limits on them.
//! - [`prepare`]: processed frames in, train/validation/test windows and baselines out.
//! - [`candidates`]: preprocessing choices and seeds as candidate fits, chosen on validation.
//! - [`report`]: what a finished fit leaves behind (metrics, model card, plots, predictions).
//! - [`mlmodel`]: the `MLmodel` file and `mlflow.*` tags MLflow's own tools read.
//! - [`service`]: the Kafka handler and the stage's `run`.
//! - [`once`]: one fit from local files, no broker.
//! - [`metrics`]: every `flts_trainer_*` metric.

use std::ops::ControlFlow;

use contracts::{EvalProtocol, ModelFormat, ModelType};

pub mod candidates;
pub mod input;
pub mod metrics;
pub mod mlmodel;
pub mod once;
pub mod prepare;
pub mod report;
pub mod service;

pub use input::InputArgs;
pub use prepare::{Prepared, WindowArgs};
pub use service::{TrainerCli, run_service};

/// Progress of one epoch (or one fitted target, for models without epochs).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub seconds: f64,
    /// The model's predictions for the validation windows (its own scaled
    /// units) as this epoch left it; trainers with epochs give them once, at
    /// [`candidates::rung_epoch`], where candidates are compared.
    pub val_predictions: Option<Vec<f32>>,
}

/// What a fit produced.
#[derive(Debug, Clone)]
pub struct Trained {
    pub format: ModelFormat,
    /// File name under `model/` (e.g. `model.onnx`) and its bytes.
    pub model_file: (String, Vec<u8>),
    /// Scaled predictions (the candidate's units) for the validation windows,
    /// laid out like `Windows::y`: what the candidates are compared on.
    pub val_predictions: Vec<f32>,
    /// Scaled predictions for the test windows, laid out like `Windows::y`.
    pub test_predictions: Vec<f32>,
    /// How `test_predictions` were made.
    pub protocol: EvalProtocol,
    /// Per-epoch losses (empty for models without epochs).
    pub history: Vec<Progress>,
    /// Extra metrics worth logging (name, value).
    pub extra_metrics: Vec<(String, f64)>,
    /// Model-specific paragraphs for the model card (Markdown).
    pub card_notes: String,
    /// Extra artifacts (name under `model/`, bytes), e.g. a forecast with intervals.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

/// Why a fit failed. Fits are pure CPU work on data already fetched, so no
/// error here is worth retrying: the same data fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data cannot train this model (too few rows, bad values, ...).
    #[error("{0}")]
    Data(String),
    /// The loss became NaN or infinite: the fit diverged (error kind `nan_loss`).
    #[error("{0}")]
    NonFiniteLoss(String),
    /// The fit was interrupted by shutdown; the claim check will be redelivered.
    #[error("training cancelled by shutdown")]
    Cancelled,
}

/// A failed fit is permanent (`training_failed`, `nan_loss`); a cancelled one is redelivered.
impl contracts::error::Classified for TrainError {
    fn code(&self) -> contracts::error::Code {
        use contracts::error::Code;
        match self {
            TrainError::Data(_) => Code::TrainingFailed,
            TrainError::NonFiniteLoss(_) => Code::NanLoss,
            TrainError::Cancelled => Code::Cancelled,
        }
    }
}

/// One kind of model. Implementations are CPU-bound and called on a blocking thread.
pub trait ModelTrainer: Send + Sync + 'static {
    fn model_type(&self) -> ModelType;
    /// Hyperparameters, logged as MLflow params.
    fn params(&self) -> Vec<(String, String)>;
    /// The seeds to train as candidates (none for deterministic fits).
    fn seeds(&self) -> Vec<u64> {
        Vec::new()
    }
    /// Fit on `data` (one candidate's view, see [`candidates`]) with `seed`
    /// (one of [`ModelTrainer::seeds`]), and predict its validation and test
    /// windows; the validation predictions must come from a model that did
    /// not see the validation targets' rows, except through early stopping.
    /// Call `progress` after every epoch; stop with [`TrainError::Cancelled`]
    /// when it breaks.
    fn train(
        &self,
        data: &Prepared,
        seed: Option<u64>,
        progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Trained, TrainError>;
}
