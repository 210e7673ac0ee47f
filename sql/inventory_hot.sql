-- The whole contract on a hot row: escrow counter in shared memory, movements
-- queued in inventory.pending until merged, the stock row untouched.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

SELECT status FROM inventory.restock('gpu', 10, 'po-1');
SELECT status FROM inventory.restock('cable', 10, 'po-2');
SELECT * FROM inventory.set_hot('gpu');
SELECT * FROM inventory.set_hot('nothing');
SELECT sku, hot FROM inventory.stock ORDER BY sku;

-- deduct: ok, duplicate, insufficient, not_found; the stock row does not move
SELECT * FROM inventory.deduct('gpu', 3, 'o-1');
SELECT * FROM inventory.deduct('gpu', 3, 'o-1');
SELECT * FROM inventory.deduct('gpu', 8, 'o-2');
SELECT * FROM inventory.deduct('gpu', 1, 'o-3', 'nowhere');
SELECT sku, on_hand, reserved, pending, available FROM inventory.stock_levels WHERE sku = 'gpu';
SELECT sku, location, on_hand_delta, reserved_delta FROM inventory.pending;
SELECT sku, loaded, available, transactions, units_taken, refusals FROM inventory.hot_counters();
-- a retry of an applied deduct on a sold-out hot row is still a duplicate
SELECT * FROM inventory.deduct('gpu', 7, 'o-4');
SELECT * FROM inventory.deduct('gpu', 7, 'o-4');
-- and reusing its key for another call is still an error
SELECT * FROM inventory.deduct('gpu', 1, 'o-1');
SELECT status FROM inventory.restock('gpu', 5, 'po-3');

-- an aborted deduct gives its units back; so does a rolled-back savepoint
BEGIN;
SELECT * FROM inventory.deduct('gpu', 2, 'o-5');
SELECT available, transactions FROM inventory.hot_counters();
ROLLBACK;
SELECT available, transactions FROM inventory.hot_counters();
BEGIN;
SELECT status FROM inventory.deduct('gpu', 1, 'o-6');
SAVEPOINT s;
SELECT status FROM inventory.deduct('gpu', 2, 'o-7');
ROLLBACK TO SAVEPOINT s;
SELECT available FROM inventory.hot_counters();
COMMIT;
SELECT available FROM inventory.hot_counters();

-- units that arrive count only once their transaction commits
BEGIN;
SELECT * FROM inventory.restock('gpu', 100, 'po-4');
SELECT available FROM inventory.hot_counters();
ROLLBACK;
SELECT available FROM inventory.hot_counters();
-- ... but the transaction that brings them may use them at once
BEGIN;
SELECT status FROM inventory.restock('gpu', 10, 'po-5');
SELECT * FROM inventory.deduct('gpu', 12, 'o-8');
COMMIT;
SELECT available FROM inventory.hot_counters();

-- reserve, confirm, release and expiry on a hot row
SELECT status FROM inventory.restock('gpu', 10, 'po-6');
SELECT * FROM inventory.reserve('gpu', 4, 'r-1');
SELECT * FROM inventory.reserve('gpu', 4, 'r-1');
SELECT * FROM inventory.reserve('gpu', 40, 'r-2');
SELECT * FROM inventory.confirm('r-1');
SELECT * FROM inventory.confirm('r-1');
SELECT * FROM inventory.reserve('gpu', 2, 'r-3');
SELECT * FROM inventory.release('r-3');
SELECT * FROM inventory.release('r-3');
SELECT * FROM inventory.reserve('gpu', 3, 'r-4', ttl => '1 millisecond');
SELECT pg_sleep(0.05);
SELECT * FROM inventory.confirm('r-4');
-- a sold-out hot row expires its overdue holds before it says "insufficient"
SELECT available FROM inventory.hot_counters();
SELECT * FROM inventory.reserve('gpu', 6, 'r-5', ttl => '1 millisecond');
SELECT pg_sleep(0.05);
SELECT * FROM inventory.deduct('gpu', 6, 'o-9');
SELECT key, state FROM inventory.reservation ORDER BY key;

-- refund and stocktake on a hot row
SELECT * FROM inventory.refund('o-1', 2, 'rma-1');
SELECT * FROM inventory.refund('o-1', 2, 'rma-2');
SELECT * FROM inventory.adjust('gpu', 5, 'count-1');
SELECT * FROM inventory.adjust('gpu', 8, 'count-2');

-- a cart mixing a hot and a cold row: all or nothing
SELECT * FROM inventory.deduct_cart('{gpu,cable}', '{1,1}', 'cart-1');
SELECT * FROM inventory.deduct_cart('{gpu,cable}', '{1,100}', 'cart-2');
SELECT * FROM inventory.deduct_cart('{gpu,cable}', '{100,1}', 'cart-3');
SELECT sku, available FROM inventory.stock_levels ORDER BY sku;
SELECT available FROM inventory.hot_counters();

-- reconcile checks the counter against the tables; merge folds the queue in
SELECT * FROM inventory.reconcile();
SELECT inventory.merge() > 0 AS merged;
SELECT count(*) AS queued FROM inventory.pending;
SELECT sku, on_hand, reserved, pending, available FROM inventory.stock_levels ORDER BY sku;
SELECT * FROM inventory.reconcile();

-- the ledger tells the whole story
SELECT op, key, on_hand_delta, reserved_delta, ref FROM inventory.ledger
 WHERE sku = 'gpu' ORDER BY id;

-- back to cold: the queue is merged and the counter unloaded
SELECT status FROM inventory.deduct('gpu', 1, 'o-10');
SELECT * FROM inventory.set_hot('gpu', false);
SELECT loaded FROM inventory.hot_counters();
SELECT count(*) AS queued FROM inventory.pending;
SELECT * FROM inventory.deduct('gpu', 1, 'o-11');
SELECT * FROM inventory.reconcile();

-- made hot inside a transaction that already changed the row: cold until it ends
BEGIN;
SELECT status FROM inventory.restock('cable', 1, 'po-7');
SELECT status FROM inventory.set_hot('cable');
SELECT status FROM inventory.deduct('cable', 1, 'o-12');
SELECT count(*) AS queued FROM inventory.pending;
COMMIT;
SELECT status FROM inventory.deduct('cable', 1, 'o-13');
SELECT count(*) AS queued FROM inventory.pending;
SELECT * FROM inventory.reconcile();

-- a stocktake of a hot row does not count a hold past its expiry
SELECT status FROM inventory.restock('adj-h', 10, 'adj-h-1');
SELECT status FROM inventory.set_hot('adj-h');
SELECT status FROM inventory.reserve('adj-h', 8, 'adj-h-r', ttl => '1 millisecond');
DO $$ BEGIN
    WHILE clock_timestamp() <= (SELECT expires_at FROM inventory.reservation WHERE key = 'adj-h-r')
    LOOP PERFORM pg_sleep(0.001); END LOOP;
END $$;
SELECT status, available FROM inventory.adjust('adj-h', 5, 'adj-h-c');
SELECT state FROM inventory.reservation WHERE key = 'adj-h-r';
SELECT inventory.merge() > 0 AS merged;
SELECT sku, on_hand, reserved FROM inventory.stock WHERE sku = 'adj-h';

-- quantities that would overflow a hot row: errors, and the row stays exact
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT status FROM inventory.restock('ov', 10, 'ov-1');
SELECT status FROM inventory.set_hot('ov');
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "ov-b", "lines": [{"sku": "ov", "delta": -9223372036854775808}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.restock('ov', 9223372036854775800, 'ov-2')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "ov-c", "lines": [{"sku": "ov", "delta": 9223372036854775800}]}]')$$);
SELECT status FROM inventory.restock('ov', 9223372036854775797, 'ov-3');
SELECT status, available FROM inventory.deduct('ov', 7, 'ov-d');
SELECT status, available FROM inventory.refund('ov-d', 7, 'ov-5');
SELECT status, available FROM inventory.deduct('ov', 1, 'ov-e');
SELECT status, available FROM inventory.restock('ov', 1, 'ov-6');
SELECT pg_temp.err($$SELECT * FROM inventory.refund('ov-e', 1, 'ov-7')$$);
SELECT inventory.merge() > 0 AS merged;
SELECT sku, on_hand, available FROM inventory.stock_levels WHERE sku = 'ov';
SELECT * FROM inventory.reconcile();

-- one row whose queue cannot be merged holds up no other: its merge fails
-- alone, with a warning, and its movements stay queued
SELECT status FROM inventory.deduct('ov', 1, 'ov-f');
SELECT status FROM inventory.restock('good', 5, 'good-1');
SELECT status FROM inventory.set_hot('good');
SELECT status FROM inventory.deduct('good', 2, 'good-2');
INSERT INTO inventory.pending (sku, location, on_hand_delta) VALUES ('ov', 'default', -9223372036854775807);
SELECT inventory.merge() AS merged;
SELECT sku, count(*) AS queued FROM inventory.pending GROUP BY sku ORDER BY sku;
SELECT sku, on_hand FROM inventory.stock WHERE sku IN ('good', 'ov') ORDER BY sku;
DELETE FROM inventory.pending WHERE on_hand_delta = -9223372036854775807;
SELECT inventory.merge() AS merged;
SELECT * FROM inventory.reconcile();

-- DROP and CREATE EXTENSION in one transaction: the new tables start empty,
-- and no counter or statistic of the dropped ones carries over
BEGIN;
SELECT status FROM inventory.deduct('good', 1, 'drop-1');
DROP EXTENSION inventory;
CREATE EXTENSION inventory;
SELECT * FROM inventory.restock('good', 5, 'drop-2');
SELECT sku, on_hand, hot FROM inventory.stock;
SELECT count(*) AS queued FROM inventory.pending;
SELECT * FROM inventory.reconcile();
COMMIT;
SELECT count(*) AS counters FROM inventory.hot_counters();
SELECT status FROM inventory.set_hot('good');
SELECT status, available FROM inventory.deduct('good', 2, 'drop-3');
SELECT sku, loaded, available, units_taken, refusals FROM inventory.hot_counters();
SELECT * FROM inventory.reconcile();

-- apply_bills on a hot row expires overdue holds before it refuses, as deduct does
SELECT status FROM inventory.restock('bx', 5, 'bx-1');
SELECT status FROM inventory.set_hot('bx');
SELECT status FROM inventory.reserve('bx', 5, 'bx-hold', ttl => '1 millisecond');
SELECT pg_sleep(0.05);
SELECT * FROM inventory.apply_bills('[{"key": "bx-bill", "lines": [{"sku": "bx", "delta": -3}]}]');
SELECT key, state FROM inventory.reservation WHERE key = 'bx-hold';
SELECT * FROM inventory.reconcile();

-- set_hot pins the row's state: the automatic rule (inventory.auto_hot, off
-- by default) leaves a pinned row alone; set_hot(sku, NULL) hands it back
-- without changing it
SELECT name, boot_val, unit, context FROM pg_settings
 WHERE name LIKE 'inventory.auto\_hot%' ORDER BY name;
SELECT status FROM inventory.restock('pin', 5, 'pin-1');
SELECT sku, hot, pinned FROM inventory.stock WHERE sku = 'pin';
SELECT status FROM inventory.set_hot('pin');
SELECT sku, hot, pinned FROM inventory.stock WHERE sku = 'pin';
SELECT status FROM inventory.set_hot('pin', NULL);
SELECT sku, hot, pinned FROM inventory.stock WHERE sku = 'pin';
SELECT status FROM inventory.set_hot('pin', false);
SELECT sku, hot, pinned FROM inventory.stock WHERE sku = 'pin';
SELECT status FROM inventory.set_hot('no-such-row', NULL);
SELECT * FROM inventory.reconcile();

-- hot_counters() counts the units taken up to the bigint maximum, no further
SELECT status FROM inventory.restock('huge', 9223372036854775807, 'huge-1');
SELECT status FROM inventory.set_hot('huge');
SELECT status FROM inventory.deduct('huge', 9223372036854775807, 'huge-2');
SELECT status FROM inventory.restock('huge', 9223372036854775807, 'huge-3');
SELECT status FROM inventory.deduct('huge', 9223372036854775807, 'huge-4');
SELECT units_taken FROM inventory.hot_counters() WHERE sku = 'huge';
SELECT status FROM inventory.set_hot('huge', false);
SELECT * FROM inventory.reconcile();
