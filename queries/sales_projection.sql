-- Per product: linear trend of hourly revenue over the last {hours} hours,
-- extrapolated to the next hour.
WITH hourly AS (
  SELECT product_name,
         date_trunc('hour', order_ts) AS hour,
         sum(quantity * price) AS revenue
  FROM {table}
  WHERE event_name = 'INSERT'
    AND {dt_filter}
    AND order_ts >= current_timestamp - ({hours} * INTERVAL '1' HOUR)
  GROUP BY 1, 2
),
indexed AS (
  SELECT product_name,
         hour,
         CAST(to_unixtime(hour) / 3600 AS double) AS x,
         CAST(revenue AS double) AS y
  FROM hourly
),
fit AS (
  SELECT product_name,
         regr_slope(y, x) AS slope,
         regr_intercept(y, x) AS intercept,
         max(x) AS last_x,
         count(*) AS hours_seen
  FROM indexed
  GROUP BY 1
)
SELECT product_name,
       hours_seen,
       round(slope, 2) AS revenue_trend_per_hour,
       round(intercept + slope * (last_x + 1), 2) AS projected_revenue_next_hour
FROM fit
ORDER BY 4 DESC
