//! The built-in Athena analysis queries, one SQL file each under `queries/`.

/// A named analysis query.
#[derive(Clone, Copy, Debug)]
pub struct NamedQuery {
    pub name: &'static str,
    pub description: &'static str,
    /// SQL with `{table}` and parameter placeholders (`{hours}`, `{limit}`).
    pub sql: &'static str,
    /// Parameters and their defaults.
    pub params: &'static [(&'static str, &'static str)],
}

/// Every built-in query.
pub const BUILT_IN: &[NamedQuery] = &[
    NamedQuery {
        name: "revenue_by_product_hour",
        description: "Revenue and units per product per hour",
        sql: include_str!("../queries/revenue_by_product_hour.sql"),
        params: &[],
    },
    NamedQuery {
        name: "top_products",
        description: "Top products by revenue over the last N hours",
        sql: include_str!("../queries/top_products.sql"),
        params: &[("hours", "24"), ("limit", "10")],
    },
    NamedQuery {
        name: "order_rate_per_minute",
        description: "Orders placed per minute",
        sql: include_str!("../queries/order_rate_per_minute.sql"),
        params: &[],
    },
    NamedQuery {
        name: "average_order_value_by_region",
        description: "Average order value per region and store",
        sql: include_str!("../queries/average_order_value_by_region.sql"),
        params: &[],
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

impl NamedQuery {
    /// The SQL for `table`, parameters at their defaults unless overridden.
    pub fn render(&self, table: &str, overrides: &[(String, String)]) -> String {
        let mut sql = self.sql.replace("{table}", table);
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

    #[test]
    fn rendered_sql_has_no_placeholders_left() {
        for q in BUILT_IN {
            let sql = q.render("orders", &[]);
            assert!(!sql.contains('{'), "{}: {sql}", q.name);
            assert!(sql.contains("FROM orders"), "{}", q.name);
        }
    }

    #[test]
    fn overrides_replace_defaults() {
        let q = find("top_products").unwrap();
        let sql = q.render("t", &[("hours".into(), "3".into())]);
        assert!(sql.contains("(3 * INTERVAL '1' HOUR)"));
        assert!(sql.contains("LIMIT 10"));
    }
}
