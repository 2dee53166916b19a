-- Live changes after the initial snapshot: inserts, updates (one row many times), deletes,
-- a row inserted and deleted in the same transaction. Safe to run again: ids follow max(id).
BEGIN;
INSERT INTO orders (id, customer_id, status, total, ordered_at, note)
SELECT m.id + g, 1 + g % 1000, 'new', 0, now(), 'live order'
FROM (SELECT max(id) AS id FROM orders) m, generate_series(1, 50) g;
INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price)
SELECT o.id, 1, 1 + o.id % 200, 2, 9.99 FROM orders o WHERE o.note = 'live order'
ON CONFLICT DO NOTHING;
COMMIT;

UPDATE orders SET status = 'paid' WHERE id % 10 = 0 AND status = 'new';
UPDATE customers SET loyalty_points = coalesce(loyalty_points, 0) + 1 WHERE id = 7;
UPDATE customers SET loyalty_points = coalesce(loyalty_points, 0) + 1 WHERE id = 7;
UPDATE customers SET loyalty_points = coalesce(loyalty_points, 0) + 1, tags = ARRAY['vip'] WHERE id = 7;
UPDATE products SET price = price * 1.10, stock = stock - 1 WHERE id % 7 = 0;
DELETE FROM order_lines WHERE order_id IN (SELECT id FROM orders WHERE status = 'delivered' ORDER BY id LIMIT 20);
DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE status = 'delivered' ORDER BY id LIMIT 20);

BEGIN;
INSERT INTO customers (id, email, created_at) SELECT max(id) + 1, 'short-lived@example.com', now() FROM customers;
DELETE FROM customers WHERE email = 'short-lived@example.com';
COMMIT;
