//! Command-line interface: `crd`, `validate`, `plan`, `apply`, `delete`, ...

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::{CustomResourceExt, ResourceExt};

use sales_operator::api::conditions;
use sales_operator::api::manifest::{self, ManifestError};
use sales_operator::api::{DeletionPolicy, SalesPipeline};
use sales_operator::aws::{self, AwsError, AwsSettings, CallLog, Clients, ComponentKind, PipelineCtx};
use sales_operator::reconcile::{self, Action, Mode, Outcome, Reconciler, Timing, Verb};
use sales_operator::Flag;

/// Builds and runs a real-time sales analytics pipeline on AWS
/// (DynamoDB -> EventBridge Pipe -> Kinesis -> Firehose -> S3 -> Glue -> Athena).
#[derive(Parser, Debug)]
#[command(name = "sales-operator", version = sales_operator::telemetry::VERSION_LINE)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Send every AWS call to this endpoint (a local emulator such as moto).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// AWS region for pipelines that name none (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SALES_OPERATOR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Wait this long after the operator creates or changes an IAM role before a pipe, Firehose
    /// stream or crawler is made to assume it (IAM propagates changes in seconds, not at once).
    #[arg(long, global = true, default_value_t = Flag(reconcile::IAM_SETTLE), env = "SALES_OPERATOR_IAM_SETTLE")]
    pub iam_settle: Flag,
    /// Look again this often at a pipeline waiting on AWS (a resource CREATING, a refusal to retry).
    #[arg(long, global = true, default_value_t = Flag(reconcile::WAIT_PACE), env = "SALES_OPERATOR_AWS_POLL")]
    pub aws_poll: Flag,
    /// Act in AWS as this IAM role (STS AssumeRole with the credentials found), e.g. a role in
    /// the account the pipeline belongs in: arn:aws:iam::ACCOUNT:role/NAME. The session is named
    /// and tagged after the pipeline (docs/identities.md).
    #[arg(long, global = true, value_name = "ROLE_ARN", env = "SALES_OPERATOR_ASSUME_ROLE")]
    pub assume_role: Option<String>,
    /// The ExternalId the role's trust policy asks for (with --assume-role, or iam-policy --trust-policy).
    #[arg(long, global = true, value_name = "ID", env = "SALES_OPERATOR_EXTERNAL_ID")]
    pub external_id: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions (the content of crds/).
    Crd {
        /// Write one file per CRD into this directory instead (`crds/`).
        #[arg(long)]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Print the IAM policy (JSON) the operator's own AWS role needs (docs/iam.md).
    IamPolicy {
        /// Print instead the policy of a role for OrderGenerator pods writing into this table.
        #[arg(long, value_name = "TABLE_ARN", conflicts_with = "name_prefix")]
        generator_table_arn: Option<String>,
        /// Print instead the trust policy of a role the operator assumes (--assume-role) for
        /// this principal: the ARN of the role the operator or CLI runs as, or its account id;
        /// with --external-id, only with that ExternalId.
        #[arg(long, value_name = "PRINCIPAL", conflicts_with_all = ["generator_table_arn", "name_prefix"])]
        trust_policy: Option<String>,
        /// With --trust-policy: a session tag key the role may also be given (an AwsIdentity's
        /// spec.sessionTags), besides the operator's own `sales-operator.dev/pipeline` and
        /// `sales-operator.dev/identity`. Repeat for each key.
        #[arg(long, value_name = "KEY", requires = "trust_policy")]
        session_tag_key: Vec<String>,
        /// Print instead the operator's own policy for acting through AwsIdentities:
        /// sts:AssumeRole and sts:TagSession on these roles (their spec.roleArn) only. Repeat for
        /// each role. An operator that also builds pipelines with its own credentials needs the
        /// plain `iam-policy` too.
        #[arg(long, value_name = "ROLE_ARN", conflicts_with_all = ["generator_table_arn", "name_prefix", "trust_policy"])]
        identity_role: Vec<String>,
        /// Narrow the policy to AWS names starting with PREFIX (the pipelines' spec.namePrefix
        /// must start with it, and any name set in a spec too); docs/iam.md.
        #[arg(long, value_name = "PREFIX")]
        name_prefix: Option<String>,
        /// Print instead the policy `events-setup` needs to create the change-event queue and
        /// rules (docs/change-events.md).
        #[arg(long, conflicts_with_all = ["generator_table_arn", "trust_policy", "identity_role", "name_prefix"])]
        events_setup: bool,
        /// The change-event queue the operator reads (and `--events-setup` creates): the name
        /// given to `events-setup --queue-name`.
        #[arg(long, value_name = "NAME", default_value = sales_operator::events::setup::DEFAULT_EVENTS_QUEUE,
              conflicts_with_all = ["generator_table_arn", "trust_policy", "identity_role"])]
        events_queue: String,
    },
    /// Check a SalesPipeline manifest as the API server would (schema, CEL, names); no AWS call.
    Validate(FileArgs),
    /// Show what `apply` would create, update or replace; changes nothing.
    Plan(FileArgs),
    /// Reconcile a SalesPipeline manifest once against AWS and print its status.
    Apply(ApplyArgs),
    /// Tear down a SalesPipeline's AWS resources, honouring its deletionPolicy.
    Delete(DeleteArgs),
    /// Is data flowing? Read a pipeline's stages' CloudWatch metrics and Firehose's error prefix
    /// once and print the DataFlowing verdict (exit 1 when Degraded); docs/data-health.md.
    DataHealth(DataHealthArgs),
    /// Write random orders into a DynamoDB table at a steady rate (the OrderGenerator workload).
    Generate(sales_operator::generator::command::GenerateArgs),
    /// Run one of a pipeline's named Athena queries and print the result.
    Query(sales_operator::run_query::QueryArgs),
    /// Create (or bring up to date) the SQS queue and EventBridge rules that carry AWS change
    /// events to the operator, in --region; docs/change-events.md.
    EventsSetup(sales_operator::events::setup::SetupArgs),
    /// Run the controller: reconcile SalesPipelines in the cluster (leader election, /metrics, /healthz, /readyz).
    Run(sales_operator::controller::RunArgs),
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// SalesPipeline manifest (YAML).
    #[arg(short = 'f', long = "filename")]
    pub file: String,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Output format of the resulting status.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Keep reconciling until Ready (or stalled) for at most this long, e.g. 10m; 0 = one pass.
    #[arg(long, default_value = "10m", value_parser = sales_operator::parse_duration)]
    pub wait: Duration,
}

#[derive(Args, Debug)]
pub struct DataHealthArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The span of metrics to judge, ending now (AWS publishes them per minute, minutes late).
    #[arg(long, default_value = "5m", value_parser = sales_operator::parse_duration)]
    pub window: Duration,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Override the manifest's deletionPolicy: Retain or Delete (either case).
    #[arg(long, value_enum, ignore_case = true)]
    pub deletion_policy: Option<PolicyArg>,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep deleting for at most this long while AWS is still creating or changing a resource
    /// (a Firehose stream CREATING cannot be deleted yet), e.g. 10m; 0 = one pass.
    #[arg(long, default_value = "10m", value_parser = sales_operator::parse_duration)]
    pub wait: Duration,
}

/// `--deletion-policy`, spelled as in the manifest (`Retain`, `Delete`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    #[value(name = "Retain")]
    Retain,
    #[value(name = "Delete")]
    Delete,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

/// Errors a command ends with; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{component}: {source}")]
    Reconcile { component: ComponentKind, source: AwsError },
    #[error("{0}")]
    Output(String),
    /// AWS left a call unanswered past `--wait`.
    #[error("{0}")]
    NoAnswer(String),
    /// A flag's value is not usable.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Generate(#[from] sales_operator::generator::GeneratorError),
    #[error("{0}")]
    Controller(#[from] sales_operator::controller::RunError),
    #[error("{0}")]
    EventsSetup(#[from] sales_operator::events::setup::SetupError),
}

impl CliError {
    /// 2: bad input; 1: AWS or other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Manifest(_)
            | CliError::Usage(_)
            | CliError::EventsSetup(sales_operator::events::setup::SetupError::QueueName(_)) => 2,
            CliError::Generate(e) => e.exit_code(),
            CliError::Aws(_)
            | CliError::Reconcile { .. }
            | CliError::Output(_)
            | CliError::NoAnswer(_)
            | CliError::Controller(_)
            | CliError::EventsSetup(_) => 1,
        }
    }
}

pub fn init_logging(global: &Global) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    let ansi = sales_operator::telemetry::colour_logs(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Crd { output_dir: None } => {
            for (_, yaml) in crd_documents().map_err(CliError::Output)? {
                print!("---\n{yaml}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { output_dir: Some(dir) } => {
            for (name, yaml) in crd_documents().map_err(CliError::Output)? {
                let path = dir.join(format!("{name}.yaml"));
                std::fs::write(&path, format!("---\n{yaml}"))
                    .map_err(|e| CliError::Output(format!("cannot write {}: {e}", path.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy { trust_policy: Some(principal), session_tag_key, .. } => {
            let account = principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit());
            let arn = principal.starts_with("arn:") && principal.contains(":iam::");
            if !(account || arn) {
                return Err(CliError::Usage(format!(
                    "--trust-policy: {principal} is neither an IAM principal ARN \
                     (arn:aws:iam::123456789012:role/NAME) nor a 12-digit account id"
                )));
            }
            let external_id = external_id(&cli.global)?;
            let policy =
                aws::operator_policy::trust_policy_document(&principal, external_id.as_deref(), &session_tag_key);
            println!("{}", serde_json::to_string_pretty(&policy).map_err(|e| CliError::Output(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy { identity_role, .. } if !identity_role.is_empty() => {
            let roles = identity_role
                .iter()
                .map(|arn| aws::identity::RoleArn::parse(arn))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::Usage(format!("--identity-role: {e}")))?;
            let policy = aws::operator_policy::assume_policy_document(&roles);
            println!("{}", serde_json::to_string_pretty(&policy).map_err(|e| CliError::Output(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy { events_queue, .. }
            if !sales_operator::events::setup::valid_events_queue(&events_queue) =>
        {
            Err(CliError::Usage(format!(
                "--events-queue: {events_queue} is not a queue name events-setup makes (1-{} letters, digits, '-' or '_')",
                sales_operator::events::setup::MAX_EVENTS_QUEUE
            )))
        }
        Command::IamPolicy { events_setup: true, events_queue, .. } => {
            let policy = aws::operator_policy::events_setup_policy_document(&events_queue);
            println!("{}", serde_json::to_string_pretty(&policy).map_err(|e| CliError::Output(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy { generator_table_arn: None, name_prefix, events_queue, .. } => {
            if let Some(p) = name_prefix.as_deref().filter(|p| !aws::operator_policy::valid_name_prefix(p)) {
                return Err(CliError::Usage(format!(
                    "--name-prefix: {p:?} is not a name prefix (1-40 letters, digits or '-', starting with a letter or digit)"
                )));
            }
            print!("{}", aws::operator_policy::policy_json_with(name_prefix.as_deref(), &events_queue));
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy { generator_table_arn: Some(arn), .. } => {
            if !(arn.starts_with("arn:") && arn.contains(":dynamodb:") && arn.contains(":table/")) {
                return Err(CliError::Usage(format!(
                    "--generator-table-arn: {arn} is not a DynamoDB table ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)"
                )));
            }
            let policy = aws::operator_policy::generator_policy_document(&arn);
            println!("{}", serde_json::to_string_pretty(&policy).map_err(|e| CliError::Output(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => {
            let pipeline = manifest::read_pipeline(&args.file)?;
            println!("{} is a valid SalesPipeline", pipeline.name_any());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => plan(&cli.global, &args).await,
        Command::Apply(args) => apply(&cli.global, &args).await,
        Command::Delete(args) => delete(&cli.global, &args).await,
        Command::DataHealth(args) => data_health(&cli.global, &args).await,
        Command::Generate(args) => {
            sales_operator::generator::command::run_cli(&args, &cli_settings(&cli.global, None).await?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(args) => {
            // A manifest's spec.region counts; a cluster object's is read later, by query itself.
            let spec_region = (!sales_operator::run_query::names_a_cluster_object(&args.pipeline))
                .then(|| manifest::read_pipeline(&args.pipeline).ok().and_then(|p| p.spec.region))
                .flatten();
            let settings = cli_settings(&cli.global, spec_region.as_deref()).await?;
            sales_operator::run_query::main(&args, settings).await.map_err(|e| match e {
                sales_operator::run_query::QueryError::Manifest(e) => CliError::Manifest(e),
                e => CliError::Output(e.to_string()),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::EventsSetup(args) => events_setup(&cli.global, &args).await,
        Command::Run(args) => {
            use sales_operator::telemetry::{BUILD_DATE, REVISION, VERSION};
            tracing::info!(version = VERSION, revision = REVISION, built = BUILD_DATE, "sales-operator starting");
            if cli.global.assume_role.is_some() {
                return Err(CliError::Usage(
                    "--assume-role is for apply, plan, delete, query and generate; `run` acts with its own \
                     credentials (IRSA, Pod Identity or the default chain)"
                        .into(),
                ));
            }
            // On EC2 (EKS) the controller may learn its region from instance metadata.
            let settings = AwsSettings { region_from_imds: true, ..aws_settings(&cli.global) };
            sales_operator::controller::run(args, settings, timing(&cli.global)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every CRD of the operator: (metadata.name, YAML).
pub fn crd_documents() -> Result<Vec<(String, String)>, String> {
    // In file-name order, so `crd` prints exactly `cat crds/*.yaml`.
    let mut crds =
        [SalesPipeline::crd(), sales_operator::api::OrderGenerator::crd(), sales_operator::api::AwsIdentity::crd()];
    crds.sort_by_key(|crd| crd.name_any());
    crds.iter()
        .map(|crd| {
            let value = sorted(serde_json::to_value(crd).map_err(|e| e.to_string())?);
            Ok((crd.name_any(), serde_saphyr::to_string(&value).map_err(|e| e.to_string())?))
        })
        .collect()
}

/// `value` with every object's keys sorted, so the generated YAML is byte-for-byte stable.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn aws_settings(global: &Global) -> AwsSettings {
    AwsSettings { region: global.region.clone(), endpoint_url: global.aws_endpoint_url.clone(), ..Default::default() }
}

/// `--assume-role` and `--external-id`, checked.
fn assume(global: &Global) -> Result<Option<aws::identity::Assume>, CliError> {
    let Some(arn) = &global.assume_role else {
        return match &global.external_id {
            Some(_) => Err(CliError::Usage("--external-id: only with --assume-role".into())),
            None => Ok(None),
        };
    };
    let role = aws::identity::RoleArn::parse(arn).map_err(|e| CliError::Usage(format!("--assume-role: {e}")))?;
    Ok(Some(aws::identity::Assume::new(role, external_id(global)?)))
}

/// `--external-id`, checked.
fn external_id(global: &Global) -> Result<Option<String>, CliError> {
    match global.external_id.as_deref() {
        Some(id) if !aws::identity::valid_external_id(id) => Err(CliError::Usage(format!(
            "--external-id: {id} is not an ExternalId (2 to 1224 letters, digits or +=,.@:/_-)"
        ))),
        id => Ok(id.map(str::to_string)),
    }
}

/// How the reconciler paces itself, from the flags.
fn timing(global: &Global) -> Timing {
    Timing { iam_settle: Some(global.iam_settle.0), pace: Some(global.aws_poll.0), iam_window: None }
}

struct Target {
    pipeline: SalesPipeline,
    ctx: PipelineCtx,
    reconciler: Reconciler,
}

/// [`aws_settings`] with the region resolved as the CLI resolves it: `--region`/`AWS_REGION`,
/// `AWS_DEFAULT_REGION`, the profile, else the manifest's `spec.region`; without one, an error
/// that says how to set it, before the SDK is loaded (which would ask EC2 instance metadata,
/// seconds of retries on a laptop).
async fn cli_settings(global: &Global, spec_region: Option<&str>) -> Result<AwsSettings, CliError> {
    let mut settings = AwsSettings { assume: assume(global)?, ..aws_settings(global) };
    if settings.region.is_none() {
        settings.region = aws::region_without_imds()
            .region()
            .await
            .map(|r| r.to_string())
            .or_else(|| spec_region.map(str::to_string));
    }
    if settings.region.is_none() {
        return Err(CliError::Aws(AwsError::permanent(
            "configure",
            "no AWS region: set spec.region in the manifest, pass --region (e.g. --region eu-west-1) or export AWS_REGION=eu-west-1",
        )));
    }
    Ok(settings)
}

async fn target(global: &Global, file: &str) -> Result<Target, CliError> {
    let pipeline = manifest::read_pipeline(file)?;
    let namespace = pipeline.namespace().unwrap_or_else(|| "default".to_string());
    let settings =
        cli_settings(global, pipeline.spec.region.as_deref()).await?.for_pipeline(&namespace, &pipeline.name_any());
    let sdk = aws::connect(&settings).await?;
    let clients = Clients::new(&sdk, pipeline.spec.region.as_deref(), CallLog::default())?;
    let ctx = PipelineCtx::new(&namespace, &pipeline.name_any(), &pipeline.spec, &clients.region);
    Ok(Target { pipeline, ctx, reconciler: Reconciler::new(clients, timing(global)) })
}

/// The ARNs tagged as this pipeline's (`sales-operator.dev/pipeline: <namespace>/<name>`) whose
/// names are none of those its manifest now derives: what a changed `spec.namePrefix` (or a
/// renamed component) leaves behind. Sorted.
async fn resources_under_other_names(t: &Target) -> Vec<String> {
    let index = aws::tagging::TagIndex::fetch_or_empty(&t.reconciler.aws.tagging, &t.ctx).await;
    let n = &t.ctx.names;
    let current = [
        &n.table,
        &n.stream,
        &n.pipe,
        &n.delivery,
        &n.bucket,
        &n.database,
        &n.glue_table,
        &n.crawler,
        &n.workgroup,
        &n.pipe_role,
        &n.firehose_role,
        &n.glue_role,
    ];
    let mut stale: Vec<String> = index
        .arns()
        // A DynamoDB stream's ARN ends in its creation time, not a name.
        .filter(|arn| !arn.contains("/stream/"))
        .filter(|arn| arn.rsplit(['/', ':']).next().is_some_and(|name| !current.iter().any(|c| c.as_str() == name)))
        .map(str::to_string)
        .collect();
    stale.sort();
    stale
}

/// Refuses a manifest whose pipeline has resources under other names, as the cluster refuses a
/// changed `spec.namePrefix` (immutable): applying it would create a second set and orphan the
/// first. The Tagging API can list a resource for a while after its deletion, so the refusal
/// rests on a table the DynamoDB API still has (the data a second set would leave behind);
/// anything else listed is a warning.
async fn refuse_renamed(t: &Target) -> Result<(), CliError> {
    let stale = resources_under_other_names(t).await;
    if stale.is_empty() {
        return Ok(());
    }
    let mut tables_left = Vec::new();
    for arn in stale.iter().filter(|arn| arn.contains(":dynamodb:") && arn.contains(":table/")) {
        let name = arn.rsplit('/').next().unwrap_or_default();
        if t.reconciler.aws.dynamodb.describe_table().table_name(name).send().await.is_ok() {
            tables_left.push(name.to_string());
        }
    }
    let what = format!(
        "SalesPipeline {} has resources under other names than namePrefix {:?} gives ({})",
        t.ctx.identity(),
        t.ctx.names.prefix,
        stale.join(", ")
    );
    if tables_left.is_empty() {
        eprintln!(
            "warning: {what}; the API server refuses a changed spec.namePrefix (immutable). If they are \
             being deleted, the Tagging API may still list them for a while."
        );
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "spec.namePrefix: is immutable: AWS names derive from it, and {what}: apply would create a second \
         set and leave table {} and the rest behind. Keep the namePrefix (and names) they were created \
         with, or delete them first with the manifest that created them (sales-operator delete -f FILE).",
        tables_left.join(", ")
    )))
}

fn print_actions(actions: &[Action]) {
    let mut err = std::io::stderr().lock();
    for a in actions {
        let _ = writeln!(err, "{a}");
    }
}

async fn events_setup(global: &Global, args: &sales_operator::events::setup::SetupArgs) -> Result<ExitCode, CliError> {
    use sales_operator::events::setup;
    if args.print_cloudformation {
        print!("{}", setup::TEMPLATE);
        return Ok(ExitCode::SUCCESS);
    }
    if !setup::valid_events_queue(&args.queue_name) {
        return Err(setup::SetupError::QueueName(args.queue_name.clone()).into());
    }
    let settings = cli_settings(global, None).await?;
    let region = settings.region.clone().unwrap_or_default();
    let sdk = aws::connect(&settings).await?;
    let report = setup::run(&sdk, &args.queue_name).await?;
    let mut out = std::io::stdout().lock();
    for line in setup::report_lines(&report, &region) {
        let _ = writeln!(out, "{line}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn data_health(global: &Global, args: &DataHealthArgs) -> Result<ExitCode, CliError> {
    use sales_operator::dataflow::{self, Health, Window};
    if args.window.is_zero() {
        return Err(CliError::Usage("--window: must be longer than 0 s (e.g. 5m)".into()));
    }
    let t = target(global, &args.file.file).await?;
    let (names, clients) = (&t.ctx.names, &t.reconciler.aws);
    let now = std::time::SystemTime::now();
    let since = now.checked_sub(args.window).unwrap_or(std::time::UNIX_EPOCH);
    let values = dataflow::read(&clients.cloudwatch, names, args.window, now).await?;
    let error_prefix = &t.pipeline.spec.delivery.error_prefix;
    let errors = dataflow::error_objects(&clients.s3, &names.bucket, error_prefix, None, since).await?;
    let window =
        Window { values, newest_error_object: errors.new_keys.last().cloned(), error_objects: errors.new_keys.len() };
    let health = dataflow::judge(&window);
    let condition = health.condition(args.window.as_secs());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}: DataFlowing={} ({}): {}",
        t.pipeline.name_any(),
        condition.status,
        condition.reason,
        condition.message
    );
    let failures: std::collections::BTreeMap<_, _> = window.failures().into_iter().collect();
    for (stage, records) in window.records() {
        let mut line = format!("  {:<9} {}: {} records", stage.as_str(), stage.resource(names), records.round());
        if let Some(n) = failures.get(&stage) {
            line.push_str(&format!(", {} failures", n.round()));
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(age) = window.iterator_age_seconds() {
        let _ = writeln!(out, "  Kinesis reader behind by at most {} s", age.round());
    }
    let _ = writeln!(
        out,
        "  (CloudWatch, the last {} s; errors under s3://{}/{})",
        args.window.as_secs(),
        names.bucket,
        dataflow::error_prefix_root(error_prefix)
    );
    Ok(if matches!(health, Health::Degraded { .. }) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn plan(global: &Global, args: &FileArgs) -> Result<ExitCode, CliError> {
    let t = target(global, &args.file).await?;
    refuse_renamed(&t).await?;
    let outcome = reconcile::reconcile(&t.reconciler, &t.ctx, Mode::Plan).await;
    if let Some((kind, e)) = &outcome.error {
        return Err(CliError::Reconcile { component: *kind, source: e.clone() });
    }
    let (actions, note) = explain_buffer_queries(&outcome.actions);
    let mut out = std::io::stdout().lock();
    if actions.is_empty() {
        let _ = writeln!(out, "No changes: {} is in sync.", t.pipeline.name_any());
    } else {
        for a in &actions {
            let sign = match a.verb {
                Verb::Create => "+",
                Verb::Update => "~",
                Verb::Replace => "-/+",
                Verb::Delete => "-",
                Verb::Retain => "=",
                Verb::Blocked | Verb::Conflict | Verb::Missing => "!",
                Verb::Adopt => "&",
                Verb::Recover => "-/+",
            };
            let _ = writeln!(out, "{sign} {a}");
        }
        if let Some(note) = note {
            let _ = writeln!(out, "\n{note}");
        }
        let count = |verb: Verb| actions.iter().filter(|a| a.verb == verb).count();
        let (creates, conflicts, missing) = (count(Verb::Create), count(Verb::Conflict), count(Verb::Missing));
        let changes = actions.len() - creates - conflicts - missing;
        let _ = write!(out, "\nPlan: {creates} to create, {changes} to change");
        let _ = match (conflicts, missing) {
            (0, 0) => writeln!(out, "."),
            (0, m) => writeln!(out, ", {m} missing: apply would create nothing until it exists."),
            (n, 0) => writeln!(out, ", {n} in conflict: apply would stop there and change nothing of it."),
            (n, m) => writeln!(out, ", {n} in conflict and {m} missing: apply would create nothing."),
        };
    }
    Ok(ExitCode::SUCCESS)
}

/// A changed `bufferSeconds` changes every named query's SQL too (each query's `dt` window
/// starts one buffer interval early): `actions` with those SQL changes folded into one, and the
/// reason, said once.
pub fn explain_buffer_queries(actions: &[Action]) -> (Vec<Action>, Option<String>) {
    let buffer = actions
        .iter()
        .filter(|a| a.component == ComponentKind::Delivery)
        .flat_map(|a| &a.changes)
        .find(|c| c.field == "bufferSeconds");
    let Some(buffer) = buffer else {
        return (actions.to_vec(), None);
    };
    let is_sql = |c: &aws::Change| c.field.starts_with("namedQuery.") && c.field.ends_with(".sql");
    let mut folded = 0;
    let actions = actions
        .iter()
        .map(|a| {
            let n = a.changes.iter().filter(|c| is_sql(c)).count();
            if a.component != ComponentKind::Analytics || n == 0 {
                return a.clone();
            }
            folded += n;
            let mut changes: Vec<aws::Change> = a.changes.iter().filter(|c| !is_sql(c)).cloned().collect();
            changes.push(aws::Change {
                field: format!("namedQuery.*.sql ({n} queries)"),
                from: format!("for bufferSeconds {}", buffer.from),
                to: format!("for bufferSeconds {}", buffer.to),
                immutable: false,
            });
            Action { changes, ..a.clone() }
        })
        .collect();
    let note = (folded > 0).then(|| {
        "The named queries' SQL follows delivery.bufferSeconds: Firehose names an object after its oldest \
         record, so each query's dt window starts one buffer interval early (docs/data-model.md); apply \
         rewrites them with the new interval."
            .to_string()
    });
    (actions, note)
}

/// How long a call may go unanswered before the CLI says which it is waiting for.
const SLOW_CALL: Duration = Duration::from_secs(5);

/// Runs `work` (AWS calls) until `deadline` (`--wait`; none for a single pass, bounded by the
/// SDK's own timeouts), saying every [`SLOW_CALL`] which call AWS has not answered yet.
async fn bounded<T>(
    calls: &CallLog,
    deadline: Option<Instant>,
    wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, CliError> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut said = tokio::time::Instant::now();
    let end = deadline.map_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365), Into::into);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = tick.tick() => {
                let slow = calls.slowest_in_flight().filter(|(_, w)| *w >= SLOW_CALL);
                if let Some((call, waited)) = slow.filter(|_| said.elapsed() >= SLOW_CALL) {
                    tracing::info!("waiting for AWS: {call} has not answered for {} s", waited.as_secs());
                    said = tokio::time::Instant::now();
                }
            }
            _ = tokio::time::sleep_until(end) => {
                let pending = calls
                    .slowest_in_flight()
                    .map(|(call, waited)| format!(": {call} has not answered for {} s", waited.as_secs()))
                    .unwrap_or_default();
                return Err(CliError::NoAnswer(format!("AWS did not answer within --wait {}{pending}", humantime(wait))));
            }
        }
    }
}

/// `d` as users write it for `--wait` (`90s`, `10m`).
fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

async fn apply(global: &Global, args: &ApplyArgs) -> Result<ExitCode, CliError> {
    let t = target(global, &args.file.file).await?;
    let deadline = Instant::now() + args.wait;
    let bound = (!args.wait.is_zero()).then_some(deadline);
    let calls = &t.reconciler.aws.calls;
    bounded(calls, bound, args.wait, refuse_renamed(&t)).await??;
    let mode = if t.pipeline.spec.paused { Mode::Observe } else { Mode::Apply };
    let outcome = loop {
        let outcome = bounded(calls, bound, args.wait, reconcile::reconcile(&t.reconciler, &t.ctx, mode)).await?;
        print_actions(&outcome.actions);
        if outcome.ready() || outcome.stalled() || mode == Mode::Observe || Instant::now() >= deadline {
            break outcome;
        }
        let pause =
            outcome.wait.unwrap_or(Duration::from_secs(5)).min(deadline.saturating_duration_since(Instant::now()));
        if let Some(c) = outcome.components.iter().find(|c| !c.ready) {
            tracing::info!(component = %c.kind, reason = %c.reason, "{}; looking again in {} s", c.message, pause.as_secs_f32());
        }
        tokio::time::sleep(pause).await;
    };
    print_status(&t.pipeline, &outcome, mode, args.output)?;
    // A paused pipeline, once observed, is as done as a Ready one (its status says Ready=True).
    let code = if outcome.settled(mode) {
        0
    } else if outcome.stalled() || outcome.error.is_some() {
        1
    } else {
        3
    };
    Ok(ExitCode::from(code))
}

/// The pipeline's status as the controller would write it.
pub fn status_of(pipeline: &SalesPipeline, outcome: &Outcome, mode: Mode) -> sales_operator::api::SalesPipelineStatus {
    let mut status = outcome.status.clone();
    let generation = pipeline.metadata.generation;
    status.observed_generation = generation;
    status.conditions = conditions::merge(&[], &outcome.conditions(mode), generation, jiff::Timestamp::now());
    status
}

fn print_status(pipeline: &SalesPipeline, outcome: &Outcome, mode: Mode, output: Output) -> Result<(), CliError> {
    let status = status_of(pipeline, outcome, mode);
    let text = match output {
        Output::Json => serde_json::to_string_pretty(&status).map_err(|e| CliError::Output(e.to_string()))? + "\n",
        Output::Yaml => serde_saphyr::to_string(&status).map_err(|e| CliError::Output(e.to_string()))?,
        Output::Table => status_table(pipeline, &status),
    };
    print!("{text}");
    Ok(())
}

fn status_table(pipeline: &SalesPipeline, status: &sales_operator::api::SalesPipelineStatus) -> String {
    let mut out = String::new();
    let ready = conditions::find(&status.conditions, conditions::READY);
    out.push_str(&format!(
        "SalesPipeline {}: Ready={} ({})\n\n",
        pipeline.name_any(),
        ready.map_or("Unknown", |c| c.status.as_str()),
        ready.map_or("", |c| c.message.as_str())
    ));
    out.push_str(&format!("{:<16} {:<7} {:<22} {}\n", "CONDITION", "STATUS", "REASON", "MESSAGE"));
    for c in &status.conditions {
        out.push_str(&format!("{:<16} {:<7} {:<22} {}\n", c.type_, c.status, c.reason, c.message));
    }
    out.push_str("\nRESOURCES\n");
    let mut row = |what: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push_str(&format!("  {what:<18} {v}\n"));
        }
    };
    row("table", status.table.as_ref().map(|t| t.name.clone()));
    row("table stream", status.table.as_ref().and_then(|t| t.stream_arn.clone()));
    row("kinesis stream", status.stream.as_ref().and_then(|s| s.arn.clone()));
    row(
        "pipe",
        status
            .pipe
            .as_ref()
            .map(|p| format!("{} ({})", p.arn.clone().unwrap_or_default(), p.state.clone().unwrap_or_default())),
    );
    row("delivery stream", status.delivery.as_ref().and_then(|d| d.arn.clone()));
    row("bucket", status.bucket.clone());
    row("glue database", status.catalog.as_ref().map(|c| c.database.clone()));
    row("glue table", status.catalog.as_ref().map(|c| c.table.clone()));
    row("glue crawler", status.catalog.as_ref().and_then(|c| c.crawler.clone()));
    row("athena workgroup", status.analytics.as_ref().map(|a| a.workgroup.clone()));
    row("athena results", status.analytics.as_ref().map(|a| a.result_location.clone()));
    row("named queries", status.analytics.as_ref().map(|a| a.named_queries.join(", ")));
    if let Some(r) = &status.roles {
        row("pipe role", r.pipe.clone());
        row("firehose role", r.firehose.clone());
        row("glue role", r.glue.clone());
    }
    out
}

async fn delete(global: &Global, args: &DeleteArgs) -> Result<ExitCode, CliError> {
    let t = target(global, &args.file.file).await?;
    let policy = match args.deletion_policy {
        Some(PolicyArg::Retain) => DeletionPolicy::Retain,
        Some(PolicyArg::Delete) => DeletionPolicy::Delete,
        None => t.pipeline.spec.deletion_policy,
    };
    let deadline = Instant::now() + args.wait;
    let bound = (!args.wait.is_zero()).then_some(deadline);
    let mut done = reconcile::Teardown::default();
    loop {
        let teardown = reconcile::teardown(&t.reconciler, &t.ctx, policy, args.dry_run);
        let pass = bounded(&t.reconciler.aws.calls, bound, args.wait, teardown).await?;
        done.merge(pass);
        let busy = done.error.as_ref().filter(|(_, e)| e.is_busy()).filter(|_| !args.dry_run);
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((kind, e)) = busy.filter(|_| !left.is_zero()) else { break };
        let pause = timing(global).pace().min(left);
        tracing::info!(component = %kind, "AWS is not done with it yet ({e}); deleting again in {} s", pause.as_secs_f32());
        tokio::time::sleep(pause).await;
    }
    let mut out = std::io::stdout().lock();
    for line in teardown_lines(&done, policy, args.dry_run) {
        let _ = writeln!(out, "{line}");
    }
    if let Some((kind, e)) = done.error {
        return Err(CliError::Reconcile { component: kind, source: e });
    }
    let _ = writeln!(out, "{}", teardown_summary(&t.pipeline.name_any(), &done, policy, args.dry_run));
    Ok(ExitCode::SUCCESS)
}

/// One line per resource: what `delete` did to it (or would do, with `--dry-run`).
pub fn teardown_lines(done: &reconcile::Teardown, policy: DeletionPolicy, dry_run: bool) -> Vec<String> {
    let mut lines: Vec<String> = done
        .actions
        .iter()
        .map(|a| {
            let word = match (&a.verb, dry_run) {
                (Verb::Delete, false) => "deleted",
                (Verb::Delete, true) => "would delete",
                (Verb::Retain, false) => "retained",
                (Verb::Retain, true) => "would retain",
                _ => return a.to_string(),
            };
            let why = match (&a.verb, &a.note) {
                (_, Some(note)) => format!(": {note}"),
                (Verb::Retain, None) => format!(": deletionPolicy {policy} keeps it and its data"),
                _ => String::new(),
            };
            format!("{word:<12} {}{why}", a.resource)
        })
        .collect();
    lines.extend(done.absent.iter().map(|r| format!("{:<12} {r}: not there, nothing to delete", "absent")));
    lines
}

/// The closing line of `delete`: the counts of what happened, never "torn down" when nothing was.
pub fn teardown_summary(name: &str, done: &reconcile::Teardown, policy: DeletionPolicy, dry_run: bool) -> String {
    let count = |verb: Verb| done.actions.iter().filter(|a| a.verb == verb).count();
    let (deleted, retained, absent) = (count(Verb::Delete), count(Verb::Retain), done.absent.len());
    if dry_run {
        format!(
            "{name} (dry run, nothing changed): {deleted} would be deleted, {retained} would be retained, {absent} absent (deletionPolicy {policy})."
        )
    } else {
        format!("{name}: {deleted} deleted, {retained} retained, {absent} absent (deletionPolicy {policy}).")
    }
}
