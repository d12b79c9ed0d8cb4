-- Revenue and units per product per hour (INSERT events = placed orders).
SELECT date_trunc('hour', order_ts) AS hour,
       product_name,
       sum(quantity) AS units,
       sum(quantity * price) AS revenue
FROM {table}
WHERE event_name = 'INSERT'
GROUP BY 1, 2
ORDER BY 1 DESC, 4 DESC
