//! One AWS change event as EventBridge delivers it to SQS: an "AWS API Call via CloudTrail"
//! envelope whose `detail` is the CloudTrail record
//! (<https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html>).

use serde::Deserialize;

/// The `detail-type` of the events the operator consumes.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The services whose resources a pipeline manages, by their event `source` (`aws.<service>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    DynamoDb,
    Kinesis,
    Pipes,
    Firehose,
    S3,
    Glue,
    Athena,
    Iam,
}

impl Service {
    /// The service of an event `source` (`aws.kinesis`), if a pipeline uses it.
    pub fn from_source(source: &str) -> Option<Self> {
        Some(match source.strip_prefix("aws.")? {
            "dynamodb" => Self::DynamoDb,
            "kinesis" => Self::Kinesis,
            "pipes" => Self::Pipes,
            "firehose" => Self::Firehose,
            "s3" => Self::S3,
            "glue" => Self::Glue,
            "athena" => Self::Athena,
            "iam" => Self::Iam,
            _ => return None,
        })
    }

    /// The service that holds `component`'s resources.
    pub fn of(component: crate::api::ComponentKind) -> Self {
        use crate::api::ComponentKind as C;
        match component {
            C::Table => Self::DynamoDb,
            C::Stream => Self::Kinesis,
            C::Pipe => Self::Pipes,
            C::Delivery => Self::Firehose,
            C::Bucket => Self::S3,
            C::Catalog => Self::Glue,
            C::Analytics => Self::Athena,
            C::Iam => Self::Iam,
        }
    }
}

/// What the operator keeps of a change event: where, what, who.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    pub service: Service,
    pub account: String,
    pub region: String,
    /// The API call (`IncreaseStreamRetentionPeriod`).
    pub event_name: String,
    /// When AWS says it was made (RFC 3339).
    pub event_time: String,
    /// `userIdentity.arn`: who made it.
    pub actor: String,
    pub source_ip: String,
    pub user_agent: String,
    /// The resource names the call's `requestParameters` carry (ARNs reduced to names).
    pub names: Vec<String>,
}

/// Why a message is not a change event the operator can use.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("not JSON of an EventBridge event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("detail-type is \"{0}\", not \"{DETAIL_TYPE}\"")]
    DetailType(String),
    #[error("source \"{0}\" is not a service a pipeline uses")]
    Source(String),
    #[error("the event names no {0}")]
    Missing(&'static str),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type", default)]
    detail_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    region: Option<String>,
    detail: Detail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    event_time: String,
    #[serde(default)]
    aws_region: Option<String>,
    #[serde(default)]
    recipient_account_id: Option<String>,
    #[serde(default)]
    user_identity: UserIdentity,
    #[serde(rename = "sourceIPAddress", default)]
    source_ip_address: String,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    request_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    error_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    #[serde(default)]
    arn: String,
    #[serde(default)]
    account_id: Option<String>,
}

/// `requestParameters` keys that name a pipeline's resources, as CloudTrail records them.
const NAME_KEYS: &[&str] = &[
    "tableName",
    "tableArn",
    "resourceArn",
    "streamName",
    "streamARN",
    "deliveryStreamName",
    "name",
    "bucketName",
    "databaseName",
    "crawlerName",
    "workGroup",
    "roleName",
];

impl ChangeEvent {
    /// Parses an SQS message body. A failed call (`errorCode`) is no change: `Ok(None)`.
    pub fn parse(body: &str) -> Result<Option<Self>, Malformed> {
        let envelope: Envelope = serde_json::from_str(body)?;
        if envelope.detail_type != DETAIL_TYPE {
            return Err(Malformed::DetailType(envelope.detail_type));
        }
        let service = Service::from_source(&envelope.source).ok_or(Malformed::Source(envelope.source))?;
        let d = envelope.detail;
        if d.error_code.is_some() {
            return Ok(None);
        }
        // Moto leaves the envelope's `account` out; the record has it either way.
        let account = d
            .recipient_account_id
            .or(envelope.account)
            .or(d.user_identity.account_id)
            .ok_or(Malformed::Missing("account"))?;
        let region = d.aws_region.or(envelope.region).ok_or(Malformed::Missing("region"))?;
        if d.event_name.is_empty() {
            return Err(Malformed::Missing("eventName"));
        }
        let mut names = Vec::new();
        if let Some(params) = &d.request_parameters {
            for key in NAME_KEYS {
                if let Some(value) = params.get(*key) {
                    collect_names(value, &mut names);
                }
            }
            // Glue's CreateTable/UpdateTable name the table inside `tableInput`.
            if let Some(input) = params.get("tableInput").and_then(|t| t.get("name")) {
                collect_names(input, &mut names);
            }
        }
        names.sort();
        names.dedup();
        Ok(Some(Self {
            service,
            account,
            region,
            event_name: d.event_name,
            event_time: d.event_time,
            actor: d.user_identity.arn,
            source_ip: d.source_ip_address,
            user_agent: d.user_agent,
            names,
        }))
    }

    /// Where the call came from, as the drift report shows it.
    pub fn origin(&self) -> String {
        match (self.source_ip.is_empty(), self.user_agent.is_empty()) {
            (false, false) => format!("{} ({})", self.source_ip, self.user_agent),
            (false, true) => self.source_ip.clone(),
            (true, false) => self.user_agent.clone(),
            (true, true) => String::new(),
        }
    }
}

fn collect_names(value: &serde_json::Value, names: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => names.push(resource_name(s).to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// The resource name in `value`: an ARN's last path segment (`arn:aws:kinesis:...:stream/orders`
/// is `orders`), else `value`.
fn resource_name(value: &str) -> &str {
    if !value.starts_with("arn:") {
        return value;
    }
    let resource = value.splitn(6, ':').nth(5).unwrap_or(value);
    resource.rsplit('/').next().unwrap_or(resource)
}

/// Who a principal is, whatever the service part of its ARN: moto's GetCallerIdentity says
/// `arn:aws:sts::1:user/moto` where CloudTrail says `arn:aws:iam::1:user/moto`.
pub fn principal(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, _, _, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((account, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, detail: serde_json::Value) -> String {
        serde_json::json!({
            "version": "0", "id": "1", "detail-type": DETAIL_TYPE, "source": source,
            "time": "2026-12-06T08:00:00Z", "region": "eu-west-1", "resources": [], "detail": detail,
        })
        .to_string()
    }

    #[test]
    fn a_cloudtrail_event_gives_service_place_actor_and_resource_names() {
        let body = event(
            "aws.kinesis",
            serde_json::json!({
                "eventName": "IncreaseStreamRetentionPeriod", "eventTime": "2026-12-06T08:00:00Z",
                "awsRegion": "eu-west-1", "recipientAccountId": "111122223333",
                "userIdentity": {"arn": "arn:aws:sts::111122223333:assumed-role/admin/alice"},
                "sourceIPAddress": "10.0.0.7", "userAgent": "aws-cli/2.15",
                "requestParameters": {"streamName": "shop-sales-orders", "retentionPeriodHours": 48},
            }),
        );
        let e = ChangeEvent::parse(&body).unwrap().unwrap();
        assert_eq!((e.service, e.account.as_str(), e.region.as_str()), (Service::Kinesis, "111122223333", "eu-west-1"));
        assert_eq!(e.names, ["shop-sales-orders"]);
        assert_eq!(e.actor, "arn:aws:sts::111122223333:assumed-role/admin/alice");
        assert_eq!(e.origin(), "10.0.0.7 (aws-cli/2.15)");
    }

    #[test]
    fn arns_are_reduced_to_names_and_glue_table_inputs_are_read() {
        let body = event(
            "aws.glue",
            serde_json::json!({
                "eventName": "UpdateTable", "awsRegion": "eu-west-1", "recipientAccountId": "1",
                "requestParameters": {"databaseName": "shop_sales", "tableInput": {"name": "orders"}},
            }),
        );
        assert_eq!(ChangeEvent::parse(&body).unwrap().unwrap().names, ["orders", "shop_sales"]);
        let body = event(
            "aws.kinesis",
            serde_json::json!({
                "eventName": "DeleteStream", "awsRegion": "eu-west-1", "recipientAccountId": "1",
                "requestParameters": {"streamARN": "arn:aws:kinesis:eu-west-1:1:stream/shop-orders"},
            }),
        );
        assert_eq!(ChangeEvent::parse(&body).unwrap().unwrap().names, ["shop-orders"]);
    }

    #[test]
    fn failed_calls_are_no_change_and_malformed_messages_say_why() {
        let failed = event(
            "aws.s3",
            serde_json::json!({"eventName": "DeleteBucket", "awsRegion": "us-east-1", "recipientAccountId": "1", "errorCode": "AccessDenied"}),
        );
        assert_eq!(ChangeEvent::parse(&failed).unwrap(), None);
        assert!(matches!(ChangeEvent::parse("not json"), Err(Malformed::Json(_))));
        let other = event("aws.ec2", serde_json::json!({"eventName": "RunInstances", "awsRegion": "us-east-1"}));
        assert_eq!(
            ChangeEvent::parse(&other).unwrap_err().to_string(),
            "source \"aws.ec2\" is not a service a pipeline uses"
        );
        let nowhere = event("aws.iam", serde_json::json!({"eventName": "DeleteRole"}));
        let nowhere = nowhere.replace("\"region\":\"eu-west-1\",", "");
        assert!(matches!(ChangeEvent::parse(&nowhere), Err(Malformed::Missing(_))), "{nowhere}");
    }

    #[test]
    fn a_principal_is_its_account_and_resource_whatever_the_service() {
        assert_eq!(principal("arn:aws:sts::1:user/moto"), principal("arn:aws:iam::1:user/moto"));
        assert_ne!(principal("arn:aws:sts::1:assumed-role/a/s"), principal("arn:aws:sts::2:assumed-role/a/s"));
        assert_eq!(principal("moto"), None);
    }
}
