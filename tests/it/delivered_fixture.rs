//! The committed fixture `tests/fixtures/delivered-orders.jsonl`: what the
//! pipeline delivers to S3 for 500 generator orders (fixed seed), one JSON
//! line per stream record, as the pipe's input template shapes it and
//! Firehose delimits it. Built here by the project's own code; the test fails
//! when the committed file differs from what the code makes now.
//!
//! Regenerate after an intended change of the record or the generator:
//! `UPDATE_FIXTURES=1 cargo test --test delivered_fixture`.

use std::{path::PathBuf, sync::Arc};

use sales_operator::{
    aws::catalog,
    generator::{Catalog, OrderSource},
    order::{delivered_line, Order},
};

const SEED: u64 = 20261126;
const REPLICA: &str = "fixture";
const ORDERS: i64 = 500;
/// Seconds between two orders: 500 orders span about 6 hours.
const SPACING_SECS: i64 = 43;
/// Every this many orders, the item is written again (a `MODIFY` record).
const MODIFY_EVERY: i64 = 50;
const START: &str = "2026-11-26T00:00:00Z";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delivered-orders.jsonl")
}

/// The fixture's orders: order `i` placed at START + i * SPACING_SECS + (i % 7) * 100 ms.
fn orders() -> Vec<Order> {
    let start: jiff::Timestamp = START.parse().unwrap();
    let mut source = OrderSource::new(Arc::new(Catalog::default()), Some(SEED), REPLICA);
    (0..ORDERS)
        .map(|i| {
            let at = start + jiff::SignedDuration::from_millis(i * SPACING_SECS * 1000 + (i % 7) * 100);
            source.next_order(at)
        })
        .collect()
}

/// The delivered lines, in stream order: each order's INSERT 250 ms after it
/// was placed; every MODIFY_EVERY-th order also a MODIFY 20 s later.
fn delivered() -> String {
    let mut out = String::new();
    for (i, o) in orders().iter().enumerate() {
        let t = o.order_ts + jiff::SignedDuration::from_millis(250);
        out.push_str(&delivered_line(o, "INSERT", t));
        out.push('\n');
        if (i as i64) % MODIFY_EVERY == MODIFY_EVERY - 1 {
            out.push_str(&delivered_line(o, "MODIFY", t + jiff::SignedDuration::from_secs(20)));
            out.push('\n');
        }
    }
    out
}

#[test]
fn committed_fixture_is_what_the_code_delivers() {
    let want = delivered();
    let path = fixture_path();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_FIXTURES=1", path.display()));
    assert!(
        have == want,
        "{} differs from what the code delivers now; if the change is intended, regenerate it with \
         `UPDATE_FIXTURES=1 cargo test --test delivered_fixture` and commit it",
        path.display()
    );
}

#[test]
fn fixture_spans_hours_products_regions_and_event_kinds() {
    let lines: Vec<serde_json::Value> = delivered().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let distinct =
        |key: &str| lines.iter().map(|v| v[key].to_string()).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(lines.len() as i64, ORDERS + ORDERS / MODIFY_EVERY);
    assert!(distinct("product_name") >= 5);
    assert!(distinct("region") >= 3);
    assert_eq!(distinct("event_name"), 2);
    let hours = lines
        .iter()
        .map(|v| v["order_ts"].as_str().unwrap()[..13].to_string())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(hours.len() >= 6, "{hours:?}");
}

/// Keys of a JSON line in the order they appear in its text.
fn keys_in_order(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    // Walk the text: a key is a string followed by ':' at nesting depth 1 (the line is flat).
    let mut rest = line.trim().trim_start_matches('{');
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        keys.push(after[..end].to_string());
        let tail = &after[end + 1..];
        // Skip the value: up to the next ", \"" separator.
        match tail.find(", \"") {
            Some(i) => rest = &tail[i + 1..],
            None => break,
        }
    }
    keys
}

#[test]
fn glue_columns_are_the_delivered_keys_in_order_with_matching_types() {
    let text = std::fs::read_to_string(fixture_path()).unwrap();
    let columns = catalog::columns();
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    assert!(
        !names.iter().any(|n| n == sales_operator::partitions::PARTITION_COLUMN),
        "the partition key comes from the S3 key, not the record"
    );
    for line in text.lines() {
        assert_eq!(keys_in_order(line), names, "{line}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for c in &columns {
            let value = &v[&c.name];
            let ok = match c.glue_type.as_str() {
                "string" => value.is_string(),
                "int" | "bigint" => value.is_i64(),
                "double" => value.is_number(),
                t if t.starts_with("decimal(") => {
                    let s = value.to_string();
                    value.is_number() && s.split('.').nth(1).is_none_or(|f| f.len() <= 2)
                }
                "timestamp" => value.as_str().is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
                other => panic!("column {} has a type this test does not know: {other}", c.name),
            };
            assert!(ok, "column {} ({}) does not read {value} in {line}", c.name, c.glue_type);
        }
    }
}
