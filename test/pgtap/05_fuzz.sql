-- A bounded argument fuzzer over every call: NULLs, int64 edges, empty,
-- long, odd unicode and quote-laden strings, huge and deep JSON.  Every
-- error must be a documented SQLSTATE, the server must stay up, and the
-- invariants must hold afterwards.
BEGIN;
SELECT plan(4);

CREATE TEMP TABLE fuzz (call text, state text);

DO $fuzz$
DECLARE
    names text[] := ARRAY[NULL, '', 'a', 'fz-hot', 'fz-cold', repeat('x', 256), repeat('y', 257),
                          'q''uote', 'back\slash', 'ü✓Ω場所', E'tab\there', 'default', '%s', '$1'];
    qtys bigint[] := ARRAY[NULL, -9223372036854775808, -1, 0, 1, 2, 3, 100,
                           9223372036854775807];
    ttls interval[] := ARRAY[NULL, '-1 day', '0', '1 microsecond', '15 minutes', '100000 years'];
    jsons text[] := ARRAY[NULL, '[]', '{}', '1', '"x"', '[1]', '[{}]',
        '[{"key": "fb", "lines": [{"sku": "fz-cold", "delta": -1}]}]',
        '[{"key": "fb2", "lines": [{"sku": "fz-hot", "delta": 9223372036854775807}]}]',
        '[{"key": "fb3", "lines": [{"sku": "fz-cold", "delta": -1.5}]}]',
        '[{"key": "fb4", "lines": [{"sku": null, "delta": 1}]}]'];
    f text; s text; k text; l text; q bigint; args text;
BEGIN
    PERFORM setseed(0.7);
    PERFORM inventory.restock('fz-cold', 50, 'fz-po-1');
    PERFORM inventory.restock('fz-hot', 50, 'fz-po-2');
    PERFORM inventory.set_hot('fz-hot');
    -- a deep and a huge document
    jsons := jsons || (repeat('[', 5000) || repeat(']', 5000));
    jsons := jsons || (SELECT jsonb_agg(jsonb_build_object('key', 'fh' || g, 'lines',
                         jsonb_build_array(jsonb_build_object('sku', 'fz-cold', 'delta', 1))))::text
                         FROM generate_series(1, 2000) g);
    FOR i IN 1..3000 LOOP
        s := names[1 + floor(random() * cardinality(names))::int];
        k := names[1 + floor(random() * cardinality(names))::int] || i;
        IF random() < 0.1 THEN k := NULL; END IF;
        l := CASE WHEN random() < 0.7 THEN 'default'
                  ELSE names[1 + floor(random() * cardinality(names))::int] END;
        q := qtys[1 + floor(random() * cardinality(qtys))::int];
        f := (ARRAY['deduct', 'reserve', 'confirm', 'release', 'refund', 'restock', 'adjust',
                    'deduct_cart', 'available', 'apply_bills', 'set_hot', 'lock_key'])
             [1 + floor(random() * 12)::int];
        args := CASE f
            WHEN 'deduct' THEN format('inventory.deduct(%L, %s, %L, %L, nowait => %L)', s,
                                      coalesce(q::text, 'NULL'), k, l, random() < 0.5)
            WHEN 'reserve' THEN format('inventory.reserve(%L, %s, %L, %L::interval, %L)', s,
                                       coalesce(q::text, 'NULL'), k,
                                       ttls[1 + floor(random() * cardinality(ttls))::int], l)
            WHEN 'confirm' THEN format('inventory.confirm(%L)', k)
            WHEN 'release' THEN format('inventory.release(%L)', k)
            WHEN 'refund' THEN format('inventory.refund(%L, %s, %L)', s, coalesce(q::text, 'NULL'), k)
            WHEN 'restock' THEN format('inventory.restock(%L, %s, %L, %L)', s, coalesce(q::text, 'NULL'), k, l)
            WHEN 'adjust' THEN format('inventory.adjust(%L, %s, %L, %L)', s, coalesce(q::text, 'NULL'), k, l)
            WHEN 'deduct_cart' THEN format('inventory.deduct_cart(ARRAY[%L, %L], ARRAY[%s, %s]::bigint[], %L, %s)',
                                           s, 'fz-cold', coalesce(q::text, 'NULL'), 1, k,
                                           CASE WHEN random() < 0.5 THEN 'NULL' ELSE format('ARRAY[%L, %L]', l, l) END)
            WHEN 'available' THEN format('inventory.available(%L, %L)', s, l)
            WHEN 'apply_bills' THEN format('(SELECT count(*) FROM inventory.apply_bills(%L::jsonb))',
                                           jsons[1 + floor(random() * cardinality(jsons))::int])
            WHEN 'set_hot' THEN format('inventory.set_hot(%L, %L, %L)', s, random() < 0.7, l)
            ELSE format('inventory.lock_key(%L, %L)', s, l)
        END;
        BEGIN
            EXECUTE 'SELECT ' || args;
            INSERT INTO fuzz VALUES (f, 'ok');
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO fuzz VALUES (f, SQLSTATE);
        END;
    END LOOP;
END $fuzz$;

SELECT cmp_ok((SELECT count(*) FROM fuzz), '=', 3000::bigint, '3000 fuzzed calls ran');
SELECT cmp_ok((SELECT count(*) FROM fuzz WHERE state = 'ok'), '>', 100::bigint,
              'many of them went through');
-- the documented SQLSTATEs (README, Errors), and 54001 for the 5000-deep JSON
SELECT is_empty($$SELECT DISTINCT state FROM fuzz
                  WHERE state NOT IN ('ok', '22004', '22023', '22001', '22003', '2202E', '23505',
                                      '0A000', '22008', '22P02', '54001')$$,
                'only documented errors');
SELECT is_empty($$SELECT * FROM inventory.reconcile()$$, 'invariants hold after the fuzzing');

SELECT * FROM finish();
ROLLBACK;
