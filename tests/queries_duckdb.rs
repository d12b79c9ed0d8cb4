//! The built-in Athena queries on real data shapes: the committed fixture of
//! delivered order lines (tests/delivered_fixture.rs) loaded into DuckDB as
//! the Glue table (same columns and types), each query's rendered SQL run
//! through the mechanical Athena → DuckDB mapping documented in
//! docs/data-model.md (scripts/duckdb_query.py), and the answer compared
//! with one computed here, in Rust, from the fixture lines.
//!
//! DuckDB comes from PyPI, pinned, installed by scripts/duckdb.sh.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Command, Stdio},
    str::FromStr,
};

use rust_decimal::Decimal;
use sales_operator::{aws::catalog, queries};

const TABLE: &str = "orders";
/// "now" for the queries: the fixture's orders run from 00:00 to 05:57.
const NOW: &str = "2026-11-26 06:00:00";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Line {
    event_name: String,
    ts: jiff::Timestamp,
    product: String,
    quantity: i64,
    price: Decimal,
    region: String,
    store: String,
}

impl Line {
    fn total(&self) -> Decimal {
        Decimal::from(self.quantity) * self.price
    }
}

/// The fixture's lines; the price read from the JSON text, exactly.
fn lines() -> Vec<Line> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/delivered-orders.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            let price_text = l.split("\"price\": ").nth(1).unwrap().split(',').next().unwrap();
            Line {
                event_name: s("event_name"),
                ts: s("order_ts").parse().unwrap(),
                product: s("product_name"),
                quantity: v["quantity"].as_i64().unwrap(),
                price: Decimal::from_str(price_text).unwrap(),
                region: s("region"),
                store: s("store_id"),
            }
        })
        .collect()
}

fn placed() -> Vec<Line> {
    lines().into_iter().filter(|l| l.event_name == "INSERT").collect()
}

/// `YYYY-MM-DD HH:MM:SS` of `t` truncated to `unit` seconds.
fn trunc(t: jiff::Timestamp, unit: i64) -> String {
    let s = t.as_second().div_euclid(unit) * unit;
    jiff::Timestamp::from_second(s).unwrap().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn now() -> jiff::Timestamp {
    format!("{}Z", NOW.replace(' ', "T")).parse().unwrap()
}

/// The python of the DuckDB venv, installed once per test binary.
fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new(root().join("scripts/duckdb.sh")).arg("install").output().unwrap();
            assert!(out.status.success(), "scripts/duckdb.sh: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .clone()
}

/// Runs built-in query `name` with `params` in DuckDB; rows as text.
fn run(name: &str, params: &[(&str, &str)]) -> Vec<Vec<Option<String>>> {
    let python = python();
    let overrides: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let sql = queries::find(name).unwrap().render(TABLE, &overrides);
    let columns: Vec<(String, String)> = catalog::columns().into_iter().map(|c| (c.name, c.glue_type)).collect();
    let mut child = Command::new(python)
        .arg(root().join("scripts/duckdb_query.py"))
        .arg(root().join("tests/fixtures/delivered-orders.jsonl"))
        .arg(TABLE)
        .arg(serde_json::to_string(&columns).unwrap())
        .arg(NOW)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: {}\n{sql}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(v["rows"].clone()).unwrap()
}

fn text(row: &[Option<String>], i: usize) -> &str {
    row[i].as_deref().unwrap()
}

fn num(row: &[Option<String>], i: usize) -> f64 {
    text(row, i).parse().unwrap()
}

#[test]
fn revenue_by_product_hour_sums_units_and_exact_revenue_of_placed_orders() {
    let mut want: BTreeMap<(String, String), (i64, Decimal)> = BTreeMap::new();
    for l in placed() {
        let e = want.entry((trunc(l.ts, 3600), l.product.clone())).or_default();
        e.0 += l.quantity;
        e.1 += l.total();
    }
    let mut want: Vec<_> = want.into_iter().collect();
    // ORDER BY hour DESC, revenue DESC
    want.sort_by(|a, b| b.0 .0.cmp(&a.0 .0).then(b.1 .1.cmp(&a.1 .1)));
    let want: Vec<Vec<Option<String>>> = want
        .into_iter()
        .map(|((hour, product), (units, revenue))| {
            vec![Some(hour), Some(product), Some(units.to_string()), Some(revenue.to_string())]
        })
        .collect();
    assert!(want.len() >= 25, "the fixture should span several hours and products");
    assert_eq!(run("revenue_by_product_hour", &[]), want);
}

#[test]
fn top_products_ranks_revenue_of_the_last_hours_and_honours_the_limit() {
    let since = now() - jiff::SignedDuration::from_hours(3);
    let mut want: BTreeMap<String, (i64, i64, Decimal)> = BTreeMap::new();
    for l in placed().into_iter().filter(|l| l.ts >= since) {
        let e = want.entry(l.product.clone()).or_default();
        e.0 += 1;
        e.1 += l.quantity;
        e.2 += l.total();
    }
    let mut want: Vec<_> = want.into_iter().collect();
    want.sort_by_key(|e| std::cmp::Reverse(e.1 .2));
    want.truncate(3);
    let want: Vec<Vec<Option<String>>> = want
        .into_iter()
        .map(|(p, (orders, units, revenue))| {
            vec![Some(p), Some(orders.to_string()), Some(units.to_string()), Some(revenue.to_string())]
        })
        .collect();
    assert_eq!(run("top_products", &[("hours", "3"), ("limit", "3")]), want);
}

#[test]
fn order_rate_per_minute_counts_placed_orders_per_minute() {
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for l in placed() {
        *want.entry(trunc(l.ts, 60)).or_default() += 1;
    }
    let want: Vec<Vec<Option<String>>> =
        want.into_iter().rev().map(|(m, n)| vec![Some(m), Some(n.to_string())]).collect();
    assert_eq!(run("order_rate_per_minute", &[]), want);
}

#[test]
fn average_order_value_by_region_is_the_mean_order_total_per_store() {
    let mut want: BTreeMap<(String, String), (i64, Decimal)> = BTreeMap::new();
    for l in placed() {
        let e = want.entry((l.region.clone(), l.store.clone())).or_default();
        e.0 += 1;
        e.1 += l.total();
    }
    let got = run("average_order_value_by_region", &[]);
    assert_eq!(got.len(), want.len());
    let mut previous = f64::INFINITY;
    for row in &got {
        let (orders, sum) = want[&(text(row, 0).to_string(), text(row, 1).to_string())];
        assert_eq!(num(row, 2) as i64, orders, "{row:?}");
        let avg = (sum / Decimal::from(orders)).to_string().parse::<f64>().unwrap();
        assert!((num(row, 3) - avg).abs() < 1e-6, "{row:?}: want {avg}");
        assert!(num(row, 3) <= previous, "ordered by average order value, descending");
        previous = num(row, 3);
    }
}

#[test]
fn sales_projection_extrapolates_the_least_squares_line_of_hourly_revenue() {
    let since = now() - jiff::SignedDuration::from_hours(6);
    let mut hourly: BTreeMap<String, BTreeMap<i64, Decimal>> = BTreeMap::new();
    for l in placed().into_iter().filter(|l| l.ts >= since) {
        *hourly.entry(l.product.clone()).or_default().entry(l.ts.as_second().div_euclid(3600)).or_default() +=
            l.total();
    }
    let got = run("sales_projection", &[("hours", "6")]);
    assert_eq!(
        got.iter().map(|r| text(r, 0).to_string()).collect::<BTreeSet<_>>(),
        hourly.keys().cloned().collect::<BTreeSet<_>>()
    );
    let mut previous = f64::INFINITY;
    for row in &got {
        let points: Vec<(f64, f64)> =
            hourly[text(row, 0)].iter().map(|(h, r)| (*h as f64, r.to_string().parse::<f64>().unwrap())).collect();
        // Ordinary least squares on centred x.
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let slope = sxy / sxx;
        let last_x = points.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        let projected = mean_y + slope * (last_x + 1.0 - mean_x);
        assert_eq!(num(row, 1) as usize, points.len(), "{row:?}");
        assert!((num(row, 2) - slope).abs() <= 0.006, "{row:?}: slope {slope}");
        assert!((num(row, 3) - projected).abs() <= 0.006, "{row:?}: projected {projected}");
        assert!(num(row, 3) <= previous, "ordered by projection, descending");
        previous = num(row, 3);
    }
}
