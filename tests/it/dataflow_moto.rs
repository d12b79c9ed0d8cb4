//! Issue 24: data health read from CloudWatch as the operator reads it (one GetMetricData per
//! pipeline), against moto's CloudWatch, which stores and serves the metrics the test publishes
//! as AWS's services would (moto publishes none by itself).

crate::support::moto::own_server!();

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use sales_operator::api::SalesPipelineSpec;
use sales_operator::dataflow::{self, Health, Stage, Window, METRICS};
use sales_operator::names::Names;

/// Publishes `value` for the metric of query id `id`, under the pipeline's dimension.
async fn publish(cw: &aws_sdk_cloudwatch::Client, names: &Names, id: &str, value: f64) {
    let m = METRICS.iter().find(|m| m.id == id).unwrap();
    let datum = MetricDatum::builder()
        .metric_name(m.name)
        .dimensions(Dimension::builder().name(m.dimension).value(m.dimension_value(names)).build())
        .value(value)
        .unit(StandardUnit::Count)
        .timestamp(SystemTime::now().into())
        .build();
    cw.put_metric_data().namespace(m.namespace).metric_data(datum).send().await.unwrap();
}

#[tokio::test]
async fn the_stages_metrics_are_read_in_one_call_and_judged() {
    moto::set_aws_env();
    let sdk = moto::sdk(&moto::settings()).await;
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let name = moto::unique("flow");
    let names = Names::derive("shop", &name, &SalesPipelineSpec::default(), moto::REGION);
    let window = Duration::from_secs(300);

    let empty = dataflow::read(&cw, &names, window, SystemTime::now()).await.unwrap();
    assert!(empty.is_empty(), "{empty:?}");
    assert_eq!(dataflow::judge(&Window { values: empty, ..Default::default() }), Health::Idle);

    for (id, value) in [
        ("pipe_events", 40.0),
        ("pipe_events", 60.0),
        ("stream_incoming", 100.0),
        ("delivery_read", 100.0),
        ("delivery_records", 100.0),
        ("delivery_success", 1.0),
        ("delivery_freshness", 61.0),
        ("delivery_freshness", 75.0),
    ] {
        publish(&cw, &names, id, value).await;
    }
    let values = dataflow::read(&cw, &names, window, SystemTime::now() + Duration::from_secs(1)).await.unwrap();
    assert_eq!(values.get("pipe_events"), Some(&100.0), "summed: {values:?}");
    assert_eq!(values.get("delivery_freshness"), Some(&75.0), "the maximum: {values:?}");
    let health = dataflow::judge(&Window { values, ..Default::default() });
    assert_eq!(health, Health::Flowing { freshness_seconds: Some(75.0) });

    // Another pipeline's metrics are not this one's.
    let other = Names::derive("shop", &moto::unique("other"), &SalesPipelineSpec::default(), moto::REGION);
    publish(&cw, &other, "pipe_failed", 3.0).await;
    let values = dataflow::read(&cw, &names, window, SystemTime::now() + Duration::from_secs(1)).await.unwrap();
    assert_eq!(values.get("pipe_failed"), None, "{values:?}");
    let values = dataflow::read(&cw, &other, window, SystemTime::now() + Duration::from_secs(1)).await.unwrap();
    let health = dataflow::judge(&Window { values, ..Default::default() });
    assert!(
        matches!(health, Health::Degraded { stage: Stage::Pipe, metric: "ExecutionFailed", value, .. } if value == 3.0)
    );
}

/// AWS's errors come back in the protocol the SDK speaks (RPC v2 CBOR), code and message intact.
#[tokio::test]
async fn a_refused_request_is_refused_with_awss_error() {
    use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
    use aws_sdk_cloudwatch::types::MetricDataQuery;
    moto::set_aws_env();
    let sdk = moto::sdk(&moto::settings()).await;
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let now = SystemTime::now();
    let err = cw
        .get_metric_data()
        .metric_data_queries(MetricDataQuery::builder().id("q").build())
        .start_time((now - Duration::from_secs(60)).into())
        .end_time(now.into())
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
    assert!(err.message().is_some_and(|m| m.contains("MetricStat is required")), "{err:?}");
}
