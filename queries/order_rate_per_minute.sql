-- Orders placed per minute over the last {hours} hours.
SELECT date_trunc('minute', order_ts) AS minute,
       count(*) AS orders
FROM {table}
WHERE event_name = 'INSERT'
  AND {dt_filter}
  AND order_ts >= current_timestamp - ({hours} * INTERVAL '1' HOUR)
GROUP BY 1
ORDER BY 1 DESC
