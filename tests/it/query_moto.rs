//! `sales-operator query` against the moto server: the query goes to the
//! pipeline's workgroup, database and result location, and the result
//! (canned through moto's `/moto-api/static/athena/query-results`, since
//! moto runs no SQL) is printed as a table.

use crate::support::apply;
use crate::support::kube_env;
crate::support::moto::own_server!();

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::aws::PipelineCtx;
use sales_operator::reconcile::Reconciler;
use sales_operator::run_query::{self as query, Format};

use apply::converge;
use moto::{reconciler, REGION};

/// Tests here share moto's queue of canned results: one at a time.
static CANNED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An applied pipeline with a unique name; its manifest text and context.
async fn applied_pipeline(c: &Reconciler) -> (String, PipelineCtx) {
    let name = moto::unique("q");
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  region: {REGION}\n"
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    let ctx = PipelineCtx::new("shop", &name, &p.spec, REGION);
    let out = converge(c, &ctx).await;
    assert!(out.ready(), "{:#?}", out.components);
    (yaml, ctx)
}

/// Queues one canned Athena result in moto: the header row, then `rows`.
fn canned_result(columns: &[&str], rows: &[&[&str]]) {
    let row = |values: &[&str]| serde_json::json!({"Data": values.iter().map(|v| serde_json::json!({"VarCharValue": v})).collect::<Vec<_>>()});
    let body = serde_json::json!({
        "region": REGION,
        "results": [{
            "rows": std::iter::once(row(columns)).chain(rows.iter().map(|r| row(r))).collect::<Vec<_>>(),
            "column_info": columns.iter().map(|c| serde_json::json!({
                "CatalogName": "hive", "SchemaName": "s", "TableName": "t", "Name": c, "Label": c,
                "Type": "varchar", "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": true
            })).collect::<Vec<_>>(),
        }],
    })
    .to_string();
    let addr = moto::endpoint().trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /moto-api/static/athena/query-results HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201") || response.starts_with("HTTP/1.0 201"), "{response}");
}

#[tokio::test]
async fn query_runs_in_the_pipelines_workgroup_database_and_result_location() {
    let _one = CANNED.lock().await;
    let c = reconciler().await;
    let (_, ctx) = applied_pipeline(&c).await;
    let req = query::request(&ctx, "top_products", &[("hours".into(), "3".into())]).unwrap();
    canned_result(&["product_name", "revenue"], &[&["Laptop", "50677.40"], &["Phone", "40258.30"]]);

    let mut progress = Vec::new();
    let result = query::run(&c.aws.athena, &req, Duration::from_millis(10), Duration::from_secs(30), |p| {
        progress.push(p.to_string())
    })
    .await
    .unwrap();

    let execution = c
        .aws
        .athena
        .get_query_execution()
        .query_execution_id(&result.id)
        .send()
        .await
        .unwrap()
        .query_execution
        .unwrap();
    assert_eq!(execution.work_group.as_deref(), Some(ctx.names.workgroup.as_str()));
    assert_eq!(execution.query.as_deref(), Some(req.sql.as_str()));
    assert!(req.sql.contains(&format!("FROM {}", ctx.names.glue_table)) && req.sql.contains("(3 * INTERVAL"));
    let database = execution.query_execution_context.and_then(|x| x.database);
    assert_eq!(database.as_deref(), Some(ctx.names.database.as_str()));
    let wg = c.aws.athena.get_work_group().work_group(&ctx.names.workgroup).send().await.unwrap().work_group.unwrap();
    let wg_location = wg.configuration.and_then(|x| x.result_configuration).and_then(|r| r.output_location);
    let location = execution.result_configuration.and_then(|r| r.output_location);
    let wg_location = wg_location.unwrap();
    assert_eq!(req.output_location, wg_location);
    // Athena (and moto) report the result object: `<result location><query id>.csv`.
    assert_eq!(
        location,
        Some(format!("{wg_location}{}.csv", result.id)),
        "the query writes where the workgroup keeps its results"
    );
    assert!(progress[0].contains(&ctx.names.workgroup), "{progress:?}");

    assert_eq!(result.columns, ["product_name", "revenue"]);
    assert_eq!(
        query::render(&result, Format::Table),
        "product_name  revenue\n------------  --------\nLaptop        50677.40\nPhone         40258.30\n"
    );
    assert_eq!(result.data_scanned_bytes, Some(0));
}

#[tokio::test]
async fn query_command_prints_the_result_and_data_scanned_and_rejects_unknown_queries_and_manifests() {
    let _one = CANNED.lock().await;
    let c = reconciler().await;
    let (yaml, _) = applied_pipeline(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .args(["query", "--pipeline", file.to_str().unwrap(), "--poll-interval", "10ms"])
            .args(args)
            .envs(moto::aws_env())
            .output()
            .unwrap()
    };

    canned_result(&["region", "store_id", "average_order_value"], &[&["eu-west", "store-paris", "612.5"]]);
    let out = run(&["average_order_value_by_region", "-o", "csv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "region,store_id,average_order_value\neu-west,store-paris,612.5\n"
    );
    assert!(stderr.contains("data scanned: 0 B"), "{stderr}");

    let out = run(&["no_such_query"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown query \"no_such_query\"") && stderr.contains("sales_projection"), "{stderr}");

    let out = run(&["top_products", "--param", "days=2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no parameter \"days\"") && stderr.contains("hours (default 24)"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["query", "--pipeline", dir.path().join("missing.yaml").to_str().unwrap(), "top_products"])
        .envs(moto::aws_env())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unreadable manifest is exit 2, as for apply");
}

#[tokio::test]
async fn applied_workgroup_holds_every_named_query_with_its_database_and_sql_and_status_lists_them() {
    let c = reconciler().await;
    let (yaml, ctx) = applied_pipeline(&c).await;
    let ids = c
        .aws
        .athena
        .list_named_queries()
        .work_group(&ctx.names.workgroup)
        .send()
        .await
        .unwrap()
        .named_query_ids
        .unwrap_or_default();
    let mut installed = std::collections::BTreeMap::new();
    for id in ids {
        let q = c.aws.athena.get_named_query().named_query_id(&id).send().await.unwrap().named_query.unwrap();
        installed.insert(q.name.clone(), q);
    }
    assert_eq!(installed.len(), sales_operator::named_queries::BUILT_IN.len());
    for want in sales_operator::named_queries::BUILT_IN {
        let q = &installed[want.name];
        assert_eq!(q.database, ctx.names.database, "{}", want.name);
        let target = ctx.query_target();
        assert_eq!(q.query_string, want.render(&target, &[]), "{}", want.name);
        assert!(q.query_string.contains("dt >= format_datetime("), "{}: pruned", want.name);
        assert_eq!(q.work_group.as_deref(), Some(ctx.names.workgroup.as_str()), "{}", want.name);
    }

    // The demo reads them back with the emulator venv's boto3 (scripts/named_query.py): that
    // client must still speak the protocol moto serves (boto3 1.44.18 moved Athena to
    // rest-json, which moto 5.2.5 answers with 404; scripts/moto.sh pins boto3).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = Command::new("bash").arg(root.join("scripts/moto.sh")).arg("venv").output().unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let python = std::path::Path::new(String::from_utf8_lossy(&venv.stdout).trim()).join("bin/python");
    let want = &sales_operator::named_queries::BUILT_IN[0];
    let out = Command::new(python)
        .arg(root.join("scripts/named_query.py"))
        .args([ctx.names.workgroup.as_str(), want.name])
        .envs(moto::aws_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/named_query.py: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), installed[want.name].query_string.trim_end());

    // `apply` (in sync now) reports them in the status.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sales-operator"))
        .args(["apply", "-f", file.to_str().unwrap(), "-o", "json", "--wait", "0"])
        .envs(moto::aws_env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut want: Vec<&str> = sales_operator::named_queries::BUILT_IN.iter().map(|q| q.name).collect();
    want.sort();
    assert_eq!(status["analytics"]["namedQueries"], serde_json::json!(want), "{status:#}");
    assert_eq!(status["analytics"]["workgroup"], ctx.names.workgroup.as_str());
}

#[tokio::test]
async fn query_command_looks_a_pipeline_up_by_name_in_the_cluster() {
    let env = kube_env::KubeEnv::shared();
    env.apply_crds(&[&kube_env::project_dir().join("crds")]);
    let ns = env.create_namespace("query");
    let _one = CANNED.lock().await;
    let c = reconciler().await;
    let name = moto::unique("k");
    let yaml = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  region: {REGION}\n"
    );
    let p = parse_pipeline(&yaml, "test").unwrap();
    let ctx = PipelineCtx::new(&ns, &name, &p.spec, REGION);
    assert!(converge(&c, &ctx).await.ready());
    let applied = env.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sales-operator"))
            .args(["query", "--kubeconfig", env.kubeconfig().to_str().unwrap(), "--poll-interval", "10ms"])
            .args(args)
            .envs(moto::aws_env())
            .output()
            .unwrap()
    };

    canned_result(&["product_name", "revenue"], &[&["Laptop", "10.00"]]);
    let out = run(&["--pipeline", &name, "-n", &ns, "top_products", "-o", "csv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "product_name,revenue\nLaptop,10.00\n");
    assert!(stderr.contains(&ctx.names.workgroup), "ran in the cluster pipeline's workgroup: {stderr}");

    let out = run(&["--pipeline", "no-such-pipeline", "-n", &ns, "top_products"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("no SalesPipeline no-such-pipeline in namespace {ns}")), "{stderr}");
}
