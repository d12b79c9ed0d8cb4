//! The built-in Athena queries on Trino (the engine Athena v3 is built on),
//! against a pipeline the reconcile core created in moto:
//!
//! - orders from the generator over the last 27 hours become DynamoDB stream
//!   records, the pipe's input template *as read back from the pipe* shapes
//!   them, and Firehose's stand-in writes them under the prefix, with the
//!   compression and delimiter *read back from the delivery stream*
//!   (tests/it/support/delivery_standin.rs);
//! - Trino reads the Glue table the operator defined (partition projection)
//!   and the objects from moto's S3 through a counting proxy;
//! - each named query *as stored in the Athena workgroup* runs, its answer is
//!   compared with one computed here from the orders, and the S3 requests it
//!   made are counted: a query over N hours lists at most N + 2 partitions.
//!
//! Trino's projection ranges accept DAYS/HOURS/MINUTES/SECONDS, Athena's also
//! YEARS/MONTHS/WEEKS: the operator writes its range in days so that both read the
//! same table unchanged.

use crate::support::apply;
use crate::support::delivery_standin;
crate::support::moto::own_server!();
use crate::support::s3_counter;
use crate::support::trino;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use rust_decimal::Decimal;
use sales_operator::api::manifest::parse_pipeline;
use sales_operator::aws::PipelineCtx;
use sales_operator::generator::{Catalog, OrderSource};
use sales_operator::order::Order;
use serde_json::Value;

/// Hours of orders before "now".
const SPAN_HOURS: i64 = 27;
/// No order within this many minutes of a window's start, so the queries'
/// `current_timestamp` (a little later than the test's "now") cuts the same orders.
const BAND_MINUTES: i64 = 10;

/// The world the queries run in, set up once per test binary.
struct World {
    trino: String,
    database: String,
    counter: s3_counter::Counter,
    /// Named query name -> SQL, as stored in the workgroup.
    stored: BTreeMap<String, String>,
    /// `sales-operator query top_products --param hours=6` would send this.
    top_products_6h: String,
    now: jiff::Timestamp,
    /// Placed orders (INSERT records), each once.
    orders: Vec<Order>,
    /// Object keys per partition value (`yyyy/MM/dd/HH`).
    objects_per_dt: BTreeMap<String, usize>,
    /// Queries run one at a time, so the request counts are theirs.
    one_at_a_time: Mutex<()>,
    /// Seconds from starting Trino to its first "ready".
    trino_start_seconds: f64,
    /// Pipeline context, for rendering queries other ways (the benchmark).
    ctx: PipelineCtx,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| std::thread::spawn(setup).join().unwrap())
}

/// Whether `t` is clear of every window start the stored queries use.
fn clear_of_window_starts(now: jiff::Timestamp, t: jiff::Timestamp) -> bool {
    [1, 6, 24].iter().all(|h| {
        let start = now - jiff::SignedDuration::from_hours(*h);
        t.duration_since(start).abs() > jiff::SignedDuration::from_mins(BAND_MINUTES)
    })
}

fn setup() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let counter = s3_counter::Counter::start(moto::endpoint());
    // Trino starts (~20 s) while the pipeline is created and the data delivered.
    let trino = {
        let (glue, s3) = (moto::endpoint().to_string(), counter.url.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let url = trino::start(&glue, &s3);
            (url, started.elapsed().as_secs_f64())
        })
    };
    rt.block_on(async {
        let c = moto::reconciler().await;
        let name = moto::unique("t");
        let yaml = format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  region: {}\n",
            moto::REGION
        );
        let p = parse_pipeline(&yaml, "test").unwrap();
        let ctx = PipelineCtx::new("shop", &name, &p.spec, moto::REGION);
        let out = apply::converge(&c, &ctx).await;
        assert!(out.ready(), "{:#?}", out.components);
        let n = &ctx.names;

        // Trino reads the operator's table as it is: its projection range is in days, which both
        // Athena and Trino read (Trino takes no YEARS/MONTHS/WEEKS), so nothing is rewritten.
        let table = c.aws.glue.get_table().database_name(&n.database).name(&n.glue_table).send().await.unwrap();
        let params = table.table.unwrap().parameters.unwrap_or_default();
        assert_eq!(params["projection.dt.range"], "NOW-366DAYS,NOW");

        // Orders, their stream records, the pipe and Firehose.
        let links = delivery_standin::links(&c.aws, &n.pipe, &n.delivery).await.unwrap();
        let now = jiff::Timestamp::now();
        let mut source = OrderSource::new(Arc::new(Catalog::default()), Some(20261201), "trino");
        let mut orders = Vec::new();
        let mut events = Vec::new();
        let start = now - jiff::SignedDuration::from_hours(SPAN_HOURS);
        // Bursts every 200 s of 1-4 orders 3 s apart; every 25th order is written again 20 s later.
        let mut k = 0i64;
        loop {
            let burst = start + jiff::SignedDuration::from_secs(k * 200 + (k % 7) * 11);
            if burst > now - jiff::SignedDuration::from_mins(2) {
                break;
            }
            for j in 0..(1 + k % 4) {
                let at = burst + jiff::SignedDuration::from_millis(j * 3000 + (k % 5) * 100);
                if !clear_of_window_starts(now, at) {
                    continue;
                }
                let o = source.next_order(at);
                let created = at + jiff::SignedDuration::from_millis(40);
                events.push(delivery_standin::stream_event(&links, "INSERT", &o, created, events.len() as u64));
                if orders.len() % 25 == 24 {
                    let again = created + jiff::SignedDuration::from_secs(20);
                    events.push(delivery_standin::stream_event(&links, "MODIFY", &o, again, events.len() as u64));
                }
                orders.push(o);
            }
            k += 1;
        }
        let objects = delivery_standin::deliver(&links, &events, jiff::SignedDuration::from_millis(300)).unwrap();
        delivery_standin::put(&c.aws.s3, &links, &objects).await.unwrap();
        let mut objects_per_dt: BTreeMap<String, usize> = BTreeMap::new();
        for o in &objects {
            let dt = o.key.trim_start_matches("orders/").rsplit_once('/').unwrap().0.to_string();
            *objects_per_dt.entry(dt).or_default() += 1;
        }
        assert!(objects.iter().any(|o| o.records > 1), "some objects hold several records");

        // The named queries as stored in the workgroup.
        let ids = c.aws.athena.list_named_queries().work_group(&n.workgroup).send().await.unwrap();
        let mut stored = BTreeMap::new();
        for id in ids.named_query_ids.unwrap_or_default() {
            let q = c.aws.athena.get_named_query().named_query_id(&id).send().await.unwrap().named_query.unwrap();
            stored.insert(q.name, q.query_string);
        }
        let top_products_6h =
            sales_operator::run_query::request(&ctx, "top_products", &[("hours".into(), "6".into())]).unwrap().sql;
        let (trino, trino_start_seconds) = trino.join().unwrap();
        World {
            trino,
            trino_start_seconds,
            ctx: ctx.clone(),
            database: n.database.clone(),
            counter,
            stored,
            top_products_6h,
            now,
            orders,
            objects_per_dt,
            one_at_a_time: Mutex::new(()),
        }
    })
}

/// What a query made of S3.
struct Run {
    rows: Vec<Vec<Value>>,
    lists: Vec<String>,
    gets: usize,
    wall_seconds: f64,
}

/// Runs `sql` on Trino, counting its S3 requests.
fn run(sql: &str) -> Run {
    let w = world();
    let _one = w.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
    let elapsed = jiff::Timestamp::now().duration_since(w.now);
    assert!(elapsed < jiff::SignedDuration::from_mins(BAND_MINUTES - 1), "the test took too long: {elapsed}");
    // A query answered early (LIMIT) may still have splits listing S3 in Trino's background:
    // the count starts once the previous query's requests have stopped.
    let mut seen = w.counter.len();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = w.counter.len();
        if now == seen {
            break;
        }
        seen = now;
    }
    // Retried while Trino has no active node, counting the S3 requests of the last attempt only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (before, answer) = loop {
        let before = w.counter.len();
        match trino::query(&w.trino, &w.database, sql) {
            Ok(answer) => break (before, answer),
            Err(e) if trino::found_no_node(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            Err(e) => panic!("{e}\n{sql}"),
        }
    };
    let requests = w.counter.requests()[before..].to_vec();
    let lists: Vec<String> = requests.iter().filter(|r| r.is_list()).map(|r| r.target.clone()).collect();
    let gets = requests.len() - lists.len();
    Run { rows: answer.rows, lists, gets, wall_seconds: answer.wall_seconds }
}

fn stored(name: &str) -> &'static str {
    world().stored.get(name).unwrap_or_else(|| panic!("{name} is not installed in the workgroup"))
}

/// The `hours` default the stored query was rendered with.
fn default_hours(name: &str) -> i64 {
    let q = sales_operator::named_queries::find(name).unwrap();
    q.params.iter().find(|(p, _)| *p == "hours").unwrap().1.parse().unwrap()
}

/// Placed orders of the last `hours` hours.
fn placed_since(hours: i64) -> Vec<&'static Order> {
    let since = world().now - jiff::SignedDuration::from_hours(hours);
    world().orders.iter().filter(|o| o.order_ts >= since).collect()
}

/// The partition (`orders/YYYY/MM/DD/HH/`) a listing asked for: its `prefix` parameter, decoded.
fn listed_prefix(target: &str) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let prefix = query.split('&').find_map(|p| p.strip_prefix("prefix=")).unwrap_or_default();
    prefix.replace("%2F", "/").replace("%2f", "/")
}

/// The request counts of a query over `hours` hours are those of its window:
/// at most `hours + 2` partitions listed, each within the window (a listing Trino repeats, e.g.
/// after a slow answer, or a next page is the same partition), and no more objects read than
/// those partitions hold.
fn assert_pruned(name: &str, hours: i64, r: &Run) {
    let w = world();
    assert!(!r.lists.is_empty(), "{name}: no partition listed at all");
    let partitions: BTreeSet<String> = r.lists.iter().map(|t| listed_prefix(t)).collect();
    assert!(
        partitions.len() as i64 <= hours + 2,
        "{name}: {} partitions listed for a {hours}-hour window: {:?}...",
        partitions.len(),
        partitions.iter().take(5).collect::<Vec<_>>()
    );
    let first = format!("orders/{}/", (w.now - jiff::SignedDuration::from_hours(hours + 2)).strftime("%Y/%m/%d/%H"));
    let outside: Vec<&String> = partitions.iter().filter(|p| p.as_str() < first.as_str()).collect();
    assert!(outside.is_empty(), "{name}: listed before its window (from {first}): {outside:?}");
    let since = w.now - jiff::SignedDuration::from_hours(hours + 2);
    let window_dt = format!("{}", since.strftime("%Y/%m/%d/%H"));
    let objects: usize = w.objects_per_dt.range(window_dt..).map(|(_, n)| n).sum();
    assert!(r.gets <= objects + 2, "{name}: {} object reads, the window holds {objects} objects", r.gets);
    eprintln!(
        "{name}: {} partitions listed ({} listings), {} other S3 requests",
        partitions.len(),
        r.lists.len(),
        r.gets
    );
}

fn total(o: &Order) -> Decimal {
    Decimal::from(o.quantity) * o.price
}

/// `YYYY-MM-DD HH:MM:SS.000` of `t` truncated to `unit` seconds (Trino's timestamp text).
fn trunc(t: jiff::Timestamp, unit: i64) -> String {
    let s = t.as_second().div_euclid(unit) * unit;
    jiff::Timestamp::from_second(s).unwrap().strftime("%Y-%m-%d %H:%M:%S.000").to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(&text(v)).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn num(v: &Value) -> f64 {
    text(v).parse().unwrap()
}

#[test]
fn every_stored_query_prunes_partitions_to_its_window() {
    for name in sales_operator::named_queries::BUILT_IN.iter().map(|q| q.name) {
        assert!(stored(name).contains("dt >= format_datetime(current_timestamp"), "{name}: {}", stored(name));
    }
}

#[test]
fn revenue_by_product_hour_sums_units_and_exact_revenue_of_placed_orders() {
    let hours = default_hours("revenue_by_product_hour");
    let mut want: BTreeMap<(String, String), (i64, Decimal)> = BTreeMap::new();
    for o in placed_since(hours) {
        let e = want.entry((trunc(o.order_ts, 3600), o.product_name.clone())).or_default();
        e.0 += i64::from(o.quantity);
        e.1 += total(o);
    }
    let mut want: Vec<_> = want.into_iter().collect();
    want.sort_by(|a, b| b.0 .0.cmp(&a.0 .0).then(b.1 .1.cmp(&a.1 .1)));
    assert!(want.len() >= 60, "the data should span a day of hours and products");
    let r = run(stored("revenue_by_product_hour"));
    let got: Vec<_> =
        r.rows.iter().map(|row| ((text(&row[0]), text(&row[1])), (num(&row[2]) as i64, dec(&row[3])))).collect();
    assert_eq!(got, want);
    assert_pruned("revenue_by_product_hour", hours, &r);
}

fn top_products(hours: i64, limit: usize) -> Vec<(String, i64, i64, Decimal)> {
    let mut want: BTreeMap<String, (i64, i64, Decimal)> = BTreeMap::new();
    for o in placed_since(hours) {
        let e = want.entry(o.product_name.clone()).or_default();
        e.0 += 1;
        e.1 += i64::from(o.quantity);
        e.2 += total(o);
    }
    let mut want: Vec<_> = want.into_iter().map(|(p, (n, u, r))| (p, n, u, r)).collect();
    want.sort_by_key(|e| std::cmp::Reverse(e.3));
    want.truncate(limit);
    want
}

fn top_products_rows(r: &Run) -> Vec<(String, i64, i64, Decimal)> {
    r.rows.iter().map(|row| (text(&row[0]), num(&row[1]) as i64, num(&row[2]) as i64, dec(&row[3]))).collect()
}

#[test]
fn top_products_ranks_revenue_of_the_window_and_honours_the_limit() {
    let hours = default_hours("top_products");
    let r = run(stored("top_products"));
    assert_eq!(top_products_rows(&r), top_products(hours, 10));
    assert_pruned("top_products", hours, &r);
}

#[test]
fn top_products_over_six_hours_lists_about_six_partitions() {
    let sql = &world().top_products_6h;
    let r = run(sql);
    let want = top_products(6, 10);
    assert!(want.len() >= 3);
    assert_eq!(top_products_rows(&r), want);
    assert_pruned("top_products hours=6", 6, &r);
    assert!(r.lists.len() >= 6, "six hours of data are in at least six partitions: {:?}", r.lists);
}

#[test]
fn order_rate_per_minute_counts_placed_orders_per_minute() {
    let hours = default_hours("order_rate_per_minute");
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for o in placed_since(hours) {
        *want.entry(trunc(o.order_ts, 60)).or_default() += 1;
    }
    assert!(!want.is_empty());
    let want: Vec<(String, i64)> = want.into_iter().rev().collect();
    let r = run(stored("order_rate_per_minute"));
    let got: Vec<(String, i64)> = r.rows.iter().map(|row| (text(&row[0]), num(&row[1]) as i64)).collect();
    assert_eq!(got, want);
    assert_pruned("order_rate_per_minute", hours, &r);
}

#[test]
fn average_order_value_by_region_is_the_mean_order_total_per_store() {
    let hours = default_hours("average_order_value_by_region");
    let mut want: BTreeMap<(String, String), (i64, Decimal)> = BTreeMap::new();
    for o in placed_since(hours) {
        let e = want.entry((o.region.clone(), o.store_id.clone())).or_default();
        e.0 += 1;
        e.1 += total(o);
    }
    let r = run(stored("average_order_value_by_region"));
    assert_eq!(r.rows.len(), want.len());
    let mut previous = Decimal::MAX;
    for row in &r.rows {
        let (orders, sum) = want[&(text(&row[0]), text(&row[1]))];
        assert_eq!(num(&row[2]) as i64, orders, "{row:?}");
        // avg of a decimal(10,2) is a decimal with 2 places (rounded half up), as on Athena.
        let avg = (sum / Decimal::from(orders))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        assert_eq!(dec(&row[3]), avg, "{row:?}");
        assert!(dec(&row[3]) <= previous, "ordered by average order value, descending");
        previous = dec(&row[3]);
    }
    assert_pruned("average_order_value_by_region", hours, &r);
}

#[test]
fn sales_projection_extrapolates_the_least_squares_line_of_hourly_revenue() {
    let hours = default_hours("sales_projection");
    let mut hourly: BTreeMap<String, BTreeMap<i64, Decimal>> = BTreeMap::new();
    for o in placed_since(hours) {
        *hourly
            .entry(o.product_name.clone())
            .or_default()
            .entry(o.order_ts.as_second().div_euclid(3600))
            .or_default() += total(o);
    }
    let r = run(stored("sales_projection"));
    assert_eq!(
        r.rows.iter().map(|row| text(&row[0])).collect::<BTreeSet<_>>(),
        hourly.keys().cloned().collect::<BTreeSet<_>>()
    );
    let mut previous = f64::INFINITY;
    for row in &r.rows {
        let points: Vec<(f64, f64)> =
            hourly[&text(&row[0])].iter().map(|(h, r)| (*h as f64, r.to_string().parse::<f64>().unwrap())).collect();
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let slope = sxy / sxx;
        let last_x = points.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        let projected = mean_y + slope * (last_x + 1.0 - mean_x);
        assert_eq!(num(&row[1]) as usize, points.len(), "{row:?}");
        assert!((num(&row[2]) - slope).abs() <= 0.006, "{row:?}: slope {slope}");
        assert!((num(&row[3]) - projected).abs() <= 0.006, "{row:?}: projected {projected}");
        assert!(num(&row[3]) <= previous, "ordered by projection, descending");
        previous = num(&row[3]);
    }
    assert_pruned("sales_projection", hours, &r);
}

/// The numbers of docs/benchmarks.md (scripts/bench-queries.sh): per stored
/// query, S3 requests and wall time with and without its `dt` predicate (the
/// latter is what every query did before pruning), Trino's start time and peak RSS.
#[test]
#[ignore = "benchmark: scripts/bench-queries.sh"]
fn bench_queries_with_and_without_partition_pruning() {
    let w = world();
    let unpruned = sales_operator::named_queries::QueryTarget { dt_format: None, ..w.ctx.query_target() };
    println!("| query | window | S3 LIST | S3 GET | wall s | unpruned S3 LIST | unpruned S3 GET | unpruned wall s |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut cases: Vec<(String, String, String, i64)> = Vec::new();
    for q in sales_operator::named_queries::BUILT_IN {
        let hours = default_hours(q.name);
        cases.push((q.name.to_string(), stored(q.name).to_string(), q.render(&unpruned, &[]), hours));
    }
    let six = vec![("hours".to_string(), "6".to_string())];
    let tp = sales_operator::named_queries::find("top_products").unwrap();
    cases.push(("top_products hours=6".into(), w.top_products_6h.clone(), tp.render(&unpruned, &six), 6));
    for (name, pruned, full, hours) in cases {
        let p = run(&pruned);
        let f = run(&full);
        assert_eq!(p.rows, f.rows, "{name}: same answer with and without pruning");
        println!(
            "| {name} | {hours} h | {} | {} | {:.2} | {} | {} | {:.1} |",
            p.lists.len(),
            p.gets,
            p.wall_seconds,
            f.lists.len(),
            f.gets,
            f.wall_seconds
        );
    }
    let port = w.trino.rsplit(':').next().unwrap();
    let pid =
        std::process::Command::new("pgrep").args(["-f", &format!("/{port}/etc/config.properties")]).output().unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).lines().next().unwrap_or("").to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap_or("").to_string();
    println!("trino start: {:.1} s; {}; {}", w.trino_start_seconds, field("VmHWM"), field("VmRSS"));
    println!(
        "data: {} orders in {} objects over {} partitions",
        w.orders.len(),
        w.objects_per_dt.values().sum::<usize>(),
        w.objects_per_dt.len()
    );
}
