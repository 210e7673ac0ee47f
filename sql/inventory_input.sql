-- Bad input: every case is an ERROR with a precise SQLSTATE, and nothing changes.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

-- err(q): run q, return its SQLSTATE and message instead of aborting
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT status FROM inventory.restock('widget', 10, 'in-1');
SELECT status FROM inventory.deduct('widget', 2, 'sale-1');
SELECT status FROM inventory.restock('big', 9223372036854775807, 'in-big');
SELECT count(*) AS ledger_rows_before FROM inventory.ledger;

-- NULL arguments: 22004
SELECT pg_temp.err($$SELECT inventory.deduct(NULL, 1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', NULL, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, NULL)$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, 'k', NULL)$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, 'k', nowait => NULL)$$);
SELECT pg_temp.err($$SELECT inventory.restock(NULL, 1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.adjust('widget', NULL, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 1, 'k', ttl => NULL)$$);
SELECT pg_temp.err($$SELECT inventory.confirm(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.release(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.refund(NULL, 1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.refund('sale-1', 1, NULL)$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart(NULL, '{1}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', NULL, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget,NULL}', '{1,1}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', '{NULL}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', '{1}', 'k', '{NULL}')$$);
SELECT pg_temp.err($$SELECT inventory.available(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.lock_key(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.lock_key('', 'x')$$);

-- quantities must be positive: 22023
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 0, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', -1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.restock('widget', 0, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.reserve('widget', -5, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.refund('sale-1', 0, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', '{0}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.adjust('widget', -1, 'k')$$);

-- quantities that would overflow bigint: 22003
SELECT pg_temp.err($$SELECT inventory.restock('big', 1, 'in-big-2')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget,widget}', '{9223372036854775807,1}', 'k')$$);
-- so must the whole cart's, also of several rows (its reservation's total)
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget,big}', '{9223372036854775807,1}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{widget,big}', '{9223372036854775807,1}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{widget,big}', '{9223372036854775807,1}', 'k')$$);

-- empty and over-long names and keys: 22023 and 22001 (the limit is 256 bytes)
SELECT pg_temp.err($$SELECT inventory.deduct('', 1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, '')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, 'k', '')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, repeat('k', 257))$$);
SELECT pg_temp.err($$SELECT inventory.restock(repeat('s', 257), 1, 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, 'k', repeat('l', 257))$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart(ARRAY[repeat('s', 300)], '{1}', 'k')$$);
-- exactly 256 bytes is accepted (here: 128 two-byte characters)
SELECT status FROM inventory.deduct('widget', 1, repeat('é', 128));

-- ttl must be positive: 22023
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 1, 'k', ttl => '-1 minute')$$);
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 1, 'k', ttl => '0')$$);
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 1, 'k', ttl => '1 day -25 hours')$$);
-- (also one that compares as positive, at 360 days a year, but ends the hold
-- before it begins: a year back is 365 or 366 days)
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 1, 'k', ttl => '-1 year +364 days')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{widget}', '{1}', 'k', ttl => '-1 year +364 days')$$);

-- cart arrays: same length (2202E), one dimension (2202E), at least one line (22023)
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget,big}', '{1}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', '{1}', 'k', '{a,b}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{{widget}}', '{{1}}', 'k')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{}', '{}', 'k')$$);

-- an idempotency key reused with other arguments, or by another call: 23505
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 3, 'sale-1')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 2, 'sale-1', 'other')$$);
SELECT pg_temp.err($$SELECT inventory.restock('widget', 2, 'sale-1')$$);
SELECT pg_temp.err($$SELECT inventory.reserve('widget', 2, 'sale-1')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart('{widget}', '{2}', 'sale-1')$$);
SELECT pg_temp.err($$SELECT inventory.refund('sale-1', 1, 'in-1')$$);

-- a cart of several lines cannot be refunded by its key: 0A000
SELECT status FROM inventory.restock('gadget', 5, 'in-2');
SELECT status FROM inventory.deduct_cart('{widget,gadget}', '{1,1}', 'cart-1');
SELECT pg_temp.err($$SELECT inventory.refund('cart-1', 1, 'refund-x')$$);

-- a call that writes, in a read-only transaction: 25006 before any work,
-- as PostgreSQL refuses a write; one that only reads goes on
BEGIN READ ONLY;
SELECT pg_temp.err($$SELECT inventory.deduct('widget', 1, 'ro-1')$$);
SELECT pg_temp.err($$SELECT inventory.restock('widget', 1, 'ro-2')$$);
SELECT pg_temp.err($$SELECT inventory.confirm('ro-3')$$);
SELECT inventory.available('widget') IS NOT NULL AS reads_go_on;
COMMIT;

-- the error text in full, as a caller sees it
SELECT inventory.deduct('widget', 5, 'sale-1');

-- the errors changed nothing: 3 rows from before + 4 from the calls that returned ok
SELECT count(*) AS ledger_rows_after FROM inventory.ledger;
SELECT * FROM inventory.reconcile();
SELECT sku, on_hand, reserved FROM inventory.stock ORDER BY sku;
