//! The OrderGenerator controller inside `sales-operator run`, against a real
//! kube-apiserver with kwok nodes (pods become Ready without a kubelet) and moto.

use crate::support::kube_env;
use crate::support::operator;

use std::time::Duration;

use kube_env::wait_until;
use operator::{env, operator_kubeconfig, Operator};

const TIMEOUT: Duration = Duration::from_secs(60);

fn get(ns: &str, what: &str, path: &str) -> String {
    let out = env().kubectl(&["get", "-n", ns, what, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(ns: &str, yaml: &str) {
    let out = env().kubectl_stdin(&["apply", "-n", ns, "-f", "-"], yaml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn generator(name: &str, spec: &str) -> String {
    format!("apiVersion: sales-operator.dev/v1alpha1\nkind: OrderGenerator\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

#[test]
fn generator_follows_its_pipeline_and_manages_a_deployment() {
    let env = env();
    let ns = env.create_namespace("og");
    let op =
        Operator::start(&ns, &operator_kubeconfig(&ns), &["--generator-image", "registry.example/sales-operator:test"]);

    // The pipeline does not exist yet: a clear condition, no Deployment.
    apply(
        &ns,
        &generator("load", "  pipelineRef:\n    name: sales\n  ordersPerSecond: 30\n  replicas: 3\n  seed: 42\n"),
    );
    assert!(
        wait_until(TIMEOUT, || get(&ns, "og/load", "{.status.conditions[?(@.type==\"Ready\")].reason}")
            == "PipelineNotFound"),
        "{}",
        op.log()
    );
    assert!(get(&ns, "og/load", "{.status.conditions[?(@.type==\"Ready\")].message}")
        .contains("SalesPipeline sales does not exist"));
    assert!(get(&ns, "deployments", "{.items[*].metadata.name}").is_empty());

    // Once the pipeline is Ready, the Deployment writes into its table.
    apply(&ns, "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: sales\nspec: {}\n");
    let deployment = "deployment/load-generator";
    assert!(wait_until(TIMEOUT, || !get(&ns, deployment, "{.metadata.name}").is_empty()), "{}", op.log());
    let table = format!("{ns}-sales-orders");
    let args = get(&ns, deployment, "{.spec.template.spec.containers[0].args}");
    assert_eq!(args, format!(r#"["generate","--table","{table}","--orders-per-second","10","--seed","42"]"#));
    assert_eq!(get(&ns, deployment, "{.spec.replicas}"), "3");
    assert_eq!(get(&ns, deployment, "{.metadata.ownerReferences[0].kind}"), "OrderGenerator");
    assert_eq!(
        get(&ns, deployment, "{.spec.template.spec.containers[0].image}"),
        "registry.example/sales-operator:test"
    );
    assert_eq!(
        get(&ns, deployment, "{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem}"),
        "true"
    );
    let env_names = get(&ns, deployment, "{.spec.template.spec.containers[0].env[*].name}");
    assert!(env_names.contains("AWS_ENDPOINT_URL") && env_names.contains("SALES_OPERATOR_REPLICA"), "{env_names}");

    // kwok runs the pods: ready replicas reach the status.
    assert!(
        wait_until(Duration::from_secs(90), || get(&ns, "og/load", "{.status.readyReplicas}") == "3"),
        "ready replicas: {:?}\n{}",
        get(&ns, "og/load", "{.status}"),
        op.log()
    );
    assert_eq!(get(&ns, "og/load", "{.status.tableName}"), table);
    let out = env.kubectl(&["wait", "-n", &ns, "--for=condition=Ready", "og/load", "--timeout=60s"]);
    assert!(out.status.success());

    // Rate and replicas changes update the Deployment in place.
    apply(
        &ns,
        &generator("load", "  pipelineRef:\n    name: sales\n  ordersPerSecond: 100\n  replicas: 2\n  seed: 42\n"),
    );
    assert!(wait_until(TIMEOUT, || get(&ns, deployment, "{.spec.replicas}") == "2"));
    assert!(get(&ns, deployment, "{.spec.template.spec.containers[0].args}").contains(r#""--orders-per-second","50""#));

    // Paused scales to zero.
    apply(
        &ns,
        &generator("load", "  pipelineRef:\n    name: sales\n  ordersPerSecond: 100\n  replicas: 2\n  paused: true\n"),
    );
    assert!(wait_until(TIMEOUT, || get(&ns, deployment, "{.spec.replicas}") == "0"));
    assert!(
        wait_until(TIMEOUT, || get(&ns, "og/load", "{.status.conditions[?(@.type==\"Ready\")].reason}") == "Paused")
    );

    // Deleting the generator garbage-collects its Deployment.
    env.kubectl_ok(&["delete", "-n", &ns, "og/load", "--wait=true"]);
    assert!(
        wait_until(TIMEOUT, || get(&ns, "deployments", "{.items[*].metadata.name}").is_empty()),
        "Deployment was not collected"
    );
}
