-- archive(before): ledger rows before the cutoff fold into one checkpoint per
-- stock row, keys stay as digests (a retry answers "duplicate"), concluded
-- reservations go; held reservations and the hot-row queue stay.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT status FROM inventory.restock('tea', 100, 'po-1');
SELECT status FROM inventory.restock('mug', 50, 'po-2');
SELECT status FROM inventory.restock('hot', 500, 'po-3');
SELECT status FROM inventory.set_hot('hot');
SELECT status FROM inventory.deduct('tea', 2, 'd-1');
SELECT status FROM inventory.deduct('hot', 3, 'd-2');
SELECT status FROM inventory.deduct_cart('{tea,mug}', '{1,1}', 'cart-1');
SELECT status FROM inventory.reserve('tea', 5, 'hold-kept', ttl => '1 day');
SELECT status FROM inventory.reserve('mug', 2, 'hold-sold', ttl => '1 day');
SELECT status FROM inventory.confirm('hold-sold');
SELECT status FROM inventory.reserve('mug', 1, 'hold-gone', ttl => '1 day');
SELECT status FROM inventory.release('hold-gone');
SELECT status FROM inventory.release('tomb');
SELECT status FROM inventory.refund('d-1', 1, 'rf-1');
SELECT status FROM inventory.adjust('mug', 60, 'count-1');
SELECT * FROM inventory.apply_bills('[{"key": "bill-1", "lines": [{"sku": "tea", "delta": -1}, {"sku": "hot", "delta": -1}]}]');
SELECT count(*) AS ledger_rows, count(*) FILTER (WHERE call IS NOT NULL) AS keys
  FROM inventory.ledger;
SELECT count(*) AS reservations FROM inventory.reservation;
SELECT count(*) AS queued FROM inventory.pending;

-- bad cutoffs change nothing
SELECT pg_temp.err($$SELECT inventory.archive(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.archive(now() + interval '1 hour')$$);

-- everything before now folds, but for the held reservation's row
SELECT inventory.archive(now()) AS folded;
SELECT op, key, sku, location, on_hand_delta, reserved_delta, call
  FROM inventory.ledger ORDER BY sku NULLS FIRST, op, key;
SELECT key, state FROM inventory.reservation ORDER BY key;
SELECT count(*) AS queued FROM inventory.pending;
SELECT sum(length(digests)) / 16 AS archived_keys FROM inventory.archived_key;
SELECT * FROM inventory.reconcile();
-- archiving twice is a no-op
SELECT inventory.archive(now()) AS folded_again;

-- archived keys answer duplicate, whatever the arguments, and apply nothing
SELECT status FROM inventory.deduct('tea', 2, 'd-1');
SELECT status FROM inventory.deduct('tea', 7, 'd-1');
SELECT status FROM inventory.deduct('hot', 3, 'd-2');
SELECT status FROM inventory.restock('tea', 100, 'po-1');
SELECT status FROM inventory.deduct_cart('{tea,mug}', '{1,1}', 'cart-1');
SELECT status FROM inventory.reserve('mug', 2, 'hold-sold', ttl => '1 day');
SELECT status FROM inventory.confirm('hold-sold');
SELECT status FROM inventory.release('hold-gone');
SELECT status FROM inventory.reserve('tea', 1, 'tomb');
SELECT status FROM inventory.refund('d-1', 1, 'rf-1');
SELECT status FROM inventory.adjust('mug', 60, 'count-1');
SELECT * FROM inventory.apply_bills('[{"key": "bill-1", "lines": [{"sku": "tea", "delta": -1}, {"sku": "hot", "delta": -1}]}]');
SELECT count(*) AS ledger_rows FROM inventory.ledger;
-- a sale archived can no longer be refunded by its key
SELECT status FROM inventory.refund('d-1', 1, 'rf-2');
-- a refund made after the cutoff, of a sale before it: its retry answers
-- duplicate, and its key with other arguments is the key-reuse error
SELECT status FROM inventory.deduct('tea', 3, 'd-5');
SELECT clock_timestamp() AS cut \gset
SELECT status FROM inventory.refund('d-5', 1, 'rf-5');
SELECT inventory.archive(:'cut') AS folded;
SELECT status FROM inventory.refund('d-5', 1, 'rf-5');
SELECT pg_temp.err($$SELECT inventory.refund('d-5', 2, 'rf-5')$$);

-- the kept hold, the hot row and new calls go on
SELECT status, available FROM inventory.confirm('hold-kept');
SELECT status, available FROM inventory.deduct('hot', 1, 'd-3');
SELECT status, available FROM inventory.deduct('tea', 1, 'd-4');
SELECT inventory.merge() > 0 AS merged;
SELECT sku, on_hand, reserved, available FROM inventory.stock_levels ORDER BY sku;
SELECT * FROM inventory.reconcile();

-- A publication of every table, as logical replication or a CDC tool makes
-- one: merging the hot-row queue and archiving (four batches of one bucket
-- of keys merged into one row too) still delete what they fold.
SET client_min_messages = error;
CREATE PUBLICATION inventory_everything FOR ALL TABLES;
RESET client_min_messages;
SELECT status FROM inventory.deduct('hot', 1, 'pub-hot');
SELECT inventory.merge() > 0 AS merged;
-- four keys whose digests share their first 12 bits (archive bucket 0:
-- left(md5(key), 3) = '000'), each archived in a batch of its own
SELECT format('SELECT status FROM inventory.deduct(''tea'', 1, %L)', k),
       'SELECT inventory.archive(now()) > 0 AS archived'
  FROM unnest('{pub-2029,pub-3890,pub-4813,pub-5968}'::text[]) WITH ORDINALITY AS u(k, n)
 ORDER BY n \gexec
SELECT level, count(*) FROM inventory.archived_key WHERE bucket = 0 GROUP BY level ORDER BY level;
SELECT status FROM inventory.deduct('tea', 1, 'pub-2029');
DROP PUBLICATION inventory_everything;
SELECT * FROM inventory.reconcile();
