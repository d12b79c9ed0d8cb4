-- Top products by revenue over the last {hours} hours.
SELECT product_name,
       count(*) AS orders,
       sum(quantity) AS units,
       sum(quantity * price) AS revenue
FROM {table}
WHERE event_name = 'INSERT'
  AND {dt_filter}
  AND order_ts >= current_timestamp - ({hours} * INTERVAL '1' HOUR)
GROUP BY 1
ORDER BY 4 DESC
LIMIT {limit}
