//! AwsIdentities through the real API server: the CRD's validation, RBAC that lets tenants read
//! identities and not write them, and one operator building same-named pipelines of two
//! namespaces in two AWS accounts through assumed roles, refusing what a namespace was not
//! granted before any AWS call and what STS refuses with AWS's words.

use std::time::Duration;

use crate::support::accounts::{self, HOME, OTHER, TENANT};
use crate::support::helm_chart;
use crate::support::kube_env::wait_until;
use crate::support::moto;
use crate::support::operator::{apply_rbac, env, Operator};
use crate::support::text;

const TIMEOUT: Duration = Duration::from_secs(90);

fn kubectl(args: &[&str]) -> String {
    env().kubectl_ok(args)
}

fn apply(yaml: &str) -> std::process::Output {
    env().kubectl_stdin(&["apply", "-f", "-"], yaml)
}

fn applied(yaml: &str) {
    let out = apply(yaml);
    assert!(out.status.success(), "{}\n{yaml}", text(&out.stderr));
}

fn identity(name: &str, spec: &str) -> String {
    format!("apiVersion: sales-operator.dev/v1alpha1\nkind: AwsIdentity\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn pipeline(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

fn field(ns: &str, name: &str, path: &str) -> String {
    kubectl(&["get", "-n", ns, &format!("sp/{name}"), "-o", &format!("jsonpath={path}")])
}

fn condition(ns: &str, name: &str, type_: &str, what: &str) -> String {
    field(ns, name, &format!("{{.status.conditions[?(@.type==\"{type_}\")].{what}}}"))
}

fn tags(account: &str, table: &str) -> Option<Vec<(String, String)>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(accounts::table_tags(&moto::settings(), account, table))
}

fn role(account: &str, name: &str, trusted: &str, external_id: Option<&str>) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(accounts::role_trusting(&moto::settings(), account, name, trusted, external_id))
}

#[test]
fn the_identity_crd_refuses_a_bad_role_arn_an_empty_selector_and_a_bad_duration_naming_the_field() {
    env();
    let name = moto::unique("id-invalid");
    for (spec, field, says) in [
        ("  roleArn: arn:aws:iam::1234:role/x\n  namespaceSelector:\n    names: [a]\n", "spec.roleArn", "IAM role ARN"),
        ("  roleArn: arn:aws:s3:::bucket\n  namespaceSelector:\n    names: [a]\n", "spec.roleArn", "IAM role ARN"),
        ("  roleArn: arn:aws:iam::222222222222:role/x\n  namespaceSelector: {}\n", "spec.namespaceSelector", "empty selector"),
        ("  roleArn: arn:aws:iam::222222222222:role/x\n", "spec.namespaceSelector", "Required value"),
        (
            "  roleArn: arn:aws:iam::222222222222:role/x\n  sessionDuration: 5m\n  namespaceSelector:\n    names: [a]\n",
            "spec.sessionDuration",
            "15m to 12h",
        ),
        (
            "  roleArn: arn:aws:iam::222222222222:role/x\n  externalId: x\n  namespaceSelector:\n    names: [a]\n",
            "spec.externalId",
            "2-1224",
        ),
        (
            "  roleArn: arn:aws:iam::222222222222:role/x\n  sessionTags:\n    aws:team: a\n  namespaceSelector:\n    names: [a]\n",
            "spec.sessionTags",
            "reserved",
        ),
    ] {
        let out = env().kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &identity(&name, spec));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{spec}");
        assert!(err.contains(field) && err.contains(says), "{spec}\n{err}");
    }
    let good = "  roleArn: arn:aws:iam::222222222222:role/teams/sales\n  sessionDuration: 1h30m\n  namespaceSelector:\n    matchExpressions:\n      - {key: team, operator: Exists}\n";
    let out = env().kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &identity(&name, good));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let example = crate::support::kube_env::project_dir().join("examples/aws-identity.yaml");
    let out = env().kubectl(&["create", "--dry-run=server", "-f", example.to_str().unwrap()]);
    assert!(out.status.success(), "examples/aws-identity.yaml: {}", text(&out.stderr));
}

#[test]
fn tenants_read_identities_and_cannot_write_them() {
    let env = env();
    let ns = env.create_namespace("id-tenant");
    // The chart's RBAC (its reader role bound to every authenticated user).
    apply_rbac(&helm_chart::operator_rbac(env, &ns));
    let tenant = format!("system:serviceaccount:{ns}:default");
    let name = moto::unique("id-rbac");
    let spec = identity(&name, "  roleArn: arn:aws:iam::222222222222:role/x\n  namespaceSelector:\n    names: [a]\n");
    let out = env.kubectl_stdin(&["create", "-f", "-", "--as", &tenant], &spec);
    assert!(!out.status.success(), "a tenant created an identity");
    assert!(text(&out.stderr).contains("forbidden"), "{}", text(&out.stderr));
    applied(&spec);
    let read = env.kubectl(&["get", "awsidentity", &name, "--as", &tenant, "-o", "jsonpath={.spec.roleArn}"]);
    assert_eq!(text(&read.stdout), "arn:aws:iam::222222222222:role/x", "{}", text(&read.stderr));
    for verb in ["patch", "delete"] {
        let can = env.kubectl(&["auth", "can-i", verb, "awsidentities.sales-operator.dev", "--as", &tenant]);
        assert_eq!(text(&can.stdout).trim(), "no", "{verb}");
    }
    kubectl(&["delete", "awsidentity", &name]);
}

#[test]
fn one_operator_builds_same_named_pipelines_of_two_namespaces_in_two_accounts() {
    let env = env();
    let team_a = env.create_namespace("acct-a");
    let team_b = env.create_namespace("acct-b");
    let team_c = env.create_namespace("acct-c");
    let label = moto::unique("team");
    kubectl(&["label", "namespace", &team_b, &format!("sales-operator.test/team={label}")]);
    apply_rbac(&helm_chart::template(
        env,
        &team_a,
        &[
            "--set",
            &format!("watchNamespaces={{{team_a},{team_b},{team_c}}}"),
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    ));
    let unique = moto::unique("acct");
    let role_a = role(TENANT, &format!("{unique}-a"), HOME, Some("team-a-ext"));
    let role_b = role(OTHER, &format!("{unique}-b"), HOME, None);
    let refusing = role(TENANT, &format!("{unique}-refusing"), OTHER, None);
    // Team A's sessions last 15 s: the operator must renew them between passes.
    moto::behave(&format!("{unique}-a"), serde_json::json!({ "session_lifetime": 15 }));
    let (id_a, id_b, id_refusing) = (format!("{unique}-a"), format!("{unique}-b"), format!("{unique}-refusing"));
    applied(&identity(
        &id_a,
        &format!("  roleArn: {role_a}\n  externalId: team-a-ext\n  default: true\n  namespaceSelector:\n    names: [{team_a}]\n"),
    ));
    applied(&identity(
        &id_b,
        &format!("  roleArn: {role_b}\n  default: true\n  namespaceSelector:\n    matchLabels:\n      sales-operator.test/team: {label}\n"),
    ));
    applied(&identity(&id_refusing, &format!("  roleArn: {refusing}\n  namespaceSelector:\n    names: [{team_c}]\n")));

    let kubeconfig = env.kubeconfig_for_token(&env.service_account_token(&team_a, "sales-operator"));
    let op = Operator::start(&team_a, &kubeconfig, &["--namespace", &team_b, "--namespace", &team_c]);
    let prefix = moto::unique("same");
    let spec = format!("  namePrefix: {prefix}\n  deletionPolicy: Delete\n");
    applied(&pipeline(&team_a, "sales", &spec));
    applied(&pipeline(&team_b, "sales", &spec));
    for ns in [&team_a, &team_b] {
        assert!(
            wait_until(TIMEOUT, || condition(ns, "sales", "Ready", "status") == "True"),
            "{ns}/sales not Ready:\n{}\n{}",
            kubectl(&["get", "-n", ns, "sp/sales", "-o", "yaml"]),
            op.log()
        );
    }
    assert_eq!(field(&team_a, "sales", "{.status.account} {.status.identity}"), format!("{TENANT} {id_a}"));
    assert_eq!(field(&team_b, "sales", "{.status.account} {.status.identity}"), format!("{OTHER} {id_b}"));
    let listed = kubectl(&["get", "sp", "-n", &team_b]);
    assert!(listed.contains("ACCOUNT") && listed.contains(OTHER) && listed.contains(moto::REGION), "{listed}");
    let table = format!("{prefix}-orders");
    let in_a = tags(TENANT, &table).expect("team A's table in its account");
    assert!(in_a.contains(&("sales-operator.dev/pipeline".into(), format!("{team_a}/sales"))), "{in_a:?}");
    let in_b = tags(OTHER, &table).expect("team B's table in its account");
    assert!(in_b.contains(&("sales-operator.dev/pipeline".into(), format!("{team_b}/sales"))), "{in_b:?}");
    assert_eq!(tags(HOME, &table), None, "nothing in the operator's own account");
    // The metrics say which account each call and each Ready pipeline is in.
    for account in [TENANT, OTHER] {
        let created = format!(
            "service=\"DynamoDB\",operation=\"CreateTable\",kind=\"mutating\",outcome=\"ok\",account=\"{account}\""
        );
        assert_eq!(op.aws_calls(&created), 1, "{account}: {:?}", op.get("/metrics"));
        let gauge = format!("sales_operator_pipelines{{ready=\"True\",account=\"{account}\"}} 1");
        // Set just after the status write `Ready` was read from.
        let shown = || op.get("/metrics").is_some_and(|(_, b)| b.contains(&gauge));
        assert!(wait_until(TIMEOUT, shown), "{gauge}: {:?}", op.get("/metrics"));
    }
    assert_eq!(op.aws_calls(&format!("account=\"{HOME}\"")), 0, "no call in the operator's own account");

    // CloudTrail says who made each call: the session names the identity, the User-Agent the pipeline.
    let session = |id: &str| format!("/sales-operator.{id}");
    for (ns, id, account) in [(&team_a, &id_a, TENANT), (&team_b, &id_b, OTHER)] {
        let trail = moto::default_server().trail();
        let calls: Vec<_> = trail
            .iter()
            .filter(|r| r["userIdentity"]["arn"].as_str().is_some_and(|arn| arn.ends_with(&session(id))))
            .collect();
        assert!(calls.len() > 20, "{id}: {} calls in the trail", calls.len());
        for call in calls {
            assert_eq!(call["recipientAccountId"], account, "{call}");
            let agent = call["userAgent"].as_str().unwrap_or_default();
            assert!(agent.ends_with(&format!(" sales-operator-pipeline/{ns}.sales")), "{call}");
        }
    }

    // Team C may not use team A's identity: refused before any AWS call.
    let calls = op.aws_calls("");
    applied(&pipeline(&team_c, "sales", &format!("  namePrefix: {prefix}-c\n  identityRef:\n    name: {id_a}\n")));
    assert!(
        wait_until(TIMEOUT, || condition(&team_c, "sales", "Stalled", "reason") == "IdentityNotAllowed"),
        "{}\n{}",
        kubectl(&["get", "-n", &team_c, "sp/sales", "-o", "yaml"]),
        op.log()
    );
    assert!(condition(&team_c, "sales", "Stalled", "message")
        .contains(&format!("{id_a} is not granted to namespace {team_c}")));
    assert_eq!(op.aws_calls(""), calls, "AWS was called for a refused pipeline:\n{}", op.log());
    assert_eq!(tags(TENANT, &format!("{prefix}-c-orders")), None);

    // An identity whose role does not trust the operator: STS's refusal, with the role, nothing created.
    applied(&pipeline(
        &team_c,
        "refused",
        &format!("  namePrefix: {prefix}-r\n  identityRef:\n    name: {id_refusing}\n"),
    ));
    assert!(
        wait_until(TIMEOUT, || condition(&team_c, "refused", "Stalled", "reason") == "IdentityRefused"),
        "{}\n{}",
        kubectl(&["get", "-n", &team_c, "sp/refused", "-o", "yaml"]),
        op.log()
    );
    let message = condition(&team_c, "refused", "Stalled", "message");
    assert!(message.contains("AccessDenied") && message.contains(&refusing), "{message}");
    assert_eq!(tags(TENANT, &format!("{prefix}-r-orders")), None);

    // Team A's 15-second session has run out: the next pass renews it and fails nothing.
    let renewed = moto::default_server().calls_seen("sts:AssumeRole");
    let logged = op.log().len();
    std::thread::sleep(Duration::from_secs(16));
    kubectl(&["annotate", "-n", &team_a, "sp/sales", "sales-operator.test/poke=1"]);
    assert!(
        wait_until(TIMEOUT, || moto::default_server().calls_seen("sts:AssumeRole") > renewed),
        "no new session:\n{}",
        op.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(condition(&team_a, "sales", "Ready", "status"), "True", "{}", op.log());
    let after_poke = &op.log()[logged..];
    assert!(!after_poke.contains("reconcile failed"), "a pass failed:\n{after_poke}");

    // Deleting team A's pipeline deletes in its account only.
    let out = env.kubectl(&["delete", "-n", &team_a, "sp/sales", "--timeout=90s"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), op.log());
    assert_eq!(tags(TENANT, &table), None, "team A's Delete policy applied in its account");
    assert_eq!(tags(OTHER, &table), Some(in_b), "team B's pipeline untouched");
    assert_eq!(condition(&team_b, "sales", "Ready", "status"), "True");
    for ns in [&team_b, &team_c] {
        let out = env.kubectl(&["delete", "-n", ns, "sp", "--all", "--timeout=90s"]);
        assert!(out.status.success(), "{}\n{}", text(&out.stderr), op.log());
    }
    assert_eq!(tags(OTHER, &table), None);
    kubectl(&["delete", "awsidentity", &id_a, &id_b, &id_refusing]);
}
