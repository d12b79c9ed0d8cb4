//! Emulator stand-in for the pipe and Firehose (moto runs neither): reads
//! the orders table's DynamoDB stream of a pipeline applied to moto, shapes
//! each record with the pipe's input template read back from the pipe, and
//! writes the objects Firehose would (prefix, buffering, delimiter and
//! compression read back from the delivery stream) into the bucket, and publishes the
//! CloudWatch metrics the pipe, Kinesis and Firehose would for it.
//! On AWS the EventBridge Pipe and Firehose do this; used by scripts/demo.sh.
//!
//!     cargo build --bin sales-operator --example deliver_orders   # one build: the SDK compiles once
//!     target/debug/examples/deliver_orders MANIFEST
//!
//! with AWS_ENDPOINT_URL pointing at moto. Prints the keys it wrote.

#[path = "../tests/it/support/delivery_standin.rs"]
mod delivery_standin;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use kube::ResourceExt;
use sales_operator::aws::{self, AwsSettings, CallLog, Clients, PipelineCtx};
use serde_json::{json, Value};

/// DynamoDB's JSON of a stream record's attribute value.
fn attribute_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::M(m) => json!({ "M": image(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        _ => Value::Null,
    }
}

fn image(m: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect())
}

/// The event a pipe receives for stream record `r`.
fn pipes_event(r: &aws_sdk_dynamodbstreams::types::Record, links: &delivery_standin::Links) -> Option<Value> {
    let d = r.dynamodb.as_ref()?;
    let created = d.approximate_creation_date_time.as_ref()?;
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": created.as_secs_f64(),
        "SequenceNumber": d.sequence_number,
        "SizeBytes": d.size_bytes,
        "StreamViewType": d.stream_view_type.as_ref().map(|t| t.as_str().to_string()),
    });
    if let Some(k) = &d.keys {
        dynamodb["Keys"] = image(k);
    }
    if let Some(n) = &d.new_image {
        dynamodb["NewImage"] = image(n);
    }
    if let Some(o) = &d.old_image {
        dynamodb["OldImage"] = image(o);
    }
    Some(json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|e| e.as_str().to_string()),
        "eventVersion": r.event_version,
        "eventSource": "aws:dynamodb",
        "awsRegion": links.region,
        "dynamodb": dynamodb,
        "eventSourceARN": links.stream_arn,
    }))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let file = std::env::args().nth(1).ok_or("usage: deliver_orders MANIFEST")?;
    let pipeline = sales_operator::api::manifest::read_pipeline(&file).map_err(|e| e.to_string())?;
    let settings = AwsSettings {
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
        region: std::env::var("AWS_REGION").ok(),
        ..Default::default()
    };
    let sdk = aws::sdk_config(&settings).await;
    let c = Clients::new(&sdk, pipeline.spec.region.as_deref(), CallLog::default()).map_err(|e| e.to_string())?;
    let namespace = pipeline.namespace().unwrap_or_else(|| "default".to_string());
    let ctx = PipelineCtx::new(&namespace, &pipeline.name_any(), &pipeline.spec, &c.region);
    let links = delivery_standin::links(&c, &ctx.names.pipe, &ctx.names.delivery).await?;

    // Every record of every shard of the table's stream, from the start.
    let streams_config = aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
        .region(aws_types::region::Region::new(c.region.clone()))
        .build();
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(streams_config);
    let described = streams.describe_stream().stream_arn(&links.stream_arn).send().await.map_err(|e| e.to_string())?;
    let shards = described.stream_description.and_then(|d| d.shards).unwrap_or_default();
    // Like the pipe, keep a position per shard: a second run delivers only what is new.
    let checkpoint_dir = std::env::temp_dir().join("sales-operator-delivered");
    std::fs::create_dir_all(&checkpoint_dir).map_err(|e| e.to_string())?;
    // Keyed by the stream's label too: a new emulator (or table) starts over.
    let label = links.stream_arn.rsplit('/').next().unwrap_or("").replace([':', '.'], "_");
    let checkpoint = |shard: &str| checkpoint_dir.join(format!("{}-{label}-{shard}", ctx.names.table));
    let mut events = Vec::new();
    let mut positions = Vec::new();
    for shard in shards {
        let Some(shard_id) = shard.shard_id else { continue };
        let after = std::fs::read_to_string(checkpoint(&shard_id)).ok();
        let request = streams.get_shard_iterator().stream_arn(&links.stream_arn).shard_id(&shard_id);
        let request = match &after {
            Some(seq) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq.trim())
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let it = request.send().await.map_err(|e| e.to_string())?;
        let mut iterator = it.shard_iterator;
        while let Some(i) = iterator.take() {
            let out = streams.get_records().shard_iterator(i).send().await.map_err(|e| e.to_string())?;
            let records = out.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            events.extend(records.iter().filter_map(|r| pipes_event(r, &links)));
            if let Some(seq) = records.last().and_then(|r| r.dynamodb.as_ref()).and_then(|d| d.sequence_number.clone())
            {
                positions.push((checkpoint(&shard_id), seq));
            }
            iterator = out.next_shard_iterator;
        }
    }
    // The pipe's filter (spec.pipe.filter) is not applied: the demo's pipeline has none.
    let objects = delivery_standin::deliver(&links, &events, jiff::SignedDuration::from_millis(300))?;
    delivery_standin::put(&c.s3, &links, &objects).await?;
    // And what the pipe, Kinesis and Firehose publish to CloudWatch for it: the data health reads it.
    let stages = delivery_standin::Stages {
        pipe: ctx.names.pipe.clone(),
        stream: ctx.names.stream.clone(),
        delivery: ctx.names.delivery.clone(),
    };
    delivery_standin::publish_delivered(&c.cloudwatch, &stages, events.len(), &objects).await?;
    for (file, seq) in positions {
        std::fs::write(file, seq).map_err(|e| e.to_string())?;
    }
    let records: usize = objects.iter().map(|o| o.records).sum();
    println!(
        "delivered {records} records in {} object(s) ({}, newline-delimited: {}), under prefix {}:",
        objects.len(),
        links.compression,
        links.append_newline,
        links.prefix
    );
    // The keys written, as a reader lists them (the prefix's !{timestamp:...} rendered).
    const SHOWN: usize = 10;
    for o in objects.iter().take(SHOWN) {
        println!("  s3://{}/{} ({} records)", links.bucket, o.key, o.records);
    }
    if objects.len() > SHOWN {
        println!("  ... and {} more", objects.len() - SHOWN);
    }
    Ok(())
}
