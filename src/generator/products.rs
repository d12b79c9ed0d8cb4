//! What orders are drawn from: products with price ranges, a quantity range,
//! stores with their regions, and a number of customers.
//!
//! The file format (`generate --catalog FILE`, YAML or JSON) and the inline
//! form (`--catalog-json`) are [`OrderCatalog`], the same type as an
//! OrderGenerator's `spec.catalog`; every part left out takes the default.

use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use crate::api::order_generator::{CatalogProduct, CatalogStore, OrderCatalog, QuantityRange, MAX_CATALOG_ITEMS};

/// A product with its price range in cents (inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub name: String,
    pub category: String,
    pub min_cents: i64,
    pub max_cents: i64,
}

/// A store and its sales region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub id: String,
    pub region: String,
}

/// A validated catalogue, ready to draw from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    pub products: Vec<Product>,
    /// Units per order, inclusive.
    pub min_quantity: u32,
    pub max_quantity: u32,
    pub stores: Vec<Store>,
    /// Customer ids are `c-000001` ... `c-{customers}`.
    pub customers: u32,
}

/// The original project's five products, with the price range of each inside
/// its 10.00–500.00, and categories for the analysis.
pub const DEFAULT_PRODUCTS: &[(&str, &str, &str, &str)] = &[
    ("Laptop", "Computers", "250.00", "500.00"),
    ("Phone", "Mobile", "150.00", "450.00"),
    ("Tablet", "Mobile", "100.00", "400.00"),
    ("Headphones", "Audio", "20.00", "250.00"),
    ("Charger", "Accessories", "10.00", "60.00"),
];

/// Default stores, one per sales region.
pub const DEFAULT_STORES: &[(&str, &str)] = &[
    ("store-berlin", "eu-central"),
    ("store-paris", "eu-west"),
    ("store-new-york", "us-east"),
    ("store-san-francisco", "us-west"),
    ("store-tokyo", "ap-northeast"),
    ("store-sydney", "ap-southeast"),
];

/// Default units per order (the original drew 1 to 5).
pub const DEFAULT_QUANTITY: (u32, u32) = (1, 5);
/// Default number of distinct customers.
pub const DEFAULT_CUSTOMERS: u32 = 5000;

const MAX_NAME: usize = 64;
const MAX_QUANTITY: u32 = 1_000_000;
const MAX_CUSTOMERS: u32 = 10_000_000;
/// Highest price the CRD pattern allows: 8 integer digits.
const MAX_CENTS: i64 = 9_999_999_999;

/// One problem in a catalogue, named by its field path (e.g. `products[2].maxPrice`).
pub use crate::api::manifest::FieldError;

/// Why a catalogue was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalogue {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("catalogue {source_name} is not valid {format}: {message}")]
    Syntax { source_name: String, format: &'static str, message: String },
    #[error("catalogue {source_name} is invalid:\n{}", list(.errors))]
    Invalid { source_name: String, errors: Vec<FieldError> },
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            products: DEFAULT_PRODUCTS
                .iter()
                .map(|(name, category, min, max)| Product {
                    name: name.to_string(),
                    category: category.to_string(),
                    // The defaults are literals that parse; checked by a test.
                    min_cents: cents(min).unwrap_or(1000),
                    max_cents: cents(max).unwrap_or(50000),
                })
                .collect(),
            min_quantity: DEFAULT_QUANTITY.0,
            max_quantity: DEFAULT_QUANTITY.1,
            stores: DEFAULT_STORES
                .iter()
                .map(|(id, region)| Store { id: id.to_string(), region: region.to_string() })
                .collect(),
            customers: DEFAULT_CUSTOMERS,
        }
    }
}

/// `"12.5"` -> 1250; refuses more than 2 decimals, negatives and anything that is not a plain decimal.
fn cents(text: &str) -> Result<i64, String> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1
        && !text.starts_with('.')
        && !text.ends_with('.');
    if !plain {
        return Err(format!("{text:?} is not a decimal amount such as \"10.00\""));
    }
    let d = Decimal::from_str(text).map_err(|e| format!("{text:?} is not a decimal amount: {e}"))?;
    if d.scale() > 2 {
        return Err(format!("{text:?} has more than 2 decimals"));
    }
    let c = d * Decimal::ONE_HUNDRED;
    let c: i64 = c.trunc().try_into().map_err(|_| format!("{text:?} is too large"))?;
    if c > MAX_CENTS {
        return Err(format!("{text:?} is too large (at most 8 integer digits)"));
    }
    Ok(c)
}

/// Whether a name is usable as a DynamoDB string and an Athena value: non-empty, bounded, no control characters.
fn check_name(errors: &mut Vec<FieldError>, field: String, value: &str) {
    if value.trim().is_empty() {
        errors.push(err(field, "must not be empty"));
    } else if value.chars().count() > MAX_NAME {
        errors.push(err(field, format!("must be at most {MAX_NAME} characters")));
    } else if value.chars().any(char::is_control) {
        errors.push(err(field, "must not contain control characters"));
    }
}

impl Catalog {
    /// Validates `spec`, filling every part it leaves out with the default.
    pub fn from_spec(spec: &OrderCatalog) -> Result<Self, Vec<FieldError>> {
        let defaults = Catalog::default();
        let mut errors = Vec::new();
        let products = if spec.products.is_empty() { defaults.products } else { products(&spec.products, &mut errors) };
        let (min_quantity, max_quantity) = match &spec.quantity {
            None => (defaults.min_quantity, defaults.max_quantity),
            Some(q) => quantity(q, &mut errors),
        };
        let stores = if spec.stores.is_empty() { defaults.stores } else { stores(&spec.stores, &mut errors) };
        let customers = match spec.customers {
            None => defaults.customers,
            Some(n) => match u32::try_from(n) {
                Ok(n) if (1..=MAX_CUSTOMERS).contains(&n) => n,
                _ => {
                    errors.push(err("customers", format!("must be between 1 and {MAX_CUSTOMERS}, not {n}")));
                    1
                }
            },
        };
        if errors.is_empty() {
            Ok(Catalog { products, min_quantity, max_quantity, stores, customers })
        } else {
            Err(errors)
        }
    }

    /// Reads a catalogue file: JSON when it ends in `.json`, else YAML.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CatalogError::Read { path: path.display().to_string(), source })?;
        let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(&text, &path.display().to_string(), json)
    }

    /// Parses and validates a catalogue document (`json`: JSON, else YAML, which also reads JSON).
    pub fn parse(text: &str, source_name: &str, json: bool) -> Result<Self, CatalogError> {
        let syntax =
            |format, message: String| CatalogError::Syntax { source_name: source_name.to_string(), format, message };
        let value: serde_json::Value = if json {
            serde_json::from_str(text).map_err(|e| syntax("JSON", e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| syntax("YAML", e.to_string()))?
        };
        let invalid = |errors| CatalogError::Invalid { source_name: source_name.to_string(), errors };
        let spec: OrderCatalog = typed(value).map_err(invalid)?;
        Self::from_spec(&spec).map_err(invalid)
    }

    /// Sets the quantity range (the `--min-quantity`/`--max-quantity` flags), keeping the other bound.
    pub fn with_quantity(mut self, min: Option<u32>, max: Option<u32>) -> Result<Self, Vec<FieldError>> {
        let range = QuantityRange {
            min: i64::from(min.unwrap_or(self.min_quantity)),
            max: i64::from(max.unwrap_or(self.max_quantity)),
        };
        let mut errors = Vec::new();
        let (lo, hi) = quantity(&range, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        self.min_quantity = lo;
        self.max_quantity = hi;
        Ok(self)
    }

    /// Replaces the products (the `--product` flags).
    pub fn with_products(mut self, list: &[CatalogProduct]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let products = products(list, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        self.products = products;
        Ok(self)
    }
}

fn products(list: &[CatalogProduct], errors: &mut Vec<FieldError>) -> Vec<Product> {
    if list.len() > MAX_CATALOG_ITEMS {
        errors.push(err("products", format!("must have at most {MAX_CATALOG_ITEMS} items, not {}", list.len())));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let at = |f: &str| format!("products[{i}].{f}");
        check_name(errors, at("name"), &p.name);
        check_name(errors, at("category"), &p.category);
        if list[..i].iter().any(|q| q.name == p.name) {
            errors.push(err(at("name"), format!("duplicate product {:?}", p.name)));
        }
        let min = cents(&p.min_price).map_err(|m| errors.push(err(at("minPrice"), m))).ok();
        let max = cents(&p.max_price).map_err(|m| errors.push(err(at("maxPrice"), m))).ok();
        if let (Some(min), Some(max)) = (min, max) {
            if min < 1 {
                errors.push(err(at("minPrice"), "must be at least 0.01"));
            } else if max < min {
                errors.push(err(
                    at("maxPrice"),
                    format!("must not be below minPrice ({} < {})", p.max_price, p.min_price),
                ));
            }
            out.push(Product { name: p.name.clone(), category: p.category.clone(), min_cents: min, max_cents: max });
        }
    }
    out
}

fn quantity(q: &QuantityRange, errors: &mut Vec<FieldError>) -> (u32, u32) {
    let bound = |field: &str, v: i64, errors: &mut Vec<FieldError>| match u32::try_from(v) {
        Ok(v) if (1..=MAX_QUANTITY).contains(&v) => v,
        _ => {
            errors.push(err(format!("quantity.{field}"), format!("must be between 1 and {MAX_QUANTITY}, not {v}")));
            1
        }
    };
    let (min, max) = (bound("min", q.min, errors), bound("max", q.max, errors));
    if max < min {
        errors.push(err("quantity.max", format!("must not be below quantity.min ({max} < {min})")));
    }
    (min, max)
}

fn stores(list: &[CatalogStore], errors: &mut Vec<FieldError>) -> Vec<Store> {
    if list.len() > MAX_CATALOG_ITEMS {
        errors.push(err("stores", format!("must have at most {MAX_CATALOG_ITEMS} items, not {}", list.len())));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            check_name(errors, format!("stores[{i}].id"), &s.id);
            check_name(errors, format!("stores[{i}].region"), &s.region);
            if list[..i].iter().any(|t| t.id == s.id) {
                errors.push(err(format!("stores[{i}].id"), format!("duplicate store {:?}", s.id)));
            }
            Store { id: s.id.clone(), region: s.region.clone() }
        })
        .collect()
}

/// Deserializes with field paths, refusing unknown fields (a typo must not silently fall back to a default).
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Vec<FieldError>> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record));
    let mut errors: Vec<FieldError> = unknown.into_iter().map(|p| err(indexed(&p), "unknown field")).collect();
    match result {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(errors),
        Err(e) => {
            let path = e.path().to_string();
            errors.push(err(if path == "." { "(document)".to_string() } else { path }, e.into_inner().to_string()));
            Err(errors)
        }
    }
}

/// `products.0.colour` (serde_ignored's form) -> `products[0].colour` (serde_path_to_error's).
fn indexed(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('.') {
        if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Parses a `--product` flag: `NAME:CATEGORY:MIN-MAX`, e.g. `Laptop:Computers:250.00-500.00`.
pub fn parse_product_flag(s: &str) -> Result<CatalogProduct, String> {
    let usage = || format!("invalid product {s:?}: use NAME:CATEGORY:MIN-MAX, e.g. Laptop:Computers:250.00-500.00");
    let mut parts = s.rsplitn(3, ':');
    let (range, category, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(r), Some(c), Some(n)) => (r, c, n),
        _ => return Err(usage()),
    };
    let (min, max) = range.split_once('-').ok_or_else(usage)?;
    Ok(CatalogProduct {
        name: name.to_string(),
        category: category.to_string(),
        min_price: min.trim().to_string(),
        max_price: max.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        match Catalog::parse(yaml, "test.yaml", false) {
            Err(CatalogError::Invalid { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn default_catalogue_has_the_original_five_products_within_10_to_500() {
        let c = Catalog::default();
        let names: Vec<&str> = c.products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Laptop", "Phone", "Tablet", "Headphones", "Charger"]);
        for (p, (_, _, min, max)) in c.products.iter().zip(DEFAULT_PRODUCTS) {
            assert_eq!(p.min_cents, cents(min).unwrap());
            assert_eq!(p.max_cents, cents(max).unwrap());
            assert!(p.min_cents >= 1000 && p.max_cents <= 50000 && p.min_cents <= p.max_cents, "{p:?}");
        }
        assert_eq!((c.min_quantity, c.max_quantity), (1, 5));
        assert!(c.stores.len() >= 3);
        assert_eq!(Catalog::from_spec(&OrderCatalog::default()).unwrap(), c);
    }

    #[test]
    fn prices_are_exact_cents() {
        assert_eq!(cents("10").unwrap(), 1000);
        assert_eq!(cents("10.5").unwrap(), 1050);
        assert_eq!(cents("499.99").unwrap(), 49999);
        assert_eq!(cents("0.01").unwrap(), 1);
        for bad in ["10.001", "-1", "1e3", "", ".5", "5.", "1,00", "12.3.4", "123456789.00"] {
            assert!(cents(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_fills_the_parts_it_leaves_out_with_defaults() {
        let c = Catalog::parse(
            "products:\n- name: Pen\n  category: Office\n  minPrice: \"0.99\"\n  maxPrice: \"2.50\"\nquantity: {min: 2, max: 3}\n",
            "test.yaml",
            false,
        )
        .unwrap();
        assert_eq!(
            c.products,
            [Product { name: "Pen".into(), category: "Office".into(), min_cents: 99, max_cents: 250 }]
        );
        assert_eq!((c.min_quantity, c.max_quantity), (2, 3));
        assert_eq!(c.stores, Catalog::default().stores);
        let json =
            Catalog::parse(r#"{"stores": [{"id": "s1", "region": "north"}], "customers": 7}"#, "c.json", true).unwrap();
        assert_eq!(json.stores, [Store { id: "s1".into(), region: "north".into() }]);
        assert_eq!(json.customers, 7);
    }

    #[test]
    fn invalid_catalogue_names_every_bad_field() {
        let e = errors(
            "products:\n- {name: A, category: X, minPrice: \"5.00\", maxPrice: \"1.00\"}\n- {name: A, category: X, minPrice: \"1.001\", maxPrice: \"2\"}\nquantity: {min: 0, max: 3}\nstores:\n- {id: s, region: \"\"}\ncustomers: 0\n",
        );
        let joined = e.join("\n");
        for expected in [
            "products[0].maxPrice: must not be below minPrice (1.00 < 5.00)",
            "products[1].name: duplicate product \"A\"",
            "products[1].minPrice: \"1.001\" has more than 2 decimals",
            "quantity.min: must be between 1 and 1000000, not 0",
            "stores[0].region: must not be empty",
            "customers: must be between 1 and 10000000, not 0",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_with_their_path() {
        let e = errors("products:\n- {name: A, category: X, minPrice: \"1\", maxPrice: \"2\", colour: red}\n");
        assert_eq!(e, ["products[0].colour: unknown field"]);
        let e = errors("quantity: {min: one, max: 3}\n");
        assert!(e[0].starts_with("quantity.min:"), "{e:?}");
    }

    #[test]
    fn unreadable_file_and_bad_syntax_say_so() {
        let missing = Catalog::load(Path::new("/nonexistent/catalog.yaml")).unwrap_err();
        assert!(missing.to_string().contains("cannot read catalogue /nonexistent/catalog.yaml"), "{missing}");
        let bad = Catalog::parse("{", "c.json", true).unwrap_err();
        assert!(bad.to_string().contains("is not valid JSON"), "{bad}");
    }

    #[test]
    fn product_flag_and_quantity_overrides() {
        let p = parse_product_flag("USB-C Cable:Accessories:4.99-19.99").unwrap();
        assert_eq!((p.name.as_str(), p.category.as_str()), ("USB-C Cable", "Accessories"));
        assert_eq!((p.min_price.as_str(), p.max_price.as_str()), ("4.99", "19.99"));
        assert!(parse_product_flag("Laptop:250-500").is_err());
        let c = Catalog::default().with_products(&[p]).unwrap().with_quantity(None, Some(9)).unwrap();
        assert_eq!(c.products.len(), 1);
        assert_eq!((c.min_quantity, c.max_quantity), (1, 9));
        let e = Catalog::default().with_quantity(Some(6), None).unwrap_err();
        assert_eq!(e[0].to_string(), "quantity.max: must not be below quantity.min (5 < 6)");
    }
}
