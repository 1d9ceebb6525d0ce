//! Adam (Kingma and Ba), computed exactly as PyTorch's `torch.optim.Adam` with
//! default betas and epsilon and no weight decay, and global-norm gradient clipping.

pub(crate) struct Adam {
    learning_rate: f32,
    /// Running mean of the gradient, per parameter.
    m: Vec<f32>,
    /// Running mean of the squared gradient, per parameter.
    v: Vec<f32>,
    steps: i32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

impl Adam {
    pub fn new(n_params: usize, learning_rate: f32) -> Adam {
        Adam { learning_rate, m: vec![0.0; n_params], v: vec![0.0; n_params], steps: 0 }
    }

    /// One update: `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(params.len(), self.m.len());
        assert_eq!(grad.len(), self.m.len());
        self.steps += 1;
        let correction1 = 1.0 - (BETA1 as f64).powi(self.steps);
        let correction2 = 1.0 - (BETA2 as f64).powi(self.steps);
        let step_size = (self.learning_rate as f64 / correction1) as f32;
        let root_correction2 = correction2.sqrt() as f32;
        for (((p, g), m), v) in params.iter_mut().zip(grad).zip(&mut self.m).zip(&mut self.v) {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= step_size * *m / (v.sqrt() / root_correction2 + EPS);
        }
    }
}

/// Scale `grad` so that its L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`, including its `1e-6` in the denominator). Returns the norm
/// before clipping.
pub(crate) fn clip_grad_norm(grad: &mut [f32], max_norm: f32) -> f64 {
    let norm = grad.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt();
    if norm > max_norm as f64 {
        let scale = (max_norm as f64 / (norm + 1e-6)) as f32;
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_steps_by_hand() {
        // Step 1, g = 0.5: m = 0.05, v = 0.00025; m^ = 0.5, v^ = 0.25, so
        // p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9 (to 2e-8).
        // Step 2, g = -1: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975;
        // m^ = -0.055 / 0.19 = -0.289474, v^ = 0.00124975 / 0.001999 = 0.625188,
        // p = 0.9 + 0.1 * 0.289474 / 0.790688 = 0.936610.
        let mut adam = Adam::new(2, 0.1);
        let mut p = [1.0, -2.0];
        adam.step(&mut p, &[0.5, 0.0]);
        assert!((p[0] - 0.9).abs() < 1e-6, "{}", p[0]);
        assert_eq!(p[1], -2.0, "zero gradient, zero moments: no move");
        adam.step(&mut p, &[-1.0, 0.0]);
        assert!((p[0] - 0.936_610).abs() < 1e-5, "{}", p[0]);
    }

    #[test]
    fn clipping_scales_to_the_limit_only_above_it() {
        let mut g = [3.0, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 10.0), 5.0);
        assert_eq!(g, [3.0, 4.0]);
        clip_grad_norm(&mut g, 1.0);
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6, "{g:?}");
    }
}
