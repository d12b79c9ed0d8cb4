//! `sales-operator generate`: the order workload. Random orders from a
//! catalogue ([`products`], [`order_source`]) written into the pipeline's DynamoDB
//! table at a precise rate, batched and concurrent, with nothing lost and
//! nothing written twice ([`writer`]). [`command`] holds the flags.
//!
//! The item shape, the ids and the reasoning are in docs/order-item.md.

pub mod command;
pub mod order_source;
pub mod products;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

pub use order_source::OrderSource;
pub use products::{Catalog, CatalogError};
pub use writer::{DynamoDbSink, NullSink, Report, Sink, StopReason, WriterConfig};

use crate::aws::AwsError;

/// Lowest and highest rate one generator process accepts (orders per second).
/// The CRD's 0.1/s may be split over up to 100 replicas.
pub const MIN_RATE: f64 = 0.000_1;
pub const MAX_RATE: f64 = 1_000_000.0;

/// Everything one generator process needs besides the sink.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    pub catalog: Catalog,
    /// Reproducible orders: the same seed and replica give the same ids and contents.
    pub seed: Option<u64>,
    /// Tells apart the processes of one run (pod name or index).
    pub replica: String,
    pub writer: WriterConfig,
}

/// Why the generator could not start or did not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("{field}: {message}")]
    Config { field: &'static str, message: String },
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("table {table}: {message}")]
    Table { table: String, message: String },
    #[error("cannot listen for SIGTERM/SIGINT: {0}")]
    Signal(std::io::Error),
    #[error("stopped after writing {written} orders: {message}")]
    Write { written: u64, message: String },
    #[error(
        "{unconfirmed} orders were sent but not confirmed before the shutdown timeout \
         ({written} confirmed written); they may or may not be in the table"
    )]
    Unconfirmed { written: u64, unconfirmed: u64 },
}

impl GeneratorError {
    /// 2: bad input (flags, catalogue); 1: AWS or an unclean stop.
    pub fn exit_code(&self) -> u8 {
        match self {
            GeneratorError::Catalog(_) | GeneratorError::Config { .. } => 2,
            _ => 1,
        }
    }

    fn config(field: &'static str, message: impl Into<String>) -> Self {
        GeneratorError::Config { field, message: message.into() }
    }
}

impl GeneratorConfig {
    /// Checks what the flags' parsers cannot (a config built in code skips them).
    pub fn validate(&self) -> Result<(), GeneratorError> {
        let w = &self.writer;
        if !(MIN_RATE..=MAX_RATE).contains(&w.orders_per_second) {
            return Err(GeneratorError::config(
                "orders-per-second",
                format!("must be between {MIN_RATE} and {MAX_RATE}, not {}", w.orders_per_second),
            ));
        }
        if !(1..=1024).contains(&w.concurrency) {
            return Err(GeneratorError::config("concurrency", format!("must be 1 to 1024, not {}", w.concurrency)));
        }
        order_source::validate_replica(&self.replica).map_err(|m| GeneratorError::config("replica", m))?;
        if self.catalog.products.is_empty() || self.catalog.stores.is_empty() {
            return Err(GeneratorError::config("catalog", "needs at least one product and one store"));
        }
        Ok(())
    }
}

/// Makes orders as `config` says and writes them into `sink` until the count
/// or duration is reached, `shutdown` completes, or a permanent write error
/// stops it. The report says what was written; a permanent error is in
/// `report.error`, not an `Err` (the count written still matters).
pub async fn run<S: Sink>(
    config: &GeneratorConfig,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, GeneratorError> {
    config.validate()?;
    let mut source = OrderSource::new(Arc::new(config.catalog.clone()), config.seed, &config.replica);
    Ok(writer::run(&config.writer, &mut source, sink, shutdown).await)
}
