-- Held carts (reserve_cart) and reservations settled in parts (confirm and
-- release with qty, step and sku): every status, bad input and its
-- SQLSTATE, the reservation's figures, refunds capped by what was sold, hot
-- rows, expiry; the key-reuse error names its constraint.
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

SELECT status FROM inventory.restock('pen', 10, 'p1');
SELECT status FROM inventory.restock('ink', 5, 'p2');
SELECT status FROM inventory.restock('pen', 4, 'p3', 'north');
SELECT status FROM inventory.restock('hot', 100, 'p4');
SELECT status FROM inventory.set_hot('hot');

-- reserve_cart: every line held or none, one reservation, a part per row
-- (lines of one row summed)
SELECT * FROM inventory.reserve_cart('{pen,ink,pen}', '{2,1,1}', 'cart-1');
SELECT part, sku, location, qty, state FROM inventory.reservation WHERE key = 'cart-1' ORDER BY part;
SELECT * FROM inventory.reserve_cart('{pen,ink,pen}', '{2,1,1}', 'cart-1');
SELECT * FROM inventory.reserve_cart('{pen,ink}', '{1,99}', 'cart-2');
SELECT * FROM inventory.reserve_cart('{pen,zzz}', '{1,1}', 'cart-3');
SELECT count(*) AS nothing_held FROM inventory.reservation WHERE key IN ('cart-2', 'cart-3');
SELECT * FROM inventory.reserve_cart('{pen,pen}', '{1,1}', 'cart-4', locations => '{default,north}');
SELECT * FROM inventory.reserve_cart('{hot,ink}', '{3,1}', 'cart-5', ttl => '1 hour');
-- a release before its cart: the tombstone refuses the late cart
SELECT status FROM inventory.release('cart-6');
SELECT * FROM inventory.reserve_cart('{pen}', '{1}', 'cart-6');
-- the same key with other lines, or another ttl
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{pen}', '{2}', 'cart-1')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{pen,ink,pen}', '{2,1,1}', 'cart-1', ttl => '1 hour')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{pen}', '{1}', 'k', ttl => '0')$$);
SELECT pg_temp.err($$SELECT inventory.reserve_cart('{}', '{}', 'k')$$);

-- confirm and release act on the whole cart
SELECT * FROM inventory.confirm('cart-4');
SELECT key, state, qty, held, confirmed, released, skus FROM inventory.reservations WHERE key = 'cart-4';

-- partial steps: bad input
SELECT pg_temp.err($$SELECT inventory.confirm('cart-1', 1)$$);
SELECT pg_temp.err($$SELECT inventory.confirm('cart-1', 0, 's0', 'pen')$$);
SELECT pg_temp.err($$SELECT inventory.confirm('cart-1', step => 's0')$$);
SELECT pg_temp.err($$SELECT inventory.confirm('cart-1', 1, 's0')$$);
SELECT pg_temp.err($$SELECT inventory.release('cart-1', -1, 's0', 'pen')$$);
-- a step, its retry, its key reused, more than is held, unknown line or key
SELECT * FROM inventory.confirm('cart-1', 1, 's1', 'pen');
SELECT * FROM inventory.confirm('cart-1', 1, 's1', 'pen');
SELECT pg_temp.err($$SELECT inventory.confirm('cart-1', 2, 's1', 'pen')$$);
SELECT pg_temp.err($$SELECT inventory.release('cart-1', 1, 's1', 'pen')$$);
SELECT * FROM inventory.confirm('cart-1', 5, 's2', 'pen');
SELECT * FROM inventory.release('cart-1', 1, 's3', 'ink');
SELECT * FROM inventory.confirm('cart-1', 1, 's4', 'zzz');
SELECT * FROM inventory.confirm('nope', 1, 's5', 'pen');
-- a step's key used for another reservation, on one no-one holds: not_found
SELECT * FROM inventory.confirm('nope', 1, 's1', 'pen');
SELECT part, sku, qty, state FROM inventory.reservation WHERE key = 'cart-1' ORDER BY part;
SELECT key, state, qty, held, confirmed, released FROM inventory.reservations WHERE key = 'cart-1';
-- the rest: a whole confirm sells what is still held
SELECT * FROM inventory.confirm('cart-1');
SELECT key, state, qty, held, confirmed, released FROM inventory.reservations WHERE key = 'cart-1';
SELECT * FROM inventory.release('cart-1');
SELECT * FROM inventory.confirm('cart-1');
SELECT * FROM inventory.confirm('cart-1', 1, 's6', 'pen');

-- a reserve settled in parts; refunds capped by the units sold
SELECT status FROM inventory.reserve('pen', 3, 'r-1');
SELECT * FROM inventory.confirm('r-1', 2, 'r-1-s1');
SELECT * FROM inventory.release('r-1', 1, 'r-1-s2');
SELECT key, state, qty, held, confirmed, released FROM inventory.reservations WHERE key = 'r-1';
SELECT * FROM inventory.refund('r-1', 3, 'r-1-rf1');
SELECT * FROM inventory.refund('r-1', 2, 'r-1-rf2');
SELECT pg_temp.err($$SELECT inventory.refund('cart-1', 1, 'cart-1-rf')$$);
-- released in parts only: nothing was sold
SELECT status FROM inventory.reserve('pen', 2, 'r-4');
SELECT status FROM inventory.release('r-4', 1, 'r-4-s1');
SELECT status FROM inventory.release('r-4', 1, 'r-4-s2');
SELECT key, state, qty, held, confirmed, released FROM inventory.reservations WHERE key = 'r-4';
SELECT * FROM inventory.refund('r-4', 1, 'r-4-rf');

-- a whole confirm naming a sku: the whole reservation, if the sku is a line
SELECT status FROM inventory.reserve('ink', 1, 'r-2');
SELECT * FROM inventory.confirm('r-2', sku => 'pen');
SELECT * FROM inventory.confirm('r-2', sku => 'ink');

-- a step on a hot line
SELECT * FROM inventory.confirm('cart-5', 2, 'h1', 'hot');
SELECT * FROM inventory.release('cart-5', 1, 'h2', 'hot');
SELECT * FROM inventory.release('cart-5');
SELECT key, state, qty, held, confirmed, released FROM inventory.reservations WHERE key = 'cart-5';
SELECT inventory.merge() > 0 AS merged;

-- a step on a reservation past its expiry: expired, and it expires
SELECT status FROM inventory.reserve('pen', 2, 'r-3', ttl => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT status, sku FROM inventory.confirm('r-3', 1, 'r-3-s1');
SELECT key, state, held FROM inventory.reservations WHERE key = 'r-3';

-- the rest of a reservation settled in part expires alone: the part a step
-- sold stays sold, and the row gives back only the units still held (the
-- hold is aged by hand, as time would age it)
SELECT status FROM inventory.restock('nib', 5, 'po-nib');
SELECT status FROM inventory.reserve('nib', 3, 'rx');
SELECT status FROM inventory.confirm('rx', 1, 'rx-s1');
UPDATE inventory.reservation SET expires_at = now() - interval '1 second'
 WHERE key = 'rx' AND state = 'held';
UPDATE inventory.stock SET next_expiry = now() - interval '1 second' WHERE sku = 'nib';
SELECT status, available FROM inventory.deduct('nib', 1, 'd-nib');
SELECT part, state, qty FROM inventory.reservation WHERE key = 'rx' ORDER BY part;
SELECT key, state, held, confirmed, expired FROM inventory.reservations WHERE key = 'rx';
SELECT on_hand, reserved FROM inventory.stock WHERE sku = 'nib';

-- a whole confirm after a step: the outcome still names the one row
SELECT status FROM inventory.reserve('nib', 2, 'ry');
SELECT status FROM inventory.release('ry', 1, 'ry-s1');
SELECT * FROM inventory.confirm('ry');
SELECT * FROM inventory.confirm('ry');

-- a reservation past its expiry behind more overdue holds of its row than
-- one batch expires (inventory.expire_batch, 1000): a confirm answers
-- expired and it expires; a sale expires one batch, the rest stay counted
-- until expire()
SELECT status FROM inventory.restock('bulk', 5000, 'po-bulk');
SELECT count(*) FROM (SELECT inventory.reserve('bulk', 1, 'bk-' || g) FROM generate_series(1, 2002) g) x;
UPDATE inventory.reservation SET expires_at = now() - interval '2 minutes' WHERE sku = 'bulk';
UPDATE inventory.reservation SET expires_at = now() - interval '1 minute' WHERE key = 'bk-1001';
UPDATE inventory.stock SET next_expiry = now() - interval '1 day' WHERE sku = 'bulk';
SELECT status FROM inventory.confirm('bk-1001');
SELECT state FROM inventory.reservation WHERE key = 'bk-1001';
SELECT reserved FROM inventory.stock WHERE sku = 'bulk';
SELECT status, available FROM inventory.deduct('bulk', 1, 'd-bulk');
SELECT reserved FROM inventory.stock WHERE sku = 'bulk';
SELECT inventory.expire() AS expired;
SELECT reserved, next_expiry FROM inventory.stock WHERE sku = 'bulk';
SELECT state, count(*) FROM inventory.reservation WHERE sku = 'bulk' GROUP BY state;

-- once nothing is held, a whole call answers from what the whole call, or
-- the expiry, did with the units the steps left, however often it is sent
SELECT status FROM inventory.restock('pen', 20, 'po-rt');
SELECT status FROM inventory.reserve('pen', 4, 'rt-1');
SELECT status FROM inventory.confirm('rt-1', 1, 'rt-1-s1');
SELECT status FROM inventory.release('rt-1');
SELECT status FROM inventory.release('rt-1');
SELECT status FROM inventory.confirm('rt-1');
SELECT part, state, qty, step FROM inventory.reservation WHERE key = 'rt-1' ORDER BY part;
-- (the rest expires: made due here, as the clock would)
SELECT status FROM inventory.reserve('pen', 4, 'rt-2');
SELECT status FROM inventory.confirm('rt-2', 1, 'rt-2-s1');
UPDATE inventory.reservation SET expires_at = statement_timestamp() - interval '1 second'
 WHERE key = 'rt-2';
UPDATE inventory.stock SET next_expiry = statement_timestamp() - interval '1 second'
 WHERE sku = 'pen' AND location = 'default';
SELECT status FROM inventory.confirm('rt-2');
SELECT status FROM inventory.confirm('rt-2');
SELECT status FROM inventory.release('rt-2');
-- steps settled every unit: the reservation's state decides
SELECT status FROM inventory.reserve('pen', 2, 'rt-3');
SELECT status FROM inventory.confirm('rt-3', 1, 'rt-3-s1');
SELECT status FROM inventory.release('rt-3', 1, 'rt-3-s2');
SELECT status FROM inventory.release('rt-3');
SELECT status FROM inventory.confirm('rt-3');

-- a reservation has at most 32,767 parts: a step that would split off one
-- more is refused (54000) and changes nothing (the parts before it are
-- made up here, as 32,766 earlier steps would have left them)
SELECT status FROM inventory.reserve('nib', 2, 'rz');
INSERT INTO inventory.reservation (key, part, sku, location, qty, state, created_at, expires_at, ttl)
SELECT key, 32767, sku, location, qty, 'released', created_at, expires_at, ttl
  FROM inventory.reservation WHERE key = 'rz';
SELECT pg_temp.err($$SELECT inventory.confirm('rz', 1, 'rz-s1')$$);
DELETE FROM inventory.reservation WHERE key = 'rz' AND part = 32767;
SELECT status FROM inventory.confirm('rz', 1, 'rz-s1');
SELECT part, state, qty FROM inventory.reservation WHERE key = 'rz' ORDER BY part;

-- the key-reuse error names its constraint, for drivers to branch on
DO $$
DECLARE c text; t text; s text;
BEGIN
    PERFORM inventory.deduct('pen', 1, 'p1');
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME, t = TABLE_NAME, s = SCHEMA_NAME;
    RAISE NOTICE 'constraint %, table %.%', c, s, t;
END $$;

SELECT * FROM inventory.reconcile();
SELECT sku, location, on_hand, reserved FROM inventory.stock ORDER BY sku, location;
