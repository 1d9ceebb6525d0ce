//! Stan's L-BFGS minimiser, written out in Rust: the algorithm `prophet` (Python) runs through cmdstan for every
//! fit, step for step (Stan's `bfgs.hpp`, `bfgs_linesearch.hpp` and `lbfgs_update.hpp`): the same Wolfe line
//! search with cubic interpolation, the same initial step (`init_alpha`, then a cubic estimate from the last
//! step), the same history of 5 updates, the same convergence tests in the same order and the same default
//! tolerances as cmdstan. Prophet's posterior is flat along some directions (50 changepoints under a Laplace
//! prior), so where an optimiser stops, not only which optimum it seeks, decides the forecast: keeping Stan's
//! rules keeps our stopping points where Python's are.

use std::collections::VecDeque;

/// Convergence and line-search settings; the defaults are cmdstan's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LbfgsOptions {
    /// Iterations before giving up (cmdstan's default 2000; Prophet asks for 10,000).
    pub max_iter: usize,
    /// Updates kept for the inverse-Hessian approximation.
    pub history: usize,
    /// First trial step of the first line search.
    pub init_alpha: f64,
    /// Stop when the objective changes by less than this.
    pub tol_obj: f64,
    /// Stop when the relative objective change is below this many machine epsilons.
    pub tol_rel_obj: f64,
    /// Stop when the gradient norm is below this.
    pub tol_grad: f64,
    /// Stop when the relative gradient (in the quasi-Newton metric) is below this many machine epsilons.
    pub tol_rel_grad: f64,
    /// Stop when the step is shorter than this.
    pub tol_param: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            max_iter: 2000,
            history: 5,
            init_alpha: 1e-3,
            tol_obj: 1e-12,
            tol_rel_obj: 1e4,
            tol_grad: 1e-8,
            tol_rel_grad: 1e7,
            tol_param: 1e-8,
        }
    }
}

// Stan's line-search constants (LSOptions).
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const MIN_ALPHA: f64 = 1e-12;
const MAX_LS_ITERS: usize = 20;
const MAX_LS_RESTARTS: usize = 10;
const ZOOM_MIN_RANGE: f64 = 1e-16;

/// Why the minimiser stopped (Stan's `TerminationCondition`, without the in-progress state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    AbsoluteObjective,
    RelativeObjective,
    AbsoluteGradient,
    RelativeGradient,
    AbsoluteParameter,
    MaxIterations,
    /// No step along the search direction, nor along the gradient, gave a sufficient decrease. Stan reports
    /// an error here (and Python Prophet then retries with Newton's method); the point reached is kept.
    LineSearchFailed,
}

/// Where the minimiser stopped.
#[derive(Clone, Debug)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    pub evaluations: usize,
    pub stop: Stop,
}

/// The function minimised: writes the gradient at `x` into `grad` and returns the value, or `None` where
/// the value or the gradient is not finite (the line search then shortens its step, as Stan's does).
pub(crate) trait Objective {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> Option<f64>;
}

/// Counts evaluations, as Stan's `ModelAdaptor` does.
struct Counted<'a, O> {
    objective: &'a mut O,
    evaluations: usize,
}

impl<O: Objective> Counted<'_, O> {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        self.evaluations += 1;
        self.objective.eval(x, grad).filter(|f| f.is_finite() && grad.iter().all(|g| g.is_finite()))
    }
}

/// Minimises `objective` from `x0`. Fails only if the objective is not finite at `x0`.
pub(crate) fn minimize<O: Objective>(objective: &mut O, x0: &[f64], opts: &LbfgsOptions) -> Option<Minimum> {
    let n = x0.len();
    let mut func = Counted { objective, evaluations: 0 };
    let mut xk = x0.to_vec();
    let mut gk = vec![0.0; n];
    let mut fk = func.eval(&xk, &mut gk)?;
    let mut pk: Vec<f64> = gk.iter().map(|g| -g).collect();
    let (mut xk_1, mut gk_1, mut pk_1) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut fk_1 = 0.0;
    let mut alphak_1 = 0.0;
    let mut qn = LbfgsUpdate::new(opts.history.max(1));
    let mut iteration = 0;

    let stop = loop {
        iteration += 1;
        // 0: keep the quasi-Newton direction; 1: first iteration; 2: the line search failed, restart from -g.
        let mut reset = if iteration == 1 { 1 } else { 0 };
        let mut alpha;
        loop {
            if reset != 0 {
                for (p, g) in pk.iter_mut().zip(&gk) {
                    *p = -g;
                }
            }
            alpha = if iteration > 1 && reset != 2 {
                // A cubic through the last step predicts this step's length.
                let step = cubic_interp(dot(&gk_1, &pk_1), alphak_1, fk - fk_1, dot(&gk, &pk_1), MIN_ALPHA, 1.0);
                (1.01 * step).min(1.0)
            } else {
                opts.init_alpha
            };
            let line = Line { x0: &xk, f0: fk, p: &pk };
            let found = wolfe_line_search(&mut func, &line, &gk, &mut alpha, &mut xk_1, &mut fk_1, &mut gk_1);
            match (found, reset) {
                (true, _) => break,
                (false, 0) => reset = 2,
                (false, _) => {
                    let evaluations = func.evaluations;
                    return Some(Minimum {
                        x: xk,
                        f: fk,
                        iterations: iteration,
                        evaluations,
                        stop: Stop::LineSearchFailed,
                    });
                }
            }
        }

        // The accepted point becomes the current one.
        std::mem::swap(&mut fk, &mut fk_1);
        std::mem::swap(&mut xk, &mut xk_1);
        std::mem::swap(&mut gk, &mut gk_1);
        std::mem::swap(&mut pk, &mut pk_1);

        let sk: Vec<f64> = xk.iter().zip(&xk_1).map(|(a, b)| a - b).collect();
        let yk: Vec<f64> = gk.iter().zip(&gk_1).map(|(a, b)| a - b).collect();
        let grad_norm = dot(&gk, &gk).sqrt();
        let step_norm = dot(&sk, &sk).sqrt();

        if reset != 0 {
            // After a reset the approximation is rescaled, and the step length with it.
            let b0 = qn.update(yk, sk, true);
            for p in &mut pk_1 {
                *p /= b0;
            }
            alphak_1 = alpha * b0;
        } else {
            qn.update(yk, sk, false);
            alphak_1 = alpha;
        }
        qn.search_direction(&mut pk, &gk);
        tracing::trace!(iteration, f = fk, alpha, evaluations = func.evaluations, "L-BFGS step");

        let rel_obj = (fk_1 - fk).abs() / fk_1.abs().max(fk.abs()).max(1.0);
        let rel_grad = -dot(&pk, &gk) / fk.abs().max(1.0);
        let stop = if (fk_1 - fk).abs() < opts.tol_obj {
            Some(Stop::AbsoluteObjective)
        } else if grad_norm < opts.tol_grad {
            Some(Stop::AbsoluteGradient)
        } else if step_norm < opts.tol_param {
            Some(Stop::AbsoluteParameter)
        } else if iteration >= opts.max_iter {
            Some(Stop::MaxIterations)
        } else if rel_obj < opts.tol_rel_obj * f64::EPSILON {
            Some(Stop::RelativeObjective)
        } else if rel_grad < opts.tol_rel_grad * f64::EPSILON {
            Some(Stop::RelativeGradient)
        } else {
            None
        };
        if let Some(stop) = stop {
            break stop;
        }
    };
    Some(Minimum { x: xk, f: fk, iterations: iteration, evaluations: func.evaluations, stop })
}

/// The limited-memory inverse-Hessian approximation (Stan's `LBFGSUpdate`).
struct LbfgsUpdate {
    /// `(1 / y·s, y, s)` per update, oldest first.
    history: VecDeque<(f64, Vec<f64>, Vec<f64>)>,
    capacity: usize,
    gamma: f64,
}

impl LbfgsUpdate {
    fn new(capacity: usize) -> Self {
        LbfgsUpdate { history: VecDeque::with_capacity(capacity), capacity, gamma: 1.0 }
    }

    /// Adds an update; on `reset`, forgets the others and returns the scale of the initial Hessian.
    fn update(&mut self, yk: Vec<f64>, sk: Vec<f64>, reset: bool) -> f64 {
        let skyk = dot(&yk, &sk);
        let yy = dot(&yk, &yk);
        let b0 = if reset {
            self.history.clear();
            yy / skyk
        } else {
            1.0
        };
        self.gamma = skyk / yy;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back((1.0 / skyk, yk, sk));
        b0
    }

    /// `pk = -H gk`, by the two-loop recursion.
    fn search_direction(&self, pk: &mut [f64], gk: &[f64]) {
        for (p, g) in pk.iter_mut().zip(gk) {
            *p = -g;
        }
        let mut alphas = vec![0.0; self.history.len()];
        for (i, (rho, y, s)) in self.history.iter().enumerate().rev() {
            let alpha = rho * dot(s, pk);
            axpy(-alpha, y, pk);
            alphas[i] = alpha;
        }
        for p in pk.iter_mut() {
            *p *= self.gamma;
        }
        for ((rho, y, s), alpha) in self.history.iter().zip(alphas) {
            let beta = rho * dot(y, pk);
            axpy(alpha - beta, s, pk);
        }
    }
}

/// The line a search runs along: from `x0`, where the objective is `f0`, in the direction `p`.
struct Line<'a> {
    x0: &'a [f64],
    f0: f64,
    p: &'a [f64],
}

/// The point being tried: `x`, and the value and gradient there.
struct Trial<'a> {
    x: &'a mut [f64],
    f: &'a mut f64,
    g: &'a mut [f64],
}

impl Trial<'_> {
    /// Moves to `x0 + alpha p` and evaluates there; `None` where the objective is not finite.
    fn eval_at<O: Objective>(&mut self, func: &mut Counted<O>, line: &Line, alpha: f64) -> Option<f64> {
        for ((x, x0), p) in self.x.iter_mut().zip(line.x0).zip(line.p) {
            *x = x0 + alpha * p;
        }
        let f = func.eval(self.x, self.g)?;
        *self.f = f;
        Some(f)
    }
}

/// A step along `line` meeting the strong Wolfe conditions (`g0`: the gradient at its start), written into
/// `x1`, `f1`, `g1`; `alpha` holds the first trial step and receives the accepted one. Returns whether one
/// was found (Stan's `WolfeLineSearch`).
fn wolfe_line_search<O: Objective>(
    func: &mut Counted<O>,
    line: &Line,
    g0: &[f64],
    alpha: &mut f64,
    x1: &mut [f64],
    f1: &mut f64,
    g1: &mut [f64],
) -> bool {
    let dfp = dot(g0, line.p);
    let wolfe = Wolfe { c1dfp: C1 * dfp, c2dfp: C2 * dfp };
    let mut trial = Trial { x: x1, f: f1, g: g1 };
    let (mut alpha0, mut alpha1) = (MIN_ALPHA, *alpha);
    let (mut prev_f, mut prev_dfp) = (line.f0, dfp);
    let (mut iters, mut restarts) = (0, 0);
    loop {
        if iters >= MAX_LS_ITERS {
            return false;
        }
        let Some(f) = trial.eval_at(func, line, alpha1) else {
            if restarts >= MAX_LS_RESTARTS {
                return false;
            }
            alpha1 = 0.5 * (alpha0 + alpha1);
            restarts += 1;
            continue;
        };
        restarts = 0;
        let new_dfp = dot(trial.g, line.p);
        // Stan compares with the first trial step here, not the current one; kept as Stan has it.
        if f > line.f0 + *alpha * wolfe.c1dfp || (f >= prev_f && iters > 0) {
            let lo = Bracket { alpha: alpha0, f: prev_f, dfp: prev_dfp };
            let hi = Bracket { alpha: alpha1, f, dfp: new_dfp };
            return zoom(func, line, &wolfe, alpha, &mut trial, lo, hi);
        }
        if new_dfp.abs() <= -wolfe.c2dfp {
            *alpha = alpha1;
            return true;
        }
        if new_dfp >= 0.0 {
            let lo = Bracket { alpha: alpha1, f, dfp: new_dfp };
            let hi = Bracket { alpha: alpha0, f: prev_f, dfp: prev_dfp };
            return zoom(func, line, &wolfe, alpha, &mut trial, lo, hi);
        }
        alpha0 = alpha1;
        prev_f = f;
        prev_dfp = new_dfp;
        alpha1 *= 10.0;
        iters += 1;
    }
}

/// The strong Wolfe conditions' two bounds: `c1` and `c2` times the slope at the line's start.
struct Wolfe {
    c1dfp: f64,
    c2dfp: f64,
}

/// One end of the line search's bracket: step, value, and slope along the search direction.
#[derive(Clone, Copy)]
struct Bracket {
    alpha: f64,
    f: f64,
    dfp: f64,
}

/// Narrows `[lo, hi]` to a strong-Wolfe step, left in `trial` and `alpha` (Stan's `WolfLSZoom`).
fn zoom<O: Objective>(
    func: &mut Counted<O>,
    line: &Line,
    wolfe: &Wolfe,
    alpha: &mut f64,
    trial: &mut Trial,
    mut lo: Bracket,
    mut hi: Bracket,
) -> bool {
    let mut iteration = 0;
    loop {
        iteration += 1;
        if (lo.alpha - hi.alpha).abs() < ZOOM_MIN_RANGE {
            return false;
        }
        let (low, high) = (lo.alpha.min(hi.alpha), lo.alpha.max(hi.alpha));
        let width = (lo.alpha - hi.alpha).abs();
        *alpha = if iteration % 5 == 0 {
            0.5 * (lo.alpha + hi.alpha)
        } else {
            let d1 = lo.dfp + hi.dfp - 3.0 * (lo.f - hi.f) / (lo.alpha - hi.alpha);
            let mut d2 = (d1 * d1 - lo.dfp * hi.dfp).sqrt();
            if hi.alpha < lo.alpha {
                d2 = -d2;
            }
            let a = hi.alpha - (hi.alpha - lo.alpha) * (hi.dfp + d2 - d1) / (hi.dfp - lo.dfp + 2.0 * d2);
            if !a.is_finite() || a < low + 0.01 * width || a > high - 0.01 * width {
                0.5 * (lo.alpha + hi.alpha)
            } else {
                a
            }
        };
        let f = loop {
            if let Some(f) = trial.eval_at(func, line, *alpha) {
                break f;
            }
            *alpha = 0.5 * (*alpha + low);
            if (low - *alpha).abs() < ZOOM_MIN_RANGE {
                return false;
            }
        };
        let new_dfp = dot(trial.g, line.p);
        if f > line.f0 + *alpha * wolfe.c1dfp || f >= lo.f {
            hi = Bracket { alpha: *alpha, f, dfp: new_dfp };
        } else {
            if new_dfp.abs() <= -wolfe.c2dfp {
                return true;
            }
            if new_dfp * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = Bracket { alpha: *alpha, f, dfp: new_dfp };
        }
    }
}

/// The minimiser on `[lo_x, hi_x]` of the cubic `g` with `g(0) = 0`, `g'(0) = df0`, `g(x1) = f1`,
/// `g'(x1) = df1` (Stan's `CubicInterp`).
fn cubic_interp(df0: f64, x1: f64, f1: f64, df1: f64, lo_x: f64, hi_x: f64) -> f64 {
    let c3 = (-12.0 * f1 + 6.0 * x1 * (df0 + df1)) / (x1 * x1 * x1);
    let c2 = -(4.0 * df0 + 2.0 * df1) / x1 + 6.0 * f1 / (x1 * x1);
    let c1 = df0;
    let cubic = |x: f64| x * (x * (x * c3 / 3.0 + c2) / 2.0 + c1);
    let t_s = (c2 * c2 - 2.0 * c1 * c3).sqrt();
    let s1 = -(c2 + t_s) / c3;
    let s2 = -(c2 - t_s) / c3;

    let (mut min_x, mut min_f) = (lo_x, cubic(lo_x));
    if cubic(hi_x) < min_f {
        (min_x, min_f) = (hi_x, cubic(hi_x));
    }
    for s in [s1, s2] {
        // NaN roots (no real root) fail these comparisons, as in Stan.
        if lo_x < s && s < hi_x && cubic(s) < min_f {
            (min_x, min_f) = (s, cubic(s));
        }
    }
    min_x
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// `y += a x`.
pub(crate) fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rosenbrock function, a standard hard case for quasi-Newton methods.
    struct Rosenbrock;
    impl Objective for Rosenbrock {
        fn eval(&mut self, x: &[f64], g: &mut [f64]) -> Option<f64> {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            Some((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2))
        }
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let m = minimize(&mut Rosenbrock, &[-1.2, 1.0], &LbfgsOptions::default()).expect("finite start");
        assert!((m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4, "{m:?}");
        assert_ne!(m.stop, Stop::LineSearchFailed);
        assert!(m.iterations < 200, "{m:?}");
    }

    /// A quadratic with a wall: not finite beyond x = 2, minimum at 3 out of reach, so the line search must
    /// shorten steps that land past the wall and stop near it.
    struct Walled;
    impl Objective for Walled {
        fn eval(&mut self, x: &[f64], g: &mut [f64]) -> Option<f64> {
            if x[0] > 2.0 {
                return None;
            }
            g[0] = 2.0 * (x[0] - 3.0) + 1.0 / (2.0 - x[0]);
            Some((x[0] - 3.0).powi(2) - (2.0 - x[0]).ln())
        }
    }

    #[test]
    fn steps_back_from_non_finite_values() {
        let m = minimize(&mut Walled, &[0.0], &LbfgsOptions::default()).expect("finite start");
        // Minimum of (x-3)^2 - ln(2-x): with u = 2 - x, 2(x-3) + 1/u = 0 => u^2 + u - 1/2 = 0.
        let u = (3.0_f64.sqrt() - 1.0) / 2.0;
        // Within Stan's default tolerances (relative gradient 1e7 machine epsilons), not to the last digit.
        assert!((m.x[0] - (2.0 - u)).abs() < 1e-4, "{m:?}");
    }

    #[test]
    fn a_non_finite_start_is_refused() {
        assert!(minimize(&mut Walled, &[5.0], &LbfgsOptions::default()).is_none());
    }

    #[test]
    fn cubic_interpolation_finds_the_cubic_minimum() {
        // g(x) = x^3 - 3x: g(0) = 0, g'(0) = -3, g(2) = 2, g'(2) = 9; local minimum at 1.
        assert!((cubic_interp(-3.0, 2.0, 2.0, 9.0, 0.0, 1.5) - 1.0).abs() < 1e-12);
        // Clamped to the interval.
        assert_eq!(cubic_interp(-3.0, 2.0, 2.0, 9.0, 0.0, 0.5), 0.5);
        // A quadratic has no cubic term, so no interior root: Stan then picks the better end, and so do we.
        assert_eq!(cubic_interp(-2.0, 3.0, 3.0, 4.0, 0.0, 10.0), 0.0);
    }
}
