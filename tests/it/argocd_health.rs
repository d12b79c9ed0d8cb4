//! The Argo CD health check (charts/sales-operator/argocd/health.lua) run by a
//! real Lua interpreter against SalesPipeline and OrderGenerator objects, the
//! way Argo CD runs it: the live object as the global table `obj`, the script's
//! return value `{ status, message }` as the health, with only the libraries Argo CD's
//! sandbox opens (base, package, table; its safe `os` has only time and date, which the script
//! does not use, so none here), and an object with a deletionTimestamp "Pending deletion"
//! before the script runs. These are fast unit cases on hand-made objects (Lua 5.4 through
//! mlua); tests/it/status_judged_e2e.rs runs the same script in gopher-lua, Argo CD's own
//! runtime, on every version of real objects.

use std::path::PathBuf;

use mlua::{Lua, LuaOptions, StdLib, Table, Value};
use sales_operator::api::conditions::{self, NewCondition, FALSE, READY, RECONCILING, STALLED, TRUE};
use sales_operator::api::manifest::parse_pipeline;
use sales_operator::api::SalesPipelineStatus;

fn project_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn script() -> String {
    project_file("charts/sales-operator/argocd/health.lua")
}

/// JSON as Argo CD hands it to Lua: objects and arrays become tables (arrays
/// 1-indexed), null becomes nil.
fn to_lua(lua: &Lua, json: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(map) => {
            let table = lua.create_table()?;
            for (k, v) in map {
                table.set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}

/// Runs `lua_source` on `obj`; returns (status, message).
fn health_with(lua_source: &str, obj: &serde_json::Value) -> (String, String) {
    // gitops-engine's GetResourceHealth: before any health check.
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return ("Progressing".into(), "Pending deletion".into());
    }
    let lua = Lua::new_with(StdLib::TABLE | StdLib::PACKAGE, LuaOptions::default()).unwrap();
    let value = to_lua(&lua, obj).unwrap();
    lua.globals().set("obj", value).unwrap();
    let hs: Table = lua.load(lua_source).set_name("health.lua").eval().unwrap();
    (hs.get::<String>("status").unwrap(), hs.get::<Option<String>>("message").unwrap().unwrap_or_default())
}

fn health(obj: &serde_json::Value) -> (String, String) {
    health_with(&script(), obj)
}

/// A SalesPipeline at `generation` whose status (as the operator serialises it)
/// was written for `observed` with `computed` conditions.
fn pipeline(generation: i64, observed: Option<i64>, computed: &[NewCondition]) -> serde_json::Value {
    let mut sp = parse_pipeline(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: sales\n  namespace: shop\nspec: {}\n",
        "test",
    )
    .unwrap();
    sp.metadata.generation = Some(generation);
    if observed.is_some() || !computed.is_empty() {
        sp.status = Some(SalesPipelineStatus {
            observed_generation: observed,
            conditions: conditions::merge(&[], computed, observed, jiff::Timestamp::now()),
            ..Default::default()
        });
    }
    serde_json::to_value(&sp).unwrap()
}

/// A condition as any operator might write it: the script judges reasons it has never seen too.
fn cond(type_: &str, status: &'static str, reason: &str, message: &str) -> NewCondition {
    NewCondition { type_: type_.into(), status, reason: reason.into(), message: message.into() }
}

fn ready() -> Vec<NewCondition> {
    vec![
        cond(READY, TRUE, "Ready", "all 8 components are ready"),
        cond(RECONCILING, FALSE, "Ready", ""),
        cond(STALLED, FALSE, "Ready", ""),
    ]
}

#[test]
fn ready_at_the_current_generation_is_healthy() {
    let (status, message) = health(&pipeline(3, Some(3), &ready()));
    assert_eq!(status, "Healthy");
    assert_eq!(message, "all 8 components are ready");
}

#[test]
fn a_new_object_without_status_is_progressing() {
    let (status, message) = health(&pipeline(1, None, &[]));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "Waiting for the operator to reconcile");
}

#[test]
fn reconciling_is_progressing_with_its_message() {
    let computed = [
        cond(READY, FALSE, "Reconciling", "stream: waiting for CREATING to become ACTIVE"),
        cond(RECONCILING, TRUE, "Creating", "stream: creating shop-sales-orders"),
        cond(STALLED, FALSE, "Reconciling", ""),
    ];
    let (status, message) = health(&pipeline(1, Some(1), &computed));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "stream: creating shop-sales-orders");
}

#[test]
fn stalled_is_degraded_with_the_stalled_message() {
    let aws = "bucket: NoSuchBucket: The specified bucket does not exist (no-such-bucket-anywhere-42)";
    let computed = [
        cond(READY, FALSE, "PermanentAwsError", aws),
        cond(RECONCILING, FALSE, "Stalled", "waiting for a spec change"),
        cond(STALLED, TRUE, "PermanentAwsError", aws),
    ];
    let (status, message) = health(&pipeline(2, Some(2), &computed));
    assert_eq!(status, "Degraded");
    assert_eq!(message, aws);
}

#[test]
fn ready_for_an_older_generation_is_progressing_until_observed() {
    let (status, message) = health(&pipeline(4, Some(3), &ready()));
    assert_eq!(status, "Progressing");
    assert_eq!(message, "Waiting for the operator to observe generation 4");
}

#[test]
fn stalled_on_an_older_generation_is_progressing_after_a_spec_fix() {
    let computed = [cond(READY, FALSE, "PermanentAwsError", "bad"), cond(STALLED, TRUE, "PermanentAwsError", "bad")];
    assert_eq!(health(&pipeline(5, Some(4), &computed)).0, "Progressing");
}

#[test]
fn a_paused_pipeline_is_suspended_once_the_operator_says_so() {
    let paused = [
        cond(READY, TRUE, "Paused", "paused (spec.paused): nothing is changed; stream: differs"),
        cond(RECONCILING, FALSE, "Paused", ""),
        cond(STALLED, FALSE, "NotStalled", ""),
    ];
    let mut obj = pipeline(2, Some(2), &paused);
    obj["spec"]["paused"] = serde_json::json!(true);
    assert_eq!(
        health(&obj),
        ("Suspended".to_string(), "paused (spec.paused): nothing is changed; stream: differs".to_string())
    );
    // Paused in the spec but not yet observed: Progressing, as for any spec change.
    let mut unobserved = pipeline(3, Some(2), &paused);
    unobserved["spec"]["paused"] = serde_json::json!(true);
    assert_eq!(health(&unobserved).0, "Progressing");
}

#[test]
fn a_paused_generator_whose_pods_are_still_stopping_is_progressing() {
    let pausing = [
        cond(READY, FALSE, "Pausing", "pausing: stopping the generator pods"),
        cond(RECONCILING, TRUE, "Pausing", "pausing: stopping the generator pods"),
        cond(STALLED, FALSE, "NotStalled", ""),
    ];
    let mut obj = pipeline(2, Some(2), &pausing);
    obj["kind"] = serde_json::json!("OrderGenerator");
    obj["spec"] = serde_json::json!({"tableName": "t", "paused": true});
    assert_eq!(health(&obj), ("Progressing".to_string(), "pausing: stopping the generator pods".to_string()));
}

#[test]
fn a_not_observed_yet_status_is_progressing() {
    let mut obj = pipeline(1, None, &[]);
    obj["status"] = serde_json::json!({"observedGeneration": -1});
    assert_eq!(health(&obj).0, "Progressing");
}

#[test]
fn the_script_needs_no_library_outside_argo_cds_sandbox() {
    // The harness itself: a script using the string library fails here, as in Argo CD.
    let lua = Lua::new_with(StdLib::TABLE | StdLib::PACKAGE, LuaOptions::default()).unwrap();
    assert!(lua.load("return string.format('%d', 1)").eval::<String>().is_err());
    assert!(lua.load("return os.getenv('HOME')").eval::<Option<String>>().is_err());
}

#[test]
fn a_pipeline_being_deleted_is_progressing() {
    let mut obj = pipeline(2, Some(2), &ready());
    obj["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
    assert_eq!(health(&obj).0, "Progressing");
}

#[test]
fn order_generator_health_follows_the_same_conditions() {
    let og = |ready: &str, stalled: &str, observed: i64| {
        serde_json::json!({
            "apiVersion": "sales-operator.dev/v1alpha1",
            "kind": "OrderGenerator",
            "metadata": { "name": "orders", "namespace": "shop", "generation": 2 },
            "spec": { "pipelineRef": { "name": "sales" }, "ordersPerSecond": 10.0, "replicas": 2 },
            "status": {
                "observedGeneration": observed,
                "replicas": 2,
                "readyReplicas": 2,
                "conditions": [
                    { "type": "Ready", "status": ready, "reason": "Available", "message": "2/2 replicas ready" },
                    { "type": "Stalled", "status": stalled, "reason": "PipelineNotFound", "message": "SalesPipeline shop/sales not found" }
                ]
            }
        })
    };
    assert_eq!(health(&og("True", "False", 2)), ("Healthy".into(), "2/2 replicas ready".into()));
    assert_eq!(health(&og("False", "True", 2)), ("Degraded".into(), "SalesPipeline shop/sales not found".into()));
    assert_eq!(health(&og("True", "False", 1)).0, "Progressing");
}

#[test]
fn argocd_cm_example_embeds_the_script_for_both_kinds() {
    let cm: serde_json::Value = serde_saphyr::from_str(&project_file("examples/argocd/argocd-cm.yaml")).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    for kind in ["SalesPipeline", "OrderGenerator"] {
        let key = format!("resource.customizations.health.sales-operator.dev_{kind}");
        let embedded = cm["data"][&key].as_str().unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(embedded, script(), "{key} differs from charts/sales-operator/argocd/health.lua");
        // And the embedded text is what runs.
        assert_eq!(health_with(embedded, &pipeline(1, Some(1), &ready())).0, "Healthy");
    }
}

#[test]
fn argocd_applications_point_at_the_chart_and_an_example_pipeline() {
    let operator: serde_json::Value =
        serde_saphyr::from_str(&project_file("examples/argocd/application-operator.yaml")).unwrap();
    assert_eq!(operator["kind"], "Application");
    let chart = operator["spec"]["source"]["path"].as_str().unwrap();
    assert!(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(chart).join("Chart.yaml").is_file(), "{chart}");

    let pipeline: serde_json::Value =
        serde_saphyr::from_str(&project_file("examples/argocd/application-pipeline.yaml")).unwrap();
    let source = &pipeline["spec"]["source"];
    let file = format!("{}/{}", source["path"].as_str().unwrap(), source["directory"]["include"].as_str().unwrap());
    let manifest: serde_json::Value = serde_saphyr::from_str(&project_file(&file)).unwrap();
    assert_eq!(manifest["kind"], "SalesPipeline", "{file}");
}
