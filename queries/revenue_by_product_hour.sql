-- Revenue and units per product per hour over the last {hours} hours
-- (INSERT events = placed orders).
SELECT date_trunc('hour', order_ts) AS hour,
       product_name,
       sum(quantity) AS units,
       sum(quantity * price) AS revenue
FROM {table}
WHERE event_name = 'INSERT'
  AND {dt_filter}
  AND order_ts >= current_timestamp - ({hours} * INTERVAL '1' HOUR)
GROUP BY 1, 2
ORDER BY 1 DESC, 4 DESC
