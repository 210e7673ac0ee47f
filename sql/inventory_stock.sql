-- restock, adjust, deduct, refund and available on ordinary rows.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

-- restock creates the row; a replay is a duplicate and changes nothing
SELECT * FROM inventory.restock('tea', 10, 'po-1');
SELECT * FROM inventory.restock('tea', 10, 'po-1');
SELECT * FROM inventory.restock('tea', 5, 'po-2', location => 'warehouse-2');
SELECT * FROM inventory.restock('tea', 3, 'po-3');

-- deduct: ok, duplicate, insufficient, not_found
SELECT * FROM inventory.deduct('tea', 4, 'order-1');
SELECT * FROM inventory.deduct('tea', 4, 'order-1');
SELECT * FROM inventory.deduct('tea', 10, 'order-2');
SELECT * FROM inventory.deduct('tea', 9, 'order-2');
SELECT * FROM inventory.deduct('tea', 1, 'order-3');
SELECT * FROM inventory.deduct('coffee', 1, 'order-4');
SELECT * FROM inventory.deduct('tea', 1, 'order-5', location => 'nowhere');
SELECT * FROM inventory.deduct('tea', 5, 'order-6', 'warehouse-2', nowait => true);
-- a key that got "insufficient" was not used up: it works after a restock
SELECT * FROM inventory.restock('tea', 1, 'po-4');
SELECT * FROM inventory.deduct('tea', 1, 'order-3');

-- available: one location, all locations, unknown sku
SELECT inventory.available('tea', 'default') AS here,
       inventory.available('tea') AS everywhere,
       inventory.available('coffee') AS unknown;

-- adjust (stocktake): ok with a signed ledger delta, duplicate, not_found, conflict
SELECT * FROM inventory.restock('mug', 20, 'po-5');
SELECT * FROM inventory.reserve('mug', 6, 'hold-1');
SELECT * FROM inventory.adjust('mug', 15, 'count-1');
SELECT * FROM inventory.adjust('mug', 15, 'count-1');
SELECT * FROM inventory.adjust('mug', 5, 'count-2');
SELECT * FROM inventory.adjust('cup', 5, 'count-3');
SELECT * FROM inventory.adjust('mug', 6, 'count-4');
SELECT * FROM inventory.adjust('mug', 30, 'count-5');

-- refund of a deduct: partial, capped at what was sold, idempotent per refund key
SELECT * FROM inventory.refund('order-1', 1, 'rma-1');
SELECT * FROM inventory.refund('order-1', 1, 'rma-1');
SELECT * FROM inventory.refund('order-1', 4, 'rma-2');
SELECT * FROM inventory.refund('order-1', 3, 'rma-2');
SELECT * FROM inventory.refund('order-1', 1, 'rma-3');
-- refund of something that is not a sale
SELECT * FROM inventory.refund('no-such-order', 1, 'rma-4');
SELECT * FROM inventory.refund('po-1', 1, 'rma-5');
-- refund of a reservation: only once confirmed
SELECT * FROM inventory.refund('hold-1', 1, 'rma-6');
SELECT * FROM inventory.confirm('hold-1');
SELECT * FROM inventory.refund('hold-1', 2, 'rma-6');
SELECT * FROM inventory.refund('hold-1', 5, 'rma-7');

-- the journal: one row per counter change
SELECT op, key, sku, location, on_hand_delta, reserved_delta, ref
  FROM inventory.ledger ORDER BY id;
SELECT key, call, sku, location, on_hand_delta, reserved_delta, counted
  FROM inventory.ledger WHERE call IS NOT NULL ORDER BY id;
SELECT sku, location, on_hand, reserved, hot FROM inventory.stock ORDER BY sku, location;
SELECT * FROM inventory.reconcile();
