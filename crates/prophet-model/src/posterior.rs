//! [`NativeOptimizer`]: Prophet's MAP fit in native code. It plugs into augurs-prophet (which builds the
//! data, the features and the changepoints exactly as before) in place of augurs' Stan-in-WASM back-end,
//! which was 2x slower than Python's cmdstan (docs/benchmarks.md, "## Prophet").
//!
//! The objective is the log posterior of Prophet's Stan model (`prophet.stan`, linear and flat trend),
//! up to the constants Stan's `~` statements drop, with its gradient written out by hand:
//!
//! ```text
//! k ~ normal(0, 5)    m ~ normal(0, 5)    delta ~ double_exponential(0, tau)
//! sigma_obs ~ normal(0, 0.5)    beta ~ normal(0, sigmas)
//! y ~ normal(trend .* (1 + X_sm * beta) + X_sa * beta, sigma_obs)
//! trend = (k + A * delta) .* t + (m - A * (t_change .* delta))      A[i, j] = t[i] >= t_change[j]
//! ```
//!
//! It is minimised as `-log p` over `(k, m, delta, log sigma_obs, beta)`, Stan's unconstrained space for a
//! `real<lower=0>` (no Jacobian term: Stan's `optimize` default), by [`crate::lbfgs`], Stan's L-BFGS.
//! One evaluation costs O(T K + T + S) instead of Stan's O(T S) for `A * delta`, since `A` is a step
//! pattern: the trend walks the changepoints once, and the changepoint gradients are suffix sums.

use augurs_prophet::optimizer::{self, Data, InitialParams, OptimizeOpts, OptimizedParams, TrendIndicator};
use augurs_prophet::{Optimizer, PositiveFloat};

use crate::lbfgs::{self, LbfgsOptions, Objective, Stop, axpy};

/// Prophet's optimizer in native code (see the module docs). Every algorithm Prophet can ask for (L-BFGS,
/// BFGS, and Newton for series under 100 rows) runs as Stan's L-BFGS: the same MAP, sought the same way
/// as Python's default fit.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeOptimizer;

impl Optimizer for NativeOptimizer {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, optimizer::Error> {
        let mut posterior = Posterior::new(data)?;
        let x0 = posterior.pack(init)?;
        let options = lbfgs_options(opts);
        let minimum = lbfgs::minimize(&mut posterior, &x0, &options)
            .ok_or_else(|| optimizer::Error::static_str("the log posterior is not finite at the initial values"))?;
        let log_posterior = -minimum.f;
        let (iterations, evaluations, stop) = (minimum.iterations, minimum.evaluations, minimum.stop);
        if stop == Stop::LineSearchFailed {
            tracing::warn!(
                iterations,
                evaluations,
                log_posterior,
                "Prophet fit: line search failed; kept the best point"
            );
        } else {
            tracing::debug!(iterations, evaluations, log_posterior, ?stop, "Prophet fit converged");
        }
        Ok(posterior.unpack(&minimum.x))
    }
}

/// cmdstan's settings, overridden by what the caller set.
fn lbfgs_options(opts: &OptimizeOpts) -> LbfgsOptions {
    let d = LbfgsOptions::default();
    LbfgsOptions {
        max_iter: opts.iter.map_or(d.max_iter, |i| i as usize),
        history: opts.history_size.map_or(d.history, |h| h as usize),
        init_alpha: opts.init_alpha.unwrap_or(d.init_alpha),
        tol_obj: opts.tol_obj.unwrap_or(d.tol_obj),
        tol_rel_obj: opts.tol_rel_obj.unwrap_or(d.tol_rel_obj),
        tol_grad: opts.tol_grad.unwrap_or(d.tol_grad),
        tol_rel_grad: opts.tol_rel_grad.unwrap_or(d.tol_rel_grad),
        tol_param: opts.tol_param.unwrap_or(d.tol_param),
    }
}

/// The data of one fit, laid out for fast evaluation, plus scratch space. The features are kept as
/// columns in a canonical order (see [`canonical_order`]), so the arithmetic, and with it the fit, does not
/// depend on the order augurs happened to put them in.
pub(crate) struct Posterior<'a> {
    data: &'a Data,
    flat: bool,
    /// `order[c]` is the augurs column at canonical position `c`.
    order: Vec<usize>,
    columns: Vec<Column>,
    n_rows: usize,
    n_changepoints: usize,
    /// First row each changepoint applies to (`t[row] >= t_change[s]`, as Stan's walk finds it).
    first_row: Vec<usize>,
    inv_tau: f64,
    // Scratch, one value per row.
    trend: Vec<f64>,
    add: Vec<f64>,
    mult: Vec<f64>,
    resid: Vec<f64>,
    w: Vec<f64>,
    w_trend: Vec<f64>,
    g_trend: Vec<f64>,
}

/// One feature: its values at every row and how it enters the model.
struct Column {
    values: Vec<f64>,
    /// `s_a` and `s_m` of the Stan data (Prophet sets exactly one of them).
    additive: f64,
    multiplicative: f64,
    inv_prior_var: f64,
    /// All zero (a holiday outside the data, say): it touches neither the fit nor the likelihood's gradient.
    zero: bool,
}

// Offsets into the parameter vector (k, m, delta[S], log sigma_obs, beta[K]), Stan's declaration order.
const K_IDX: usize = 0;
const M_IDX: usize = 1;
const DELTA_IDX: usize = 2;

impl<'a> Posterior<'a> {
    pub(crate) fn new(data: &'a Data) -> Result<Self, optimizer::Error> {
        let (n_rows, n_changepoints, n_features) = (data.T as usize, data.S as usize, data.K as usize);
        let flat = match data.trend_indicator {
            TrendIndicator::Linear => false,
            TrendIndicator::Flat => true,
            TrendIndicator::Logistic => return Err(optimizer::Error::static_str("logistic growth is not supported")),
        };
        let consistent = data.y.len() == n_rows
            && data.t.len() == n_rows
            && data.t_change.len() == n_changepoints
            && data.X.len() == n_rows * n_features
            && data.s_a.len() == n_features
            && data.s_m.len() == n_features
            && data.sigmas.len() == n_features;
        if !consistent {
            return Err(optimizer::Error::static_str("the model data's dimensions disagree"));
        }
        let mut first_row = Vec::with_capacity(n_changepoints);
        let mut row = 0;
        for &tc in &data.t_change {
            while row < n_rows && data.t[row] < tc {
                row += 1;
            }
            first_row.push(row);
        }
        let order = canonical_order(data);
        let columns = order
            .iter()
            .map(|&j| {
                let values: Vec<f64> = data.X.iter().skip(j).step_by(n_features).copied().collect();
                Column {
                    zero: values.iter().all(|v| *v == 0.0),
                    values,
                    additive: f64::from(data.s_a[j]),
                    multiplicative: f64::from(data.s_m[j]),
                    inv_prior_var: 1.0 / (*data.sigmas[j] * *data.sigmas[j]),
                }
            })
            .collect();
        Ok(Posterior {
            data,
            flat,
            order,
            columns,
            n_rows,
            n_changepoints,
            first_row,
            inv_tau: 1.0 / *data.tau,
            trend: vec![0.0; n_rows],
            add: vec![0.0; n_rows],
            mult: vec![0.0; n_rows],
            resid: vec![0.0; n_rows],
            w: vec![0.0; n_rows],
            w_trend: vec![0.0; n_rows],
            g_trend: vec![0.0; n_rows],
        })
    }

    fn sigma_idx(&self) -> usize {
        DELTA_IDX + self.n_changepoints
    }

    fn beta_idx(&self) -> usize {
        self.sigma_idx() + 1
    }

    /// The unconstrained vector of Prophet's initial values.
    pub(crate) fn pack(&self, init: &InitialParams) -> Result<Vec<f64>, optimizer::Error> {
        if init.delta.len() != self.n_changepoints || init.beta.len() != self.columns.len() {
            return Err(optimizer::Error::static_str("the initial values' dimensions disagree with the data"));
        }
        let mut x = vec![init.k, init.m];
        x.extend(&init.delta);
        x.push(init.sigma_obs.ln());
        x.extend(self.order.iter().map(|&j| init.beta[j]));
        Ok(x)
    }

    fn unpack(&mut self, x: &[f64]) -> OptimizedParams {
        self.fill_trend(x);
        let sigma = x[self.sigma_idx()].exp();
        let mut beta = vec![0.0; self.columns.len()];
        for (c, &j) in self.order.iter().enumerate() {
            beta[j] = x[self.beta_idx() + c];
        }
        OptimizedParams {
            k: x[K_IDX],
            m: x[M_IDX],
            // exp of a finite value is positive; it underflows to 0 only far outside any sane fit.
            sigma_obs: PositiveFloat::try_from(sigma).unwrap_or(PositiveFloat::one()),
            delta: x[DELTA_IDX..self.sigma_idx()].to_vec(),
            beta,
            trend: self.trend.clone(),
        }
    }

    /// `trend` at every row for the parameters `x`.
    fn fill_trend(&mut self, x: &[f64]) {
        let (k, m) = (x[K_IDX], x[M_IDX]);
        if self.flat {
            self.trend.fill(m);
            return;
        }
        let delta = &x[DELTA_IDX..DELTA_IDX + self.n_changepoints];
        let (mut rate, mut offset, mut next) = (k, m, 0);
        for (row, trend) in self.trend.iter_mut().enumerate() {
            while next < self.n_changepoints && self.first_row[next] <= row {
                rate += delta[next];
                offset -= self.data.t_change[next] * delta[next];
                next += 1;
            }
            *trend = rate * self.data.t[row] + offset;
        }
    }
}

impl Objective for Posterior<'_> {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let n_cp = self.n_changepoints;
        let (sigma_idx, beta_idx) = (self.sigma_idx(), self.beta_idx());
        let log_sigma = x[sigma_idx];
        let sigma = log_sigma.exp();
        let beta = &x[beta_idx..beta_idx + self.columns.len()];
        self.fill_trend(x);

        // mu = trend (1 + mult) + add, with add = X_sa beta and mult = X_sm beta.
        self.add.fill(0.0);
        self.mult.fill(0.0);
        for (column, b) in self.columns.iter().zip(beta).filter(|(c, _)| !c.zero) {
            if column.additive != 0.0 {
                axpy(b * column.additive, &column.values, &mut self.add);
            }
            if column.multiplicative != 0.0 {
                axpy(b * column.multiplicative, &column.values, &mut self.mult);
            }
        }
        let rows = self.resid.iter_mut().zip(&self.data.y).zip(&self.trend).zip(&self.mult).zip(&self.add);
        for ((((resid, y), trend), mult), add) in rows {
            *resid = y - (trend * (1.0 + mult) + add);
        }
        let sum_sq = dot(&self.resid, &self.resid);
        let inv_var = 1.0 / (sigma * sigma);

        let (k, m) = (x[K_IDX], x[M_IDX]);
        let delta = &x[DELTA_IDX..DELTA_IDX + n_cp];
        let mut f = 0.5 * (k * k + m * m) / 25.0;
        f += delta.iter().map(|d| d.abs()).sum::<f64>() * self.inv_tau;
        f += 2.0 * sigma * sigma;
        f += 0.5 * self.columns.iter().zip(beta).map(|(c, b)| b * b * c.inv_prior_var).sum::<f64>();
        f += self.n_rows as f64 * log_sigma + 0.5 * sum_sq * inv_var;

        // Gradient. With w = r / sigma^2: d(-log p)/d mu = -w, and d(-log p)/d trend = -w (1 + mult) = -g.
        for row in 0..self.n_rows {
            let w = self.resid[row] * inv_var;
            self.w[row] = w;
            self.w_trend[row] = w * self.trend[row];
            self.g_trend[row] = w * (1.0 + self.mult[row]);
        }
        for (c, column) in self.columns.iter().enumerate() {
            let mut g = beta[c] * column.inv_prior_var;
            if !column.zero {
                if column.additive != 0.0 {
                    g -= column.additive * dot(&column.values, &self.w);
                }
                if column.multiplicative != 0.0 {
                    g -= column.multiplicative * dot(&column.values, &self.w_trend);
                }
            }
            grad[beta_idx + c] = g;
        }
        let (g_trend, t) = (&self.g_trend, &self.data.t);
        grad[M_IDX] = m / 25.0 - g_trend.iter().sum::<f64>();
        if self.flat {
            grad[K_IDX] = k / 25.0;
            for (s, d) in delta.iter().enumerate() {
                grad[DELTA_IDX + s] = sign(*d) * self.inv_tau;
            }
        } else {
            grad[K_IDX] = k / 25.0 - dot(g_trend, t);
            // Changepoint s moves the trend by delta_s (t - t_change_s) on rows from first_row[s] on: suffix sums.
            let (mut sum_g, mut sum_gt) = (0.0, 0.0);
            let mut row = self.n_rows;
            for s in (0..n_cp).rev() {
                while row > self.first_row[s] {
                    row -= 1;
                    sum_g += g_trend[row];
                    sum_gt += g_trend[row] * t[row];
                }
                let moved = sum_gt - self.data.t_change[s] * sum_g;
                grad[DELTA_IDX + s] = sign(delta[s]) * self.inv_tau - moved;
            }
        }
        // d/d(log sigma) of 2 sigma^2 + T log sigma + sum_sq / (2 sigma^2).
        grad[sigma_idx] = 4.0 * sigma * sigma + self.n_rows as f64 - sum_sq * inv_var;
        Some(f)
    }
}

/// `a . b`, summed in eight interleaved lanes so the loop vectorises (a fixed order: deterministic).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// A canonical order of the feature columns: by mode, prior scale, then values (ties keep augurs' order).
fn canonical_order(data: &Data) -> Vec<usize> {
    let n_features = data.K as usize;
    let column = |j: usize| data.X.iter().skip(j).step_by(n_features);
    let mut order: Vec<usize> = (0..n_features).collect();
    order.sort_by(|&a, &b| {
        (data.s_a[a], data.s_m[a])
            .cmp(&(data.s_a[b], data.s_m[b]))
            .then(data.sigmas[a].total_cmp(&data.sigmas[b]))
            .then_with(|| {
                column(a)
                    .zip(column(b))
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    });
    order
}

/// Stan's `sign`: 0 at 0, so `|delta|` has a zero derivative where every changepoint starts.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small problem with both feature modes, changepoints between rows and on a row.
    fn data() -> Data {
        let n = 40;
        let t: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        // Deterministic "noise" of amplitude 0.01, so no parameter value fits exactly (sigma -> 0).
        let y: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(i, t)| 0.3 + 0.5 * t + 0.1 * (12.0 * t).sin() + 0.01 * ((i * i) as f64 * 0.37).sin())
            .collect();
        let mut x = Vec::new();
        for t in &t {
            x.extend([(12.0 * t).sin(), (12.0 * t).cos(), if *t > 0.5 { 1.0 } else { 0.0 }]);
        }
        let pos = |v: f64| PositiveFloat::try_from(v).expect("positive");
        Data {
            T: n as i32,
            y,
            t: t.clone(),
            cap: vec![0.0; n],
            S: 3,
            t_change: vec![0.2, t[20], 0.77],
            trend_indicator: TrendIndicator::Linear,
            K: 3,
            s_a: vec![1, 0, 1],
            s_m: vec![0, 1, 0],
            X: x,
            sigmas: vec![pos(10.0), pos(10.0), pos(2.0)],
            tau: pos(0.05),
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for trend_indicator in [TrendIndicator::Linear, TrendIndicator::Flat] {
            let data = Data { trend_indicator, ..data() };
            let mut posterior = Posterior::new(&data).expect("consistent data");
            // Nonzero deltas (the |delta| kink is at 0) and a sigma away from 1.
            let x = vec![0.4, 0.2, 0.03, -0.02, 0.05, -1.3, 0.07, -0.2, 0.3];
            let mut grad = vec![0.0; x.len()];
            posterior.eval(&x, &mut grad).expect("finite");
            for i in 0..x.len() {
                let h = 1e-6;
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                let mut scratch = vec![0.0; x.len()];
                let numeric = (posterior.eval(&up, &mut scratch).expect("finite")
                    - posterior.eval(&down, &mut scratch).expect("finite"))
                    / (2.0 * h);
                let tolerance = 1e-5 * numeric.abs().max(1.0);
                assert!((grad[i] - numeric).abs() < tolerance, "{trend_indicator:?} d/dx{i}: {} vs {numeric}", grad[i]);
            }
        }
    }

    #[test]
    fn objective_is_prophet_stan_log_posterior() {
        // The same value written the slow way, straight from prophet.stan, with A as a 0/1 matrix.
        let data = data();
        let x: [f64; 9] = [0.4, 0.2, 0.03, -0.02, 0.05, -1.3, 0.07, -0.2, 0.3];
        let (k, m, delta, sigma, beta) = (x[0], x[1], &x[2..5], x[5].exp(), &x[6..9]);
        let mut lp = -0.5 * (k / 5.0).powi(2) - 0.5 * (m / 5.0).powi(2) - 0.5 * (sigma / 0.5).powi(2);
        lp -= delta.iter().map(|d| d.abs() / 0.05).sum::<f64>();
        lp -= 0.5 * ((beta[0] / 10.0).powi(2) + (beta[1] / 10.0).powi(2) + (beta[2] / 2.0).powi(2));
        for i in 0..40 {
            let a: Vec<f64> = data.t_change.iter().map(|tc| if data.t[i] >= *tc { 1.0 } else { 0.0 }).collect();
            let rate = k + (0..3).map(|s| a[s] * delta[s]).sum::<f64>();
            let offset = m - (0..3).map(|s| a[s] * data.t_change[s] * delta[s]).sum::<f64>();
            let trend = rate * data.t[i] + offset;
            let row = &data.X[i * 3..i * 3 + 3];
            let mu = trend * (1.0 + row[1] * beta[1]) + row[0] * beta[0] + row[2] * beta[2];
            lp += -sigma.ln() - 0.5 * ((data.y[i] - mu) / sigma).powi(2);
        }
        let mut posterior = Posterior::new(&data).expect("consistent data");
        let init = InitialParams {
            k,
            m,
            delta: delta.to_vec(),
            beta: beta.to_vec(),
            sigma_obs: PositiveFloat::try_from(sigma).expect("positive"),
        };
        let packed = posterior.pack(&init).expect("dimensions agree");
        let f = posterior.eval(&packed, &mut [0.0; 9]).expect("finite");
        assert!((f + lp).abs() < 1e-10 * lp.abs(), "{f} vs {}", -lp);
    }

    #[test]
    fn fit_recovers_the_generating_trend() {
        let data = data();
        let init =
            InitialParams { k: 0.0, m: 0.0, delta: vec![0.0; 3], beta: vec![0.0; 3], sigma_obs: PositiveFloat::one() };
        let opts = OptimizeOpts { iter: Some(10_000), ..OptimizeOpts::default() };
        let fitted = NativeOptimizer.optimize(&init, &data, &opts).expect("fits");
        // y = 0.3 + 0.5 t + 0.1 sin(12 t): the additive sine's weight is 0.1, the rest is the trend.
        assert!((fitted.beta[0] - 0.1).abs() < 0.01, "{fitted:?}");
        let trend_end = fitted.trend[39];
        assert!((trend_end - 0.8).abs() < 0.02, "{fitted:?}");
        assert!(*fitted.sigma_obs < 0.02, "{fitted:?}");
    }

    #[test]
    fn the_fit_does_not_depend_on_the_feature_order() {
        let data = data();
        let init = InitialParams {
            k: 0.1,
            m: 0.2,
            delta: vec![0.0; 3],
            beta: vec![0.0, 0.01, 0.02],
            sigma_obs: PositiveFloat::one(),
        };
        let opts = OptimizeOpts { iter: Some(10_000), ..OptimizeOpts::default() };
        let fitted = NativeOptimizer.optimize(&init, &data, &opts).expect("fits");
        // The same problem with the columns in the opposite order.
        let rev = |v: &[i32]| v.iter().rev().copied().collect::<Vec<_>>();
        let reversed = Data {
            X: data.X.chunks_exact(3).flat_map(|row| row.iter().rev().copied()).collect(),
            s_a: rev(&data.s_a),
            s_m: rev(&data.s_m),
            sigmas: data.sigmas.iter().rev().copied().collect(),
            ..data.clone()
        };
        let init_rev = InitialParams { beta: init.beta.iter().rev().copied().collect(), ..init.clone() };
        let refit = NativeOptimizer.optimize(&init_rev, &reversed, &opts).expect("fits");
        let beta_back: Vec<f64> = refit.beta.iter().rev().copied().collect();
        assert_eq!(fitted.beta, beta_back, "bit-identical coefficients");
        assert_eq!((fitted.k, fitted.m, &fitted.delta), (refit.k, refit.m, &refit.delta));
    }

    #[test]
    fn inconsistent_data_is_an_error() {
        let mut data = data();
        data.X.pop();
        assert!(Posterior::new(&data).is_err());
        let logistic = Data { trend_indicator: TrendIndicator::Logistic, ..self::tests::data() };
        assert!(Posterior::new(&logistic).is_err());
    }
}
