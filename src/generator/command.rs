//! The flags of `sales-operator generate`, each with an environment variable
//! so a Deployment can set them through `env` as well as `args`.
//!
//! A pod of an OrderGenerator runs, for example:
//!
//! ```text
//! sales-operator generate --table shop-sales-orders --orders-per-second 50 \
//!     --seed 42 --catalog-json '{"products": [...]}'
//! ```
//!
//! with `POD_NAME` from the downward API (`fieldRef: metadata.name`), which
//! becomes the replica id when `--replica`/`SALES_OPERATOR_REPLICA` is unset,
//! so the replicas of one seed never write the same order ids.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::oneshot;

use super::products::{parse_product_flag, Catalog, CatalogError};
use super::writer::{DynamoDbSink, Report, StopReason, WriterConfig};
use super::{GeneratorConfig, GeneratorError, MAX_RATE, MIN_RATE};
use crate::api::order_generator::CatalogProduct;
use crate::aws::{connect, AwsError, AwsResultExt, AwsSettings, CallLog};
use crate::order::KEY;
use crate::parse_duration;

/// Writes random orders into a DynamoDB table at a steady rate.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// DynamoDB table to write to (partition key `orderid`, a string).
    #[arg(long, env = "SALES_OPERATOR_TABLE", value_parser = parse_table)]
    pub table: String,
    /// Orders per second of this process: a number or a fraction, from 0.0001 to
    /// 1000000 (the original project wrote one order every 3 s: 1/3).
    #[arg(long, env = "SALES_OPERATOR_ORDERS_PER_SECOND", default_value = "1", value_parser = parse_rate)]
    pub orders_per_second: f64,
    /// Stop after this many orders (default: run until stopped).
    #[arg(long, env = "SALES_OPERATOR_COUNT")]
    pub count: Option<u64>,
    /// Stop making orders after this long, e.g. 90s, 10m, 1h30m (default: run until stopped).
    #[arg(long, env = "SALES_OPERATOR_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Make the orders reproducible: the same seed and replica give the same
    /// order ids and contents (all but the timestamp) on every run.
    #[arg(long, env = "SALES_OPERATOR_SEED")]
    pub seed: Option<u64>,
    /// This process's replica id, part of every order id (letters, digits, '.', '_', '-').
    /// Default: $POD_NAME, else "0".
    #[arg(long, env = "SALES_OPERATOR_REPLICA")]
    pub replica: Option<String>,
    /// Catalogue file (YAML, or JSON when it ends in .json): products with price
    /// ranges, quantity range, stores, customers. Parts left out take the default.
    #[arg(long, env = "SALES_OPERATOR_CATALOG_FILE", conflicts_with = "catalog_json")]
    pub catalog: Option<PathBuf>,
    /// The catalogue inline, as JSON (an OrderGenerator's spec.catalog).
    #[arg(long, env = "SALES_OPERATOR_CATALOG")]
    pub catalog_json: Option<String>,
    /// Replace the products: NAME:CATEGORY:MIN-MAX, e.g. Laptop:Computers:250.00-500.00 (repeatable).
    #[arg(long = "product", value_name = "NAME:CATEGORY:MIN-MAX", value_parser = parse_product_flag)]
    pub products: Vec<CatalogProduct>,
    /// Fewest units per order (overrides the catalogue).
    #[arg(long)]
    pub min_quantity: Option<u32>,
    /// Most units per order (overrides the catalogue).
    #[arg(long)]
    pub max_quantity: Option<u32>,
    /// BatchWriteItem requests in flight at once (more for rates one connection cannot carry).
    #[arg(long, env = "SALES_OPERATOR_WRITE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Longest an order waits for others to share its batch of up to 25.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub max_batch_delay: Duration,
    /// Log a progress line this often; 0 turns it off.
    #[arg(long, env = "SALES_OPERATOR_PROGRESS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: Duration,
    /// On SIGTERM/SIGINT, how long to finish the writes in flight before giving up on them.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// The final report on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// A positive rate: `50`, `0.5` or a fraction such as `1/3`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let number = |t: &str| t.trim().parse::<f64>().map_err(|_| format!("invalid rate {s:?}: use e.g. 50, 0.5 or 1/3"));
    let rate = match s.split_once('/') {
        Some((a, b)) => number(a)? / number(b)?,
        None => number(s)?,
    };
    if !rate.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(format!("rate {s:?} must be between {MIN_RATE} and {MAX_RATE} orders per second"));
    }
    Ok(rate)
}

fn parse_table(s: &str) -> Result<String, String> {
    let ok = (3..=255).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("invalid table name {s:?}: 3-255 letters, digits, '_', '.' or '-'"))
    }
}

impl GenerateArgs {
    /// The generator configuration the flags describe (catalogue read and checked).
    pub fn config(&self) -> Result<GeneratorConfig, GeneratorError> {
        let mut catalog = match (&self.catalog, &self.catalog_json) {
            (Some(path), _) => Catalog::load(path)?,
            (None, Some(json)) => Catalog::parse(json, "--catalog-json", true)?,
            (None, None) => Catalog::default(),
        };
        let invalid = |source_name: &str, errors| {
            GeneratorError::Catalog(CatalogError::Invalid { source_name: source_name.to_string(), errors })
        };
        if !self.products.is_empty() {
            catalog = catalog.with_products(&self.products).map_err(|e| invalid("--product", e))?;
        }
        if self.min_quantity.is_some() || self.max_quantity.is_some() {
            catalog = catalog
                .with_quantity(self.min_quantity, self.max_quantity)
                .map_err(|e| invalid("--min-quantity/--max-quantity", e))?;
        }
        let replica = self
            .replica
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "0".to_string());
        let config = GeneratorConfig {
            catalog,
            seed: self.seed,
            replica,
            writer: WriterConfig {
                orders_per_second: self.orders_per_second,
                count: self.count,
                duration: self.duration,
                concurrency: usize::from(self.concurrency),
                max_batch_delay: self.max_batch_delay,
                progress_interval: Some(self.progress_interval).filter(|d| !d.is_zero()),
                shutdown_timeout: self.shutdown_timeout,
                ..WriterConfig::default()
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// Listens for SIGTERM/SIGINT: the first stops the generator cleanly (the
/// returned receiver completes), a second one exits at once.
fn listen_for_signals(received: Arc<OnceLock<&'static str>>) -> Result<oneshot::Receiver<()>, GeneratorError> {
    let (tx, rx) = oneshot::channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(GeneratorError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(GeneratorError::Signal)?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = received.set(name);
            let _ = tx.send(());
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("second signal: exiting without waiting for the writes in flight");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = received.set("Ctrl-C");
            let _ = tx.send(());
        }
    });
    Ok(rx)
}

/// Checks that the table exists with the `orderid` string key before writing anything.
async fn check_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), GeneratorError> {
    let described = client.describe_table().table_name(table).send().await.aws("DescribeTable");
    let t = match described {
        Ok(out) => out.table.ok_or_else(|| AwsError::permanent("DescribeTable", "no table description"))?,
        Err(e) if e.is_not_found() => {
            return Err(GeneratorError::Table { table: table.to_string(), message: "not found".to_string() })
        }
        Err(e) => return Err(e.into()),
    };
    let hash_key = t.key_schema().iter().find(|k| k.key_type().as_str() == "HASH").map(|k| k.attribute_name());
    let hash_type = t
        .attribute_definitions()
        .iter()
        .find(|a| Some(a.attribute_name()) == hash_key)
        .map(|a| a.attribute_type().as_str().to_string());
    if hash_key != Some(KEY) || hash_type.as_deref() != Some("S") {
        return Err(GeneratorError::Table {
            table: table.to_string(),
            message: format!(
                "partition key is {} ({}), the orders need `{KEY}` (string)",
                hash_key.unwrap_or("(none)"),
                hash_type.as_deref().unwrap_or("?")
            ),
        });
    }
    if !t.stream_specification().is_some_and(|s| s.stream_enabled()) {
        tracing::warn!(table, "the table has no stream: the pipeline will not see these orders");
    }
    Ok(())
}

/// Runs `generate`: checks the table, writes orders until the count or
/// duration is reached or SIGTERM/SIGINT arrives, then prints how many were written.
pub async fn run_cli(args: &GenerateArgs, aws: &AwsSettings) -> Result<Report, GeneratorError> {
    // Signals first: a SIGTERM during start-up must also stop cleanly.
    let received = Arc::new(OnceLock::new());
    let mut signalled = listen_for_signals(Arc::clone(&received))?;
    let config = args.config()?;

    let sdk = connect(aws).await?;
    if sdk.region().is_none() {
        return Err(AwsError::permanent(
            "configure",
            "no AWS region: pass --region (e.g. --region eu-west-1) or set AWS_REGION (export AWS_REGION=eu-west-1)",
        )
        .into());
    }
    let calls = CallLog::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
    );
    // A signal while AWS is slow to answer (or unreachable) must not wait for the SDK's retries.
    tokio::select! {
        checked = check_table(&client, &args.table) => checked?,
        _ = &mut signalled => {
            let report = Report::empty(StopReason::Signal);
            print_report(args, &report, received.get().copied());
            return Ok(report);
        }
    }
    tracing::info!(
        table = %args.table,
        orders_per_second = config.writer.orders_per_second,
        // Unset options are left out of the line (tracing records no `None`), never `None`/`Some(..)`.
        count = config.writer.count,
        duration_seconds = config.writer.duration.map(|d| d.as_secs_f64()),
        seed = config.seed,
        replica = %config.replica,
        products = config.catalog.products.len(),
        stores = config.catalog.stores.len(),
        "writing orders"
    );
    let sink = Arc::new(DynamoDbSink::new(client, args.table.clone()).with_calls(calls));
    let shutdown = async move {
        let _ = signalled.await;
    };
    let report = super::run(&config, sink, shutdown).await?;
    print_report(args, &report, received.get().copied());
    if let Some(message) = &report.error {
        return Err(GeneratorError::Write { written: report.written, message: message.clone() });
    }
    if report.unconfirmed > 0 {
        return Err(GeneratorError::Unconfirmed { written: report.written, unconfirmed: report.unconfirmed });
    }
    Ok(report)
}

fn print_report(args: &GenerateArgs, r: &Report, signal: Option<&str>) {
    match args.output {
        ReportFormat::Json => {
            let mut value = serde_json::to_value(r).unwrap_or_default();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("table".into(), args.table.clone().into());
                if let Some(s) = signal {
                    obj.insert("signal".into(), s.into());
                }
            }
            println!("{value}");
        }
        ReportFormat::Text => {
            let why = match (r.stopped_by, signal) {
                (StopReason::Signal, Some(s)) => format!("Interrupted ({s})"),
                (StopReason::Signal, None) => "Interrupted".to_string(),
                (StopReason::Count, _) => "Done".to_string(),
                (StopReason::Duration, _) => "Time is up".to_string(),
                (StopReason::Error, _) => "Stopped by an error".to_string(),
            };
            println!(
                "{why}: {} order{} written to {} in {:.2} s ({:.1} orders/s); {} batches retried, {} SDK retries.",
                r.written,
                if r.written == 1 { "" } else { "s" },
                args.table,
                r.elapsed_seconds,
                r.orders_per_second,
                r.retries,
                r.sdk_retries
            );
            if r.unconfirmed > 0 || r.failed > 0 {
                println!("{} orders not confirmed, {} not written.", r.unconfirmed, r.failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn parse(args: &[&str]) -> Result<GenerateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("generate").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn rates_accept_numbers_and_fractions_within_bounds() {
        assert_eq!(parse_rate("50").unwrap(), 50.0);
        assert!((parse_rate("1/3").unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(parse_rate("0.1").unwrap(), 0.1);
        for bad in ["0", "-1", "abc", "1/0", "2000000", "NaN"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn defaults_are_one_order_per_second_forever_with_the_default_catalogue() {
        let a = parse(&["--table", "orders", "--replica", "r1"]).unwrap();
        let c = a.config().unwrap();
        assert_eq!(c.writer.orders_per_second, 1.0);
        assert_eq!((c.writer.count, c.writer.duration), (None, None));
        assert_eq!(c.writer.concurrency, 4);
        assert_eq!(c.replica, "r1");
        assert_eq!(c.catalog, Catalog::default());
    }

    #[test]
    fn flags_override_the_catalogue() {
        let a = parse(&[
            "--table",
            "orders",
            "--catalog-json",
            r#"{"quantity": {"min": 2, "max": 4}, "customers": 10}"#,
            "--product",
            "Pen:Office:0.50-2.00",
            "--max-quantity",
            "9",
        ])
        .unwrap();
        let c = a.config().unwrap();
        assert_eq!(c.catalog.products.len(), 1);
        assert_eq!((c.catalog.min_quantity, c.catalog.max_quantity, c.catalog.customers), (2, 9, 10));
    }

    #[test]
    fn bad_flags_are_refused_naming_them() {
        assert!(parse(&["--orders-per-second", "5"]).is_err(), "--table is required");
        let e = parse(&["--table", "t!", "--count", "1"]).unwrap_err().to_string();
        assert!(e.contains("invalid table name"), "{e}");
        let e = parse(&["--table", "orders", "--replica", "a b"]).unwrap().config().unwrap_err().to_string();
        assert!(e.starts_with("replica:"), "{e}");
        let e = parse(&["--table", "orders", "--catalog-json", r#"{"products": [{"name": "X"}]}"#])
            .unwrap()
            .config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("products[0]") && e.contains("missing field"), "{e}");
        assert!(parse(&["--table", "orders", "--catalog", "a.yaml", "--catalog-json", "{}"]).is_err());
        assert!(parse(&["--table", "orders", "--concurrency", "0"]).is_err());
    }
}
