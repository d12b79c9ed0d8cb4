//! `sales-operator query`: run one of a pipeline's named Athena queries and
//! print its result.
//!
//! The workgroup, database, table and result location come from the same
//! naming code the reconciler uses ([`PipelineCtx`], the analytics
//! component's desired state), so the query runs where `apply` installed
//! the named queries.

use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use kube::ResourceExt;

use crate::api::manifest::{self, ManifestError};
use crate::aws::analytics::Workgroups;
use crate::aws::{self, AwsError, AwsResultExt, AwsSettings, CallLog, Clients, Component, PipelineCtx, Refs};
use crate::named_queries;

/// Arguments of `sales-operator query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The pipeline whose workgroup and table to query: a SalesPipeline manifest
    /// (YAML file), or the name of a SalesPipeline in the cluster.
    #[arg(long)]
    pub pipeline: String,
    /// Namespace of a pipeline looked up in the cluster (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Kubeconfig for the cluster lookup (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Built-in named query (revenue_by_product_hour, top_products, order_rate_per_minute,
    /// average_order_value_by_region, sales_projection).
    pub query: String,
    /// Query parameter, e.g. --param hours=6 (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// How often to ask Athena whether the query has finished.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub poll_interval: Duration,
    /// Give up (and stop the query) after this long.
    #[arg(long, default_value = "10m", value_parser = crate::parse_duration)]
    pub timeout: Duration,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Result formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("unknown query {name:?}; the named queries are: {known}")]
    UnknownQuery { name: String, known: String },
    #[error("query {query} has no parameter {param:?}; its parameters are: {known}")]
    UnknownParam { query: String, param: String, known: String },
    #[error("no SalesPipeline {name} in namespace {namespace}")]
    NotFound { name: String, namespace: String },
    #[error("reading SalesPipeline {name} from the cluster: {reason}")]
    Cluster { name: String, reason: String },
    #[error("parameter {param} must be a positive whole number, not \"{value}\"")]
    InvalidParam { param: String, value: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("athena query {id} {state}: {reason}")]
    Finished { id: String, state: String, reason: String },
    #[error("athena query {id} did not finish within {waited:?} (stopped it)")]
    Timeout { id: String, waited: Duration },
    #[error("writing the result: {0}")]
    Output(String),
    /// Athena answered without a single column, which a real Athena never does for a SELECT.
    #[error("athena query {id} returned no columns: {why}")]
    NoColumns { id: String, why: String },
}

/// How long a query Athena failed with `NO_NODES_AVAILABLE` is started again (its engine, Trino,
/// answers that while it has no node to schedule on: a transient state).
pub const NO_NODES_RETRY: Duration = Duration::from_secs(120);

/// Whether an endpoint override is a local emulator rather than one of AWS's own endpoints.
pub fn is_emulator(endpoint: &str) -> bool {
    !(endpoint.contains(".amazonaws.com") || endpoint.contains(".api.aws"))
}

/// What to tell a user whose query ran against an emulator (or answered without columns):
/// moto's Athena runs no SQL, and where the SQL does run locally.
pub fn emulator_note(endpoint: Option<&str>) -> String {
    let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
    format!(
        "the Athena endpoint{at} answered without running any SQL, as the local emulator (moto) does: \
         its Athena stores queries but runs none, so the rows above are not your data. \
         To run the pipeline's named queries locally, use Trino (the engine Athena v3 is built on) \
         as scripts/demo.sh does (README: \"Try it on a fresh machine\"); on AWS, query runs them"
    )
}

/// Where and what to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRequest {
    pub query: String,
    pub workgroup: String,
    pub database: String,
    pub output_location: String,
    pub sql: String,
}

/// The request for built-in query `name` of the pipeline `ctx`.
pub fn request(ctx: &PipelineCtx, name: &str, params: &[(String, String)]) -> Result<QueryRequest, QueryError> {
    let q = named_queries::find(name).ok_or_else(|| QueryError::UnknownQuery {
        name: name.to_string(),
        known: named_queries::BUILT_IN.iter().map(|q| q.name).collect::<Vec<_>>().join(", "),
    })?;
    if let Some((param, _)) = params.iter().find(|(k, _)| !q.params.iter().any(|(p, _)| p == k)) {
        return Err(QueryError::UnknownParam {
            query: name.to_string(),
            param: param.clone(),
            known: if q.params.is_empty() {
                "none".to_string()
            } else {
                q.params.iter().map(|(p, d)| format!("{p} (default {d})")).collect::<Vec<_>>().join(", ")
            },
        });
    }
    // Values go into the SQL text: only whole numbers of hours / rows.
    if let Some((param, value)) = params.iter().find(|(_, v)| !v.parse::<u32>().is_ok_and(|n| n > 0)) {
        return Err(QueryError::InvalidParam { param: param.clone(), value: value.clone() });
    }
    let analytics = Workgroups::desired(ctx, &Refs::default());
    Ok(QueryRequest {
        query: name.to_string(),
        workgroup: analytics.workgroup,
        database: ctx.names.database.clone(),
        output_location: analytics.result_location,
        sql: q.render(&ctx.query_target(), params),
    })
}

/// What a query's state means: `Ok(true)` done, `Ok(false)` still running,
/// an error for FAILED/CANCELLED carrying Athena's reason.
pub fn finished(id: &str, state: Option<&QueryExecutionState>, reason: Option<&str>) -> Result<bool, QueryError> {
    match state {
        Some(QueryExecutionState::Succeeded) => Ok(true),
        Some(s @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => Err(QueryError::Finished {
            id: id.to_string(),
            state: s.as_str().to_string(),
            reason: reason.filter(|r| !r.is_empty()).unwrap_or("Athena gave no reason").to_string(),
        }),
        _ => Ok(false),
    }
}

/// A finished query's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub id: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub data_scanned_bytes: Option<i64>,
}

/// Starts `req`, waits (reporting progress), and fetches every result page. A query Athena
/// fails with `NO_NODES_AVAILABLE` is started again for up to [`NO_NODES_RETRY`].
pub async fn run(
    athena: &aws_sdk_athena::Client,
    req: &QueryRequest,
    poll: Duration,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<QueryResult, QueryError> {
    let begin = Instant::now();
    loop {
        match run_once(athena, req, poll, timeout, &mut progress).await {
            Err(QueryError::Finished { reason, .. })
                if reason.contains("NO_NODES_AVAILABLE") && begin.elapsed() + poll < NO_NODES_RETRY =>
            {
                progress(&format!(
                    "{reason}: the engine has no node to run on yet; starting the query again (for up to {} s)",
                    NO_NODES_RETRY.as_secs()
                ));
                tokio::time::sleep(poll.max(Duration::from_millis(100))).await;
            }
            other => return other,
        }
    }
}

async fn run_once(
    athena: &aws_sdk_athena::Client,
    req: &QueryRequest,
    poll: Duration,
    timeout: Duration,
    progress: &mut impl FnMut(&str),
) -> Result<QueryResult, QueryError> {
    let started = athena
        .start_query_execution()
        .query_string(&req.sql)
        .work_group(&req.workgroup)
        .query_execution_context(QueryExecutionContext::builder().database(&req.database).build())
        .result_configuration(ResultConfiguration::builder().output_location(&req.output_location).build())
        .send()
        .await
        .aws("StartQueryExecution")?;
    let id = started
        .query_execution_id
        .ok_or_else(|| AwsError::permanent("StartQueryExecution", "Athena returned no query execution id"))?;
    progress(&format!("query {} started in workgroup {} (id {id})", req.query, req.workgroup));
    let begin = Instant::now();
    let data_scanned_bytes = loop {
        let out = athena.get_query_execution().query_execution_id(&id).send().await.aws("GetQueryExecution")?;
        let execution = out.query_execution;
        let status = execution.as_ref().and_then(|e| e.status.as_ref());
        let state = status.and_then(|s| s.state.as_ref());
        let reason = status.and_then(|s| s.state_change_reason.as_deref());
        if finished(&id, state, reason)? {
            break execution.and_then(|e| e.statistics).and_then(|s| s.data_scanned_in_bytes);
        }
        if begin.elapsed() >= timeout {
            // Best effort: the timeout is the error that matters.
            let _ = athena.stop_query_execution().query_execution_id(&id).send().await;
            return Err(QueryError::Timeout { id, waited: begin.elapsed() });
        }
        progress(&format!(
            "{} after {:.0?}",
            state.map_or("UNKNOWN", |s| s.as_str()),
            Duration::from_secs(begin.elapsed().as_secs())
        ));
        tokio::time::sleep(poll).await;
    };
    let mut result = QueryResult { id: id.clone(), data_scanned_bytes, ..Default::default() };
    let mut token: Option<String> = None;
    let mut first_page = true;
    loop {
        let out = athena
            .get_query_results()
            .query_execution_id(&id)
            .set_next_token(token.take())
            .send()
            .await
            .aws("GetQueryResults")?;
        if let Some(set) = out.result_set {
            if first_page {
                result.columns = set
                    .result_set_metadata
                    .and_then(|m| m.column_info)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.label.unwrap_or(c.name))
                    .collect();
            }
            for (i, row) in set.rows.unwrap_or_default().into_iter().enumerate() {
                let values: Vec<Option<String>> =
                    row.data.unwrap_or_default().into_iter().map(|d| d.var_char_value).collect();
                // Athena repeats the column names as the first row of a SELECT's result.
                let header = first_page
                    && i == 0
                    && !result.columns.is_empty()
                    && values.iter().map(|v| v.as_deref()).eq(result.columns.iter().map(|c| Some(c.as_str())));
                if !header {
                    result.rows.push(values);
                }
            }
        }
        first_page = false;
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(result)
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The result as text in `format`.
pub fn render(result: &QueryResult, format: Format) -> String {
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    match format {
        Format::Csv => {
            let mut out = result.columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\n";
            for row in &result.rows {
                out += &(row.iter().map(|v| csv_field(&cell(v))).collect::<Vec<_>>().join(",") + "\n");
            }
            out
        }
        Format::Json => {
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                .rows
                .iter()
                .map(|row| {
                    result
                        .columns
                        .iter()
                        .zip(row.iter().map(Some).chain(std::iter::repeat(None)))
                        .map(|(c, v)| {
                            (
                                c.clone(),
                                v.and_then(|v| v.clone()).map_or(serde_json::Value::Null, serde_json::Value::String),
                            )
                        })
                        .collect()
                })
                .collect();
            serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect()).to_string() + "\n"
        }
        Format::Table => {
            let n = result.columns.len().max(result.rows.iter().map(Vec::len).max().unwrap_or(0));
            let mut widths = vec![0; n];
            let lines: Vec<Vec<String>> = std::iter::once(result.columns.clone())
                .chain(result.rows.iter().map(|r| r.iter().map(cell).collect()))
                .collect();
            for line in &lines {
                for (i, v) in line.iter().enumerate() {
                    widths[i] = widths[i].max(v.chars().count());
                }
            }
            let fmt_line = |line: &Vec<String>| {
                let cells: Vec<String> = (0..n)
                    .map(|i| {
                        let v = line.get(i).map_or("", String::as_str);
                        format!("{v:<w$}", w = widths[i])
                    })
                    .collect();
                cells.join("  ").trim_end().to_string() + "\n"
            };
            let mut out = fmt_line(&lines[0]);
            out += &(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ") + "\n");
            for line in &lines[1..] {
                out += &fmt_line(line);
            }
            out
        }
    }
}

/// Human size of a byte count (`1.5 MiB`).
pub fn human_bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Whether `--pipeline` names a SalesPipeline in the cluster rather than a
/// file: no such file, and the text is a Kubernetes object name (lowercase
/// letters, digits, `-` and `.`) without a manifest's extension.
pub fn names_a_cluster_object(pipeline: &str) -> bool {
    let name_like = !pipeline.is_empty()
        && pipeline.len() <= 253
        && pipeline.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && pipeline.starts_with(|c: char| c.is_ascii_alphanumeric());
    let manifest_like = [".yaml", ".yml", ".json"].iter().any(|e| pipeline.ends_with(e));
    name_like && !manifest_like && !std::path::Path::new(pipeline).exists()
}

/// Reads SalesPipeline `name` from the cluster of `kubeconfig` (or the default one).
async fn from_cluster(
    name: &str,
    namespace: Option<&str>,
    kubeconfig: Option<&std::path::Path>,
) -> Result<crate::api::SalesPipeline, QueryError> {
    let cluster = |reason: String| QueryError::Cluster { name: name.to_string(), reason };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| cluster(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| cluster(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer().await.map_err(|e| cluster(e.to_string()))?,
    };
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
    let client = kube::Client::try_from(config).map_err(|e| cluster(e.to_string()))?;
    let api: kube::Api<crate::api::SalesPipeline> = kube::Api::namespaced(client, &namespace);
    match api.get_opt(name).await {
        Ok(Some(mut p)) => {
            // The object as the cluster has it names its namespace; make sure of it.
            p.metadata.namespace = Some(namespace);
            Ok(p)
        }
        Ok(None) => Err(QueryError::NotFound { name: name.to_string(), namespace }),
        Err(e) => Err(cluster(e.to_string())),
    }
}

/// The whole command: read the manifest (or the cluster's object), run the query, print the result on
/// stdout and progress and data scanned on stderr.
pub async fn main(args: &QueryArgs, settings: AwsSettings) -> Result<(), QueryError> {
    let pipeline = if names_a_cluster_object(&args.pipeline) {
        from_cluster(&args.pipeline, args.namespace.as_deref(), args.kubeconfig.as_deref()).await?
    } else {
        manifest::read_pipeline(&args.pipeline)?
    };
    let namespace = pipeline.namespace().unwrap_or_else(|| "default".to_string());
    let settings = settings.for_pipeline(&namespace, &pipeline.name_any());
    let sdk = aws::connect(&settings).await?;
    let clients = Clients::new(&sdk, pipeline.spec.region.as_deref(), CallLog::default())?;
    let ctx = PipelineCtx::new(&namespace, &pipeline.name_any(), &pipeline.spec, &clients.region);
    let req = request(&ctx, &args.query, &args.params)?;
    let result = run(&clients.athena, &req, args.poll_interval, args.timeout, |p| eprintln!("{p}")).await?;
    let endpoint = settings.endpoint_url.as_deref();
    if result.columns.is_empty() {
        return Err(QueryError::NoColumns { id: result.id, why: emulator_note(endpoint) });
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(render(&result, args.output).as_bytes()).map_err(|e| QueryError::Output(e.to_string()))?;
    stdout.flush().map_err(|e| QueryError::Output(e.to_string()))?;
    eprintln!(
        "{} rows; data scanned: {}",
        result.rows.len(),
        result.data_scanned_bytes.map_or("unknown".to_string(), human_bytes)
    );
    if endpoint.is_some_and(is_emulator) {
        eprintln!("note: {}", emulator_note(endpoint));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_argument_is_a_cluster_name_unless_it_is_a_file() {
        assert!(names_a_cluster_object("shop-orders"));
        assert!(names_a_cluster_object("orders.v2"));
        assert!(!names_a_cluster_object("pipeline.yaml"));
        assert!(!names_a_cluster_object("examples/pipeline.yaml"));
        assert!(!names_a_cluster_object("Shop"));
        assert!(!names_a_cluster_object(""));
        assert!(!names_a_cluster_object("src"), "an existing path is a file");
    }

    #[test]
    fn failed_and_cancelled_queries_are_errors_with_athenas_reason() {
        let e = finished("q1", Some(&QueryExecutionState::Failed), Some("TABLE_NOT_FOUND: line 1:15: Table x"))
            .unwrap_err();
        assert_eq!(e.to_string(), "athena query q1 FAILED: TABLE_NOT_FOUND: line 1:15: Table x");
        let e = finished("q2", Some(&QueryExecutionState::Cancelled), None).unwrap_err();
        assert_eq!(e.to_string(), "athena query q2 CANCELLED: Athena gave no reason");
        assert!(finished("q3", Some(&QueryExecutionState::Succeeded), None).unwrap());
        assert!(!finished("q4", Some(&QueryExecutionState::Running), None).unwrap());
        assert!(!finished("q5", Some(&QueryExecutionState::Queued), None).unwrap());
        assert!(!finished("q6", None, None).unwrap());
    }

    fn result() -> QueryResult {
        QueryResult {
            id: "q".into(),
            columns: vec!["product_name".into(), "revenue".into()],
            rows: vec![vec![Some("Laptop".into()), Some("1234.50".into())], vec![Some("a,\"b\"".into()), None]],
            data_scanned_bytes: Some(2048),
        }
    }

    #[test]
    fn table_output_aligns_columns_under_a_header() {
        assert_eq!(
            render(&result(), Format::Table),
            "product_name  revenue\n------------  -------\nLaptop        1234.50\na,\"b\"\n"
        );
    }

    #[test]
    fn csv_output_quotes_fields_and_json_output_keeps_nulls() {
        assert_eq!(render(&result(), Format::Csv), "product_name,revenue\nLaptop,1234.50\n\"a,\"\"b\"\"\",\n");
        let v: serde_json::Value = serde_json::from_str(&render(&result(), Format::Json)).unwrap();
        assert_eq!(v[0]["revenue"], "1234.50");
        assert_eq!(v[1]["revenue"], serde_json::Value::Null);
    }

    #[test]
    fn an_emulator_endpoint_is_told_apart_from_aws_and_pointed_at_trino() {
        assert!(is_emulator("http://127.0.0.1:5000"));
        assert!(!is_emulator("https://athena.eu-west-1.amazonaws.com"));
        let note = emulator_note(Some("http://127.0.0.1:5000"));
        assert!(note.contains("runs none") && note.contains("Trino") && note.contains("scripts/demo.sh"), "{note}");
    }

    #[test]
    fn params_are_key_value_and_sizes_are_human() {
        assert_eq!(parse_param("hours=6").unwrap(), ("hours".to_string(), "6".to_string()));
        assert!(parse_param("hours").is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    mod mocked {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use aws_sdk_athena::operation::{
            get_query_execution::GetQueryExecutionOutput, get_query_results::GetQueryResultsOutput,
            start_query_execution::StartQueryExecutionOutput,
        };
        use aws_sdk_athena::types::{
            ColumnInfo, Datum, QueryExecution, QueryExecutionStatistics, QueryExecutionStatus, ResultSet,
            ResultSetMetadata, Row,
        };
        use aws_smithy_mocks::{mock, Rule};

        use crate::aws::analytics::tests::mock_athena as athena;

        use super::super::*;

        fn req() -> QueryRequest {
            QueryRequest {
                query: "top_products".into(),
                workgroup: "wg".into(),
                database: "db".into(),
                output_location: "s3://b/athena-results/".into(),
                sql: "SELECT 1".into(),
            }
        }

        fn start() -> Rule {
            mock!(aws_sdk_athena::Client::start_query_execution)
                .match_requests(|r| {
                    r.work_group() == Some("wg")
                        && r.query_execution_context().and_then(|c| c.database()) == Some("db")
                        && r.result_configuration().and_then(|c| c.output_location()) == Some("s3://b/athena-results/")
                })
                .then_output(|| StartQueryExecutionOutput::builder().query_execution_id("q-1").build())
        }

        /// GetQueryExecution answering `states` in turn (the last one from then on).
        fn states(states: &'static [(QueryExecutionState, Option<&'static str>)]) -> Rule {
            let calls = Arc::new(AtomicUsize::new(0));
            mock!(aws_sdk_athena::Client::get_query_execution).then_output(move || {
                let (state, reason) = &states[calls.fetch_add(1, Ordering::SeqCst).min(states.len() - 1)];
                let status = QueryExecutionStatus::builder()
                    .state(state.clone())
                    .set_state_change_reason(reason.map(String::from));
                GetQueryExecutionOutput::builder()
                    .query_execution(
                        QueryExecution::builder()
                            .query_execution_id("q-1")
                            .status(status.build())
                            .statistics(QueryExecutionStatistics::builder().data_scanned_in_bytes(4096).build())
                            .build(),
                    )
                    .build()
            })
        }

        #[tokio::test]
        async fn a_query_that_fails_after_running_reports_athenas_reason() {
            let (start, get) = (
                start(),
                states(&[
                    (QueryExecutionState::Queued, None),
                    (QueryExecutionState::Running, None),
                    (QueryExecutionState::Failed, Some("COLUMN_NOT_FOUND: line 3:8: Column 'x' cannot be resolved")),
                ]),
            );
            let client = athena(&[&start, &get]);
            let mut progress = Vec::new();
            let e = run(&client, &req(), Duration::ZERO, Duration::from_secs(30), |p| progress.push(p.to_string()))
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "athena query q-1 FAILED: COLUMN_NOT_FOUND: line 3:8: Column 'x' cannot be resolved"
            );
            assert_eq!(start.num_calls(), 1);
            assert_eq!(get.num_calls(), 3);
            assert!(progress[1].starts_with("QUEUED") && progress[2].starts_with("RUNNING"), "{progress:?}");
        }

        #[tokio::test]
        async fn a_query_without_a_node_to_run_on_is_started_again() {
            let (start, get) = (
                start(),
                states(&[
                    (QueryExecutionState::Failed, Some("NO_NODES_AVAILABLE: No nodes available to run query")),
                    (QueryExecutionState::Succeeded, None),
                ]),
            );
            let results =
                mock!(aws_sdk_athena::Client::get_query_results).then_output(|| page(&[&["Laptop", "10.00"]], None));
            let client = athena(&[&start, &get, &results]);
            let mut progress = Vec::new();
            let result =
                run(&client, &req(), Duration::ZERO, Duration::from_secs(30), |p| progress.push(p.to_string()))
                    .await
                    .unwrap();
            assert_eq!(start.num_calls(), 2, "started again after NO_NODES_AVAILABLE");
            assert_eq!(result.rows, vec![vec![Some("Laptop".to_string()), Some("10.00".to_string())]]);
            assert!(progress.iter().any(|p| p.contains("starting the query again")), "{progress:?}");
        }

        #[tokio::test]
        async fn a_cancelled_query_is_an_error() {
            let (start, get) = (start(), states(&[(QueryExecutionState::Cancelled, Some("Query cancelled by user"))]));
            let client = athena(&[&start, &get]);
            let e = run(&client, &req(), Duration::ZERO, Duration::from_secs(30), |_| {}).await.unwrap_err();
            assert_eq!(e.to_string(), "athena query q-1 CANCELLED: Query cancelled by user");
        }

        fn page(rows: &[&[&str]], next: Option<&str>) -> GetQueryResultsOutput {
            let columns =
                ["product_name", "revenue"].map(|c| ColumnInfo::builder().name(c).r#type("varchar").build().unwrap());
            let rows = rows
                .iter()
                .map(|r| {
                    Row::builder()
                        .set_data(Some(r.iter().map(|v| Datum::builder().var_char_value(*v).build()).collect()))
                        .build()
                })
                .collect();
            GetQueryResultsOutput::builder()
                .result_set(
                    ResultSet::builder()
                        .result_set_metadata(
                            ResultSetMetadata::builder().set_column_info(Some(columns.to_vec())).build(),
                        )
                        .set_rows(Some(rows))
                        .build(),
                )
                .set_next_token(next.map(String::from))
                .build()
        }

        #[tokio::test]
        async fn results_are_read_across_pages_without_the_header_row() {
            let (start, get) = (start(), states(&[(QueryExecutionState::Succeeded, None)]));
            let first = mock!(aws_sdk_athena::Client::get_query_results)
                .match_requests(|r| r.next_token().is_none())
                .then_output(|| page(&[&["product_name", "revenue"], &["Laptop", "10.00"]], Some("t2")));
            let second = mock!(aws_sdk_athena::Client::get_query_results)
                .match_requests(|r| r.next_token() == Some("t2"))
                .then_output(|| page(&[&["Phone", "5.50"]], None));
            let client = athena(&[&start, &get, &first, &second]);
            let result = run(&client, &req(), Duration::ZERO, Duration::from_secs(30), |_| {}).await.unwrap();
            assert_eq!(result.columns, ["product_name", "revenue"]);
            assert_eq!(
                result.rows,
                vec![
                    vec![Some("Laptop".to_string()), Some("10.00".to_string())],
                    vec![Some("Phone".to_string()), Some("5.50".to_string())]
                ]
            );
            assert_eq!(result.data_scanned_bytes, Some(4096));
        }
    }
}
