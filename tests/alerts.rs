//! The Prometheus alert rules and the Grafana dashboard stay true to the code:
//! `promtool check rules` passes on deploy/prometheus/alerts*.yml (every file
//! Prometheus loads) and `promtool test rules` on deploy/prometheus/tests/,
//! and every `flts_*` metric an alert or a dashboard panel queries is one a
//! crate registers (`crates/*/src/**/*.rs`).
//! promtool comes with Debian's `prometheus` package (`scripts/stack install`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use flts_tests::repo_root;
use serde_json::Value;

fn prometheus_dir() -> PathBuf {
    repo_root().join("deploy/prometheus")
}

/// `*.yml` files in `dir`, sorted.
fn yml_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    out.sort();
    out
}

/// `(rule files, rule test files)`: the `alerts*.yml` that prometheus.yml
/// loads from deploy/prometheus, and the unit tests in deploy/prometheus/tests.
fn rule_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let rules: Vec<PathBuf> = yml_in(&prometheus_dir())
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("alerts")))
        .collect();
    let tests = yml_in(&prometheus_dir().join("tests"));
    assert!(!rules.is_empty() && !tests.is_empty(), "no alerts*.yml rule files or rule tests");
    (rules, tests)
}

fn promtool(args: &[&str], files: &[PathBuf]) {
    let out = Command::new("promtool")
        .args(args)
        .args(files)
        .current_dir(prometheus_dir())
        .output()
        .unwrap_or_else(|e| panic!("run promtool (Debian package `prometheus`, `scripts/stack install`): {e}"));
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let (rules, tests) = rule_files();
    // Every file prometheus.yml's `alerts*.yml` glob loads must be a rule
    // file: a rule test there would stop Prometheus from starting.
    promtool(&["check", "rules"], &rules);
    promtool(&["test", "rules"], &tests);
}

/// Every metric name a crate registers: the `"flts_..."` string literals of
/// the workspace's sources.
fn exported_metrics() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for lit in text.split("\"flts_").skip(1) {
                    let name: String = lit.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if lit[name.len()..].starts_with('"') {
                        out.insert(format!("flts_{name}"));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for krate in std::fs::read_dir(repo_root().join("crates")).expect("read crates") {
        let src = krate.expect("crate").path().join("src");
        if src.is_dir() {
            walk(&src, &mut out);
        }
    }
    out
}

/// The `flts_*` metric names a PromQL expression uses.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("flts_") {
        let boundary = rest[..i].chars().last().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if boundary {
            out.push(name.clone());
        }
        rest = &rest[i + name.len()..];
    }
    out
}

/// Whether `name` is an exported metric or a series of an exported histogram.
fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s).is_some_and(|b| exported.contains(b)))
}

fn assert_exported(what: &str, expr: &str, exported: &BTreeSet<String>) {
    for m in metrics_in(expr) {
        assert!(is_exported(&m, exported), "{what} queries {m}, which no crate registers: `{expr}`");
    }
}

#[test]
fn every_alert_queries_metrics_the_code_exports() {
    let exported = exported_metrics();
    assert!(exported.contains("flts_kafka_records_consumed_total"), "metric scan found nothing: {exported:?}");
    let (rules, _) = rule_files();
    let mut alerts = 0;
    for file in rules {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&file).expect("read rules")).expect("rules are YAML");
        for group in doc["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let name = rule["alert"].as_str().or(rule["record"].as_str()).expect("alert or record name");
                let expr = rule["expr"].as_str().expect("expr");
                assert_exported(&format!("alert {name}"), expr, &exported);
                alerts += 1;
            }
        }
    }
    assert!(alerts >= 4, "lag, DLQ, drift and stage-down alerts expected, found {alerts}");
}

fn panels(v: &Value, out: &mut Vec<Value>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        panels(p, out);
    }
}

#[test]
fn every_dashboard_panel_queries_metrics_the_code_exports() {
    let exported = exported_metrics();
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut titles = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("read dashboard"))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let mut all = Vec::new();
        panels(&doc, &mut all);
        let mut ids = BTreeSet::new();
        for p in &all {
            let title = p["title"].as_str().expect("panel title").to_string();
            assert!(ids.insert(p["id"].as_i64().expect("panel id")), "duplicate panel id in {title}");
            let targets = p["targets"].as_array().filter(|t| !t.is_empty());
            let targets = targets.unwrap_or_else(|| panic!("panel {title} has no query"));
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {title}: target without expr"));
                assert!(!metrics_in(expr).is_empty(), "panel {title} queries no flts_ metric: {expr}");
                assert_exported(&format!("panel {title}"), expr, &exported);
            }
            titles.push(title);
        }
    }
    for needed in ["lag", "dead-lettered", "Drift"] {
        assert!(titles.iter().any(|t| t.contains(needed)), "no panel about {needed}: {titles:?}");
    }
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        metrics_in("histogram_quantile(0.9, sum by (le) (rate(flts_a_seconds_bucket[5m]))) / my_flts_b + flts_c"),
        ["flts_a_seconds_bucket", "flts_c"]
    );
    let exported: BTreeSet<String> = ["flts_a_seconds".to_string()].into();
    assert!(is_exported("flts_a_seconds_bucket", &exported));
    assert!(!is_exported("flts_a_secondz", &exported));
}
