//! Stand-ins for the two links of the pipeline moto does not run: the
//! EventBridge Pipe (DynamoDB stream record -> Kinesis record, shaped by the
//! pipe's input template) and Firehose (Kinesis -> S3 objects, batched by the
//! buffer interval, delimited, compressed, keyed by the prefix).
//!
//! Nothing here is taken from the operator's desired state: the template,
//! prefix, compression, processors and buffer interval are read back from the
//! pipe and the delivery stream as created, so the objects land exactly where
//! and how AWS would put them for that configuration. Used by
//! tests/it/queries_trino.rs and the demo (examples/deliver_orders.rs).
//! (Not src/aws/delivery.rs, the operator's Firehose component: this stands
//! in for what Firehose does with the data.)
#![allow(dead_code)]

use std::io::Write;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_dynamodb::types::AttributeValue;
use sales_operator::order::Order;
use serde_json::{json, Value};

/// What the pipe and the delivery stream of a pipeline were created with.
#[derive(Clone, Debug)]
pub struct Links {
    /// The pipe's target input template.
    pub template: String,
    pub delivery_name: String,
    pub delivery_version: String,
    pub bucket: String,
    pub prefix: String,
    /// S3 key prefix of what Firehose could not process (`!{firehose:error-output-type}` in it).
    pub error_prefix: String,
    /// `UNCOMPRESSED` or `GZIP` (others are refused).
    pub compression: String,
    /// Whether `AppendDelimiterToRecord` runs (a newline after each record).
    pub append_newline: bool,
    pub buffer_seconds: i64,
    pub buffer_bytes: usize,
    /// The source table's stream ARN (`eventSourceARN` of the records).
    pub stream_arn: String,
    pub region: String,
}

/// Reads the pipe `pipe` and delivery stream `delivery` back from AWS.
pub async fn links(c: &sales_operator::aws::Clients, pipe: &str, delivery: &str) -> Result<Links, String> {
    let p = c.pipes.describe_pipe().name(pipe).send().await.map_err(|e| format!("DescribePipe {pipe}: {e}"))?;
    let template = p
        .target_parameters
        .and_then(|t| t.input_template)
        .ok_or_else(|| format!("pipe {pipe} has no input template"))?;
    let stream_arn = p.source.ok_or_else(|| format!("pipe {pipe} has no source"))?;
    let d = c
        .firehose
        .describe_delivery_stream()
        .delivery_stream_name(delivery)
        .send()
        .await
        .map_err(|e| format!("DescribeDeliveryStream {delivery}: {e}"))?
        .delivery_stream_description
        .ok_or("no delivery stream description")?;
    let s3 = d
        .destinations
        .first()
        .and_then(|x| x.extended_s3_destination_description.clone())
        .ok_or_else(|| format!("delivery stream {delivery} has no extended S3 destination"))?;
    let processors = s3.processing_configuration.and_then(|p| p.processors).unwrap_or_default();
    let hints = s3.buffering_hints;
    Ok(Links {
        template,
        delivery_name: d.delivery_stream_name,
        delivery_version: d.version_id,
        bucket: s3.bucket_arn.trim_start_matches("arn:aws:s3:::").to_string(),
        prefix: s3.prefix.unwrap_or_default(),
        error_prefix: s3.error_output_prefix.unwrap_or_default(),
        compression: s3.compression_format.as_str().to_string(),
        append_newline: processors.iter().any(|p| p.r#type.as_str() == "AppendDelimiterToRecord"),
        buffer_seconds: i64::from(hints.as_ref().and_then(|h| h.interval_in_seconds).unwrap_or(300)),
        buffer_bytes: hints.as_ref().and_then(|h| h.size_in_mbs).unwrap_or(5) as usize * 1024 * 1024,
        stream_arn,
        region: c.region.clone(),
    })
}

/// DynamoDB's JSON of an attribute value (`{"S": "..."}`, `{"N": "..."}`, ...).
pub fn attribute_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        // DynamoDB gives numbers back without leading/trailing zeros.
        AttributeValue::N(n) => json!({ "N": sales_operator::order::dynamodb_number_text(n) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        // Binary types: the order item has none.
        _ => Value::Null,
    }
}

/// The event a pipe receives for one DynamoDB stream record: `event_name`
/// (`INSERT`, `MODIFY`) of `order`'s item, created at `created`.
pub fn stream_event(links: &Links, event_name: &str, order: &Order, created: jiff::Timestamp, seq: u64) -> Value {
    let item: serde_json::Map<String, Value> =
        order.to_item().iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect();
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": created.as_millisecond() as f64 / 1000.0,
        "Keys": { "orderid": item["orderid"].clone() },
        "NewImage": Value::Object(item.clone()),
        "SequenceNumber": format!("{seq:021}"),
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if event_name == "MODIFY" {
        dynamodb["OldImage"] = Value::Object(item);
    }
    json!({
        "eventID": format!("{seq:032x}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": links.region,
        "dynamodb": dynamodb,
        "eventSourceARN": links.stream_arn,
    })
}

/// The value at a `$.a.b.c` path of `event`.
fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = event;
    for key in path.strip_prefix("$.")?.split('.') {
        v = v.get(key)?;
    }
    Some(v)
}

/// What the pipe makes of `event` with input template `template`, by
/// EventBridge's substitution rules: each `<$.path>` is replaced by the value
/// at that path; a string is inserted without quotes (inside the template's
/// quotes it is JSON-escaped), a number, boolean, object or array as its JSON
/// text; a missing path or JSON null inserts `null` (empty inside quotes).
pub fn apply_template(template: &str, event: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("<$.") {
        let end = rest[start..].find('>').ok_or_else(|| format!("unclosed placeholder in {template}"))? + start;
        out.push_str(&rest[..start]);
        let in_quotes = out.ends_with('"');
        let value = lookup(event, &rest[start + 1..end]);
        match value {
            Some(Value::String(s)) if in_quotes => {
                let quoted = Value::String(s.clone()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            Some(Value::String(s)) => out.push_str(s),
            None | Some(Value::Null) if in_quotes => {}
            None | Some(Value::Null) => out.push_str("null"),
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A Java date format (`yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and literals) of `t` in UTC.
fn java_format(format: &str, t: jiff::Timestamp) -> Result<String, String> {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    let mut out = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        let (text, len) = match () {
            _ if rest.starts_with("yyyy") => (format!("{:04}", z.year()), 4),
            _ if rest.starts_with("MM") => (format!("{:02}", z.month()), 2),
            _ if rest.starts_with("dd") => (format!("{:02}", z.day()), 2),
            _ if rest.starts_with("HH") => (format!("{:02}", z.hour()), 2),
            _ if rest.starts_with("mm") => (format!("{:02}", z.minute()), 2),
            _ if rest.starts_with("ss") => (format!("{:02}", z.second()), 2),
            _ if c.is_ascii_alphabetic() => return Err(format!("date format {format:?}: {c:?} is not supported here")),
            _ => (c.to_string(), c.len_utf8()),
        };
        out.push_str(&text);
        rest = &rest[len..];
    }
    Ok(out)
}

/// Firehose's prefix for an object whose oldest record arrived at `t`.
pub fn render_prefix(prefix: &str, t: jiff::Timestamp) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed expression in {prefix}"))? + start;
        let expression = &rest[start + 2..end];
        let format = expression
            .strip_prefix("timestamp:")
            .ok_or_else(|| format!("prefix expression !{{{expression}}} is not supported here"))?;
        out.push_str(&java_format(format, t)?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One S3 object as Firehose writes it.
#[derive(Clone, Debug)]
pub struct Object {
    pub key: String,
    pub body: Vec<u8>,
    /// The records in it, uncompressed, as the lines a reader sees.
    pub records: usize,
    /// When its oldest record arrived, and when Firehose wrote it (the buffer interval later, or
    /// at the newest record's arrival when the size hint filled it first).
    pub opened: jiff::Timestamp,
    pub flushed: jiff::Timestamp,
}

/// Firehose for `records` (arrival time at the delivery stream, data), in
/// arrival order: a buffer opens at a record's arrival and takes the records
/// arriving within the buffer interval (or until the size hint), then is
/// written under the prefix rendered at its oldest record's arrival, named
/// `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<random>`, `.gz` when GZIP.
pub fn firehose(links: &Links, records: &[(jiff::Timestamp, String)]) -> Result<Vec<Object>, String> {
    let mut objects = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let opened = records[i].0;
        let mut data = Vec::new();
        let mut n = 0;
        let mut flushed = opened + jiff::SignedDuration::from_secs(links.buffer_seconds);
        while i < records.len() && records[i].0.duration_since(opened).as_secs() < links.buffer_seconds {
            if n > 0 && data.len() + records[i].1.len() >= links.buffer_bytes {
                flushed = records[i - 1].0;
                break;
            }
            data.extend_from_slice(records[i].1.as_bytes());
            if links.append_newline {
                data.push(b'\n');
            }
            n += 1;
            i += 1;
        }
        let (body, ext) = match links.compression.as_str() {
            "UNCOMPRESSED" => (data, ""),
            "GZIP" => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&data).map_err(|e| e.to_string())?;
                (gz.finish().map_err(|e| e.to_string())?, ".gz")
            }
            other => return Err(format!("compression {other} is not supported by this stand-in")),
        };
        let random: u128 = rand::random();
        let r = format!("{random:032x}");
        let key = format!(
            "{}{}-{}-{}-{}-{}-{}-{}-{}{ext}",
            render_prefix(&links.prefix, opened)?,
            links.delivery_name,
            links.delivery_version,
            java_format("yyyy-MM-dd-HH-mm-ss", opened)?,
            &r[..8],
            &r[8..12],
            &r[12..16],
            &r[16..20],
            &r[20..]
        );
        objects.push(Object { key, body, records: n, opened, flushed });
    }
    Ok(objects)
}

/// Writes `objects` to the delivery bucket.
pub async fn put(s3: &aws_sdk_s3::Client, links: &Links, objects: &[Object]) -> Result<(), String> {
    for o in objects {
        s3.put_object()
            .bucket(&links.bucket)
            .key(&o.key)
            .body(o.body.clone().into())
            .send()
            .await
            .map_err(|e| format!("PutObject {}: {e}", o.key))?;
    }
    Ok(())
}

/// One CloudWatch datum of `name` under dimension `dimension`=`value`, for the second just past
/// (a GetMetricData right after it then sees it: the end of its range is rounded down to the
/// second).
fn datum(name: &str, dimension: &str, value: &str, v: f64, unit: StandardUnit) -> MetricDatum {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    MetricDatum::builder()
        .metric_name(name)
        .dimensions(Dimension::builder().name(dimension).value(value).build())
        .value(v)
        .unit(unit)
        .timestamp(at.into())
        .build()
}

async fn put_metrics(cw: &aws_sdk_cloudwatch::Client, namespace: &str, data: Vec<MetricDatum>) -> Result<(), String> {
    cw.put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PutMetricData {namespace}: {e}"))
}

/// The names the stages publish their metrics under (the dimensions' values).
#[derive(Clone, Debug)]
pub struct Stages {
    pub pipe: String,
    pub stream: String,
    pub delivery: String,
}

/// What AWS publishes to CloudWatch when the pipe moved `events` records to Kinesis and
/// Firehose read them and wrote `objects` to S3 (docs/data-health.md cites each metric): the
/// pipe's `Invocations` and `EventCount`, the stream's `IncomingRecords` and
/// `GetRecords.IteratorAgeMilliseconds`, Firehose's `DataReadFromKinesisStream.Records`,
/// `DeliveryToS3.Records`, `DeliveryToS3.Success` (1: every write succeeded) and
/// `DeliveryToS3.DataFreshness` (the oldest record's age when its object was written).
pub async fn publish_delivered(
    cw: &aws_sdk_cloudwatch::Client,
    stages: &Stages,
    events: usize,
    objects: &[Object],
) -> Result<(), String> {
    let n = events as f64;
    let (count, ms, secs) = (StandardUnit::Count, StandardUnit::Milliseconds, StandardUnit::Seconds);
    let pipe = |name| datum(name, "PipeName", &stages.pipe, n, count.clone());
    put_metrics(cw, "AWS/EventBridge/Pipes", vec![pipe("Invocations"), pipe("EventCount")]).await?;
    let stream = vec![
        datum("IncomingRecords", "StreamName", &stages.stream, n, count.clone()),
        datum("GetRecords.IteratorAgeMilliseconds", "StreamName", &stages.stream, 0.0, ms),
    ];
    put_metrics(cw, "AWS/Kinesis", stream).await?;
    let delivered: usize = objects.iter().map(|o| o.records).sum();
    let freshness = objects.iter().map(|o| o.flushed.duration_since(o.opened).as_secs_f64()).fold(0.0, f64::max);
    let d = |name, v, unit| datum(name, "DeliveryStreamName", &stages.delivery, v, unit);
    let mut firehose = vec![
        d("DataReadFromKinesisStream.Records", n, count.clone()),
        d("DeliveryToS3.Records", delivered as f64, count.clone()),
    ];
    if !objects.is_empty() {
        firehose.push(d("DeliveryToS3.Success", 1.0, count.clone()));
        firehose.push(d("DeliveryToS3.DataFreshness", freshness, secs));
    }
    put_metrics(cw, "AWS/Firehose", firehose).await
}

/// What the pipe publishes when it cannot deliver `events` records to Kinesis (its role may not
/// write to the stream): `Invocations`, `ExecutionFailed` and nothing reaching the stream.
pub async fn publish_pipe_failed(
    cw: &aws_sdk_cloudwatch::Client,
    stages: &Stages,
    events: usize,
) -> Result<(), String> {
    let n = events as f64;
    let pipe = |name| datum(name, "PipeName", &stages.pipe, n, StandardUnit::Count);
    put_metrics(cw, "AWS/EventBridge/Pipes", vec![pipe("Invocations"), pipe("ExecutionFailed")]).await
}

/// Firehose failing to deliver `records` records it read: `DeliveryToS3.Success` 0, and the
/// records written as one object under the error output prefix (error output type
/// `processing-failed`), whose key it returns.
pub async fn fail_delivery(
    cw: &aws_sdk_cloudwatch::Client,
    s3: &aws_sdk_s3::Client,
    links: &Links,
    stages: &Stages,
    records: usize,
) -> Result<String, String> {
    let now = jiff::Timestamp::now();
    let prefix = render_prefix(&links.error_prefix.replace("!{firehose:error-output-type}", "processing-failed"), now)?;
    let key = format!(
        "{prefix}{}-{}-{}-failed",
        links.delivery_name,
        links.delivery_version,
        java_format("yyyy-MM-dd-HH-mm-ss", now)?
    );
    s3.put_object()
        .bucket(&links.bucket)
        .key(&key)
        .body(format!("{{\"errorCode\":\"Lambda.FunctionError\",\"records\":{records}}}\n").into_bytes().into())
        .send()
        .await
        .map_err(|e| format!("PutObject {key}: {e}"))?;
    let d = |name, v| datum(name, "DeliveryStreamName", &stages.delivery, v, StandardUnit::Count);
    let firehose = vec![
        d("DataReadFromKinesisStream.Records", records as f64),
        d("DeliveryToS3.Records", 0.0),
        d("DeliveryToS3.Success", 0.0),
    ];
    put_metrics(cw, "AWS/Firehose", firehose).await?;
    Ok(key)
}

/// The pipe then Firehose for stream `events` (Pipes' events, oldest first):
/// each arrives at Firehose `latency` after its stream record was created.
pub fn deliver(links: &Links, events: &[Value], latency: jiff::SignedDuration) -> Result<Vec<Object>, String> {
    let mut records = Vec::with_capacity(events.len());
    for e in events {
        let created = e["dynamodb"]["ApproximateCreationDateTime"]
            .as_f64()
            .ok_or("a stream record without ApproximateCreationDateTime")?;
        let at =
            jiff::Timestamp::from_millisecond((created * 1000.0).round() as i64).map_err(|e| e.to_string())? + latency;
        records.push((at, apply_template(&links.template, e)?));
    }
    records.sort_by_key(|r| r.0);
    firehose(links, &records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitution_follows_eventbridge() {
        let e = json!({"a": "x\"y", "n": "10.5", "t": 17.25, "o": {"k": 1}});
        let t = r#"{"a": "<$.a>", "n": <$.n>, "t": <$.t>, "o": <$.o>, "m": "<$.missing>", "q": <$.missing>}"#;
        assert_eq!(
            apply_template(t, &e).unwrap(),
            r#"{"a": "x\"y", "n": 10.5, "t": 17.25, "o": {"k":1}, "m": "", "q": null}"#
        );
    }

    fn links(buffer_seconds: i64, compression: &str) -> Links {
        Links {
            template: String::new(),
            delivery_name: "d".into(),
            delivery_version: "1".into(),
            bucket: "b".into(),
            prefix: "orders/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/".into(),
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/".into(),
            compression: compression.into(),
            append_newline: true,
            buffer_seconds,
            buffer_bytes: 5 << 20,
            stream_arn: String::new(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn firehose_batches_by_buffer_interval_and_names_objects_after_the_oldest_record() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let records = vec![
            (t("2026-12-01T05:59:30Z"), "a".to_string()),
            (t("2026-12-01T06:00:20Z"), "b".to_string()),
            (t("2026-12-01T06:00:40Z"), "c".to_string()),
        ];
        let objects = firehose(&links(60, "UNCOMPRESSED"), &records).unwrap();
        assert_eq!(objects.len(), 2);
        // b arrived after 06:00 but sits under hour 05: dt can be a buffer interval early.
        assert!(objects[0].key.starts_with("orders/2026/12/01/05/d-1-2026-12-01-05-59-30-"), "{}", objects[0].key);
        assert_eq!(objects[0].body, b"a\nb\n");
        assert!(objects[1].key.starts_with("orders/2026/12/01/06/d-1-2026-12-01-06-00-40-"), "{}", objects[1].key);
        let gz = firehose(&links(60, "GZIP"), &records).unwrap();
        assert!(gz[0].key.ends_with(".gz") && gz[0].body.starts_with(&[0x1f, 0x8b]));
        assert!(firehose(&links(60, "Snappy"), &records).is_err());
    }
}
