-- The orders table, as the first version of the shop created it.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
