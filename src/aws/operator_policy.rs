//! The IAM policy of the operator's own role: every AWS action the operator
//! may call, in one list. `docs/iam.md` and `sales-operator iam-policy` are
//! generated from it; tests/iam_policy.rs fails when the code calls an action
//! that is not listed (observed calls against moto and a scan of src/aws/) or
//! lists one the code never calls.

use std::collections::BTreeSet;

/// Every AWS action the operator calls (sorted), besides `iam:PassRole`.
pub const OPERATOR_ACTIONS: &[&str] = &[
    "athena:BatchGetNamedQuery",
    "athena:CreateNamedQuery",
    "athena:CreateWorkGroup",
    "athena:DeleteNamedQuery",
    "athena:DeleteWorkGroup",
    "athena:GetNamedQuery",
    "athena:GetWorkGroup",
    "athena:ListNamedQueries",
    "athena:ListTagsForResource",
    "athena:TagResource",
    "athena:UpdateNamedQuery",
    "athena:UpdateWorkGroup",
    "dynamodb:CreateTable",
    "dynamodb:DeleteTable",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTable",
    "dynamodb:ListTagsOfResource",
    "dynamodb:TagResource",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateTable",
    "firehose:CreateDeliveryStream",
    "firehose:DeleteDeliveryStream",
    "firehose:DescribeDeliveryStream",
    "firehose:ListTagsForDeliveryStream",
    "firehose:TagDeliveryStream",
    "firehose:UpdateDestination",
    "glue:CreateCrawler",
    "glue:CreateDatabase",
    "glue:CreateTable",
    "glue:DeleteCrawler",
    "glue:DeleteDatabase",
    "glue:DeleteTable",
    "glue:GetCrawler",
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTags",
    "glue:StopCrawler",
    "glue:TagResource",
    "glue:UpdateCrawler",
    "glue:UpdateTable",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "kinesis:AddTagsToStream",
    "kinesis:CreateStream",
    "kinesis:DecreaseStreamRetentionPeriod",
    "kinesis:DeleteStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:IncreaseStreamRetentionPeriod",
    "kinesis:ListTagsForStream",
    "kinesis:StartStreamEncryption",
    "kinesis:UpdateShardCount",
    "kinesis:UpdateStreamMode",
    "pipes:CreatePipe",
    "pipes:DeletePipe",
    "pipes:DescribePipe",
    "pipes:StartPipe",
    "pipes:TagResource",
    "pipes:UpdatePipe",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:TagResource",
    "tag:GetResources",
];

/// Every AWS action the OrderGenerator workload (`sales-operator generate`) calls, on its table.
pub const GENERATOR_ACTIONS: &[&str] = &["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"];

/// The IAM policy of a role for the OrderGenerator pods writing into the table `table_arn`.
pub fn generator_policy_document(table_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WriteOrders",
            "Effect": "Allow",
            "Action": GENERATOR_ACTIONS,
            "Resource": table_arn
        }]
    })
}

/// The role the operator creates for each pipeline live under this IAM path
/// ([`crate::names::ROLE_PATH`]), so its IAM rights are scoped to them.
pub const ROLE_RESOURCE: &str = "arn:aws:iam::*:role/sales-operator/*";

/// The services the pipeline roles are passed to (Pipes, Firehose, Glue crawler).
pub const PASSED_TO_SERVICES: &[&str] = &["firehose.amazonaws.com", "glue.amazonaws.com", "pipes.amazonaws.com"];

/// The IAM prefix of an SDK service name (`Metadata::service()`, as counted by
/// [`super::CallLog`]); `None` for a service the operator does not use.
pub fn iam_prefix(sdk_service: &str) -> Option<&'static str> {
    Some(match sdk_service {
        "DynamoDB" => "dynamodb",
        "Kinesis" => "kinesis",
        "Pipes" => "pipes",
        "S3" => "s3",
        "Firehose" => "firehose",
        "Glue" => "glue",
        "Athena" => "athena",
        "IAM" => "iam",
        "Resource Groups Tagging API" => "tag",
        _ => return None,
    })
}

/// The IAM actions that authorise one SDK call. Most are `prefix:Operation`;
/// S3 names several differently. `None` for an unknown service.
pub fn iam_actions(sdk_service: &str, operation: &str) -> Option<Vec<String>> {
    let prefix = iam_prefix(sdk_service)?;
    let renamed: &[&str] = match (prefix, operation) {
        ("s3", "GetBucketEncryption") => &["s3:GetEncryptionConfiguration"],
        ("s3", "PutBucketEncryption") => &["s3:PutEncryptionConfiguration"],
        ("s3", "GetBucketLifecycleConfiguration") => &["s3:GetLifecycleConfiguration"],
        ("s3", "PutBucketLifecycleConfiguration") => &["s3:PutLifecycleConfiguration"],
        ("s3", "DeleteBucketLifecycle") => &["s3:PutLifecycleConfiguration"],
        ("s3", "GetPublicAccessBlock") => &["s3:GetBucketPublicAccessBlock"],
        ("s3", "PutPublicAccessBlock") => &["s3:PutBucketPublicAccessBlock"],
        ("s3", "HeadBucket") | ("s3", "ListObjectsV2") | ("s3", "ListObjects") => &["s3:ListBucket"],
        ("s3", "ListObjectVersions") => &["s3:ListBucketVersions"],
        ("s3", "DeleteObjects") => &["s3:DeleteObject", "s3:DeleteObjectVersion"],
        ("s3", "HeadObject") => &["s3:GetObject"],
        // Tags in the create call need the tagging permission too.
        ("s3", "CreateBucket") => &["s3:CreateBucket", "s3:TagResource"],
        ("kinesis", "CreateStream") => &["kinesis:CreateStream", "kinesis:AddTagsToStream"],
        _ => &[],
    };
    if renamed.is_empty() {
        Some(vec![format!("{prefix}:{operation}")])
    } else {
        Some(renamed.iter().map(|a| a.to_string()).collect())
    }
}

/// One SDK call that `allowed` does not authorise.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    pub service: String,
    pub operation: String,
    /// The IAM action it needs (`unknown service` when the service is not mapped).
    pub action: String,
}

/// The `(service, operation)` calls (as in [`super::CallLog::counts`]) whose IAM
/// actions are not all in `allowed`.
pub fn missing_actions<'a>(calls: impl IntoIterator<Item = (&'a str, &'a str)>, allowed: &[&str]) -> Vec<Missing> {
    let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
    let mut missing = BTreeSet::new();
    for (service, operation) in calls {
        let needed = iam_actions(service, operation).unwrap_or_else(|| vec![format!("unknown service {service}")]);
        for action in needed.into_iter().filter(|a| !allowed.contains(a.as_str())) {
            missing.insert(Missing { service: service.to_string(), operation: operation.to_string(), action });
        }
    }
    missing.into_iter().collect()
}

/// The policy document of the operator's role.
pub fn policy_document() -> serde_json::Value {
    let (roles, others): (Vec<&str>, Vec<&str>) = OPERATOR_ACTIONS.iter().partition(|a| a.starts_with("iam:"));
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManagePipelineResources",
                "Effect": "Allow",
                "Action": others,
                "Resource": "*"
            },
            {
                "Sid": "ManagePipelineRoles",
                "Effect": "Allow",
                "Action": roles,
                "Resource": ROLE_RESOURCE
            },
            {
                "Sid": "PassPipelineRoles",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": ROLE_RESOURCE,
                "Condition": { "StringEquals": { "iam:PassedToService": PASSED_TO_SERVICES } }
            }
        ]
    })
}

/// [`policy_document`] as pretty JSON, newline-terminated.
pub fn policy_json() -> String {
    let mut text = serde_json::to_string_pretty(&policy_document()).unwrap_or_default();
    text.push('\n');
    text
}

/// Start and end markers of the generated part of docs/iam.md.
pub const DOC_BEGIN: &str = "<!-- BEGIN GENERATED: sales-operator iam-policy (scripts/gen-iam-doc.sh) -->";
pub const DOC_END: &str = "<!-- END GENERATED -->";

/// The generated part of docs/iam.md (between [`DOC_BEGIN`] and [`DOC_END`]).
pub fn doc_section() -> String {
    let mut out = String::new();
    out.push_str(&format!("{DOC_BEGIN}\n\n```json\n{}```\n\n", policy_json()));
    out.push_str("| service | actions |\n|---|---|\n");
    let mut services: Vec<&str> = OPERATOR_ACTIONS.iter().filter_map(|a| a.split(':').next()).collect();
    services.dedup();
    for service in services {
        let actions: Vec<&str> = OPERATOR_ACTIONS
            .iter()
            .filter(|a| a.split(':').next() == Some(service))
            .filter_map(|a| a.split(':').nth(1))
            .collect();
        out.push_str(&format!("| `{service}` | {} |\n", actions.join(", ")));
    }
    out.push_str(&format!("| `iam` (pass) | PassRole, to {} only |\n", PASSED_TO_SERVICES.join(", ")));
    out.push_str(&format!("\n{DOC_END}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_resource_is_the_pipeline_roles_path() {
        assert_eq!(ROLE_RESOURCE, format!("arn:aws:iam::*:role{}*", crate::names::ROLE_PATH));
    }

    #[test]
    fn actions_are_sorted_and_unique() {
        let mut sorted = OPERATOR_ACTIONS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, OPERATOR_ACTIONS);
    }

    #[test]
    fn s3_operations_map_to_their_iam_action_names() {
        assert_eq!(iam_actions("S3", "GetBucketEncryption").unwrap(), ["s3:GetEncryptionConfiguration"]);
        assert_eq!(iam_actions("S3", "HeadBucket").unwrap(), ["s3:ListBucket"]);
        assert_eq!(iam_actions("S3", "DeleteObjects").unwrap(), ["s3:DeleteObject", "s3:DeleteObjectVersion"]);
        assert_eq!(iam_actions("S3", "PutBucketTagging").unwrap(), ["s3:PutBucketTagging"]);
        assert_eq!(
            iam_actions("Firehose", "ListTagsForDeliveryStream").unwrap(),
            ["firehose:ListTagsForDeliveryStream"]
        );
        assert_eq!(iam_actions("DynamoDB", "DescribeTable").unwrap(), ["dynamodb:DescribeTable"]);
        assert_eq!(iam_actions("EC2", "RunInstances"), None);
    }

    #[test]
    fn a_list_missing_one_action_fails_the_check() {
        let calls = [("DynamoDB", "CreateTable"), ("S3", "DeleteObjects"), ("Kinesis", "UpdateShardCount")];
        assert_eq!(missing_actions(calls, OPERATOR_ACTIONS), vec![]);
        let without: Vec<&str> = OPERATOR_ACTIONS.iter().copied().filter(|a| *a != "s3:DeleteObjectVersion").collect();
        assert_eq!(
            missing_actions(calls, &without),
            vec![Missing {
                service: "S3".into(),
                operation: "DeleteObjects".into(),
                action: "s3:DeleteObjectVersion".into()
            }]
        );
        let unknown = missing_actions([("EC2", "RunInstances")], OPERATOR_ACTIONS);
        assert_eq!(unknown[0].action, "unknown service EC2");
    }

    #[test]
    fn policy_scopes_iam_to_the_pipeline_roles_and_passes_them_to_three_services_only() {
        let doc = policy_document();
        let statements = doc["Statement"].as_array().unwrap();
        let resources = &statements[0]["Action"];
        assert!(resources.as_array().unwrap().iter().all(|a| !a.as_str().unwrap().starts_with("iam:")));
        assert_eq!(statements[1]["Resource"], ROLE_RESOURCE);
        assert!(statements[1]["Action"].as_array().unwrap().iter().all(|a| a.as_str().unwrap().starts_with("iam:")));
        assert_eq!(statements[2]["Action"], "iam:PassRole");
        assert_eq!(statements[2]["Condition"]["StringEquals"]["iam:PassedToService"].as_array().unwrap().len(), 3);
        let total =
            statements[0]["Action"].as_array().unwrap().len() + statements[1]["Action"].as_array().unwrap().len();
        assert_eq!(total, OPERATOR_ACTIONS.len());
    }
}
