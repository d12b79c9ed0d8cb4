//! The built-in Athena analysis queries, one SQL file each under `queries/`.
//!
//! Every query looks at a window of the last `{hours}` hours and puts that
//! window both on `order_ts` (which orders count) and on the partition column
//! `dt` (which hourly partitions Athena lists and reads), so a query reads
//! about `hours` partitions, never the whole projection range. `dt` is the
//! hour Firehose delivered the record's object in, which can be up to the
//! buffer interval *before* the order's own time (the object is named after
//! its oldest record), so the `dt` bound starts one buffer interval early.

use crate::partitions::{projection_layout, sorts_as_time, PARTITION_COLUMN};

/// A named analysis query.
#[derive(Clone, Copy, Debug)]
pub struct NamedQuery {
    pub name: &'static str,
    pub description: &'static str,
    /// SQL with `{table}`, `{dt_filter}` and parameter placeholders (`{hours}`, `{limit}`).
    pub sql: &'static str,
    /// Parameters and their defaults.
    pub params: &'static [(&'static str, &'static str)],
}

/// Every built-in query.
pub const BUILT_IN: &[NamedQuery] = &[
    NamedQuery {
        name: "revenue_by_product_hour",
        description: "Revenue and units per product per hour over the last N hours",
        sql: include_str!("../queries/revenue_by_product_hour.sql"),
        params: &[("hours", "24")],
    },
    NamedQuery {
        name: "top_products",
        description: "Top products by revenue over the last N hours",
        sql: include_str!("../queries/top_products.sql"),
        params: &[("hours", "24"), ("limit", "10")],
    },
    NamedQuery {
        name: "order_rate_per_minute",
        description: "Orders placed per minute over the last N hours",
        sql: include_str!("../queries/order_rate_per_minute.sql"),
        params: &[("hours", "1")],
    },
    NamedQuery {
        name: "average_order_value_by_region",
        description: "Average order value per region and store over the last N hours",
        sql: include_str!("../queries/average_order_value_by_region.sql"),
        params: &[("hours", "24")],
    },
    NamedQuery {
        name: "sales_projection",
        description: "Per product, hourly revenue trend extrapolated to the next hour",
        sql: include_str!("../queries/sales_projection.sql"),
        params: &[("hours", "6")],
    },
];

/// Looks a built-in query up by name.
pub fn find(name: &str) -> Option<&'static NamedQuery> {
    BUILT_IN.iter().find(|q| q.name == name)
}

/// What a query runs against: the table, and how its partitions can be pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTarget {
    /// The Glue table.
    pub table: String,
    /// Java date format of `dt` (`yyyy/MM/dd/HH`) when the table projects `dt` and
    /// its values sort as time does; `None`: the partitions cannot be pruned by time.
    pub dt_format: Option<String>,
    /// Seconds `dt` can be earlier than an order's time: the Firehose buffer interval.
    pub dt_slack_seconds: i64,
}

impl QueryTarget {
    /// The Glue `table` of objects Firehose writes under `projected_prefix` (`None`: the table
    /// does not project `dt` from the prefix, e.g. a crawler made it) every `buffer_seconds`.
    pub fn new(table: &str, projected_prefix: Option<&str>, buffer_seconds: i32) -> Self {
        let dt_format = projected_prefix
            .and_then(|prefix| projection_layout(prefix).ok())
            .map(|l| l.date_format)
            .filter(|f| sorts_as_time(f));
        QueryTarget { table: table.to_string(), dt_format, dt_slack_seconds: i64::from(buffer_seconds.max(0)) }
    }

    /// The predicate that keeps the partitions of the last `{hours}` hours.
    fn dt_filter(&self) -> String {
        match &self.dt_format {
            Some(format) => format!(
                "{PARTITION_COLUMN} >= format_datetime(current_timestamp - ({{hours}} * INTERVAL '1' HOUR) \
                 - INTERVAL '{}' SECOND, '{format}')",
                self.dt_slack_seconds
            ),
            None => "TRUE".to_string(),
        }
    }
}

impl NamedQuery {
    /// The SQL for `target`, parameters at their defaults unless overridden.
    pub fn render(&self, target: &QueryTarget, overrides: &[(String, String)]) -> String {
        let mut sql = self.sql.replace("{table}", &target.table).replace("{dt_filter}", &target.dt_filter());
        for (key, default) in self.params {
            let value = overrides.iter().find(|(k, _)| k == key).map_or(*default, |(_, v)| v.as_str());
            sql = sql.replace(&format!("{{{key}}}"), value);
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(format: Option<&str>) -> QueryTarget {
        QueryTarget { table: "orders".into(), dt_format: format.map(Into::into), dt_slack_seconds: 60 }
    }

    #[test]
    fn rendered_sql_has_no_placeholders_left_and_every_query_has_a_window() {
        for q in BUILT_IN {
            let sql = q.render(&target(Some("yyyy/MM/dd/HH")), &[]);
            assert!(!sql.contains('{'), "{}: {sql}", q.name);
            assert!(sql.contains("FROM orders"), "{}", q.name);
            assert!(q.params.iter().any(|(p, _)| *p == "hours"), "{} has no window", q.name);
            assert!(sql.contains("order_ts >= current_timestamp - ("), "{}: {sql}", q.name);
            assert!(sql.contains("dt >= format_datetime(current_timestamp - ("), "{}: {sql}", q.name);
        }
    }

    #[test]
    fn overrides_replace_defaults_in_both_windows() {
        let q = find("top_products").unwrap();
        let sql = q.render(&target(Some("yyyy/MM/dd/HH")), &[("hours".into(), "3".into())]);
        assert_eq!(sql.matches("(3 * INTERVAL '1' HOUR)").count(), 2, "{sql}");
        assert!(sql.contains("- INTERVAL '60' SECOND, 'yyyy/MM/dd/HH')"), "{sql}");
        assert!(sql.contains("LIMIT 10"));
    }

    #[test]
    fn a_table_without_a_sortable_dt_is_not_pruned_but_still_windowed() {
        let sql = find("top_products").unwrap().render(&target(None), &[]);
        assert!(sql.contains("AND TRUE") && !sql.contains("dt >="), "{sql}");
        assert!(sql.contains("order_ts >= current_timestamp"));
    }
}
