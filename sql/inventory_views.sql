-- The views, reconcile() catching a breach, lock keys, privileges.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

SELECT status FROM inventory.restock('chair', 8, 'po-1');
SELECT status FROM inventory.restock('chair', 5, 'po-2', 'north');
SELECT status FROM inventory.restock('table', 2, 'po-3');
SELECT status FROM inventory.reserve('chair', 3, 'r-1');
SELECT status FROM inventory.reserve('chair', 1, 'r-2', location => 'north');
SELECT status FROM inventory.deduct('chair', 2, 'o-1', 'north');

SELECT * FROM inventory.stock_levels ORDER BY sku, location;
SELECT * FROM inventory.availability ORDER BY sku;

-- reconcile() reports breaches (here: rows changed behind the extension's back)
SELECT * FROM inventory.reconcile();
UPDATE inventory.stock SET on_hand = on_hand + 1 WHERE sku = 'table';
UPDATE inventory.stock SET reserved = 0 WHERE sku = 'chair' AND location = 'default';
INSERT INTO inventory.ledger (op, key, sku, location, on_hand_delta)
VALUES ('restock', 'ghost', 'sofa', 'default', 4);
SELECT * FROM inventory.reconcile();

-- the advisory lock key of a row is stable and matches pg_locks
SELECT inventory.lock_key('chair') = inventory.lock_key('chair', 'default') AS same,
       inventory.lock_key('chair') <> inventory.lock_key('chair', 'north') AS differs;
BEGIN;
SELECT status FROM inventory.deduct('table', 1, 'o-2');
SELECT count(*) AS row_locks_held
  FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 1 AND pid = pg_backend_pid()
   AND ((classid::bigint << 32) | objid::bigint) = inventory.lock_key('table');
COMMIT;

-- nothing is callable or readable by PUBLIC
SELECT count(*) AS public_function_grants
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace = 'inventory'::regnamespace AND a.grantee = 0;
SELECT count(*) AS functions_without_acl
  FROM pg_proc WHERE pronamespace = 'inventory'::regnamespace AND proacl IS NULL;
SELECT count(*) AS public_table_grants
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'inventory'::regnamespace AND a.grantee = 0;
