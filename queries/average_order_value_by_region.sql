-- Average order value per region and store.
SELECT region,
       store_id,
       count(*) AS orders,
       avg(quantity * price) AS average_order_value
FROM {table}
WHERE event_name = 'INSERT'
GROUP BY 1, 2
ORDER BY 4 DESC
