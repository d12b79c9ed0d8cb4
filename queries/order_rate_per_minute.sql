-- Orders placed per minute.
SELECT date_trunc('minute', order_ts) AS minute,
       count(*) AS orders
FROM {table}
WHERE event_name = 'INSERT'
GROUP BY 1
ORDER BY 1 DESC
