//! What eval composes itself, decided on validation: pure, no I/O, unit-tested.
//!
//! - **Ensemble.** When every expected model type reported and at least two
//!   trained models succeeded with prediction files and passed the baseline
//!   gate (a model worse than naive is no member), their validation
//!   forecasts are combined with weights fitted on validation; the ensemble
//!   is promoted only when it beats every member *and* the naive baselines on
//!   validation (composite score, dataset-scaled units, on the validation rows
//!   every member forecast).
//! - **Never without forecasts.** When no model (nor the ensemble) beats the
//!   naive baselines, the best naive forecast on validation is promoted as a
//!   BASELINE model, so inference always answers and the monitor has a model
//!   to watch.
//!
//! ## Why inverse-MSE weights
//! `w_i ∝ 1 / MSE_i` on validation (Bates and Granger's combination with the
//! error correlations ignored). It is closed-form and always gives positive
//! weights summing to 1, so the ensemble is a convex mix of forecasts that
//! each passed training; a member that is twice as bad gets half the weight
//! but is never switched off by noise. Least-squares (even non-negative)
//! weights fit a few hundred validation rows of strongly correlated members
//! and routinely put all weight on one member or swing between runs, i.e.
//! they overfit validation; with 2-3 members the simple combination is known
//! to be hard to beat out of sample (the "forecast combination puzzle").

use std::collections::BTreeMap;

use contracts::promotion::{EnsembleReport, NaiveNrmse, ScoredOn, WeightedMember};
use contracts::{EvalProtocol, Metrics, ModelTraining, ModelType, TrainingStatus, TrainingSuccess};
use nn::Naive;

use crate::predictions::{self, Predictions};
use crate::score::{self, Candidate, Outcome, Weights};

/// The status of a candidate eval composed.
pub const COMPOSED: &str = "COMPOSED";

/// A trained model's prediction files, when its run has them.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub validation: Option<Predictions>,
    pub test: Option<Predictions>,
}

/// Everything a plan is made from.
pub struct Inputs<'a> {
    pub reports: &'a BTreeMap<ModelType, ModelTraining>,
    pub weights: &'a Weights,
    pub gate: bool,
    /// Whether every expected model type reported (an ensemble needs them all).
    pub complete: bool,
    pub files: &'a BTreeMap<ModelType, Files>,
    /// Each target's scale in the dataset scaler (`None`: scaler unavailable).
    pub scales: Option<&'a BTreeMap<String, f64>>,
    /// The training part's actuals (the naive forecasts' look-back on test;
    /// empty: only the prediction files' own rows).
    pub history: &'a predictions::History,
}

/// What to build for the winner, when eval composes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Build {
    /// An ensemble of these members (in `EnsembleReport::members` order).
    Ensemble { report: EnsembleReport },
    /// A naive model shaped like `reference`'s artifact.
    Baseline { naive: Naive, name: String, reference: ModelType, validation: Metrics, test: Metrics },
}

/// The outcome of planning: the decision's extra parts and what to build.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub ensemble: Option<EnsembleReport>,
    pub fallback: Option<String>,
    pub naive_test_nrmse: BTreeMap<String, NaiveNrmse>,
    /// Set when the winner is composed: `outcome.winner` points at its
    /// candidate, whose `run_id` is filled in once it is built.
    pub build: Option<Build>,
}

fn success(ev: &ModelTraining) -> Option<&TrainingSuccess> {
    match &ev.status {
        TrainingStatus::Success(s) => Some(s),
        _ => None,
    }
}

/// Inverse-MSE weights of members with these validation MSEs (see the module
/// docs); members with a zero MSE share all the weight.
pub fn inverse_mse_weights(mse: &[f64]) -> Result<Vec<f64>, String> {
    if mse.is_empty() || mse.iter().any(|m| !m.is_finite() || *m < 0.0) {
        return Err(format!("cannot weight members with validation MSE {mse:?}"));
    }
    let raw: Vec<f64> = if mse.contains(&0.0) {
        mse.iter().map(|&m| if m == 0.0 { 1.0 } else { 0.0 }).collect()
    } else {
        mse.iter().map(|m| 1.0 / m).collect()
    };
    let sum: f64 = raw.iter().sum();
    Ok(raw.iter().map(|w| w / sum).collect())
}

/// Plan for one set: fill test NRMSE in `outcome`'s candidates, try an
/// ensemble, and fall back to a naive baseline when nothing passes the gate.
/// A composed winner is pushed onto `outcome.candidates` (with an empty
/// `run_id`) and `outcome.winner`/`reason` point at it.
pub fn plan(inputs: &Inputs<'_>, outcome: &mut Outcome) -> Plan {
    let mut plan = Plan::default();
    for c in outcome.candidates.iter_mut() {
        if let Some(test) = inputs.files.get(&c.model_type).and_then(|f| f.test.as_ref()) {
            c.test_nrmse = test.nrmse();
        }
    }
    plan.naive_test_nrmse = naive_test_nrmse(inputs);
    // A model that fails the baseline gate is no member: it would drag the mix towards a forecast
    // already judged worse than naive (on El Born, Prophet at 1.5 NRMSE took 13% of the weight).
    let gated_out: Vec<ModelType> =
        outcome.candidates.iter().filter(|c| c.passed_gate == Some(false)).map(|c| c.model_type).collect();
    match try_ensemble(inputs, &gated_out) {
        Ok(Some(report)) => {
            if report.beats_members {
                push(outcome, ensemble_candidate(&report), &report.note);
                plan.build = Some(Build::Ensemble { report: report.clone() });
            }
            plan.ensemble = Some(report);
        }
        Ok(None) => {}
        Err(why) => {
            outcome.reason.push_str(&format!(" (no ensemble: {why})"));
        }
    }
    let any_success = outcome.candidates.iter().any(|c| c.status == "SUCCESS");
    if outcome.winner.is_none() && inputs.gate && any_success {
        match choose_baseline(inputs) {
            Ok((build, candidate)) => {
                let why = format!("no model beat the naive baselines on validation: promoted {}", candidate.note);
                push(outcome, candidate, &why);
                plan.fallback = Some(why);
                plan.build = Some(build);
            }
            Err(why) => outcome.reason.push_str(&format!(" (no baseline fallback: {why})")),
        }
    }
    plan
}

fn push(outcome: &mut Outcome, candidate: Candidate, reason: &str) {
    outcome.candidates.push(candidate);
    outcome.winner = Some(outcome.candidates.len() - 1);
    outcome.reason = reason.to_string();
}

fn ensemble_candidate(r: &EnsembleReport) -> Candidate {
    Candidate {
        model_type: ModelType::Ensemble,
        run_id: String::new(),
        status: COMPOSED.into(),
        metrics: r.test,
        score: Some(r.validation_score),
        baseline: None,
        passed_gate: Some(true),
        note: r.note.clone(),
        scored_on: ScoredOn::Validation,
        validation: Some(r.validation),
        choice: r.members.iter().map(|m| (m.model_type.to_string(), format!("weight {:.4}", m.weight))).collect(),
        test_nrmse: r.test_nrmse.clone(),
    }
}

/// The ensemble of every trained SUCCESS with prediction files that passed
/// the baseline gate (none of `gated_out`), scored on validation; `Ok(None)`
/// when there is nothing to combine.
fn try_ensemble(inputs: &Inputs<'_>, gated_out: &[ModelType]) -> Result<Option<EnsembleReport>, String> {
    let members: Vec<(ModelType, &ModelTraining)> = inputs
        .reports
        .iter()
        .filter(|(m, ev)| m.is_trained() && success(ev).is_some() && !gated_out.contains(m))
        .map(|(m, ev)| (*m, ev))
        .collect();
    if members.len() < 2 {
        return Ok(None);
    }
    if !inputs.complete {
        return Err("not every expected model type reported".into());
    }
    let scales = inputs.scales.ok_or("the dataset scaler is unavailable")?;
    let mut val = Vec::new();
    let mut test = Vec::new();
    for (m, _) in &members {
        let f = inputs.files.get(m);
        val.push(f.and_then(|f| f.validation.as_ref()).ok_or(format!("{m} has no validation predictions"))?);
        test.push(f.and_then(|f| f.test.as_ref()).ok_or(format!("{m} has no test predictions"))?);
    }
    let val = predictions::align(&val)?;
    let test = predictions::align(&test)?;
    let rows = val[0].timestamps.len();
    if rows == 0 || test[0].timestamps.is_empty() {
        return Err("the members' prediction files share no timestamp".into());
    }
    let member_metrics: Vec<Metrics> = val.iter().map(|p| p.scaled_metrics(scales)).collect::<Result<_, _>>()?;
    let w = inverse_mse_weights(&member_metrics.iter().map(|m| m.mse).collect::<Vec<_>>())?;
    let validation = predictions::weighted(&val, &w).scaled_metrics(scales)?;
    let test_weighted = predictions::weighted(&test, &w);
    let test_metrics = test_weighted.scaled_metrics(scales)?;
    let validation_score = inputs.weights.score(&validation);
    let member_scores: Vec<f64> = member_metrics.iter().map(|m| inputs.weights.score(m)).collect();
    let best_member = member_scores.iter().copied().fold(f64::INFINITY, f64::min);
    // The gate compares RMSE, as for single models (crate::score).
    let naive = members
        .iter()
        .filter_map(|(_, ev)| success(ev))
        .map(|s| score::best_baseline_rmse(score::basis(s).2))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let beats_naive = !inputs.gate || naive.as_ref().is_none_or(|(_, b)| validation.rmse < *b);
    let beats_members = validation_score < best_member && beats_naive;
    let note = match (validation_score < best_member, beats_naive) {
        (true, true) => format!(
            "ENSEMBLE has validation score {validation_score:.6}, below every member (best {best_member:.6}) and the naive baselines, on {rows} validation rows"
        ),
        (false, _) => format!(
            "the ensemble's validation score {validation_score:.6} does not beat its best member's {best_member:.6}"
        ),
        (true, false) => {
            let (name, b) = naive.unwrap_or_default();
            format!("the ensemble's validation RMSE {:.6} does not beat the {name} baseline's {b:.6}", validation.rmse)
        }
    };
    Ok(Some(EnsembleReport {
        members: members
            .iter()
            .zip(&w)
            .zip(&member_scores)
            .map(|(((m, ev), weight), s)| WeightedMember {
                model_type: *m,
                run_id: ev.run_id.clone(),
                weight: *weight,
                validation_score: *s,
            })
            .collect(),
        rows,
        validation,
        validation_score,
        test: Some(test_metrics),
        test_nrmse: test_weighted.nrmse(),
        beats_members,
        run_id: None,
        note,
    }))
}

/// The best naive forecast on validation, as a BASELINE candidate shaped like
/// a trained model that forecasts from observations (one step ahead).
fn choose_baseline(inputs: &Inputs<'_>) -> Result<(Build, Candidate), String> {
    let successes: Vec<(ModelType, &TrainingSuccess)> =
        inputs.reports.iter().filter_map(|(m, ev)| success(ev).map(|s| (*m, s))).collect();
    let (reference, s) = successes
        .iter()
        .find(|(_, s)| s.protocol == EvalProtocol::OneStepAhead)
        .or(successes.first())
        .copied()
        .ok_or("no trainer reported SUCCESS")?;
    let (scored_on, _, val_baselines) = score::basis(s);
    let season = inputs
        .files
        .get(&reference)
        .and_then(|f| f.validation.as_ref().or(f.test.as_ref()))
        .and_then(|p| predictions::season_rows(&p.timestamps));
    let last = (Naive::LastValue, "last_value", val_baselines.last_value, s.baselines.last_value);
    let mut chosen = last;
    let mut note = String::new();
    if let (Some(v), Some(t)) = (val_baselines.seasonal_naive, s.baselines.seasonal_naive)
        && inputs.weights.score(&v) < inputs.weights.score(&last.2)
    {
        match season.filter(|&n| n >= s.model.output_len as usize && n <= 10_000) {
            Some(n) => chosen = (Naive::SeasonalNaive { season: n }, "seasonal_naive", v, t),
            None => note = " (seasonal naive scored better but its season is unknown or too short: last value)".into(),
        }
    }
    let (naive, name, validation, test) = chosen;
    let score = inputs.weights.score(&validation);
    let on = if scored_on == ScoredOn::Validation { "validation" } else { "test" };
    let candidate = Candidate {
        model_type: ModelType::Baseline,
        run_id: String::new(),
        status: COMPOSED.into(),
        metrics: Some(test),
        score: Some(score),
        baseline: Some((name.to_string(), score)),
        passed_gate: Some(true),
        note: format!("the {name} forecast ({on} score {score:.6}){note}"),
        scored_on,
        validation: (scored_on == ScoredOn::Validation).then_some(validation),
        choice: BTreeMap::from([("naive".to_string(), name.to_string())]),
        test_nrmse: plan_naive_nrmse(inputs, name),
    };
    Ok((Build::Baseline { naive, name: name.into(), reference, validation, test }, candidate))
}

/// The naive forecasts' test NRMSE per target, from the first test file's
/// actuals looking back into the training part (or the validation rows).
fn naive_test_nrmse(inputs: &Inputs<'_>) -> BTreeMap<String, NaiveNrmse> {
    let Some(f) = inputs.files.values().find(|f| f.test.is_some()) else { return BTreeMap::new() };
    let mut history = f.validation.as_ref().map(predictions::history_of).unwrap_or_default();
    for (t, m) in inputs.history {
        history.entry(t.clone()).or_default().extend(m.iter().map(|(k, v)| (*k, *v)));
    }
    f.test.as_ref().map(|t| t.naive_nrmse(&history)).unwrap_or_default()
}

/// The chosen naive forecast's test NRMSE per target.
fn plan_naive_nrmse(inputs: &Inputs<'_>, name: &str) -> BTreeMap<String, f64> {
    naive_test_nrmse(inputs)
        .into_iter()
        .filter_map(|(t, n)| if name == "last_value" { n.last_value } else { n.seasonal_naive }.map(|v| (t, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictions::History;
    use crate::predictions::tests::file;
    use crate::score::tests::success as event;

    fn reports(evs: Vec<ModelTraining>) -> BTreeMap<ModelType, ModelTraining> {
        evs.into_iter().map(|e| (e.model_type, e)).collect()
    }

    static WEIGHTS: Weights = Weights { rmse: 0.5, mae: 0.3, mse: 0.2 };

    /// A complete set with the gate on and the default weights.
    fn inputs<'a>(
        reports: &'a BTreeMap<ModelType, ModelTraining>,
        files: &'a BTreeMap<ModelType, Files>,
        scales: Option<&'a BTreeMap<String, f64>>,
        history: &'a History,
    ) -> Inputs<'a> {
        Inputs { reports, weights: &WEIGHTS, gate: true, complete: true, files, scales, history }
    }

    fn scales() -> BTreeMap<String, f64> {
        BTreeMap::from([("down".to_string(), 10.0)])
    }

    /// Actual 10 + i; `errors[i]` added to the forecast of row i.
    fn files(errors: &[f64]) -> Files {
        let actual: Vec<f64> = (0..errors.len()).map(|i| 10.0 + i as f64).collect();
        let predicted: Vec<f64> = actual.iter().zip(errors).map(|(a, e)| a + e).collect();
        Files { validation: Some(file(0, &predicted, &actual)), test: Some(file(100, &predicted, &actual)) }
    }

    #[test]
    fn inverse_mse_weights_favour_the_better_member_and_sum_to_one() {
        let w = inverse_mse_weights(&[1.0, 3.0]).expect("weights");
        assert!((w[0] - 0.75).abs() < 1e-12 && (w[1] - 0.25).abs() < 1e-12);
        assert_eq!(inverse_mse_weights(&[0.0, 2.0, 0.0]).expect("weights"), [0.5, 0.0, 0.5]);
        assert!(inverse_mse_weights(&[f64::NAN, 1.0]).is_err());
        assert!(inverse_mse_weights(&[]).is_err());
    }

    #[test]
    fn an_ensemble_of_models_with_opposite_errors_beats_them_and_wins() {
        let r = reports(vec![event(ModelType::Gru, 0.1, 1.0, 1), event(ModelType::Lstm, 0.1, 1.0, 1)]);
        // GRU over-forecasts, LSTM under-forecasts by as much: the mean is exact.
        let f = BTreeMap::from([
            (ModelType::Gru, files(&[1.0, -1.0, 1.0, 1.0])),
            (ModelType::Lstm, files(&[-1.0, 1.0, -1.0, -1.0])),
        ]);
        let (s, h) = (scales(), History::new());
        let inputs = inputs(&r, &f, Some(&s), &h);
        let mut outcome = score::decide(&r, inputs.weights, true);
        let plan = plan(&inputs, &mut outcome);
        let report = plan.ensemble.clone().expect("an ensemble was tried");
        assert!(report.beats_members, "{}", report.note);
        assert!(report.validation.mse < 1e-20, "{:?}", report.validation);
        assert!(report.members.iter().all(|m| (m.weight - 0.5).abs() < 1e-12));
        let w = &outcome.candidates[outcome.winner.expect("winner")];
        assert_eq!((w.model_type, w.status.as_str()), (ModelType::Ensemble, COMPOSED));
        assert!(matches!(plan.build, Some(Build::Ensemble { .. })));
        assert!(outcome.candidates.iter().filter(|c| c.status == "SUCCESS").all(|c| c.test_nrmse.contains_key("down")));
    }

    #[test]
    fn a_model_that_fails_the_baseline_gate_is_no_member() {
        // Prophet's validation RMSE (2.0) loses to last value (1.0): it gets no weight,
        // although its errors alone would cancel the others'.
        let r = reports(vec![
            event(ModelType::Gru, 0.1, 1.0, 1),
            event(ModelType::Lstm, 0.1, 1.0, 1),
            event(ModelType::Prophet, 2.0, 1.0, 1),
        ]);
        let f = BTreeMap::from([
            (ModelType::Gru, files(&[1.0, -1.0, 1.0, 1.0])),
            (ModelType::Lstm, files(&[-1.0, 1.0, -1.0, -1.0])),
            (ModelType::Prophet, files(&[5.0, 5.0, 5.0, 5.0])),
        ]);
        let (s, h) = (scales(), History::new());
        let inputs = inputs(&r, &f, Some(&s), &h);
        let mut outcome = score::decide(&r, inputs.weights, true);
        let report = plan(&inputs, &mut outcome).ensemble.expect("an ensemble of the two that passed");
        let members: Vec<ModelType> = report.members.iter().map(|m| m.model_type).collect();
        assert_eq!(members, [ModelType::Gru, ModelType::Lstm]);
        assert!(report.beats_members, "{}", report.note);
    }

    #[test]
    fn an_ensemble_no_better_than_its_best_member_is_not_promoted() {
        let r = reports(vec![event(ModelType::Gru, 0.1, 1.0, 1), event(ModelType::Lstm, 0.2, 1.0, 1)]);
        // Same-signed errors: the mix lies between the two, worse than GRU.
        let f = BTreeMap::from([(ModelType::Gru, files(&[0.1, 0.1, 0.1])), (ModelType::Lstm, files(&[2.0, 2.0, 2.0]))]);
        let (s, h) = (scales(), History::new());
        let inputs = inputs(&r, &f, Some(&s), &h);
        let mut outcome = score::decide(&r, inputs.weights, true);
        let plan = plan(&inputs, &mut outcome);
        assert!(!plan.ensemble.expect("tried").beats_members);
        assert_eq!(outcome.candidates[outcome.winner.expect("winner")].model_type, ModelType::Gru);
        assert_eq!(plan.build, None);
        // Not every type reported: no ensemble is tried, and the reason says why.
        let inputs = Inputs { complete: false, ..inputs };
        let mut outcome = score::decide(&r, inputs.weights, true);
        assert!(super::plan(&inputs, &mut outcome).ensemble.is_none());
        assert!(outcome.reason.contains("no ensemble: not every expected"), "{}", outcome.reason);
    }

    #[test]
    fn when_nothing_beats_naive_the_best_naive_forecast_is_promoted() {
        // Both lose to last value (0.1) on validation; seasonal naive is 0.2.
        let r = reports(vec![event(ModelType::Gru, 0.3, 0.1, 1), event(ModelType::Prophet, 0.4, 0.1, 1)]);
        let f = BTreeMap::from([(ModelType::Gru, files(&[1.0; 30]))]);
        let h = History::new();
        let inputs = Inputs { complete: false, ..inputs(&r, &f, None, &h) };
        let mut outcome = score::decide(&r, inputs.weights, true);
        let plan = plan(&inputs, &mut outcome);
        let w = &outcome.candidates[outcome.winner.expect("a baseline is promoted")];
        assert_eq!((w.model_type, w.status.as_str()), (ModelType::Baseline, COMPOSED));
        let Some(Build::Baseline { naive, reference, .. }) = plan.build else { panic!("{:?}", plan.build) };
        assert_eq!((naive, reference), (Naive::LastValue, ModelType::Gru));
        assert!(plan.fallback.expect("the decision says so").contains("last_value"));
        assert!(w.test_nrmse.contains_key("down"));
        // With seasonal naive best on validation and a known season, it is chosen.
        let mut r = r.clone();
        for ev in r.values_mut() {
            if let TrainingStatus::Success(s) = &mut ev.status {
                let v = s.validation.as_mut().expect("validation");
                v.baselines.seasonal_naive = Some(Metrics { mse: 0.0001, rmse: 0.01, mae: 0.01 });
            }
        }
        let inputs = Inputs { reports: &r, ..inputs };
        let mut outcome = score::decide(&r, inputs.weights, true);
        let Some(Build::Baseline { naive, .. }) = super::plan(&inputs, &mut outcome).build else { panic!() };
        assert_eq!(naive, Naive::SeasonalNaive { season: 24 }, "hourly rows: a day is 24");
        // The gate off: nothing is composed.
        let mut outcome = score::decide(&r, inputs.weights, false);
        assert_eq!(super::plan(&Inputs { gate: false, ..inputs }, &mut outcome).build, None);
    }
}
