//! The evaluation protocol shared by every model type: the same windows, the
//! same metrics, the same baselines (see `docs/data-contract.md`).

use contracts::Baselines;
use series::{Frame, ProcessedMeta, WindowSpec, Windows};

/// Window settings, identical for every trainer.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Rows of input per window.
    #[arg(long, env = "INPUT_SEQ_LEN", default_value_t = 10)]
    pub input_seq_len: usize,
    /// Rows predicted after each window (multi-step when > 1).
    #[arg(long, env = "OUTPUT_SEQ_LEN", default_value_t = 1)]
    pub output_seq_len: usize,
    /// Share of the training windows, cut from the end, used for early stopping.
    #[arg(long, env = "VALIDATION_FRACTION", default_value_t = 0.2)]
    pub validation_fraction: f64,
}

impl Default for WindowArgs {
    fn default() -> Self {
        WindowArgs { input_seq_len: 10, output_seq_len: 1, validation_fraction: 0.2 }
    }
}

/// Processed data cut into the windows every model is trained and scored on.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub meta: ProcessedMeta,
    pub train: Frame,
    pub test: Frame,
    pub spec: WindowSpec,
    pub train_windows: Windows,
    pub val_windows: Windows,
    pub test_windows: Windows,
    pub baselines: Baselines,
}

impl Prepared {
    /// Cut `train` and `test` into windows and score the naive baselines.
    /// Errors name the part that is too short.
    pub fn new(train: Frame, test: Frame, meta: ProcessedMeta, args: &WindowArgs) -> Result<Prepared, String> {
        if !(0.0..1.0).contains(&args.validation_fraction) {
            return Err(format!("VALIDATION_FRACTION must be in [0, 1), got {}", args.validation_fraction));
        }
        let spec = WindowSpec { input_len: args.input_seq_len, output_len: args.output_seq_len };
        let roles = &meta.roles;
        let all = series::make_windows(&train, roles, spec).map_err(|e| format!("train part: {e}"))?;
        let (train_windows, val_windows) =
            all.split_validation(args.validation_fraction).map_err(|e| format!("train part: {e}"))?;
        if train_windows.n == 0 {
            return Err("train part: no training windows left after the validation split".into());
        }
        let test_windows = series::make_windows(&test, roles, spec).map_err(|e| format!("test part: {e}"))?;
        let baselines = series::baselines(&train, &test, &test_windows, roles, &meta.scaler)
            .map_err(|e| format!("baselines: {e}"))?;
        Ok(Prepared { meta, train, test, spec, train_windows, val_windows, test_windows, baselines })
    }
}
