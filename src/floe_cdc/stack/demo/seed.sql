-- The demo shop: four related tables covering the PostgreSQL types Floe maps to Iceberg.
-- Deterministic (setseed) so that two runs seed the same rows.
DROP TABLE IF EXISTS order_lines, orders, products, customers CASCADE;

CREATE TABLE customers (
    id             integer PRIMARY KEY,
    email          varchar(200) NOT NULL,
    full_name      text,
    created_at     timestamptz NOT NULL,
    birth_date     date,
    is_active      boolean NOT NULL DEFAULT true,
    loyalty_points bigint,
    external_id    uuid,
    profile        jsonb,
    tags           text[]
);

CREATE TABLE products (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    price       numeric(12, 2) NOT NULL,
    weight_kg   real,
    volume_l    double precision,
    thumbnail   bytea,
    opens_at    time,
    listed_at   timestamp,
    attributes  json,
    ratings     integer[],
    stock       smallint
);

CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers (id),
    status       varchar(20) NOT NULL,
    total        numeric(14, 2),
    ordered_at   timestamptz NOT NULL,
    note         text
);

CREATE TABLE order_lines (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no     smallint NOT NULL,
    product_id  bigint NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL,
    unit_price  numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

SELECT setseed(0.42);

INSERT INTO customers
SELECT g,
       'customer' || g || '@example.com',
       CASE WHEN g % 17 = 0 THEN NULL ELSE initcap(md5(g::text)) END,
       timestamptz '2023-01-01 00:00:00+00' + (g * interval '37 minutes 13.123456 seconds'),
       CASE WHEN g % 11 = 0 THEN NULL ELSE date '1950-01-01' + (g * 7919 % 20000) END,
       g % 5 <> 0,
       (g::bigint * 104729) % 5000000000,
       md5('uuid' || g)::uuid,
       jsonb_build_object('tier', (ARRAY['bronze', 'silver', 'gold'])[1 + g % 3], 'newsletter', g % 2 = 0),
       CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY['tag' || (g % 4), 'tag' || (g % 9)] END
FROM generate_series(1, 1000) AS g;

INSERT INTO products
SELECT g,
       'Product ' || g,
       round((random() * 500 + 1)::numeric, 2),
       (random() * 20)::real,
       random() * 100,
       CASE WHEN g % 3 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       time '08:00:00' + g * interval '1 minute 0.5 second',
       timestamp '2024-03-01 09:30:00' + g * interval '1 day 3 hours',
       json_build_object('color', (ARRAY['red', 'green', 'blue'])[1 + g % 3], 'size', g % 10),
       ARRAY[g % 5 + 1, (g * 3) % 5 + 1],
       (g * 13 % 300)::smallint
FROM generate_series(1, 200) AS g;

INSERT INTO orders
SELECT g,
       1 + (g * 7) % 1000,
       (ARRAY['new', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       NULL,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes',
       CASE WHEN g % 9 = 0 THEN 'gift wrap' END
FROM generate_series(1, 3000) AS g;

INSERT INTO order_lines
SELECT o, l, 1 + (o * 31 + l) % 200, 1 + (o + l) % 5, round((random() * 200 + 1)::numeric, 2)
FROM generate_series(1, 3000) AS o, generate_series(1, 2) AS l;

UPDATE orders o SET total = s.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_lines GROUP BY order_id) s
WHERE s.order_id = o.id;
