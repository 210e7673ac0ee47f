-- Schema objects of the extension, as the design fixes them.
BEGIN;
SELECT plan(43);

SELECT has_schema('inventory');
SELECT has_table('inventory', 'stock', 'table stock');
SELECT has_table('inventory', 'ledger', 'table ledger');
SELECT has_table('inventory', 'reservation', 'table reservation');
SELECT has_index('inventory', 'ledger', 'ledger_call_key', 'key', 'the ledger records each call''s key (idempotency)');
SELECT has_view('inventory', 'stock_levels', 'view stock_levels');
SELECT has_view('inventory', 'availability', 'view availability');
SELECT has_view('inventory', 'reservations', 'view reservations');
SELECT has_view('inventory', 'stats', 'view stats');
SELECT columns_are('inventory', 'stats', ARRAY['call', 'status', 'calls']);
SELECT has_type('inventory', 'outcome', 'composite outcome');

SELECT columns_are('inventory', 'stock',
       ARRAY['sku', 'location', 'on_hand', 'reserved', 'hot', 'next_expiry', 'pinned']);
SELECT col_default_is('inventory', 'stock', 'location', 'default', 'location defaults to ''default''');
SELECT col_is_pk('inventory', 'stock', ARRAY['sku', 'location'], 'one stock row per (sku, location)');
SELECT col_type_is('inventory', 'stock', 'on_hand', 'bigint', 'on_hand is bigint');
SELECT col_type_is('inventory', 'stock', 'reserved', 'bigint', 'reserved is bigint');
SELECT index_is_unique('inventory', 'ledger', 'ledger_call_key', 'a key is recorded once');
SELECT col_is_pk('inventory', 'reservation', ARRAY['key', 'part'], 'one reservation per key (one row per part)');
SELECT columns_are('inventory', 'stock_levels',
       ARRAY['sku', 'location', 'on_hand', 'reserved', 'pending', 'available', 'hot']);
SELECT columns_are('inventory', 'availability',
       ARRAY['sku', 'locations', 'on_hand', 'reserved', 'pending', 'available']);

SELECT has_function('inventory', 'restock', ARRAY['text', 'bigint', 'text', 'text']);
SELECT has_function('inventory', 'adjust', ARRAY['text', 'bigint', 'text', 'text']);
SELECT has_function('inventory', 'deduct', ARRAY['text', 'bigint', 'text', 'text', 'boolean']);
SELECT has_function('inventory', 'reserve', ARRAY['text', 'bigint', 'text', 'interval', 'text']);
SELECT has_function('inventory', 'confirm', ARRAY['text', 'bigint', 'text', 'text']);
SELECT has_function('inventory', 'release', ARRAY['text', 'bigint', 'text', 'text']);
SELECT has_function('inventory', 'reserve_cart', ARRAY['text[]', 'bigint[]', 'text', 'interval', 'text[]']);
SELECT has_function('inventory', 'stats_reset', ARRAY[]::text[]);
SELECT has_function('inventory', 'refund', ARRAY['text', 'bigint', 'text']);
SELECT has_function('inventory', 'deduct_cart', ARRAY['text[]', 'bigint[]', 'text', 'text[]']);
SELECT has_function('inventory', 'available', ARRAY['text', 'text']);
SELECT has_function('inventory', 'reconcile', ARRAY[]::text[]);
SELECT has_function('inventory', 'expire', ARRAY[]::text[]);

SELECT function_lang_is('inventory', 'deduct', ARRAY['text', 'bigint', 'text', 'text', 'boolean'], 'c');
SELECT function_returns('inventory', 'deduct', ARRAY['text', 'bigint', 'text', 'text', 'boolean'], 'inventory.outcome');
SELECT is_definer('inventory', 'deduct', ARRAY['text', 'bigint', 'text', 'text', 'boolean']);
SELECT isnt_strict('inventory', 'deduct', ARRAY['text', 'bigint', 'text', 'text', 'boolean']);

-- argument names are part of the contract
SELECT is((SELECT proargnames FROM pg_proc
            WHERE oid = 'inventory.deduct(text,bigint,text,text,boolean)'::regprocedure),
          ARRAY['sku', 'qty', 'key', 'location', 'nowait'], 'deduct argument names');
SELECT is((SELECT proargnames FROM pg_proc
            WHERE oid = 'inventory.reserve(text,bigint,text,interval,text)'::regprocedure),
          ARRAY['sku', 'qty', 'key', 'ttl', 'location'], 'reserve argument names');
SELECT is((SELECT proargnames FROM pg_proc
            WHERE oid = 'inventory.refund(text,bigint,text)'::regprocedure),
          ARRAY['original_key', 'qty', 'key'], 'refund argument names');

SELECT is((SELECT proargnames FROM pg_proc
            WHERE oid = 'inventory.confirm(text,bigint,text,text)'::regprocedure),
          ARRAY['key', 'qty', 'step', 'sku'], 'confirm argument names');
SELECT is((SELECT proargnames FROM pg_proc
            WHERE oid = 'inventory.reserve_cart(text[],bigint[],text,interval,text[])'::regprocedure),
          ARRAY['skus', 'qtys', 'key', 'ttl', 'locations'], 'reserve_cart argument names');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'inventory'),
          false, 'the extension is not relocatable');

SELECT * FROM finish();
ROLLBACK;
