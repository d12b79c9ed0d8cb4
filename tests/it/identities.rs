//! Pipelines in other AWS accounts through assumed roles (`--assume-role`): STS decides who may
//! assume what as IAM does (the AWS-behaviour layer checks trust policies, ExternalId and
//! TagSession, which moto does not), every resource lands in the role's account, and sessions
//! that expire are renewed without a failed pass.

crate::support::moto::own_server!();

use std::time::{Duration, Instant};

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::aws::identity::{Assume, RoleArn};
use sales_operator::aws::{self, AwsSettings, CallLog, Clients, PipelineCtx};
use sales_operator::reconcile::{reconcile, Mode, Reconciler, Timing};

use crate::support::accounts::{self, HOME, TENANT};
use crate::support::text;
use moto::operator;

async fn admin_of(account: &str) -> aws_config::SdkConfig {
    accounts::admin_of(&moto::settings(), account).await
}

async fn tenant_role(name: &str, principal: &str, external_id: Option<&str>) -> String {
    accounts::role_trusting(&moto::settings(), TENANT, name, principal, external_id).await
}

fn manifest(dir: &tempfile::TempDir, name: &str) -> String {
    let file = dir.path().join(format!("{name}.yaml"));
    let yaml = format!("apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: team-a\nspec: {{}}\n");
    std::fs::write(&file, yaml).unwrap();
    file.to_str().unwrap().to_string()
}

async fn table_tags(account: &str, name: &str) -> Option<Vec<(String, String)>> {
    accounts::table_tags(&moto::settings(), account, name).await
}

#[tokio::test]
async fn apply_with_an_assumed_role_builds_and_deletes_the_pipeline_in_the_role_account() {
    let dir = tempfile::tempdir().unwrap();
    let name = moto::unique("acct");
    let file = manifest(&dir, &name);
    let role = tenant_role(&format!("{name}-operator"), HOME, Some("team-a-ext")).await;

    let apply = operator(&["apply", "-f", &file, "-o", "json", "--assume-role", &role, "--external-id", "team-a-ext"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let status: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    assert!(status["pipe"]["arn"].as_str().unwrap().contains(&format!(":{TENANT}:pipe/")), "{status:#}");

    let table = format!("team-a-{name}-orders");
    let tags = table_tags(TENANT, &table).await.expect("the table is in the role's account");
    assert!(tags.contains(&("sales-operator.dev/pipeline".into(), format!("team-a/{name}"))), "{tags:?}");
    assert_eq!(table_tags(HOME, &table).await, None, "nothing in the operator's own account");

    // Without the role the operator's own account has no such pipeline: plan wants to create it all.
    let plan = operator(&["plan", "-f", &file]);
    assert!(text(&plan.stdout).contains(&format!("+ create   dynamodb table {table}")), "{}", text(&plan.stdout));
    let plan = operator(&["plan", "-f", &file, "--assume-role", &role, "--external-id", "team-a-ext"]);
    assert!(text(&plan.stdout).contains("No changes"), "{}", text(&plan.stdout));

    let delete = operator(&[
        "delete",
        "-f",
        &file,
        "--deletion-policy",
        "Delete",
        "--assume-role",
        &role,
        "--external-id",
        "team-a-ext",
    ]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    assert!(text(&delete.stdout).contains("8 deleted"), "{}", text(&delete.stdout));
    assert_eq!(table_tags(TENANT, &table).await, None, "deleted in the role's account");
}

#[tokio::test]
async fn a_role_that_does_not_trust_the_operator_is_refused_with_the_reason_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let name = moto::unique("deny");
    let file = manifest(&dir, &name);
    let other = tenant_role(&format!("{name}-other"), "333333333333", None).await;
    let with_id = tenant_role(&format!("{name}-ext"), HOME, Some("right-id")).await;
    let missing = format!("arn:aws:iam::{TENANT}:role/{name}-missing");

    for (role, id) in [
        (other.as_str(), None),
        (with_id.as_str(), Some("wrong-id")),
        (with_id.as_str(), None),
        (missing.as_str(), None),
    ] {
        let mut args = vec!["apply", "-f", &file, "--assume-role", role];
        args.extend(id.map(|id| ["--external-id", id]).into_iter().flatten());
        let out = operator(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{role} {id:?}: {err}");
        assert!(err.contains("AssumeRole failed: AccessDenied:") && err.contains(&format!("(role {role})")), "{err}");
        assert!(err.contains("iam-policy --trust-policy"), "says how to fix it: {err}");
    }
    assert_eq!(table_tags(TENANT, &format!("team-a-{name}-orders")).await, None);
    assert_eq!(table_tags(HOME, &format!("team-a-{name}-orders")).await, None);

    // A trust policy without sts:TagSession refuses the pipeline's session tags.
    let iam = aws_sdk_iam::Client::new(&admin_of(TENANT).await);
    let untagged = format!("{name}-untagged");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{HOME}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let arn = iam
        .create_role()
        .role_name(&untagged)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn;
    let out = operator(&["apply", "-f", &file, "--assume-role", &arn]);
    assert!(text(&out.stderr).contains("sts:TagSession"), "{}", text(&out.stderr));

    // Bad flags are refused before any call.
    let out = operator(&["plan", "-f", &file, "--assume-role", "team-a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--assume-role: team-a is not an IAM role ARN"), "{}", text(&out.stderr));
    let out = operator(&["plan", "-f", &file, "--external-id", "x y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--external-id: only with --assume-role"), "{}", text(&out.stderr));
}

/// Sessions are made to last 15 s (the layer shortens STS's Expiration and refuses their keys
/// afterwards with ExpiredToken); reconciling for well past that never fails a pass, because the
/// SDK's identity cache asks STS again before the credentials run out.
#[tokio::test]
async fn sessions_that_expire_are_renewed_with_no_failed_pass() {
    let name = moto::unique("short");
    let role_name = format!("{name}-session");
    let arn = tenant_role(&role_name, HOME, None).await;
    moto::behave(&role_name, serde_json::json!({ "session_lifetime": 15 }));
    let before = moto::calls_seen("sts:AssumeRole");

    let assume = Assume::new(RoleArn::parse(&arn).unwrap(), None).for_pipeline("team-a", &name);
    moto::set_aws_env();
    let settings = AwsSettings { assume: Some(assume), ..moto::settings() };
    let sdk = aws::connect(&settings).await.unwrap();
    let clients = Clients::new(&sdk, None, CallLog::default()).unwrap();
    let timing = Timing { iam_settle: Some(moto::iam_settle()), pace: Some(moto::POLL), iam_window: None };
    let c = Reconciler::new(clients, timing);
    let yaml = format!("apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: team-a\nspec: {{}}\n");
    let p = parse_pipeline(&yaml, "test").unwrap();
    let ctx = PipelineCtx::new("team-a", &name, &p.spec, moto::REGION);

    let until = Instant::now() + Duration::from_secs(25);
    let mut passes = 0;
    let mut ready = false;
    while Instant::now() < until {
        let out = reconcile(&c, &ctx, Mode::Apply).await;
        assert!(out.error.is_none() && !out.stalled(), "pass {passes}: {:?}", out.error);
        ready |= out.ready();
        passes += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "Ready within 25 s");
    let sessions = moto::calls_seen("sts:AssumeRole") - before;
    assert!(
        sessions >= 3,
        "25 s of 15-second sessions renewed 10 s before they end need at least 3; STS was asked {sessions} times"
    );
    assert!(sessions < passes, "credentials are cached between passes: {sessions} sessions for {passes} passes");
}
