-- What users add to the extension's tables: triggers of every kind, a
-- column with a default, row-level security.  The everyday calls then take
-- the statement path and behave exactly as a statement: every trigger fires
-- once per change, defaults are filled, nothing warns.  With the tables as
-- the extension made them again (a dropped column left behind), calls go on.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

CREATE TABLE direct_audit (what text);
-- (the calls run with search_path pg_catalog, pg_temp: a trigger function
-- names its tables with their schema)
CREATE FUNCTION direct_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.direct_audit
    VALUES (TG_TABLE_NAME || ' ' || TG_WHEN || ' ' || TG_LEVEL || ' ' || TG_OP);
    RETURN NEW;
END $$;

SELECT status FROM inventory.restock('a', 20, 'r1');
SELECT status FROM inventory.restock('b', 20, 'r2');

-- a column-specific trigger, statement- and row-level triggers, a BEFORE
-- trigger that returns the row
CREATE TRIGGER on_hand_changed AFTER UPDATE OF on_hand ON inventory.stock
    FOR EACH ROW EXECUTE FUNCTION direct_audit();
CREATE TRIGGER stock_before BEFORE UPDATE ON inventory.stock
    FOR EACH ROW EXECUTE FUNCTION direct_audit();
CREATE TRIGGER ledger_statement AFTER INSERT ON inventory.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION direct_audit();
CREATE TRIGGER ledger_row AFTER INSERT ON inventory.ledger
    FOR EACH ROW EXECUTE FUNCTION direct_audit();
CREATE TRIGGER reservation_row AFTER INSERT OR UPDATE ON inventory.reservation
    FOR EACH ROW EXECUTE FUNCTION direct_audit();

SELECT * FROM inventory.deduct('a', 1, 'd1');
SELECT * FROM inventory.deduct_cart('{a}', '{1}', 'c1');
SELECT * FROM inventory.deduct_any('a', 1, 'any1');
SELECT * FROM inventory.reserve('a', 1, 'h1');
SELECT * FROM inventory.confirm('h1');
SELECT * FROM inventory.reserve_cart('{a,b}', '{1,1}', 'hc1');
SELECT * FROM inventory.confirm('hc1');
SELECT * FROM inventory.deduct('a', 1, 'd1');
SELECT what, count(*) FROM direct_audit GROUP BY what ORDER BY what;

-- a column added with a default: every new ledger row gets it
ALTER TABLE inventory.ledger ADD COLUMN origin text NOT NULL DEFAULT 'app';
DROP TRIGGER on_hand_changed ON inventory.stock;
DROP TRIGGER stock_before ON inventory.stock;
DROP TRIGGER ledger_statement ON inventory.ledger;
DROP TRIGGER ledger_row ON inventory.ledger;
DROP TRIGGER reservation_row ON inventory.reservation;
SELECT * FROM inventory.deduct('a', 1, 'd2');
SELECT * FROM inventory.reserve('a', 1, 'h2');
SELECT * FROM inventory.release('h2');
SELECT key, op, origin FROM inventory.ledger WHERE key IN ('d2', 'h2') ORDER BY id;

-- row-level security on the stock table
ALTER TABLE inventory.ledger DROP COLUMN origin;
ALTER TABLE inventory.stock ENABLE ROW LEVEL SECURITY;
SELECT * FROM inventory.deduct('a', 1, 'd3');
ALTER TABLE inventory.stock DISABLE ROW LEVEL SECURITY;

-- the tables as the extension made them (plus a dropped column)
SELECT * FROM inventory.deduct('a', 1, 'd4');
SELECT * FROM inventory.reserve('a', 1, 'h4');
SELECT * FROM inventory.confirm('h4');
SELECT * FROM inventory.deduct('a', 1, 'd4');
SELECT * FROM inventory.reserve_cart('{b,a}', '{1,2}', 'hc4');
SELECT * FROM inventory.release('hc4');
SELECT * FROM inventory.reserve_cart('{b,a}', '{1,2}', 'hc5');
SELECT * FROM inventory.confirm('hc5');
SELECT * FROM inventory.confirm('hc5');
SELECT sku, on_hand, reserved FROM inventory.stock ORDER BY sku;
SELECT * FROM inventory.reconcile();

-- the direct way writes what the statements write: held carts confirmed
-- and released, and a hold split over two locations (filled in priority
-- order, both orders: one of them is not the rows' lock order) confirmed
-- and partly refunded (to the location filled last), with a trigger on the
-- reservations (statements), then without one (directly)
SELECT (inventory.restock(m, 100, 'po-' || m || l, l)).status
  FROM unnest('{m1,m2}'::text[]) m, unnest('{east,west}'::text[]) l;
CREATE FUNCTION direct_noop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END $$;
CREATE FUNCTION direct_ok(o inventory.outcome) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF o.status <> 'ok' THEN
        RAISE EXCEPTION 'answered %', o.status;
    END IF;
END $$;
CREATE PROCEDURE direct_calls(p text, m text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM direct_ok(inventory.reserve_cart('{b,a}', '{1,2}', p, ttl => '1 hour'));
    PERFORM direct_ok(inventory.confirm(p));
    PERFORM direct_ok(inventory.reserve_cart('{b,a}', '{1,2}', p || '-r'));
    PERFORM direct_ok(inventory.release(p || '-r'));
    PERFORM inventory.set_location('east', 2, true);
    PERFORM inventory.set_location('west', 1, true);
    PERFORM direct_ok(inventory.reserve_any(m, 130, p || '-s1'));
    PERFORM direct_ok(inventory.confirm(p || '-s1'));
    PERFORM direct_ok(inventory.refund(p || '-s1', 40, p || '-s1-rf'));
    PERFORM inventory.set_location('west', 3, true);
    PERFORM direct_ok(inventory.reserve_any(m, 105, p || '-s2'));
    PERFORM direct_ok(inventory.confirm(p || '-s2'));
    PERFORM direct_ok(inventory.refund(p || '-s2', 40, p || '-s2-rf'));
END $$;
CREATE TRIGGER noop BEFORE INSERT OR UPDATE ON inventory.reservation
    FOR EACH ROW EXECUTE FUNCTION direct_noop();
CALL direct_calls('via-statement', 'm1');
DROP TRIGGER noop ON inventory.reservation;
CALL direct_calls('directly', 'm2');
-- every ledger row and reservation part of a key, in the order written
-- (the split holds' skus m1 and m2 both shown as m)
CREATE FUNCTION direct_written(p_key text) RETURNS text[] LANGUAGE sql AS $$
    SELECT (SELECT array_agg(format('%s %s %s %s %s %s', op, left(sku, 1), location,
                                    on_hand_delta, reserved_delta, call) ORDER BY id)
              FROM inventory.ledger WHERE key = p_key OR ref = p_key) ||
           (SELECT array_agg(format('%s %s %s %s %s %s', part, left(sku, 1), location, qty,
                                    state, ttl) ORDER BY part)
              FROM inventory.reservation WHERE key = p_key)
$$;
SELECT w, direct_written('via-statement' || w) = direct_written('directly' || w) AS same,
       cardinality(direct_written('directly' || w)) AS rows
  FROM unnest('{"", -r, -s1, -s2}'::text[]) w;
SELECT direct_written('directly-s1') AS split_refunded;
SELECT direct_written('directly-s2') AS split_refunded;
SELECT sku, on_hand, reserved FROM inventory.stock ORDER BY sku;
SELECT * FROM inventory.reconcile();
DROP FUNCTION direct_written(text);
DROP PROCEDURE direct_calls(text, text);
DROP FUNCTION direct_ok(inventory.outcome);
DROP FUNCTION direct_noop();

DROP TABLE direct_audit;
DROP FUNCTION direct_audit();

-- An admin's copy of the index of keys (made to replace it, as REINDEX
-- CONCURRENTLY makes one beside it), and a unique index of the key and
-- more: a retry still answers duplicate, on the everyday way and on a hot
-- row, and a new key goes through.
CREATE UNIQUE INDEX ledger_call_key_copy ON inventory.ledger (key) WHERE call IS NOT NULL;
CREATE UNIQUE INDEX ledger_key_call ON inventory.ledger (key, call);
SELECT status FROM inventory.restock('copy', 10, 'po-copy');
SELECT status FROM inventory.deduct('copy', 1, 'copy-1');
SELECT status FROM inventory.deduct('copy', 1, 'copy-1');
SELECT status FROM inventory.reserve('copy', 1, 'copy-r');
SELECT status FROM inventory.reserve('copy', 1, 'copy-r');
SELECT status FROM inventory.deduct_cart('{copy,copy}', '{1,1}', 'copy-c');
SELECT status FROM inventory.deduct_cart('{copy,copy}', '{1,1}', 'copy-c');
SELECT status FROM inventory.restock('copy', 10, 'po-copy');
SELECT inventory.set_hot('copy');
SELECT status FROM inventory.deduct('copy', 1, 'copy-h');
SELECT status FROM inventory.deduct('copy', 1, 'copy-h');
SELECT inventory.set_hot('copy', false);
SELECT * FROM inventory.apply_bills('[{"key": "copy-b", "lines": [{"sku": "copy", "delta": -1}]}]');
SELECT * FROM inventory.apply_bills('[{"key": "copy-b", "lines": [{"sku": "copy", "delta": -1}]}]');
DROP INDEX inventory.ledger_call_key_copy, inventory.ledger_key_call;
SELECT on_hand, reserved FROM inventory.stock WHERE sku = 'copy';
SELECT * FROM inventory.reconcile();
