//! Several AWS accounts on one moto server: the operator's own, and member accounts reached
//! through AWS Organizations' OrganizationAccountAccessRole (the AWS-behaviour layer gives every
//! member account one that the default account may assume), with roles whose trust policies are
//! the ones `sales-operator iam-policy --trust-policy` prints.

use sales_operator::aws::identity::{Assume, RoleArn};
use sales_operator::aws::{self, AwsSettings};

use super::text;

/// The account the operator's own (dummy) credentials are in: moto's default.
pub const HOME: &str = "123456789012";
/// A member account of the same organization.
pub const TENANT: &str = "222222222222";
/// Another member account.
pub const OTHER: &str = "333333333333";

/// The SDK configuration of `account` on the server of `settings`: the operator's own
/// credentials for [`HOME`], else an administrator's through OrganizationAccountAccessRole.
pub async fn admin_of(settings: &AwsSettings, account: &str) -> aws_config::SdkConfig {
    super::moto::set_aws_env();
    if account == HOME {
        return aws::sdk_config(settings).await;
    }
    let role = RoleArn::parse(&format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole")).unwrap();
    aws::connect(&AwsSettings { assume: Some(Assume::new(role, None)), ..settings.clone() })
        .await
        .expect("the organization's role")
}

/// Creates role `name` in `account` with the trust policy `sales-operator iam-policy
/// --trust-policy PRINCIPAL [--external-id ID]` prints; returns its ARN.
pub async fn role_trusting(
    settings: &AwsSettings,
    account: &str,
    name: &str,
    principal: &str,
    external_id: Option<&str>,
) -> String {
    let mut args = vec!["iam-policy", "--trust-policy", principal];
    args.extend(external_id.map(|id| ["--external-id", id]).into_iter().flatten());
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_sales-operator")).args(&args).output().unwrap();
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let iam = aws_sdk_iam::Client::new(&admin_of(settings, account).await);
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(text(&printed.stdout))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create role {name}: {}", aws_sdk_iam::error::DisplayErrorContext(e)));
    role.role.unwrap().arn
}

/// The tags of table `name` in `account`, or None when the account has no such table.
pub async fn table_tags(settings: &AwsSettings, account: &str, name: &str) -> Option<Vec<(String, String)>> {
    let ddb = aws_sdk_dynamodb::Client::new(&admin_of(settings, account).await);
    let arn = ddb.describe_table().table_name(name).send().await.ok()?.table?.table_arn?;
    assert!(arn.contains(&format!(":{account}:table/")), "{arn}");
    let tags = ddb.list_tags_of_resource().resource_arn(arn).send().await.unwrap().tags.unwrap_or_default();
    Some(tags.into_iter().map(|t| (t.key, t.value)).collect())
}
