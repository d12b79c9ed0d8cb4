//! The order record: one sale as the generator writes it to DynamoDB, as the
//! pipe flattens it onto Kinesis, and as Athena reads it from S3.
//!
//! Everything that depends on the record's shape (the DynamoDB item, the pipe's
//! input template, the Glue columns) is derived from [`FIELDS`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;

/// DynamoDB attribute type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemType {
    /// `S`
    String,
    /// `N` (exact decimal digits, never a float)
    Number,
}

/// One field of the order record.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Attribute name in DynamoDB and key in the flat JSON line.
    pub name: &'static str,
    pub item_type: ItemType,
    /// Column type in the Glue table.
    pub glue_type: &'static str,
    pub comment: &'static str,
}

/// Partition key of the orders table.
pub const KEY: &str = "orderid";

/// The item attributes, in record order. `orderid` is the table's partition key.
pub const FIELDS: &[Field] = &[
    Field { name: KEY, item_type: ItemType::String, glue_type: "string", comment: "unique order id" },
    Field {
        name: "order_ts",
        item_type: ItemType::String,
        glue_type: "timestamp",
        comment: "order time, UTC, ISO-8601 with milliseconds",
    },
    Field { name: "product_name", item_type: ItemType::String, glue_type: "string", comment: "product sold" },
    Field { name: "category", item_type: ItemType::String, glue_type: "string", comment: "product category" },
    Field { name: "quantity", item_type: ItemType::Number, glue_type: "int", comment: "units sold" },
    Field {
        name: "price",
        item_type: ItemType::Number,
        glue_type: "decimal(10,2)",
        comment: "unit price, exact, 2 decimals",
    },
    Field { name: "customer_id", item_type: ItemType::String, glue_type: "string", comment: "customer" },
    Field {
        name: "store_id",
        item_type: ItemType::String,
        glue_type: "string",
        comment: "store the order was placed in",
    },
    Field { name: "region", item_type: ItemType::String, glue_type: "string", comment: "sales region of the store" },
];

/// Fields the pipe adds from the stream record around the item's fields.
pub const EVENT_FIELDS: &[Field] = &[
    Field { name: "event_name", item_type: ItemType::String, glue_type: "string", comment: "INSERT, MODIFY or REMOVE" },
    Field {
        name: "event_time",
        item_type: ItemType::Number,
        glue_type: "double",
        comment: "approximate stream record creation time, epoch seconds",
    },
];

/// A sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub order_ts: jiff::Timestamp,
    pub product_name: String,
    pub category: String,
    pub quantity: u32,
    pub price: Decimal,
    pub customer_id: String,
    pub store_id: String,
    pub region: String,
}

impl Order {
    /// `order_ts` as written: RFC 3339, UTC, millisecond precision.
    pub fn order_ts_string(&self) -> String {
        format!("{:.3}", self.order_ts)
    }

    /// The DynamoDB item (numbers as exact decimal strings).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_string());
        HashMap::from([
            (KEY.to_string(), s(&self.order_id)),
            ("order_ts".to_string(), s(&self.order_ts_string())),
            ("product_name".to_string(), s(&self.product_name)),
            ("category".to_string(), s(&self.category)),
            ("quantity".to_string(), AttributeValue::N(self.quantity.to_string())),
            ("price".to_string(), AttributeValue::N(self.price.to_string())),
            ("customer_id".to_string(), s(&self.customer_id)),
            ("store_id".to_string(), s(&self.store_id)),
            ("region".to_string(), s(&self.region)),
        ])
    }
}

/// The EventBridge Pipes input template that turns a DynamoDB stream record
/// into one flat JSON order (numbers unquoted so they stay numbers).
pub fn pipe_input_template() -> String {
    let mut parts = vec![
        r#""event_name": "<$.eventName>""#.to_string(),
        r#""event_time": <$.dynamodb.ApproximateCreationDateTime>"#.to_string(),
        format!(r#""{KEY}": "<$.dynamodb.Keys.{KEY}.S>""#),
    ];
    for f in FIELDS.iter().filter(|f| f.name != KEY) {
        parts.push(match f.item_type {
            ItemType::String => format!(r#""{0}": "<$.dynamodb.NewImage.{0}.S>""#, f.name),
            ItemType::Number => format!(r#""{0}": <$.dynamodb.NewImage.{0}.N>"#, f.name),
        });
    }
    format!("{{{}}}", parts.join(", "))
}

/// The text DynamoDB gives back for a number: leading and trailing zeros
/// trimmed (`"10.50"` comes back as `"10.5"`, `"100.00"` as `"100"`).
pub fn dynamodb_number_text(n: &str) -> String {
    let (sign, digits) = n.strip_prefix('-').map_or(("", n), |d| ("-", d));
    let digits = if digits.contains('.') { digits.trim_end_matches('0').trim_end_matches('.') } else { digits };
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() || digits.starts_with('.') { format!("0{digits}") } else { digits.to_string() };
    if digits == "0" {
        digits
    } else {
        format!("{sign}{digits}")
    }
}

/// Epoch seconds with millisecond precision, as the stream record's
/// `ApproximateCreationDateTime` (e.g. `1795658750.653`).
fn epoch_seconds_text(t: jiff::Timestamp) -> String {
    let ms = t.as_millisecond();
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// The JSON line that lands in S3 for `order` when its stream record has
/// `event_name` (`INSERT`, `MODIFY`) and `event_time`: exactly what
/// [`pipe_input_template`] makes of the record (same keys, same order,
/// strings quoted, numbers as DynamoDB's text), without Firehose's newline.
///
/// Built from [`EVENT_FIELDS`], [`FIELDS`] and [`Order::to_item`], so it
/// follows the template when a field is added.
pub fn delivered_line(order: &Order, event_name: &str, event_time: jiff::Timestamp) -> String {
    let item = order.to_item();
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut parts = Vec::with_capacity(EVENT_FIELDS.len() + FIELDS.len());
    for f in EVENT_FIELDS {
        let value = match f.name {
            "event_name" => quote(event_name),
            _ => epoch_seconds_text(event_time),
        };
        parts.push(format!("{}: {value}", quote(f.name)));
    }
    for f in FIELDS {
        let value = match (item.get(f.name), f.item_type) {
            (Some(AttributeValue::S(s)), ItemType::String) => quote(s),
            (Some(AttributeValue::N(n)), ItemType::Number) => dynamodb_number_text(n),
            // The template reads a path the item lacks; Pipes renders it empty.
            (_, ItemType::String) => quote(""),
            (_, ItemType::Number) => "null".to_string(),
        };
        parts.push(format!("{}: {value}", quote(f.name)));
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            order_id: "o-1".into(),
            order_ts: "2026-11-26T10:00:00.5Z".parse().unwrap(),
            product_name: "Laptop".into(),
            category: "Computers".into(),
            quantity: 3,
            price: Decimal::new(18221, 2),
            customer_id: "c-1".into(),
            store_id: "s-1".into(),
            region: "eu-west".into(),
        }
    }

    #[test]
    fn item_has_every_field_with_its_type() {
        let item = order().to_item();
        assert_eq!(item.len(), FIELDS.len());
        for f in FIELDS {
            let v = &item[f.name];
            match f.item_type {
                ItemType::String => assert!(v.is_s(), "{} should be S", f.name),
                ItemType::Number => assert!(v.is_n(), "{} should be N", f.name),
            }
        }
        assert_eq!(item["price"], AttributeValue::N("182.21".into()));
        assert_eq!(item["order_ts"], AttributeValue::S("2026-11-26T10:00:00.500Z".into()));
    }

    #[test]
    fn input_template_names_every_field_once() {
        let t = pipe_input_template();
        for f in FIELDS.iter().chain(EVENT_FIELDS) {
            assert_eq!(t.matches(&format!("\"{}\":", f.name)).count(), 1, "{}", f.name);
        }
        assert!(t.contains(r#""price": <$.dynamodb.NewImage.price.N>"#));
        assert!(t.contains(r#""product_name": "<$.dynamodb.NewImage.product_name.S>""#));
    }

    #[test]
    fn delivered_line_follows_the_template_key_order_and_types() {
        let line = delivered_line(&order(), "INSERT", "2026-11-26T10:00:01.25Z".parse().unwrap());
        assert_eq!(
            line,
            r#"{"event_name": "INSERT", "event_time": 1795687201.25, "orderid": "o-1", "order_ts": "2026-11-26T10:00:00.500Z", "product_name": "Laptop", "category": "Computers", "quantity": 3, "price": 182.21, "customer_id": "c-1", "store_id": "s-1", "region": "eu-west"}"#
        );
        // Same keys in the same order as the pipe's input template.
        let keys = |s: &str| {
            s.split(", ")
                .map(|p| p.trim_start_matches('{').split(':').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&line), keys(&pipe_input_template()));
    }

    #[test]
    fn delivered_numbers_are_dynamodb_text_without_trailing_zeros() {
        assert_eq!(dynamodb_number_text("10.50"), "10.5");
        assert_eq!(dynamodb_number_text("100.00"), "100");
        assert_eq!(dynamodb_number_text("0.10"), "0.1");
        assert_eq!(dynamodb_number_text("5"), "5");
        assert_eq!(epoch_seconds_text("2026-11-26T10:00:00Z".parse().unwrap()), "1795687200");
        assert_eq!(epoch_seconds_text("2026-11-26T10:00:00.007Z".parse().unwrap()), "1795687200.007");
    }
}
