-- Least privilege: nothing for PUBLIC; the README's recipe for an application
-- role (sale calls only) and an admin role (everything) works as documented.
BEGIN;
SELECT plan(35);

CREATE ROLE tap_nobody;
CREATE ROLE tap_app;
CREATE ROLE tap_admin;
CREATE TEMP TABLE tap_detail (detail text);
GRANT ALL ON tap_detail TO tap_app, tap_admin;

-- the README's recipe
GRANT USAGE ON SCHEMA inventory TO tap_app;
GRANT EXECUTE ON FUNCTION
    inventory.deduct(text, bigint, text, text, boolean),
    inventory.reserve(text, bigint, text, interval, text),
    inventory.confirm(text, bigint, text, text),
    inventory.release(text, bigint, text, text),
    inventory.deduct_cart(text[], bigint[], text, text[]),
    inventory.reserve_cart(text[], bigint[], text, interval, text[]),
    inventory.deduct_any(text, bigint, text, text[], text),
    inventory.reserve_any(text, bigint, text, interval, text[], text),
    inventory.deduct_cart_any(text[], bigint[], text, text[]),
    inventory.available(text, text),
    inventory.allocation(text)
  TO tap_app;
GRANT SELECT ON inventory.stock_levels, inventory.availability, inventory.reservations TO tap_app;

GRANT USAGE ON SCHEMA inventory TO tap_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA inventory TO tap_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA inventory TO tap_admin;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA inventory TO tap_admin;
GRANT USAGE ON SCHEMA inventory TO tap_nobody;

SELECT is((inventory.restock('tap-sku', 10, 'tap-po-1')).status, 'ok', 'superuser stocks a row');

-- a role without grants: no calls, no writes, no reads
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT inventory.deduct('tap-sku', 1, 'tap-n1')$$, '42501', NULL,
                 'a role without grants cannot deduct');
SELECT throws_ok($$SELECT inventory.restock('tap-sku', 1, 'tap-n2')$$, '42501', NULL,
                 'a role without grants cannot restock');
SELECT throws_ok($$INSERT INTO inventory.stock (sku, on_hand) VALUES ('x', 5)$$, '42501', NULL,
                 'a role without grants cannot write stock');
SELECT throws_ok($$UPDATE inventory.stock SET on_hand = 1000$$, '42501', NULL,
                 'a role without grants cannot update stock');
SELECT throws_ok($$INSERT INTO inventory.ledger (op, key, sku, location) VALUES ('restock', 'x', 'x', 'x')$$,
                 '42501', NULL, 'a role without grants cannot write the ledger');
SELECT throws_ok($$SELECT * FROM inventory.stock$$, '42501', NULL,
                 'a role without grants cannot read stock');
RESET ROLE;

-- the application role: sale calls only
SET ROLE tap_app;
SELECT is((inventory.deduct('tap-sku', 1, 'tap-a1')).status, 'ok', 'app can deduct');
SELECT is((inventory.reserve('tap-sku', 1, 'tap-a2')).status, 'ok', 'app can reserve');
SELECT is((inventory.confirm('tap-a2')).status, 'ok', 'app can confirm');
SELECT is((inventory.deduct_cart(ARRAY['tap-sku'], ARRAY[1], 'tap-a3')).status, 'ok', 'app can deduct a cart');
SELECT is((inventory.deduct_any('tap-sku', 1, 'tap-a4')).status, 'ok', 'app can deduct from any location');
SELECT is((SELECT string_agg(location || ':' || qty, ',') FROM inventory.allocation('tap-a4')),
          'default:1', 'app can read where its units came from');
SELECT is((inventory.reserve_cart(ARRAY['tap-sku'], ARRAY[2], 'tap-c1')).status, 'ok', 'app can hold a cart');
SELECT is((inventory.confirm('tap-c1', 1, 'tap-c1-s1')).status, 'ok', 'app can confirm a step');
SELECT is((SELECT held || '/' || confirmed FROM inventory.reservations WHERE key = 'tap-c1'),
          '1/1', 'app can read its reservation');
SELECT is((inventory.release('tap-c1')).status, 'ok', 'app can release the rest');
SELECT throws_ok($$SELECT inventory.set_location('tap-loc', 1)$$, '42501', NULL,
                 'app cannot configure locations');
SELECT is(inventory.available('tap-sku'), 5::bigint, 'app can read availability');
SELECT throws_ok($$SELECT inventory.restock('tap-sku', 100, 'tap-a4')$$, '42501', NULL,
                 'app cannot restock');
SELECT throws_ok($$SELECT inventory.adjust('tap-sku', 100, 'tap-a5')$$, '42501', NULL,
                 'app cannot adjust');
SELECT throws_ok($$SELECT inventory.refund('tap-a1', 1, 'tap-a6')$$, '42501', NULL,
                 'app cannot refund');
SELECT throws_ok($$UPDATE inventory.stock SET on_hand = 1000$$, '42501', NULL,
                 'app cannot write stock directly');
SELECT throws_ok($$DELETE FROM inventory.ledger$$, '42501', NULL,
                 'app cannot rewrite the ledger');
-- a key reused by the app: the error does not show another call's arguments
SELECT throws_like($$SELECT inventory.deduct('tap-sku', 1, 'tap-po-1')$$,
                   '%already used by another call%',
                   'app reusing an admin''s key gets the key-reuse error');
DO $$ BEGIN
    PERFORM inventory.deduct('tap-sku', 1, 'tap-po-1');
EXCEPTION WHEN unique_violation THEN
    DECLARE d text; BEGIN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        INSERT INTO tap_detail VALUES (d);
    END;
END $$;
SELECT is((SELECT detail FROM tap_detail),
          'It was applied before by another call or with other arguments.',
          'the detail does not show the admin''s restock to the app');
-- events: only superusers turn them on and know their channel
SELECT throws_ok($$SET inventory.events = on$$, '42501', NULL, 'app cannot turn events on');
SELECT throws_ok($$SHOW inventory.events_channel$$, '42501', NULL, 'app cannot read the events channel');
RESET ROLE;

-- the admin role: every call, read access, still no direct writes
SET ROLE tap_admin;
SELECT is((inventory.restock('tap-sku', 5, 'tap-m1')).status, 'ok', 'admin can restock');
SELECT is((inventory.refund('tap-a1', 1, 'tap-m2')).status, 'ok', 'admin can refund');
SELECT is_empty($$SELECT * FROM inventory.reconcile()$$, 'admin can reconcile');
SELECT throws_ok($$UPDATE inventory.stock SET on_hand = 1000$$, '42501', NULL,
                 'admin cannot bypass the ledger');
SELECT lives_ok($$SELECT last_value, is_called FROM inventory.ledger_id_seq$$,
                'admin reads the ledger''s sequence (as pg_dump does)');
-- a role that may read the keys sees both calls in the key-reuse error
DELETE FROM tap_detail;
DO $$ BEGIN
    PERFORM inventory.deduct('tap-sku', 1, 'tap-po-1');
EXCEPTION WHEN unique_violation THEN
    DECLARE d text; BEGIN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        INSERT INTO tap_detail VALUES (d);
    END;
END $$;
SELECT alike((SELECT detail FROM tap_detail), 'It was used by restock(%); this call is deduct(%).',
            'the admin sees both calls in the detail');
RESET ROLE;
SELECT is(current_setting('inventory.events'), 'off', 'events are off by default');

SELECT * FROM finish();
ROLLBACK;
