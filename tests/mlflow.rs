//! The MLflow client against the real tracking server: a run with params,
//! metrics, tags and an artifact, found again by search.

use contracts::error::Classified as _;
use flts_tests::*;
use mlflow_client::{KeyValue, Metric, MlflowClient, RunStatus};

#[tokio::test]
async fn run_with_params_metrics_artifact_and_search() {
    let client = MlflowClient::new(&stack().mlflow).expect("client");
    let exp_name = unique("test-exp");
    let exp = client.get_or_create_experiment(&exp_name).await.expect("create experiment");
    assert_eq!(
        client.get_or_create_experiment(&exp_name).await.expect("get experiment"),
        exp,
        "get-or-create is idempotent"
    );

    let hash = unique("hash");
    let run = client.create_run(&exp, "gru-test", &[KeyValue::new("config_hash", &hash)]).await.expect("create run");
    assert!(run.info.artifact_uri.starts_with("mlflow-artifacts:"), "{}", run.info.artifact_uri);

    // 1,500 per-epoch points: more than one log-batch request allows.
    let mut metrics: Vec<Metric> = (0..1500).map(|s| Metric::now("train_loss", 1.0 / (s as f64 + 1.0), s)).collect();
    metrics.push(Metric::now("test_rmse", 0.125, 0));
    let params = vec![KeyValue::new("hidden_size", "128"), KeyValue::new("epochs", "10")];
    client.log_batch(&run.info.run_id, &metrics, &params, &[]).await.expect("log batch");
    client.set_tag(&run.info.run_id, "flts.model_type", "GRU").await.expect("set tag");

    let model = b"\x08\x07fake onnx bytes".to_vec();
    client.upload_artifact(&run.info.artifact_uri, "model/model.onnx", model.clone()).await.expect("upload artifact");
    assert_eq!(client.download_artifact(&run.info.artifact_uri, "model/model.onnx").await.expect("download"), model);
    let listed = client.list_artifacts(&run.info.run_id, "model").await.expect("list artifacts");
    assert!(listed.iter().any(|f| f.path == "model/model.onnx" && !f.is_dir), "{listed:?}");

    client.update_run(&run.info.run_id, RunStatus::Finished).await.expect("finish run");
    let got = client.get_run(&run.info.run_id).await.expect("get run");
    assert_eq!(got.info.status, "FINISHED");
    assert_eq!(got.metric("test_rmse"), Some(0.125));
    assert_eq!(got.metric("train_loss"), Some(1.0 / 1500.0), "latest value of the per-epoch metric");
    assert_eq!(got.param("hidden_size"), Some("128"));
    assert_eq!(got.tag("flts.model_type"), Some("GRU"));

    // A second, worse run; search ordered by the metric finds ours first.
    let other = client.create_run(&exp, "lstm-test", &[KeyValue::new("config_hash", &hash)]).await.expect("create run");
    client.log_batch(&other.info.run_id, &[Metric::now("test_rmse", 0.5, 0)], &[], &[]).await.expect("log");
    let found = client
        .search_runs(
            std::slice::from_ref(&exp),
            &format!("tags.config_hash = '{hash}'"),
            &["metrics.test_rmse ASC"],
            10,
        )
        .await
        .expect("search");
    let ids: Vec<&str> = found.iter().map(|r| r.info.run_id.as_str()).collect();
    assert_eq!(ids, vec![run.info.run_id.as_str(), other.info.run_id.as_str()]);
}

#[tokio::test]
async fn errors_carry_mlflow_code_and_message() {
    let client = MlflowClient::new(&stack().mlflow).expect("client");
    let err = client.get_run("0000000000000000000000000000dead").await.expect_err("no such run");
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("RESOURCE_DOES_NOT_EXIST"), "{err}");
}
