-- Allocation across locations: set_location, the locations view,
-- deduct_any (priority, most_available, single), deduct_cart_any,
-- allocation(), refunds of split sales, idempotency, bad input.
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

-- locations: configured ones, and every location that holds stock
-- (priority 0, active, until configured); set_location replaces
SELECT inventory.set_location('north', 10);
SELECT inventory.set_location('south', 5);
SELECT inventory.set_location('closed', 100, false);
SELECT inventory.set_location('south', 5, true);
SELECT status FROM inventory.restock('tee', 3, 'r1', 'north');
SELECT status FROM inventory.restock('tee', 5, 'r2', 'south');
SELECT status FROM inventory.restock('tee', 9, 'r3', 'closed');
SELECT status FROM inventory.restock('tee', 2, 'r4');
SELECT * FROM inventory.locations ORDER BY priority DESC, location;

-- priority: fill the first candidate, spill to the next; location is NULL
-- when the units were split; available is what is left over all candidates
-- (an inactive location is never a candidate)
SELECT * FROM inventory.deduct_any('tee', 2, 'o1');
SELECT * FROM inventory.deduct_any('tee', 4, 'o2');
SELECT * FROM inventory.allocation('o2');
-- a retry is a duplicate; the same key with other arguments is an error
SELECT * FROM inventory.deduct_any('tee', 4, 'o2');
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 3, 'o2')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 4, 'o2', '{north,south}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 4, 'o2', strategy => 'most_available')$$);
SELECT pg_temp.err($$SELECT inventory.deduct('tee', 4, 'o2')$$);
-- single: the first candidate that alone has the units
SELECT * FROM inventory.deduct_any('tee', 3, 'o3', strategy => 'single');
SELECT * FROM inventory.deduct_any('tee', 2, 'o4', strategy => 'single');
-- most_available: the largest first (ties by priority), spilling
SELECT status FROM inventory.restock('tee', 4, 'r5', 'north');
SELECT * FROM inventory.deduct_any('tee', 5, 'o5', strategy => 'most_available');
SELECT * FROM inventory.allocation('o5');
-- an explicit list, in its own order; inactive ones skipped
SELECT * FROM inventory.deduct_any('tee', 1, 'o6', '{closed,south,north}');
SELECT * FROM inventory.allocation('o6');
-- insufficient and not_found change nothing and record no key
SELECT * FROM inventory.deduct_any('tee', 99, 'o7');
SELECT * FROM inventory.deduct_any('tee', 1, 'o8', '{closed}');
SELECT * FROM inventory.deduct_any('nope', 1, 'o9');
SELECT * FROM inventory.allocation('o7');
SELECT * FROM inventory.allocation('no-such-key');
-- a location made inactive is no longer allocated from
SELECT inventory.set_location('north', 10, false);
SELECT * FROM inventory.deduct_any('tee', 1, 'o10');
SELECT inventory.set_location('north', 10, true);
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels ORDER BY location;

-- refund of a split sale: the last-filled location first, capped per row
SELECT * FROM inventory.refund('o2', 3, 'rf1');
SELECT * FROM inventory.refund('o2', 3, 'rf1');
SELECT * FROM inventory.refund('o2', 2, 'rf2');
SELECT * FROM inventory.refund('o2', 1, 'rf3');
SELECT * FROM inventory.refund('o2', 1, 'rf4');
SELECT sku, location, on_hand_delta, ref FROM inventory.ledger WHERE op = 'refund' ORDER BY id;

-- deduct_cart_any: the whole cart from one location when one can serve it
SELECT status FROM inventory.restock('mug', 4, 'm1', 'north');
SELECT status FROM inventory.restock('mug', 4, 'm2', 'south');
SELECT status FROM inventory.restock('cap', 1, 'c1', 'north');
SELECT status FROM inventory.restock('cap', 5, 'c2', 'south');
SELECT * FROM inventory.deduct_cart_any('{mug,cap}', '{2,3}', 'cart1');
SELECT * FROM inventory.allocation('cart1');
-- else from as few locations as can (ties by priority), splitting a line
-- only as needed
SELECT * FROM inventory.deduct_cart_any('{mug,cap,mug}', '{3,1,2}', 'cart2');
SELECT * FROM inventory.allocation('cart2');
SELECT * FROM inventory.deduct_cart_any('{cap,mug}', '{1,5}', 'cart2');
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{cap,mug}', '{1,3}', 'cart2')$$);
SELECT * FROM inventory.deduct_cart_any('{mug}', '{50}', 'cart3');
SELECT * FROM inventory.deduct_cart_any('{mug,zzz}', '{1,1}', 'cart4');
SELECT * FROM inventory.deduct_cart_any('{tee}', '{1}', 'cart5', '{south}');
SELECT pg_temp.err($$SELECT inventory.refund('cart2', 1, 'rf5')$$);
SELECT * FROM inventory.refund('cart5', 1, 'rf6');
-- a line one location of the set serves alone is not split: xs 2 from
-- south (north has 1), ys 2 from north
SELECT status FROM inventory.restock('xs', 1, 'x1', 'north');
SELECT status FROM inventory.restock('xs', 2, 'x2', 'south');
SELECT status FROM inventory.restock('ys', 2, 'y1', 'north');
SELECT * FROM inventory.deduct_cart_any('{xs,ys}', '{2,2}', 'cart6');
SELECT * FROM inventory.allocation('cart6');

-- hot rows may be candidates
SELECT status FROM inventory.set_hot('tee', true, 'north');
SELECT * FROM inventory.deduct_any('tee', 4, 'h1');
SELECT * FROM inventory.allocation('h1');
SELECT * FROM inventory.refund('h1', 4, 'h1-rf');
SELECT inventory.merge() >= 0 AS merged;

-- reserve_any: holds from one or several locations, one reservation part
-- per location; confirm, release and expiry act on every part
SELECT status FROM inventory.restock('lamp', 3, 'l1', 'north');
SELECT status FROM inventory.restock('lamp', 5, 'l2', 'south');
SELECT * FROM inventory.reserve_any('lamp', 5, 'rh1');
SELECT key, part, location, qty, state, expires_at - created_at AS ttl
  FROM inventory.reservation WHERE key = 'rh1' ORDER BY part;
SELECT * FROM inventory.reserve_any('lamp', 5, 'rh1');
SELECT pg_temp.err($$SELECT inventory.reserve_any('lamp', 5, 'rh1', ttl => '1 hour')$$);
SELECT * FROM inventory.allocation('rh1');
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels WHERE sku = 'lamp' ORDER BY location;
SELECT * FROM inventory.confirm('rh1');
SELECT * FROM inventory.confirm('rh1');
SELECT * FROM inventory.release('rh1');
SELECT key, part, state FROM inventory.reservation WHERE key = 'rh1' ORDER BY part;
-- a confirmed split reservation is refunded to its rows, the last filled first
SELECT * FROM inventory.refund('rh1', 3, 'rh1-rma');
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels WHERE sku = 'lamp' ORDER BY location;
-- release of every part; a refund of a released reservation is a conflict
SELECT * FROM inventory.reserve_any('lamp', 4, 'rh2', strategy => 'most_available');
SELECT * FROM inventory.allocation('rh2');
SELECT * FROM inventory.release('rh2');
SELECT * FROM inventory.refund('rh2', 1, 'rh2-rma');
-- single: one location or none
SELECT * FROM inventory.reserve_any('lamp', 6, 'rh3', strategy => 'single');
SELECT * FROM inventory.reserve_any('lamp', 3, 'rh3', locations => '{south,north}', strategy => 'single');
SELECT * FROM inventory.release('rh3');
-- expiry of every part: by a confirm that comes too late, or by expire()
-- (rh4 and rh5 in one statement: its timestamp is the one both holds are
-- measured against, so rh4's 1 ms hold is still there for rh5, however slow
-- the machine)
SELECT a.status AS rh4, a.available AS rh4_available, b.status AS rh5, b.available AS rh5_available
  FROM inventory.reserve_any('lamp', 6, 'rh4', ttl => '1 millisecond') a
 CROSS JOIN LATERAL inventory.reserve_any('lamp', 1, 'rh5', ttl => '1 millisecond',
                                          locations => CASE WHEN a.status IS NOT NULL THEN '{south}'::text[] END) b;
SELECT pg_sleep(0.05);
SELECT * FROM inventory.confirm('rh4');
SELECT key, part, state FROM inventory.reservation WHERE key IN ('rh4', 'rh5') ORDER BY key, part;
SELECT inventory.expire() >= 0 AS expired;
SELECT key, part, state FROM inventory.reservation WHERE key IN ('rh4', 'rh5') ORDER BY key, part;
-- a release that came first leaves a tombstone: the late reserve_any conflicts
SELECT status FROM inventory.release('rh6');
SELECT * FROM inventory.reserve_any('lamp', 1, 'rh6');
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels WHERE sku = 'lamp' ORDER BY location;
SELECT * FROM inventory.reconcile();

-- bad input: errors with SQLSTATEs, nothing changed
SELECT count(*) AS ledger_rows_before FROM inventory.ledger;
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', strategy => 'nearest')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', strategy => NULL)$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', '{}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', '{north,NULL}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', '{north,south,north}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', '{{north},{south}}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, 'x', '{""}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 0, 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', -1, 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any(NULL, 1, 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_any('tee', 1, NULL)$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{}', '{}', 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{tee,mug}', '{1}', 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{tee}', '{0}', 'x')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{tee}', '{1}', 'x', '{}')$$);
SELECT pg_temp.err($$SELECT inventory.deduct_cart_any('{tee,tee}', '{9223372036854775807,1}', 'x')$$);
SELECT pg_temp.err($$SELECT inventory.set_location(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.set_location('x', NULL)$$);
SELECT pg_temp.err($$SELECT inventory.set_location('x', 1, NULL)$$);
SELECT pg_temp.err($$SELECT inventory.allocation(NULL)$$);
SELECT pg_temp.err($$SELECT inventory.reserve_any('tee', 1, 'x', ttl => NULL)$$);
SELECT pg_temp.err($$SELECT inventory.reserve_any('tee', 1, 'x', ttl => '-1 minute')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_any('tee', 1, 'x', strategy => 'anywhere')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_any('tee', 1, 'x', locations => '{}')$$);
-- (a line no location can serve is not an error: insufficient)
SELECT status, sku FROM inventory.deduct_cart_any('{tee,mug}', '{9223372036854775806,1}', 'x');
SELECT count(*) AS ledger_rows_after FROM inventory.ledger;
SELECT * FROM inventory.reconcile();
