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

/// Issue 25: a generator whose pipeline is gone, paused or not Ready writes nothing (its
/// Deployment is scaled to zero) and comes back when the pipeline is Ready again; a generator
/// naming its table directly is not affected.
#[test]
fn a_generator_stops_while_its_pipeline_is_gone_or_paused_and_comes_back_with_it() {
    let env = env();
    let ns = env.create_namespace("og-stop");
    let op = Operator::start(&ns, &operator_kubeconfig(&ns), &[]);
    let pipeline = |extra: &str| {
        format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: sales\nspec:{extra}\n"
        )
    };
    apply(&ns, &pipeline(" {}"));
    apply(&ns, &generator("load", "  pipelineRef:\n    name: sales\n  ordersPerSecond: 20\n  replicas: 2\n"));
    apply(&ns, &generator("direct", "  tableName: someone-elses-table\n  ordersPerSecond: 1\n  replicas: 1\n"));
    let ready_replicas = |og: &str| get(&ns, &format!("og/{og}"), "{.status.readyReplicas}");
    let reason = || get(&ns, "og/load", "{.status.conditions[?(@.type==\"Ready\")].reason}");
    let replicas = || get(&ns, "deployment/load-generator", "{.spec.replicas}");
    assert!(wait_until(Duration::from_secs(120), || ready_replicas("load") == "2"), "{}", op.log());
    assert!(wait_until(TIMEOUT, || ready_replicas("direct") == "1"), "{}", op.log());

    // The pipeline is deleted (Retain: its table stays): the pods stop, the status says why.
    env.kubectl_ok(&["delete", "-n", &ns, "sp/sales", "--wait=true", "--timeout=60s"]);
    assert!(wait_until(TIMEOUT, || replicas() == "0"), "replicas: {}\n{}", replicas(), op.log());
    assert!(wait_until(TIMEOUT, || reason() == "PipelineNotFound"), "{}", op.log());
    assert!(wait_until(TIMEOUT, || ready_replicas("load") == "0"), "{}", get(&ns, "og/load", "{.status}"));
    let message = get(&ns, "og/load", "{.status.conditions[?(@.type==\"Ready\")].message}");
    assert!(message.contains("scaled to zero, no orders are written"), "{message}");
    // The template is kept: the pods come back as they were.
    let args = get(&ns, "deployment/load-generator", "{.spec.template.spec.containers[0].args}");
    assert!(args.contains(&format!("{ns}-sales-orders")), "{args}");
    assert_eq!(get(&ns, "deployment/direct-generator", "{.spec.replicas}"), "1", "tableName: not affected");

    // Re-created and Ready: the pods come back.
    apply(&ns, &pipeline(" {}"));
    assert!(wait_until(Duration::from_secs(120), || replicas() == "2"), "replicas: {}\n{}", replicas(), op.log());
    assert!(wait_until(Duration::from_secs(90), || ready_replicas("load") == "2"), "{}", op.log());
    assert!(wait_until(TIMEOUT, || reason() == "Running"), "{}", reason());

    // A paused pipeline stops its generators too, and unpausing brings them back.
    apply(&ns, &pipeline("\n  paused: true"));
    assert!(wait_until(TIMEOUT, || replicas() == "0"), "replicas: {}\n{}", replicas(), op.log());
    assert!(wait_until(TIMEOUT, || reason() == "PipelinePaused"), "{}", reason());
    apply(&ns, &pipeline("\n  paused: false"));
    assert!(wait_until(Duration::from_secs(120), || replicas() == "2"), "replicas: {}\n{}", replicas(), op.log());
    assert_eq!(get(&ns, "deployment/direct-generator", "{.spec.replicas}"), "1");
}
