//! Random orders from a catalogue, with ids that never collide.
//!
//! Order id: `{run}-{replica}-{sequence}`.
//! - `run` is `s{seed:x}` with a seed (so the same seed always gives the same
//!   ids), else 16 random hex digits chosen at start-up (a new run never
//!   reuses an id of an earlier one).
//! - `replica` tells apart the processes of one run (pod name or index).
//! - `sequence` counts the orders of this process from 0.
//!
//! `run` contains no `-` and `sequence` only digits, so the id determines the
//! triple even when `replica` contains `-`: two different triples never give
//! the same id.
//!
//! The random fields come from a ChaCha8 stream seeded from (seed, replica),
//! consumed in a fixed order per order, so order *n* of a replica is the same
//! on every run with the same seed, catalogue and binary; only `order_ts`
//! (the time the order is made) differs.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::products::Catalog;
use crate::order::Order;

/// Longest replica id (a pod name is at most 253 characters).
pub const MAX_REPLICA_LEN: usize = 253;

/// Checks a replica id: 1–253 letters, digits, `.`, `_` or `-`.
pub fn validate_replica(replica: &str) -> Result<(), String> {
    if replica.is_empty() || replica.len() > MAX_REPLICA_LEN {
        return Err(format!("replica id must be 1-{MAX_REPLICA_LEN} characters, got {}", replica.len()));
    }
    if !replica.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(format!("replica id {replica:?} may only contain letters, digits, '.', '_' or '-'"));
    }
    Ok(())
}

/// The seed of one replica's random stream.
fn stream_seed(seed: u64, replica: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sales-operator/orders/v1\0");
    h.update(seed.to_be_bytes());
    h.update(replica.as_bytes());
    h.finalize().into()
}

/// Makes the orders of one generator process, in sequence.
#[derive(Clone, Debug)]
pub struct OrderSource {
    catalog: Arc<Catalog>,
    rng: ChaCha8Rng,
    /// `{run}-{replica}-`
    prefix: String,
    next: u64,
}

impl OrderSource {
    /// `seed`: reproducible ids and contents; `None`: a random run id and stream.
    /// `replica` must pass [`validate_replica`] (not checked here).
    pub fn new(catalog: Arc<Catalog>, seed: Option<u64>, replica: &str) -> Self {
        let (run, rng) = match seed {
            Some(seed) => (format!("s{seed:x}"), ChaCha8Rng::from_seed(stream_seed(seed, replica))),
            None => {
                let mut os = rand::rng();
                (format!("{:016x}", os.random::<u64>()), ChaCha8Rng::from_seed(os.random()))
            }
        };
        Self { catalog, rng, prefix: format!("{run}-{replica}-"), next: 0 }
    }

    /// Orders made so far (= the sequence number of the next one).
    pub fn made(&self) -> u64 {
        self.next
    }

    /// The id order `sequence` of this source has (or will have).
    pub fn order_id(&self, sequence: u64) -> String {
        format!("{}{sequence}", self.prefix)
    }

    /// The next order, placed at `now`.
    pub fn next_order(&mut self, now: jiff::Timestamp) -> Order {
        let c = &*self.catalog;
        // Always the same five draws, in the same order: keeps order n reproducible.
        let product = &c.products[self.rng.random_range(0..c.products.len())];
        let quantity = self.rng.random_range(c.min_quantity..=c.max_quantity);
        let cents = self.rng.random_range(product.min_cents..=product.max_cents);
        let customer = self.rng.random_range(1..=c.customers);
        let store = &c.stores[self.rng.random_range(0..c.stores.len())];
        let order = Order {
            order_id: self.order_id(self.next),
            order_ts: now,
            product_name: product.name.clone(),
            category: product.category.clone(),
            quantity,
            price: Decimal::new(cents, 2),
            customer_id: format!("c-{customer:06}"),
            store_id: store.id.clone(),
            region: store.region.clone(),
        };
        self.next += 1;
        order
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::generator::products::Product;

    fn source(seed: Option<u64>, replica: &str) -> OrderSource {
        OrderSource::new(Arc::new(Catalog::default()), seed, replica)
    }

    fn take(s: &mut OrderSource, n: usize) -> Vec<Order> {
        let now = jiff::Timestamp::now();
        (0..n).map(|_| s.next_order(now)).collect()
    }

    #[test]
    fn same_seed_and_replica_reproduce_ids_and_contents() {
        let a = take(&mut source(Some(42), "0"), 200);
        let b = take(&mut source(Some(42), "0"), 200);
        let strip = |o: &Order| Order { order_ts: jiff::Timestamp::UNIX_EPOCH, ..o.clone() };
        assert_eq!(a.iter().map(strip).collect::<Vec<_>>(), b.iter().map(strip).collect::<Vec<_>>());
        assert_eq!(a[0].order_id, "s2a-0-0");
        assert_eq!(a[199].order_id, "s2a-0-199");
    }

    #[test]
    fn ids_differ_across_seeds_replicas_and_unseeded_runs() {
        let mut ids = HashSet::new();
        for mut s in [
            source(Some(42), "0"),
            source(Some(42), "1"),
            source(Some(43), "0"),
            source(None, "0"),
            source(None, "0"),
            source(Some(42), "0-1"),
            source(Some(42), "0-1-2"),
        ] {
            for o in take(&mut s, 300) {
                assert!(ids.insert(o.order_id.clone()), "duplicate id {}", o.order_id);
            }
        }
        // Replicas of one seed draw different streams, not just different ids.
        let a = take(&mut source(Some(7), "a"), 20);
        let b = take(&mut source(Some(7), "b"), 20);
        assert_ne!(a.iter().map(|o| o.price).collect::<Vec<_>>(), b.iter().map(|o| o.price).collect::<Vec<_>>());
    }

    #[test]
    fn every_field_comes_from_the_catalogue() {
        let catalog = Catalog::default();
        for o in take(&mut source(Some(1), "0"), 2000) {
            let p: &Product = catalog.products.iter().find(|p| p.name == o.product_name).expect("known product");
            assert_eq!(o.category, p.category);
            assert_eq!(o.price.scale(), 2, "{}", o.price);
            let cents = (o.price * Decimal::ONE_HUNDRED).trunc();
            assert!(cents >= Decimal::from(p.min_cents) && cents <= Decimal::from(p.max_cents), "{o:?}");
            assert!((1..=5).contains(&o.quantity));
            let store = catalog.stores.iter().find(|s| s.id == o.store_id).expect("known store");
            assert_eq!(o.region, store.region);
            let n: u32 = o.customer_id.strip_prefix("c-").unwrap().parse().unwrap();
            assert!((1..=catalog.customers).contains(&n));
        }
    }

    #[test]
    fn draws_cover_the_whole_catalogue() {
        let orders = take(&mut source(Some(3), "0"), 5000);
        let products: HashSet<&str> = orders.iter().map(|o| o.product_name.as_str()).collect();
        let stores: HashSet<&str> = orders.iter().map(|o| o.store_id.as_str()).collect();
        let quantities: HashSet<u32> = orders.iter().map(|o| o.quantity).collect();
        assert_eq!(products.len(), 5);
        assert_eq!(stores.len(), Catalog::default().stores.len());
        assert_eq!(quantities.len(), 5);
    }

    #[test]
    fn replica_ids_are_checked() {
        assert!(validate_replica("0").is_ok());
        assert!(validate_replica("orders-gen-7d9f8b-x2k4q").is_ok());
        assert!(validate_replica("").is_err());
        assert!(validate_replica("a b").is_err());
        assert!(validate_replica(&"x".repeat(254)).is_err());
    }
}
