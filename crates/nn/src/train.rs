//! The training loop: shuffled mini-batches, Adam on the mean squared error,
//! optional gradient clipping, validation after every epoch, early stopping, and
//! the best weights kept.

use std::ops::ControlFlow;
use std::time::Instant;

use crate::NnError;
use crate::adam::{Adam, clip_grad_norm};
use crate::config::{ModelConfig, TrainConfig};
use crate::network::{Network, Weights};
use crate::rng::Rng;
use crate::rnn::Workspace;

/// One finished epoch. Losses are mean squared errors over every output value.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1 for the first epoch.
    pub epoch: usize,
    /// Mean of the batch losses over the epoch, weighted by batch size (the
    /// weights change during the epoch, as in a PyTorch training loop).
    pub train_loss: f64,
    /// On all validation windows, with the weights at the end of the epoch.
    pub val_loss: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// This epoch has the lowest validation loss so far: its weights are kept.
    pub best: bool,
}

/// How a training run went.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    pub epochs_run: usize,
    /// The epoch whose weights the network holds now.
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub history: Vec<EpochReport>,
    /// Stopped by `patience` before `epochs`.
    pub stopped_early: bool,
}

/// Train `net` on windows `train_x` (batch-major `[window][input_len][n_features]`)
/// with targets `train_y` (`[window][n_outputs]`), validating on `val_x`/`val_y`
/// after every epoch. The training windows are independent samples: each epoch
/// visits them in a new order drawn from `cfg.seed` (time order inside a window
/// is kept). `on_epoch` sees every epoch's report and the network as the
/// epoch left it (to look at its predictions); returning `Break` cancels.
///
/// On success the network holds the weights of the epoch with the lowest
/// validation loss. On error it holds the best weights so far (its initial
/// weights if no epoch finished).
///
/// # Errors
/// Invalid configs, mis-sized or non-finite data, an empty training or
/// validation set, a loss that became NaN or infinite ([`NnError::NonFinite`]),
/// and [`NnError::Cancelled`] when `on_epoch` breaks.
pub fn train(
    net: &mut Network,
    train_x: &[f32],
    train_y: &[f32],
    val_x: &[f32],
    val_y: &[f32],
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport, &Network) -> ControlFlow<()>,
) -> Result<TrainReport, NnError> {
    cfg.validate()?;
    let model = *net.config();
    let train_set = DataSet::new("training", &model, train_x, train_y)?;
    let val_set = DataSet::new("validation", &model, val_x, val_y)?;

    let threads = cfg.thread_count();
    let per_thread = cfg.batch_size.min(train_set.n).div_ceil(threads);
    let mut workers: Vec<Worker> = (0..threads).map(|_| Worker::new(&model, per_thread, net.param_count())).collect();
    let mut adam = Adam::new(net.param_count(), cfg.learning_rate);
    let mut grad = vec![0.0f32; net.param_count()];
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..train_set.n).collect();

    let mut best_params = net.params().to_vec();
    let mut stopper = EarlyStop::new(cfg.patience);
    let mut report = TrainReport {
        epochs_run: 0,
        best_epoch: 0,
        best_val_loss: f64::INFINITY,
        history: Vec::new(),
        stopped_early: false,
    };
    let outcome = 'epochs: {
        for epoch in 1..=cfg.epochs {
            let started = Instant::now();
            if cfg.shuffle {
                rng.shuffle(&mut order);
            }
            let mut squared_error = 0.0;
            for batch in order.chunks(cfg.batch_size) {
                squared_error += batch_gradient(net, &mut workers, &train_set, batch, &mut grad);
                if !squared_error.is_finite() {
                    break 'epochs Err(NnError::NonFinite { epoch });
                }
                if cfg.clip_norm > 0.0 {
                    clip_grad_norm(&mut grad, cfg.clip_norm);
                }
                adam.step(net.params_mut(), &grad);
            }
            let train_loss = squared_error / (train_set.n * model.n_outputs) as f64;
            let val_loss = mean_squared_error(net, &mut workers, &val_set);
            if !val_loss.is_finite() {
                break 'epochs Err(NnError::NonFinite { epoch });
            }
            let best = val_loss < report.best_val_loss;
            if best {
                best_params.copy_from_slice(net.params());
                report.best_epoch = epoch;
                report.best_val_loss = val_loss;
            }
            let epoch_report =
                EpochReport { epoch, train_loss, val_loss, seconds: started.elapsed().as_secs_f64(), best };
            report.epochs_run = epoch;
            report.history.push(epoch_report.clone());
            if on_epoch(&epoch_report, net).is_break() {
                break 'epochs Err(NnError::Cancelled);
            }
            if stopper.should_stop(epoch, val_loss) && epoch < cfg.epochs {
                report.stopped_early = true;
                break;
            }
        }
        Ok(())
    };
    net.params_mut().copy_from_slice(&best_params);
    outcome.map(|()| report)
}

/// A lower validation loss restarts the patience only when it is at least this
/// share below the loss that last restarted it (Keras's `min_delta`, relative):
/// on a plateau, 0.01% steps are noise and kept a 12,500-window fit going for
/// 10 more epochs. The best weights are still those of the lowest loss.
const MIN_IMPROVEMENT: f64 = 1e-3;

/// Early stopping: stop after `patience` epochs (0 = never) without a
/// validation loss [`MIN_IMPROVEMENT`] below the one that last restarted it.
struct EarlyStop {
    patience: usize,
    epoch: usize,
    loss: f64,
}

impl EarlyStop {
    fn new(patience: usize) -> EarlyStop {
        EarlyStop { patience, epoch: 0, loss: f64::INFINITY }
    }

    /// Record epoch `epoch`'s validation loss; whether to stop after it.
    fn should_stop(&mut self, epoch: usize, loss: f64) -> bool {
        if loss < self.loss * (1.0 - MIN_IMPROVEMENT) {
            (self.epoch, self.loss) = (epoch, loss);
        }
        self.patience > 0 && epoch - self.epoch >= self.patience
    }
}

/// Checked view of a set of windows.
struct DataSet<'a> {
    x: &'a [f32],
    y: &'a [f32],
    n: usize,
}

impl<'a> DataSet<'a> {
    fn new(what: &'static str, cfg: &ModelConfig, x: &'a [f32], y: &'a [f32]) -> Result<DataSet<'a>, NnError> {
        let n = y.len() / cfg.n_outputs;
        if !y.len().is_multiple_of(cfg.n_outputs) || x.len() != n * cfg.window_len() {
            return Err(NnError::Shape {
                what,
                inputs: x.len(),
                targets: y.len(),
                input_len: cfg.input_len,
                n_features: cfg.n_features,
                n_outputs: cfg.n_outputs,
            });
        }
        if n == 0 {
            return Err(NnError::Empty(what));
        }
        let bad_x = x.chunks_exact(cfg.window_len()).position(|w| w.iter().any(|v| !v.is_finite()));
        let bad_y = y.chunks_exact(cfg.n_outputs).position(|w| w.iter().any(|v| !v.is_finite()));
        if let Some(window) = bad_x.into_iter().chain(bad_y).min() {
            return Err(NnError::NonFiniteData { what, window });
        }
        Ok(DataSet { x, y, n })
    }
}

/// One thread's buffers and results.
struct Worker {
    ws: Workspace,
    grad: Vec<f32>,
    squared_error: f64,
}

impl Worker {
    fn new(cfg: &ModelConfig, max_batch: usize, n_params: usize) -> Worker {
        Worker { ws: Workspace::new(cfg, max_batch, true), grad: vec![0.0; n_params], squared_error: 0.0 }
    }
}

/// Split `items` into at most `workers.len()` consecutive parts and run `job` on
/// each part with its own worker, the first on this thread, the rest on scoped
/// threads. Returns the number of workers used.
fn in_parallel<T: Sync>(workers: &mut [Worker], items: &[T], job: impl Fn(&mut Worker, &[T]) + Sync) -> usize {
    let part = items.len().div_ceil(workers.len()).max(1);
    let used = items.len().div_ceil(part);
    let mut parts = items.chunks(part).zip(workers.iter_mut());
    let Some((first_items, first_worker)) = parts.next() else { return 0 };
    std::thread::scope(|s| {
        for (items, worker) in parts {
            let job = &job;
            s.spawn(move || job(worker, items));
        }
        job(first_worker, first_items);
    });
    used
}

/// The gradient of the batch's mean squared error into `grad`; returns the
/// batch's sum of squared errors.
fn batch_gradient(net: &Network, workers: &mut [Worker], data: &DataSet, batch: &[usize], grad: &mut [f32]) -> f64 {
    let cfg = net.config();
    let weights = Weights::split(cfg, net.params());
    let scale = 2.0 / (batch.len() * cfg.n_outputs) as f32;
    let used = in_parallel(workers, batch, |w, windows| {
        w.ws.load_inputs(cfg, data.x, windows);
        w.ws.load_targets(cfg, data.y, windows);
        w.ws.forward(cfg, &weights, windows.len());
        w.squared_error = w.ws.squared_error(cfg, windows.len());
        w.grad.fill(0.0);
        w.ws.backward(cfg, &weights, windows.len(), scale, &mut Weights::split_mut(cfg, &mut w.grad));
    });
    grad.copy_from_slice(&workers[0].grad);
    for w in &workers[1..used] {
        grad.iter_mut().zip(&w.grad).for_each(|(g, x)| *g += x);
    }
    workers[..used].iter().map(|w| w.squared_error).sum()
}

/// Mean squared error of `net` over every window of `data`.
fn mean_squared_error(net: &Network, workers: &mut [Worker], data: &DataSet) -> f64 {
    let cfg = net.config();
    let weights = Weights::split(cfg, net.params());
    let windows: Vec<usize> = (0..data.n).collect();
    for w in workers.iter_mut() {
        w.squared_error = 0.0;
    }
    in_parallel(workers, &windows, |w, mine| {
        for chunk in mine.chunks(w.ws.max_batch()) {
            w.ws.load_inputs(cfg, data.x, chunk);
            w.ws.load_targets(cfg, data.y, chunk);
            w.ws.forward(cfg, &weights, chunk.len());
            w.squared_error += w.ws.squared_error(cfg, chunk.len());
        }
    });
    workers.iter().map(|w| w.squared_error).sum::<f64>() / (data.n * cfg.n_outputs) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CellKind;

    /// Windows of a noisy-free sine: 10 steps of one feature predict the next value.
    fn sine(n: usize, phase: f32) -> (Vec<f32>, Vec<f32>) {
        let s = |i: usize| (0.3 * i as f32 + phase).sin();
        let x = (0..n).flat_map(|w| (w..w + 10).map(s)).collect();
        let y = (0..n).map(|w| s(w + 10)).collect();
        (x, y)
    }

    fn model(cell: CellKind) -> ModelConfig {
        ModelConfig { cell, n_features: 1, hidden: 12, layers: 1, input_len: 10, n_outputs: 1 }
    }

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 16,
            learning_rate: 1e-2,
            patience: 0,
            clip_norm: 1.0,
            seed: 1,
            shuffle: true,
            threads: 1,
        }
    }

    fn keep_going(_: &EpochReport, _: &Network) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    #[test]
    fn training_reduces_loss_on_a_sine() {
        let (tx, ty) = sine(200, 0.0);
        let (vx, vy) = sine(50, 1.0);
        for cell in [CellKind::Gru, CellKind::Lstm] {
            let mut net = Network::new(model(cell), 2);
            let before = mean_squared_error_of(&net, &vx, &vy);
            let report = train(&mut net, &tx, &ty, &vx, &vy, &config(15), &mut keep_going).expect("trains");
            assert_eq!(report.epochs_run, 15);
            assert_eq!(report.history.len(), 15);
            let after = mean_squared_error_of(&net, &vx, &vy);
            assert!((after - report.best_val_loss).abs() < 1e-9, "{cell}: network holds the best epoch's weights");
            assert!(after < before / 20.0, "{cell}: validation loss {before} -> {after}");
            assert!(report.history[14].train_loss < report.history[0].train_loss / 5.0, "{cell}: {:?}", report.history);
        }
    }

    fn mean_squared_error_of(net: &Network, x: &[f32], y: &[f32]) -> f64 {
        let pred = net.predict(x, y.len());
        pred.iter().zip(y).map(|(p, y)| (*p as f64 - *y as f64).powi(2)).sum::<f64>() / y.len() as f64
    }

    #[test]
    fn early_stopping_restores_the_best_weights() {
        // Validation targets are the negated training targets: the better the
        // fit, the worse the validation loss, so it peaks early.
        let (tx, ty) = sine(200, 0.0);
        let vy: Vec<f32> = ty.iter().map(|v| -v).collect();
        let mut net = Network::new(model(CellKind::Gru), 3);
        let cfg = TrainConfig { patience: 3, ..config(50) };
        let report = train(&mut net, &tx, &ty, &tx, &vy, &cfg, &mut keep_going).expect("trains");
        assert!(report.stopped_early, "{report:?}");
        assert_eq!(report.epochs_run, report.best_epoch + 3);
        assert_eq!(report.history.iter().rfind(|e| e.best).map(|e| e.epoch), Some(report.best_epoch));
        let now = mean_squared_error_of(&net, &tx, &vy);
        assert!((now - report.best_val_loss).abs() < 1e-9, "holds {now}, best {}", report.best_val_loss);
        assert!(report.history.last().is_some_and(|e| e.val_loss > report.best_val_loss));
    }

    #[test]
    fn tiny_improvements_do_not_extend_the_patience() {
        let mut stop = EarlyStop::new(3);
        // 1.0, then a 10% gain at epoch 2, then 0.01% gains: patience runs from epoch 2.
        let losses = [1.0, 0.9, 0.89991, 0.89982, 0.89973];
        let stops: Vec<bool> = losses.iter().enumerate().map(|(i, &l)| stop.should_stop(i + 1, l)).collect();
        assert_eq!(stops, [false, false, false, false, true]);
        // A real gain (0.5%) restarts it.
        let mut stop = EarlyStop::new(3);
        let losses = [1.0, 0.9, 0.899, 0.8955, 0.8954, 0.8953, 0.8952];
        let stops: Vec<bool> = losses.iter().enumerate().map(|(i, &l)| stop.should_stop(i + 1, l)).collect();
        assert_eq!(stops, [false, false, false, false, false, false, true]);
        // Patience 0 never stops.
        let mut never = EarlyStop::new(0);
        assert!((1..50).all(|e| !never.should_stop(e, 1.0)));
    }

    #[test]
    fn the_callback_can_cancel() {
        let (tx, ty) = sine(40, 0.0);
        let mut net = Network::new(model(CellKind::Lstm), 3);
        let mut seen = 0;
        let mut stop_at_two = |e: &EpochReport, _: &Network| {
            seen = e.epoch;
            if e.epoch == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let err = train(&mut net, &tx, &ty, &tx, &ty, &config(10), &mut stop_at_two).unwrap_err();
        assert!(matches!(err, NnError::Cancelled), "{err}");
        assert_eq!(seen, 2);
    }

    #[test]
    fn divergence_is_an_error() {
        let (tx, ty) = sine(40, 0.0);
        let mut net = Network::new(model(CellKind::Gru), 3);
        let initial = net.clone();
        let cfg = TrainConfig { learning_rate: 1e38, clip_norm: 0.0, ..config(3) };
        let err = train(&mut net, &tx, &ty, &tx, &ty, &cfg, &mut keep_going).unwrap_err();
        assert!(matches!(err, NnError::NonFinite { epoch: 1 }), "{err}");
        assert_eq!(net, initial, "no epoch finished: the initial weights stay");
    }

    #[test]
    fn bad_data_is_rejected() {
        let (tx, ty) = sine(40, 0.0);
        let mut net = Network::new(model(CellKind::Gru), 3);
        let mut run = |x: &[f32], y: &[f32], vx: &[f32], vy: &[f32]| {
            train(&mut net, x, y, vx, vy, &config(1), &mut keep_going).unwrap_err().to_string()
        };
        assert!(run(&tx[1..], &ty, &tx, &ty).contains("training: 399 input and 40 target values"));
        assert!(run(&tx, &ty, &[], &[]).contains("validation set has no windows"));
        let mut nan = tx.clone();
        nan[35] = f32::NAN;
        assert!(run(&tx, &ty, &nan, &ty).contains("validation window 3 holds a NaN"));
        let err = train(&mut net, &tx, &ty, &tx, &ty, &TrainConfig { batch_size: 0, ..config(1) }, &mut keep_going);
        assert!(matches!(err, Err(NnError::InvalidTraining(_))));
    }

    #[test]
    fn threads_share_a_batch_without_changing_the_result() {
        let (tx, ty) = sine(100, 0.0);
        let one = {
            let mut net = Network::new(model(CellKind::Lstm), 4);
            train(&mut net, &tx, &ty, &tx, &ty, &config(3), &mut keep_going).expect("trains");
            net
        };
        let three = {
            let mut net = Network::new(model(CellKind::Lstm), 4);
            train(&mut net, &tx, &ty, &tx, &ty, &TrainConfig { threads: 3, ..config(3) }, &mut keep_going)
                .expect("trains");
            net
        };
        let worst = one.params().iter().zip(three.params()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "weights differ by {worst}");
    }
}
