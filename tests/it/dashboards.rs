//! The chart's Grafana dashboard (files/dashboards/sales-operator.json, a sidecar ConfigMap) and
//! PrometheusRule: the dashboard is well-formed for Grafana (JSON, unique panel ids, every query
//! on the `${datasource}` variable, the namespace and pipeline variables), the objects render
//! with their values, and every metric a dashboard query, a template variable or an alert selects
//! is one the operator exports. The metric names come from Prometheus's own PromQL parser
//! (tests/promql-names, built by scripts/monitoring-tools.sh), and the exported ones from the
//! operator's own /metrics rendering ([`exported_metric_names`]).

use crate::support::helm_chart::{chart_dir, documents, template};
use crate::support::kube_env::{project_dir, KubeEnv};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sales_operator::aws::CallLog;
use sales_operator::events::Feed;
use sales_operator::telemetry::{Metrics, PipelineData};
use serde_json::Value;

const ALL_FEATURES: &str = "charts/sales-operator/ci/all-features-values.yaml";
const DASHBOARD: &str = "files/dashboards/sales-operator.json";

/// The alerts of the chart's PrometheusRule (values `prometheusRule.alerts`).
const ALERTS: [&str; 7] = [
    "SalesPipelineDataStale",
    "SalesPipelineStageFailures",
    "SalesPipelineDataDegraded",
    "SalesOperatorReconcileErrors",
    "SalesOperatorAwsCallErrors",
    "SalesOperatorChangeEventsDown",
    "SalesOperatorDataHealthChecksFailing",
];

/// What the operator's `/metrics` renders with every family it can have present: one
/// change-event queue (its metrics exist only with queues), a reconcile, a failure and the
/// pipeline counts recorded.
fn operator_exposition() -> String {
    let feed = Arc::new(Feed::new(vec!["https://sqs.eu-west-1.amazonaws.com/123456789012/q".into()]));
    let metrics = Metrics::new(CallLog::default(), Some(feed));
    metrics.reconciled("SalesPipeline", "ok", Duration::from_millis(20));
    metrics.failed("SalesPipeline", "AwsError");
    metrics.set_pipelines([(("123456789012".to_string(), "True"), 1)].into_iter().collect());
    let data = PipelineData {
        state: "flowing",
        freshness_seconds: Some(61.0),
        records: vec![("pipe", 10.0), ("stream", 10.0), ("delivery", 10.0)],
        failures: vec![("pipe", 0.0), ("delivery", 0.0)],
        iterator_age_seconds: Some(0.5),
    };
    metrics.data_health("shop", "sales", Ok(data));
    metrics.render().expect("the operator renders its metrics")
}

/// The metric names the operator exports, as Prometheus stores them: from the `# TYPE` lines of
/// its own rendering ([`operator_exposition`]).
fn exported_metric_names() -> BTreeSet<String> {
    names_in_exposition(&operator_exposition())
}

/// The sample names an OpenMetrics/Prometheus text exposition's `# TYPE` lines declare: a
/// counter `x` is scraped as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`, an info
/// as `x_info`, a gauge as `x`.
fn names_in_exposition(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { panic!("bad TYPE line {line:?}") };
        let suffixes: &[&str] = match kind {
            // The text format 0.0.4 names a counter with its _total already.
            "counter" if name.ends_with("_total") => &[""],
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
            "summary" => &["", "_sum", "_count"],
            "info" => &["_info"],
            "gauge" | "stateset" | "unknown" | "untyped" => &[""],
            other => panic!("unknown metric type {other:?} in {line:?}"),
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The names of the samples of an exposition (every non-comment line).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// Prometheus's PromQL parser (tests/promql-names), built once.
fn promql_names_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(project_dir().join("scripts/monitoring-tools.sh"))
            .arg("promql-names")
            .output()
            .expect("scripts/monitoring-tools.sh");
        assert!(
            out.status.success(),
            "scripts/monitoring-tools.sh promql-names: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string()
    })
}

/// The metric names each expression selects, by Prometheus's parser; Err with the parser's
/// message for an expression that does not parse.
fn metric_names(exprs: &[String]) -> Vec<Result<BTreeSet<String>, String>> {
    let mut child = Command::new(promql_names_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promql-names");
    let mut input = String::new();
    for e in exprs {
        input.push_str(&serde_json::to_string(e).unwrap());
        input.push('\n');
    }
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promql-names: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), exprs.len());
    lines
        .into_iter()
        .map(|v| match v["error"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(v["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()),
        })
        .collect()
}

/// A Grafana query as PromQL: Grafana's interval variables replaced by a duration (the other
/// variables sit inside label matchers' strings, where PromQL takes them as they are).
fn as_promql(expr: &str) -> String {
    ["$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}", "$__range", "${__range}"]
        .iter()
        .fold(expr.to_string(), |e, v| e.replace(v, "5m"))
}

/// Every problem with `exprs` (named by where they come from): an expression Prometheus cannot
/// parse, or a metric the operator does not export.
fn unexported(exprs: &[(String, String)], exported: &BTreeSet<String>) -> Vec<String> {
    let promql: Vec<String> = exprs.iter().map(|(_, e)| as_promql(e)).collect();
    let mut problems = vec![];
    for ((place, expr), names) in exprs.iter().zip(metric_names(&promql)) {
        match names {
            Err(e) => problems.push(format!("{place}: does not parse ({e}): {expr}")),
            Ok(names) if names.is_empty() => problems.push(format!("{place}: selects no metric: {expr}")),
            Ok(names) => {
                for n in names.difference(exported) {
                    problems.push(format!("{place}: {n} is not a metric the operator exports"));
                }
            }
        }
    }
    problems
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(chart_dir().join(DASHBOARD)).expect("the dashboard file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows' collapsed panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = vec![];
    for p in dashboard["panels"].as_array().expect("panels") {
        all.push(p);
        all.extend(p["panels"].as_array().into_iter().flatten());
    }
    all
}

/// The dashboard's PromQL: each panel target's `expr` and the selector of each query variable's
/// `label_values(selector, label)`.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut exprs = vec![];
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {:?}: a target without expr", p["title"]));
            exprs.push((format!("panel {:?} target {}", p["title"], t["refId"]), expr.to_string()));
        }
    }
    for v in dashboard["templating"]["list"].as_array().expect("templating.list") {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"].as_str().or(v["query"].as_str()).expect("a query variable's query");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(selector, label): {query}", v["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap_or_else(|| panic!("{query}: no metric selector"));
        assert!(!label.trim().is_empty(), "{query}");
        exprs.push((format!("variable {}", v["name"]), selector.trim().to_string()));
    }
    exprs
}

/// The rules of the rendered PrometheusRule, by alert (or record) name.
fn rules(docs: &[Value]) -> BTreeMap<String, Value> {
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule");
    let mut rules = BTreeMap::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap().to_string();
            assert!(rules.insert(name.clone(), r.clone()).is_none(), "{name} twice");
        }
    }
    rules
}

fn all_features(env: &KubeEnv, extra: &[&str]) -> Vec<Value> {
    let values = project_dir().join(ALL_FEATURES);
    let mut args = vec!["-f", values.to_str().unwrap()];
    args.extend_from_slice(extra);
    documents(&template(env, "ops", &args))
}

#[test]
fn the_exported_names_are_those_the_operator_renders() {
    let text = operator_exposition();
    let names = names_in_exposition(&text);
    // Every sample the operator renders is one of the names its TYPE lines declare.
    let samples = sample_names(&text);
    assert!(samples.is_subset(&names), "samples not declared: {:?}", samples.difference(&names).collect::<Vec<_>>());
    for n in [
        "sales_operator_reconciles_total",
        "sales_operator_reconcile_duration_seconds_bucket",
        "sales_operator_build_info",
        "sales_operator_events_up",
        "sales_operator_aws_calls_total",
        "sales_operator_pipeline_freshness_seconds",
        "sales_operator_pipeline_records",
        "sales_operator_pipeline_failures",
        "sales_operator_pipeline_iterator_age_seconds",
        "sales_operator_pipeline_data_flowing",
        "sales_operator_data_health_checks_total",
    ] {
        assert!(names.contains(n), "{n} not in {names:?}");
    }
    assert!(!names.contains("sales_operator_reconciles"), "a counter is scraped with _total only");
}

#[test]
fn the_dashboard_is_grafana_json_with_unique_panels_on_the_datasource_variable() {
    let d = dashboard();
    assert_eq!(d["uid"], "sales-operator");
    let panels = panels(&d);
    let mut ids = BTreeSet::new();
    for p in &panels {
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("panel {:?} has no id", p["title"]));
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        if p["type"] == "row" {
            assert!(p.get("targets").is_none(), "a row queries nothing: {}", p["title"]);
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {:?}", p["title"]);
        assert_eq!(p["datasource"]["type"], "prometheus", "panel {:?}", p["title"]);
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {:?} has no targets", p["title"]));
        assert!(!targets.is_empty(), "panel {:?}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {:?} target {}", p["title"], t["refId"]);
        }
    }
    let titles: BTreeSet<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Freshness",
        "Data state",
        "Records per stage",
        "Failures per stage",
        "Kinesis iterator age",
        "Reconciles/s by result",
        "Reconcile errors/s by error",
        "Reconcile duration p95",
        "Pipelines by Ready status",
        "AWS calls/s by service and outcome",
        "AWS retries/s",
        "Change-event queue up",
        "Change events/s by outcome",
        "Build info",
    ] {
        assert!(titles.contains(t), "no panel {t:?}: {titles:?}");
    }
    let vars: BTreeMap<&str, &Value> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap(), v)).collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for v in ["namespace", "pipeline"] {
        let q = vars[v]["query"]["query"].as_str().unwrap();
        assert!(q.starts_with("label_values(sales_operator_pipeline_") && q.ends_with(&format!(", {v})")), "{q}");
        assert_eq!(vars[v]["datasource"]["uid"], "${datasource}");
    }
    // Each panel of the pipelines row follows the namespace and pipeline variables.
    let mut row = "";
    let mut followed = 0;
    for p in &panels {
        if p["type"] == "row" {
            row = p["title"].as_str().unwrap();
            continue;
        }
        if row.starts_with("Pipelines") {
            for t in p["targets"].as_array().unwrap() {
                let e = t["expr"].as_str().unwrap();
                assert!(e.contains("namespace=~\"$namespace\"") && e.contains("pipeline=~\"$pipeline\""), "{e}");
                followed += 1;
            }
        }
    }
    assert!(followed >= 5, "{followed}");
}

#[test]
fn every_metric_of_the_dashboard_and_the_alerts_is_one_the_operator_exports() {
    let env = KubeEnv::shared();
    let exported = exported_metric_names();
    let d = dashboard();
    let mut exprs = dashboard_queries(&d);
    assert!(exprs.len() >= 17, "{exprs:?}");
    for (name, rule) in rules(&all_features(env, &[])) {
        exprs.push((format!("rule {name}"), rule["expr"].as_str().unwrap().to_string()));
    }
    let problems = unexported(&exprs, &exported);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The check finds a made-up metric, and does not take labels, functions or keywords for metrics.
    let synthetic = [
        (
            "made-up".to_string(),
            "sum by (namespace) (rate(sales_operator_pipeline_made_up_total[$__rate_interval]))".into(),
        ),
        (
            "labels".to_string(),
            "sum by (sales_operator_imaginary) (rate(sales_operator_reconciles_total{sales_operator_fake=\"x\"}[5m])) \
             > on (kind) group_left count without (le) (sales_operator_reconcile_duration_seconds_bucket offset 5m)"
                .into(),
        ),
        ("histogram base".to_string(), "sales_operator_reconcile_duration_seconds".into()),
        ("broken".to_string(), "sum(rate(sales_operator_reconciles_total[5m])".into()),
    ];
    let problems = unexported(&synthetic, &exported);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("made-up: sales_operator_pipeline_made_up_total is not"), "{problems:#?}");
    assert!(
        problems[1].starts_with("histogram base: sales_operator_reconcile_duration_seconds is not"),
        "{problems:#?}"
    );
    assert!(problems[2].starts_with("broken: does not parse"), "{problems:#?}");
}

#[test]
fn the_dashboard_config_map_carries_the_sidecar_label_and_the_file() {
    let env = KubeEnv::shared();
    let docs = all_features(env, &[]);
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("the dashboards ConfigMap");
    assert_eq!(cm["metadata"]["name"], "sales-operator-dashboards");
    assert_eq!(cm["metadata"]["namespace"], "ops");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Operators");
    let file = std::fs::read_to_string(chart_dir().join(DASHBOARD)).unwrap();
    assert_eq!(cm["data"]["sales-operator.json"].as_str().unwrap(), file.trim_end(), "the file, unchanged");

    let docs = all_features(
        env,
        &[
            "--set",
            "dashboards.label=dashboards",
            "--set",
            "dashboards.labelValue=sales",
            "--set",
            "dashboards.namespace=monitoring",
        ],
    );
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["dashboards"], "sales");
    assert!(cm["metadata"]["labels"].get("grafana_dashboard").is_none());
    // Off by default, as the PrometheusRule.
    let kinds: BTreeSet<String> =
        documents(&template(env, "ops", &[])).iter().filter_map(|d| d["kind"].as_str().map(String::from)).collect();
    assert!(!kinds.contains("ConfigMap") && !kinds.contains("PrometheusRule"), "{kinds:?}");
}

#[test]
fn the_prometheus_rule_has_each_alert_with_severity_summary_and_description() {
    let env = KubeEnv::shared();
    let docs = all_features(env, &[]);
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = rules(&docs);
    let names: BTreeSet<&str> = rules.keys().map(String::as_str).collect();
    let mut expected: BTreeSet<&str> = ALERTS.into_iter().collect();
    expected.insert("SalesPipelineNoRecords");
    assert_eq!(names, expected, "the chart's alerts and the all-features values' additional one");
    for alert in ALERTS {
        let r = &rules[alert];
        assert!(r["labels"]["severity"].as_str().is_some_and(|s| !s.is_empty()), "{alert}: {r}");
        assert!(r["for"].as_str().is_some_and(|s| !s.is_empty()), "{alert}: {r}");
        for a in ["summary", "description"] {
            let text = r["annotations"][a].as_str().unwrap_or_else(|| panic!("{alert}: no {a}"));
            assert!(text.contains("{{ $labels.namespace }}") || a == "description", "{alert} {a}: {text}");
            if alert.starts_with("SalesPipeline") {
                assert!(text.contains("{{ $labels.namespace }}/{{ $labels.pipeline }}"), "{alert} {a}: {text}");
            }
        }
    }
    assert!(rules["SalesPipelineDataStale"]["expr"].as_str().unwrap().ends_with("> 600"), "the values' threshold");
    assert_eq!(rules["SalesOperatorDataHealthChecksFailing"]["labels"]["severity"], "info");
    assert_eq!(rules["SalesPipelineDataDegraded"]["labels"]["severity"], "critical");

    // The defaults: 900 s; an alert turned off is left out.
    let docs = documents(&template(
        env,
        "ops",
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.alerts.SalesOperatorChangeEventsDown.enabled=false",
        ],
    ));
    let rules = self::rules(&docs);
    assert!(rules["SalesPipelineDataStale"]["expr"].as_str().unwrap().ends_with("> 900"));
    assert_eq!(rules["SalesPipelineDataStale"]["for"], "10m");
    assert!(!rules.contains_key("SalesOperatorChangeEventsDown"));
    assert_eq!(rules.len(), ALERTS.len() - 1);
}
