//! How a Firehose S3 prefix lays out the date partition `dt`: the partition
//! projection of the Glue table (src/aws/catalog.rs) and the pruning of the
//! built-in queries (src/named_queries.rs) both read it from here. Pure.

/// The default Firehose prefix (`spec.delivery.prefix`): hour partitions, `dt=yyyy/MM/dd/HH`.
pub const DEFAULT_PREFIX: &str = "orders/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/";

/// The projected partition column.
pub const PARTITION_COLUMN: &str = "dt";

/// How a Firehose prefix lays out the date partition, for partition projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixLayout {
    /// The key prefix before the first expression (`orders/`).
    pub static_part: String,
    /// Java date format of the timestamp part (`yyyy/MM/dd/HH`).
    pub date_format: String,
    /// What follows the timestamp part (`/` or nothing).
    pub suffix: String,
    /// Projection interval unit of the finest field (`HOURS` for `HH`).
    pub interval_unit: &'static str,
}

/// Literal characters allowed between two timestamp expressions (they pass
/// into the date format as is).
const SEPARATORS: &[char] = &['/', '-', '_', '.'];

/// Parses a Firehose prefix into a projectable layout. Projectable means: a
/// static part ending in `/` (or empty), then one contiguous run of
/// `!{timestamp:...}` expressions joined by separators (`/ - _ .`), then at
/// most a trailing `/`.
pub fn projection_layout(prefix: &str) -> Result<PrefixLayout, String> {
    let cannot = |why: String| {
        format!(
            "spec.delivery.prefix {prefix:?} cannot be used for partition projection: {why}; \
             use catalog mode Crawler or a prefix such as {:?}",
            DEFAULT_PREFIX
        )
    };
    let Some(start) = prefix.find("!{") else {
        return Err(cannot("it has no !{timestamp:...} expression, so there is no date partition".into()));
    };
    let static_part = &prefix[..start];
    if !static_part.is_empty() && !static_part.ends_with('/') {
        return Err(cannot(format!("the text before the first expression ({static_part:?}) must end with '/'")));
    }
    let mut rest = &prefix[start..];
    let mut date_format = String::new();
    let mut literal = String::new();
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("!{") {
            let end = after.find('}').ok_or_else(|| cannot("an expression is not closed with '}'".into()))?;
            let expression = &after[..end];
            let format = expression
                .strip_prefix("timestamp:")
                .ok_or_else(|| cannot(format!("!{{{expression}}} is not a timestamp expression")))?;
            if format.is_empty() {
                return Err(cannot("an empty timestamp format".into()));
            }
            if let Some(bad) = literal.chars().find(|c| !SEPARATORS.contains(c)) {
                return Err(cannot(format!(
                    "{literal:?} between timestamp expressions ({bad:?} is not one of / - _ .)"
                )));
            }
            date_format.push_str(&literal);
            date_format.push_str(format);
            literal.clear();
            rest = &after[end + 1..];
        } else {
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !(literal.is_empty() || literal == "/") {
        return Err(cannot(format!("{literal:?} follows the timestamp expressions (only a final '/' may)")));
    }
    let interval_unit = interval_unit(&date_format)
        .ok_or_else(|| cannot(format!("the format {date_format:?} has no date or time field")))?;
    Ok(PrefixLayout { static_part: static_part.to_string(), date_format, suffix: literal, interval_unit })
}

/// The projection interval unit of the finest field of a Java date format (quoted text skipped).
fn interval_unit(format: &str) -> Option<&'static str> {
    let mut quoted = false;
    let mut finest: Option<(u8, &'static str)> = None;
    for c in format.chars() {
        if c == '\'' {
            quoted = !quoted;
            continue;
        }
        if quoted {
            continue;
        }
        let unit = match c {
            'y' | 'u' | 'Y' => (0, "YEARS"),
            'M' | 'L' => (1, "MONTHS"),
            'd' | 'D' => (2, "DAYS"),
            'H' | 'h' | 'k' | 'K' => (3, "HOURS"),
            'm' => (4, "MINUTES"),
            's' => (5, "SECONDS"),
            _ => continue,
        };
        if finest.is_none_or(|f| unit.0 > f.0) {
            finest = Some(unit);
        }
    }
    finest.map(|f| f.1)
}

/// The key prefix before any expression, cut at the last `/` (the crawler's S3 target).
pub fn static_part(prefix: &str) -> &str {
    let head = prefix.find("!{").map_or(prefix, |i| &prefix[..i]);
    head.rfind('/').map_or("", |i| &head[..=i])
}

/// Whether values of the Java date `format` compare as text in time order: its
/// fields are fixed-width numbers from the year down, without gaps.
pub fn sorts_as_time(format: &str) -> bool {
    const ORDER: &[&str] = &["yyyy", "MM", "dd", "HH", "mm", "ss"];
    let mut next = 0;
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() || c == '\'' {
            match ORDER.get(next) {
                Some(field) if rest.starts_with(field) => {
                    rest = &rest[field.len()..];
                    next += 1;
                }
                _ => return false,
            }
        } else {
            rest = &rest[c.len_utf8()..];
        }
    }
    next > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_projects_hourly_dates_under_orders() {
        let layout = projection_layout(DEFAULT_PREFIX).unwrap();
        assert_eq!(
            layout,
            PrefixLayout {
                static_part: "orders/".into(),
                date_format: "yyyy/MM/dd/HH".into(),
                suffix: "/".into(),
                interval_unit: "HOURS"
            }
        );
    }

    #[test]
    fn one_expression_and_day_granularity_are_projectable() {
        let layout = projection_layout("sales/eu/!{timestamp:yyyy-MM-dd}").unwrap();
        assert_eq!((layout.static_part.as_str(), layout.date_format.as_str()), ("sales/eu/", "yyyy-MM-dd"));
        assert_eq!((layout.suffix.as_str(), layout.interval_unit), ("", "DAYS"));
        assert_eq!(projection_layout("!{timestamp:yyyy}/!{timestamp:MM}/").unwrap().static_part, "");
    }

    #[test]
    fn prefixes_that_cannot_be_projected_say_why() {
        for (prefix, why) in [
            ("orders/", "no !{timestamp"),
            ("orders/!{timestamp:yyyy}/x/!{timestamp:MM}/", "between timestamp expressions"),
            ("orders/!{timestamp:yyyy}/!{firehose:random-string}/", "not a timestamp expression"),
            ("orders/!{timestamp:yyyy}/data/", "follows the timestamp expressions"),
            ("orders-!{timestamp:yyyy}/", "must end with '/'"),
            ("orders/!{timestamp:yyyy", "not closed"),
        ] {
            let err = projection_layout(prefix).unwrap_err();
            assert!(err.contains(why), "{prefix}: {err}");
            assert!(err.contains("Crawler"), "{err}");
        }
    }

    #[test]
    fn crawler_target_is_the_static_part_of_any_prefix() {
        assert_eq!(static_part(DEFAULT_PREFIX), "orders/");
        assert_eq!(static_part("orders/"), "orders/");
        assert_eq!(static_part("a/b/part-!{timestamp:yyyy}/"), "a/b/");
        assert_eq!(static_part("!{timestamp:yyyy}/"), "");
    }

    #[test]
    fn only_big_endian_fixed_width_formats_sort_as_time() {
        assert!(sorts_as_time("yyyy/MM/dd/HH"));
        assert!(sorts_as_time("yyyy-MM-dd"));
        assert!(sorts_as_time("yyyy/MM/dd/HH/mm"));
        assert!(!sorts_as_time("dd/MM/yyyy"));
        assert!(!sorts_as_time("yyyy/dd/MM"));
        assert!(!sorts_as_time("yyyy/M/d"));
        assert!(!sorts_as_time("yyyy/MM/HH"));
    }
}
