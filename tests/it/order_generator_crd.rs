//! The OrderGenerator CRD against a real kube-apiserver: the example is
//! accepted, printer columns, short name, category and the scale subresource
//! work, and the CEL rules refuse bad specs with their messages.

use crate::support::kube_env;

use std::sync::OnceLock;

use kube_env::{project_dir, KubeEnv};
use sales_operator::api::OrderGenerator;
use sales_operator::generator::Catalog;

const CRD: &str = "ordergenerators.sales-operator.dev";

fn ensure_crd(env: &KubeEnv) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let file = project_dir().join("crds").join(format!("{CRD}.yaml"));
        env.apply_crds(&[&file]);
    });
}

fn example() -> String {
    std::fs::read_to_string(project_dir().join("examples/order-generator.yaml")).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn example_is_a_valid_order_generator_with_a_usable_catalogue() {
    let value: serde_json::Value = serde_saphyr::from_str(&example()).unwrap();
    let og: OrderGenerator = serde_json::from_value(value).unwrap();
    og.validate_cel().unwrap();
    let catalog = Catalog::from_spec(og.spec.catalog.as_ref().unwrap()).unwrap();
    assert_eq!(catalog.products.len(), 6);
    assert_eq!(og.spec.orders_per_second, 50.0);
}

#[test]
fn example_is_accepted_and_listed_with_its_columns() {
    let env = KubeEnv::shared();
    ensure_crd(env);
    let ns = env.create_namespace("og");
    let manifest = example().replace("namespace: default", &format!("namespace: {ns}"));
    let out = env.kubectl_stdin(&["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));

    let table = env.kubectl_ok(&["get", "og", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "RATE", "REPLICAS", "TABLE", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(&row[..1], ["sales-orders"], "{table}");
    assert!(row.contains(&"50") && row.contains(&"2"), "{table}");

    let by_category = env.kubectl_ok(&["get", "sales", "-n", &ns, "-o", "name"]);
    assert!(by_category.contains("ordergenerator.sales-operator.dev/sales-orders"), "{by_category}");

    // Stored with the prices exactly as written, and the defaults filled in.
    let stored = env.kubectl_ok(&["get", "og", "sales-orders", "-n", &ns, "-o", "json"]);
    let og: OrderGenerator = serde_json::from_str(&stored).unwrap();
    assert_eq!(og.spec.catalog.unwrap().products[5].min_price, "4.99");
    assert!(!og.spec.paused);

    env.kubectl_ok(&["scale", "og/sales-orders", "-n", &ns, "--replicas=4"]);
    let replicas = env.kubectl_ok(&["get", "og", "sales-orders", "-n", &ns, "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas.trim(), "4");
}

#[test]
fn minimal_spec_gets_the_defaults_from_the_schema() {
    let env = KubeEnv::shared();
    ensure_crd(env);
    let ns = env.create_namespace("ogmin");
    let manifest = format!(
        "apiVersion: sales-operator.dev/v1alpha1\nkind: OrderGenerator\nmetadata:\n  name: slow\n  namespace: {ns}\nspec:\n  tableName: orders\n"
    );
    let out = env.kubectl_stdin(&["create", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = env.kubectl_ok(&["get", "og", "slow", "-n", &ns, "-o", "jsonpath={.spec}"]);
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(spec["ordersPerSecond"], 1.0);
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["paused"], false);
}

#[test]
fn bad_specs_are_refused_by_the_api_server_with_the_rule_messages() {
    let env = KubeEnv::shared();
    ensure_crd(env);
    let ns = env.create_namespace("ogbad");
    let cases = [
        ("pipelineRef: {name: sales}\n  tableName: orders", "exactly one of pipelineRef or tableName must be set"),
        ("ordersPerSecond: {}", "exactly one of pipelineRef or tableName must be set"),
        ("tableName: orders\n  ordersPerSecond: 0.01", "must be between 0.1 and 100000 orders per second"),
        ("tableName: orders\n  replicas: 101", "must be between 0 and 100"),
        (
            "tableName: orders\n  catalog:\n    products:\n    - {name: A, category: B, minPrice: \"9.00\", maxPrice: \"1.00\"}",
            "maxPrice must not be below minPrice",
        ),
        (
            "tableName: orders\n  catalog:\n    products:\n    - {name: A, category: B, minPrice: \"1.005\", maxPrice: \"2\"}",
            "spec.catalog.products[0].minPrice",
        ),
        (
            "tableName: orders\n  catalog:\n    products:\n    - {name: A, category: B, minPrice: \"1\", maxPrice: \"2\"}\n    - {name: A, category: C, minPrice: \"1\", maxPrice: \"2\"}",
            "Duplicate value",
        ),
        ("tableName: orders\n  catalog:\n    quantity: {min: 5, max: 2}", "max must not be below min"),
        ("tableName: orders\n  resources:\n    limits: {cpu: lots}", "spec.resources.limits.cpu"),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let spec = spec.replace("ordersPerSecond: {}", "ordersPerSecond: 5");
        let manifest = format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: OrderGenerator\nmetadata:\n  name: bad-{i}\n  namespace: {ns}\nspec:\n  {spec}\n"
        );
        let out = env.kubectl_stdin(&["create", "-f", "-"], &manifest);
        let err = stderr(&out);
        assert!(!out.status.success(), "case {i} was accepted:\n{manifest}");
        assert!(err.contains(expected), "case {i}: expected {expected:?} in:\n{err}");
    }
    let left = env.kubectl_ok(&["get", "og", "-n", &ns, "-o", "name"]);
    assert_eq!(left.trim(), "", "nothing may be stored");
}
