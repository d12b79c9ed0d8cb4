-- Average order value per region and store over the last {hours} hours.
SELECT region,
       store_id,
       count(*) AS orders,
       avg(quantity * price) AS average_order_value
FROM {table}
WHERE event_name = 'INSERT'
  AND {dt_filter}
  AND order_ts >= current_timestamp - ({hours} * INTERVAL '1' HOUR)
GROUP BY 1, 2
ORDER BY 4 DESC
