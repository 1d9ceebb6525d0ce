//! `flts promote` and `flts rollback`: an operator's promotion, through the
//! same path as eval's ([`promotion::Promoter`]): a new sequence number, the
//! decision record in the promotion history, the pointer, the MLflow tag,
//! model-selected and the registry alias `champion`. Inference orders by the
//! sequence, so it follows a rollback to an older run without a restart.

use anyhow::{Context, bail};
use claim_check::{ClaimCheckStore, S3Args};
use contracts::promotion::{Weights, run_tags};
use contracts::{Metrics, ModelType};
use kafka_utils::{KafkaArgs, Producer};
use mlflow_client::{MlflowArgs, MlflowClient};
use promotion::{Action, CheckError, Promoter};

/// Where promotions go (the same settings eval reads).
#[derive(Debug, Clone, clap::Args)]
pub struct PromotionPlace {
    /// Bucket of the promotion history and the current.json pointers.
    #[arg(long, env = "PROMOTION_BUCKET", default_value = "model-promotion")]
    pub promotion_bucket: String,
    /// MLflow experiment the trainers log to: the run must belong to it.
    #[arg(long = "experiment", env = "MLFLOW_EXPERIMENT", default_value = "flts")]
    pub experiment: String,
    /// Topic of promotion events.
    #[arg(long, env = "MODEL_SELECTED_TOPIC", default_value = contracts::topics::MODEL_SELECTED)]
    pub model_selected_topic: String,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub mlflow: MlflowArgs,
}

/// `flts promote`
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// Dataset identifier.
    #[arg(long)]
    pub identifier: String,
    /// The FINISHED MLflow run to serve (a trainer's run of this dataset).
    #[arg(long)]
    pub run_id: String,
    /// Why (kept in the decision record).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub place: PromotionPlace,
}

/// `flts rollback`
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Dataset identifier.
    #[arg(long)]
    pub identifier: String,
    /// Why (kept in the decision record).
    #[arg(long, default_value = "rollback to the previous champion")]
    pub reason: String,
    #[command(flatten)]
    pub place: PromotionPlace,
}

struct Ctx {
    promoter: Promoter,
    mlflow: MlflowClient,
    experiment: String,
}

fn connect(kafka: &KafkaArgs, place: &PromotionPlace) -> anyhow::Result<Ctx> {
    kafka.validate().context("check Kafka settings")?;
    place.s3.validate().context("check S3 settings")?;
    let mlflow = MlflowClient::new(&place.mlflow).context("create MLflow client")?;
    let producer = Producer::new(kafka, "flts").context("create producer")?;
    let promoter = Promoter::new(
        ClaimCheckStore::new(&place.s3),
        &place.promotion_bucket,
        mlflow.clone(),
        producer,
        &place.model_selected_topic,
    );
    Ok(Ctx { promoter, mlflow, experiment: place.experiment.clone() })
}

fn operator() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "operator".into())
}

/// `flts promote --identifier X --run-id R --reason TEXT`
pub async fn promote(kafka: &KafkaArgs, args: &PromoteArgs) -> anyhow::Result<()> {
    let ctx = connect(kafka, &args.place)?;
    promote_run(&ctx, &args.identifier, &args.run_id, None, Action::Promote, &args.reason).await
}

/// `flts rollback --identifier X [--reason TEXT]`
pub async fn rollback(kafka: &KafkaArgs, args: &RollbackArgs) -> anyhow::Result<()> {
    let ctx = connect(kafka, &args.place)?;
    contracts::topics::validate_identifier(&args.identifier).map_err(anyhow::Error::msg)?;
    let Some(current) = ctx.promoter.current(&args.identifier).await? else {
        bail!("nothing is promoted for `{}`: there is nothing to roll back", args.identifier);
    };
    let history = ctx.promoter.history(&args.identifier).await?;
    let Some(target) = promotion::rollback_target(&history, &current) else {
        bail!(
            "`{}` serves run {} (sequence {}) and no earlier promotion of another run is recorded",
            args.identifier,
            current.run_id,
            current.sequence
        );
    };
    let (run, score) = (target.promotion.run_id.clone(), target.promotion.composite_score);
    println!(
        "rolling `{}` back from run {} (sequence {}) to run {} (sequence {})",
        args.identifier, current.run_id, current.sequence, run, target.promotion.sequence
    );
    promote_run(&ctx, &args.identifier, &run, Some(score), Action::Rollback, &args.reason).await
}

/// Check run `run_id` belongs to `identifier` in the trainers' experiment and
/// records a SUCCESS, then promote it under a new sequence number.
async fn promote_run(
    ctx: &Ctx,
    identifier: &str,
    run_id: &str,
    score: Option<f64>,
    action: Action,
    reason: &str,
) -> anyhow::Result<()> {
    contracts::topics::validate_identifier(identifier).map_err(anyhow::Error::msg)?;
    if run_id.is_empty() || run_id.len() > 64 || !run_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("{run_id:?} is not an MLflow run id");
    }
    let run = ctx.mlflow.get_run(run_id).await.with_context(|| format!("read run {run_id} from MLflow"))?;
    let experiment = ctx.mlflow.get_or_create_experiment(&ctx.experiment).await?;
    if run.info.experiment_id != experiment {
        bail!(
            "run {run_id} is in experiment {}, the trainers log to {experiment} ({})",
            run.info.experiment_id,
            ctx.experiment
        );
    }
    if run.tag(run_tags::IDENTIFIER) != Some(identifier) {
        bail!(
            "run {run_id} is tagged {} = {:?}, not {identifier:?}",
            run_tags::IDENTIFIER,
            run.tag(run_tags::IDENTIFIER)
        );
    }
    let config_hash = run.tag(run_tags::CONFIG_HASH).unwrap_or_default().to_string();
    contracts::topics::validate_config_hash(&config_hash)
        .map_err(|e| anyhow::anyhow!("run {run_id}: tag {}: {e}", run_tags::CONFIG_HASH))?;
    let model_type: ModelType = run
        .tag(run_tags::MODEL_TYPE)
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("run {run_id}: tag {}: {e}", run_tags::MODEL_TYPE))?;
    let what = format!("run {run_id} of {identifier}");
    let s = match promotion::trusted_success(&ctx.mlflow, &run, (identifier, &config_hash, model_type), &what).await {
        Ok(s) => s,
        Err(CheckError::Refused { code, message }) => bail!("refused ({code}): {message}"),
        Err(CheckError::Mlflow(e)) => return Err(e).context("check the run in MLflow"),
    };
    let metrics = Metrics { mse: s.test_mse, rmse: s.test_rmse, mae: s.test_mae };
    let sequence = ctx.promoter.next_sequence(identifier).await?;
    let score = score.unwrap_or_else(|| Weights::default().score(&metrics));
    let decision_object = promotion::history_key(identifier, sequence);
    let p = promotion::selection(run_id, (identifier, &config_hash, model_type), &s, score, sequence, decision_object);
    let version = ctx.promoter.publish(&p, action, reason, &operator()).await?;
    println!(
        "promoted run {run_id} ({model_type}) for `{identifier}` as sequence {sequence}; decision at s3://{}/{}",
        ctx.promoter.bucket(),
        p.decision_object
    );
    match version {
        Some(v) => println!("registry: {} version {} is `{}`", v.name, v.version, promotion::CHAMPION),
        None => println!(
            "registry: registration failed after retries (see the log); the promotion stands, eval's next start completes it"
        ),
    }
    Ok(())
}
