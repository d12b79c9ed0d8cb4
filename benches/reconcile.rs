//! AWS calls and wall time of a first apply and of a steady-state apply
//! against the moto server. Run: `cargo bench --bench reconcile`
//! (results are written up in docs/benchmarks.md).

#[path = "../tests/it/support/moto.rs"]
mod moto;

use std::time::{Duration, Instant};

use sales_operator::api::manifest::parse_pipeline;
use sales_operator::aws::{CallLog, Clients, PipelineCtx};
use sales_operator::reconcile::{reconcile, Mode, Reconciler, Timing};

const RUNS: usize = 20;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // The reconcile's own calls and time, on moto without AWS's waits (the AWS-behaviour layer
    // off, roles usable at once): one pass creates everything. Time to Ready through AWS's
    // waits is scripts/bench-ready.sh.
    // SAFETY: set before moto starts and before any other thread reads the environment.
    unsafe { std::env::set_var("SALES_OPERATOR_TEST_AWS", "bare") };
    let sdk = moto::sdk(&moto::settings()).await;
    let clients = Clients::new(&sdk, None, CallLog::default()).expect("clients");
    let r = Reconciler::new(clients.clone(), Timing { iam_settle: Some(Duration::ZERO), ..Timing::default() });

    let (mut first, mut first_wait, mut steady, mut steady_wait) = (vec![], vec![], vec![], vec![]);
    let (mut first_calls, mut steady_calls) = ((0, 0), (0, 0));
    for _ in 0..RUNS {
        let name = moto::unique("bench");
        let yaml = format!(
            "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: {name}\nspec: {{}}\n"
        );
        let p = parse_pipeline(&yaml, "bench").expect("manifest");
        let mut ctx = PipelineCtx::new("default", &name, &p.spec, "eu-west-1");

        clients.calls.reset();
        let t = Instant::now();
        let out = reconcile(&r, &ctx, Mode::Apply).await;
        first.push(t.elapsed());
        first_wait.push(clients.calls.waiting());
        assert!(out.ready(), "{:?}", out.components);
        first_calls = (clients.calls.reads(), clients.calls.mutations());

        // As the controller's resyncs once this generation is Ready: no lookup of leftovers.
        ctx.sweep = false;
        clients.calls.reset();
        let t = Instant::now();
        let out = reconcile(&r, &ctx, Mode::Apply).await;
        steady.push(t.elapsed());
        steady_wait.push(clients.calls.waiting());
        assert!(out.ready());
        steady_calls = (clients.calls.reads(), clients.calls.mutations());
    }
    let (f, fw, s, sw) = (median(first), median(first_wait), median(steady), median(steady_wait));
    let share =
        |total: Duration, wait: Duration| 100.0 * (total.saturating_sub(wait)).as_secs_f64() / total.as_secs_f64();
    println!(
        "| apply | read calls | mutating calls | wall time (median of {RUNS}) | waiting on AWS | inside the operator |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| first | {} | {} | {:.1} ms | {:.1} ms | {:.0} % |",
        first_calls.0,
        first_calls.1,
        f.as_secs_f64() * 1e3,
        fw.as_secs_f64() * 1e3,
        share(f, fw)
    );
    println!(
        "| steady state | {} | {} | {:.1} ms | {:.1} ms | {:.0} % |",
        steady_calls.0,
        steady_calls.1,
        s.as_secs_f64() * 1e3,
        sw.as_secs_f64() * 1e3,
        share(s, sw)
    );
    println!("\nsteady-state calls by operation:");
    for ((svc, op), c) in clients.calls.counts() {
        println!("  {svc}:{op} {}", c.ok + c.error);
    }
}
