-- reserve, confirm, release, expire: the try/confirm/cancel lifecycle.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

SELECT status FROM inventory.restock('lamp', 10, 'po-1');

-- reserve: ok, duplicate, insufficient, not_found
SELECT * FROM inventory.reserve('lamp', 4, 'r-1');
SELECT * FROM inventory.reserve('lamp', 4, 'r-1');
SELECT * FROM inventory.reserve('lamp', 7, 'r-2');
SELECT * FROM inventory.reserve('desk', 1, 'r-3');
SELECT key, sku, location, qty, state, expires_at - created_at AS ttl
  FROM inventory.reservation ORDER BY key;

-- confirm: ok, then duplicate; units leave on_hand and reserved together
SELECT * FROM inventory.confirm('r-1');
SELECT * FROM inventory.confirm('r-1');
SELECT on_hand, reserved FROM inventory.stock WHERE sku = 'lamp';
-- release of a confirmed reservation is not allowed
SELECT * FROM inventory.release('r-1');

-- release: ok, then duplicate; a confirm that comes after it is too late
SELECT * FROM inventory.reserve('lamp', 2, 'r-4', ttl => '1 hour');
SELECT * FROM inventory.release('r-4');
SELECT * FROM inventory.release('r-4');
SELECT * FROM inventory.confirm('r-4');

-- unknown reservations
SELECT * FROM inventory.confirm('r-none');
SELECT * FROM inventory.confirm('po-1');

-- a release that arrives before its reservation leaves a tombstone:
-- the late reserve gets "conflict" and holds nothing
SELECT * FROM inventory.release('r-5');
SELECT * FROM inventory.release('r-5');
SELECT * FROM inventory.reserve('lamp', 1, 'r-5');
SELECT * FROM inventory.confirm('r-5');
SELECT count(*) AS tombstone_holds FROM inventory.reservation WHERE key = 'r-5';

-- expiry: a hold past expires_at is available again before anyone expires it
SELECT * FROM inventory.reserve('lamp', 3, 'r-6', ttl => '1 millisecond');
SELECT status FROM inventory.restock('lamp', 2, 'po-2', 'annex');
SELECT * FROM inventory.reserve('lamp', 1, 'r-7', ttl => '1 millisecond', location => 'annex');
SELECT pg_sleep(0.05);
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels
 ORDER BY location;
SELECT inventory.available('lamp');
-- a confirm that comes too late answers "expired" and expires the hold
-- (with every other overdue hold of its stock row)
SELECT * FROM inventory.confirm('r-6');
SELECT * FROM inventory.release('r-6');
-- expire() settles the rest (here: the annex hold), once
SELECT inventory.expire() AS expired;
SELECT inventory.expire() AS expired_again;
SELECT key, state FROM inventory.reservation ORDER BY key;

-- a writer of the row expires overdue holds first, so they never block a sale
SELECT * FROM inventory.reserve('lamp', 6, 'r-8', ttl => '1 millisecond');
SELECT pg_sleep(0.05);
SELECT * FROM inventory.deduct('lamp', 6, 'order-1');
SELECT key, state FROM inventory.reservation WHERE key = 'r-8';

SELECT op, key, on_hand_delta, reserved_delta FROM inventory.ledger ORDER BY id;
SELECT * FROM inventory.reconcile();

-- ttl compares as an interval: '1 day' and '24 hours' are the same call
SELECT status FROM inventory.restock('lamp', 5, 'po-3');
SELECT status FROM inventory.reserve('lamp', 1, 'r-ttl', ttl => '1 day');
SELECT status FROM inventory.reserve('lamp', 1, 'r-ttl', ttl => '24 hours');
SELECT status FROM inventory.reserve('lamp', 1, 'r-ttl', ttl => '86400 seconds');
-- a ttl so long that expires_at leaves the timestamp range: 22008
SELECT inventory.reserve('lamp', 1, 'r-far', ttl => '300000 years');

-- The row remembers its next expiry (stock.next_expiry), so writers know
-- without reading the reservations that no hold is due; a hold that falls
-- due makes the next writer take the general way, which expires it and
-- notes the following one.
SELECT status FROM inventory.restock('desk', 10, 'po-desk');
SELECT next_expiry = 'infinity' AS none_held FROM inventory.stock WHERE sku = 'desk';
SELECT status FROM inventory.reserve('desk', 2, 'r-desk-1', ttl => '1 hour');
SELECT status FROM inventory.reserve('desk', 3, 'r-desk-2', ttl => '1 millisecond');
SELECT next_expiry = (SELECT expires_at FROM inventory.reservation WHERE key = 'r-desk-2') AS noted
  FROM inventory.stock WHERE sku = 'desk';
SELECT pg_sleep(0.05);
SELECT status, available FROM inventory.deduct('desk', 8, 'order-desk');
SELECT key, state FROM inventory.reservation WHERE sku = 'desk' ORDER BY key;
SELECT next_expiry = (SELECT expires_at FROM inventory.reservation WHERE key = 'r-desk-1') AS next_noted
  FROM inventory.stock WHERE sku = 'desk';
-- a confirmed hold leaves the noted expiry early (never late): still right
SELECT status FROM inventory.confirm('r-desk-1');
SELECT * FROM inventory.reconcile();
-- reconcile() catches a row that notes its next expiry later than a hold's
SELECT status FROM inventory.restock('desk', 5, 'po-desk-2');
SELECT status FROM inventory.reserve('desk', 1, 'r-desk-3', ttl => '1 hour');
UPDATE inventory.stock SET next_expiry = 'infinity' WHERE sku = 'desk';
SELECT sku, problem, expected IS NOT NULL AS expected, actual FROM inventory.reconcile();
SELECT status FROM inventory.release('r-desk-3');
UPDATE inventory.stock SET next_expiry = now() WHERE sku = 'desk';
SELECT status, available FROM inventory.deduct('desk', 1, 'order-desk-2');
SELECT next_expiry = 'infinity' AS none_held FROM inventory.stock WHERE sku = 'desk';
SELECT * FROM inventory.reconcile();
