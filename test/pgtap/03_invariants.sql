-- The invariants of the data model after a mixed, seeded random workload
-- (deducts, reservations confirmed, released or left to expire, refunds,
-- carts, allocations and reservations across three locations by every
-- strategy and their refunds, held carts, partial confirms and releases): counters match the ledger and the held
-- reservations, nothing is negative or oversold at any location, refunds
-- never exceed a sale or any row of it, every applied key replays as a
-- duplicate that changes nothing.
BEGIN;
SELECT plan(12);

CREATE TEMP TABLE applied (call text, key text);

DO $$
DECLARE
    skus text[] := ARRAY['w-a', 'w-b', 'w-c', 'w-d'];
    locs text[] := ARRAY['default', 'north', 'south'];
    strategies text[] := ARRAY['priority', 'most_available', 'single'];
    st text; s2 text; kh text;
    s text; l text; k text; r inventory.outcome; q bigint;
    held text[] := '{}'; sold text[] := '{}';
BEGIN
    PERFORM setseed(0.42);
    PERFORM inventory.set_location('north', 10);
    PERFORM inventory.set_location('south', 5);
    FOREACH s IN ARRAY skus LOOP
        FOREACH l IN ARRAY locs LOOP
            k := 'wl-init-' || s || l;
            PERFORM inventory.restock(s, 20, k, l);
            INSERT INTO applied VALUES (format('inventory.restock(%L, 20, %L, %L)', s, k, l), k);
        END LOOP;
    END LOOP;
    FOR i IN 1..900 LOOP
        s := skus[1 + floor(random() * 4)::int];
        l := locs[1 + floor(random() * 3)::int];
        q := 1 + floor(random() * 4)::int;
        k := 'wl-' || i;
        CASE floor(random() * 14)::int
        WHEN 0 THEN
            r := inventory.restock(s, q, k, l);
            INSERT INTO applied VALUES (format('inventory.restock(%L, %s, %L, %L)', s, q, k, l), k);
        WHEN 1, 2 THEN
            r := inventory.deduct(s, q, k, l);
            IF r.status = 'ok' THEN
                sold := sold || k;
                INSERT INTO applied VALUES (format('inventory.deduct(%L, %s, %L, %L)', s, q, k, l), k);
            END IF;
        WHEN 3 THEN
            IF random() < 0.5 THEN
                r := inventory.reserve(s, q, k, '1 hour', l);
                IF r.status = 'ok' THEN
                    held := held || k;
                    INSERT INTO applied VALUES (format('inventory.reserve(%L, %s, %L, %L, %L)', s, q, k, '1 hour', l), k);
                END IF;
            ELSE
                -- a reservation from several locations (confirmed, released
                -- and refunded like any)
                r := inventory.reserve_any(s, q + 3, k, '1 hour');
                IF r.status = 'ok' THEN
                    held := held || k;
                    INSERT INTO applied VALUES (format('inventory.reserve_any(%L, %s, %L, %L)', s, q + 3, k, '1 hour'), k);
                END IF;
            END IF;
        WHEN 4 THEN
            IF cardinality(held) > 0 THEN
                k := held[1 + floor(random() * cardinality(held))::int];
                r := inventory.confirm(k);
                -- (a cart of several skus is not refunded by its key)
                IF r.status = 'ok' AND (SELECT count(DISTINCT sku) FROM inventory.reservation
                                         WHERE key = k) = 1 THEN
                    sold := sold || k;
                END IF;
            END IF;
        WHEN 5 THEN
            IF cardinality(held) > 0 THEN
                PERFORM inventory.release(held[1 + floor(random() * cardinality(held))::int]);
            END IF;
        WHEN 6 THEN
            IF cardinality(sold) > 0 THEN
                r := inventory.refund(sold[1 + floor(random() * cardinality(sold))::int], 1, k);
            END IF;
        WHEN 7 THEN
            r := inventory.deduct_cart(ARRAY[s, skus[1 + floor(random() * 4)::int]],
                                       ARRAY[q, 1], k, ARRAY[l, 'default']);
        WHEN 8, 9 THEN
            st := strategies[1 + floor(random() * 3)::int];
            IF random() < 0.5 OR l = 'south' THEN
                r := inventory.deduct_any(s, q + 2, k, strategy => st);
                IF r.status = 'ok' THEN
                    sold := sold || k;
                    INSERT INTO applied VALUES (format('inventory.deduct_any(%L, %s, %L, strategy => %L)', s, q + 2, k, st), k);
                END IF;
            ELSE
                r := inventory.deduct_any(s, q + 2, k, ARRAY[l, 'south'], st);
                IF r.status = 'ok' THEN
                    sold := sold || k;
                    INSERT INTO applied VALUES (format('inventory.deduct_any(%L, %s, %L, %L, %L)', s, q + 2, k, ARRAY[l, 'south'], st), k);
                END IF;
            END IF;
        WHEN 10 THEN
            s2 := skus[1 + floor(random() * 4)::int];
            r := inventory.deduct_cart_any(ARRAY[s, s2], ARRAY[q, 2], k);
            IF r.status = 'ok' THEN
                INSERT INTO applied VALUES (format('inventory.deduct_cart_any(%L, %L, %L)', ARRAY[s, s2], ARRAY[q, 2], k), k);
            END IF;
        WHEN 12 THEN
            -- a held cart (confirmed, released, stepped like any hold)
            s2 := skus[1 + floor(random() * 4)::int];
            r := inventory.reserve_cart(ARRAY[s, s2], ARRAY[q, 1], k, '1 hour', ARRAY[l, 'default']);
            IF r.status = 'ok' THEN
                held := held || k;
                INSERT INTO applied VALUES (format('inventory.reserve_cart(%L, %L, %L, %L, %L)',
                                                   ARRAY[s, s2], ARRAY[q, 1], k, '1 hour', ARRAY[l, 'default']), k);
            END IF;
        WHEN 13 THEN
            -- a step: one unit of one line of a held reservation
            IF cardinality(held) > 0 THEN
                kh := held[1 + floor(random() * cardinality(held))::int];
                s2 := (SELECT sku FROM inventory.reservation WHERE key = kh AND state = 'held' LIMIT 1);
                IF s2 IS NOT NULL AND random() < 0.6 THEN
                    r := inventory.confirm(kh, 1, k, s2);
                    IF r.status = 'ok' AND (SELECT count(DISTINCT sku) FROM inventory.reservation
                                             WHERE key = kh) = 1 THEN
                        sold := sold || kh;
                    END IF;
                ELSIF s2 IS NOT NULL THEN
                    r := inventory.release(kh, 1, k, s2);
                END IF;
            END IF;
        ELSE
            -- a hold left to expire (the expiry below settles it)
            IF random() < 0.5 THEN
                r := inventory.reserve(s, 1, k, '1 millisecond', l);
            ELSE
                r := inventory.reserve_any(s, 4, k, '1 millisecond');
            END IF;
        END CASE;
    END LOOP;
END $$;
SELECT pg_sleep(0.01);
SELECT cmp_ok(inventory.expire(), '>', 0::bigint, 'holds left to expire were expired');

SELECT ok((SELECT count(*) FROM inventory.ledger WHERE call = 'deduct_any') > 20
      AND (SELECT count(*) FROM inventory.ledger WHERE call = 'deduct_cart_any') > 5
      AND (SELECT count(*) FROM inventory.ledger WHERE call = 'reserve_cart') > 5
      AND (SELECT count(*) FROM inventory.ledger WHERE call IN ('confirm_part', 'release_part')) > 5
      AND (SELECT count(*) FROM inventory.reservation WHERE part > 1) > 5
      AND EXISTS (SELECT FROM inventory.ledger f WHERE f.op = 'refund'
                     AND (SELECT count(DISTINCT location) FROM inventory.ledger s
                           WHERE s.key = f.ref AND s.op = 'deduct') > 1),
          'the workload allocated, split sales over locations and refunded them, held carts and settled in steps');
SELECT cmp_ok((SELECT count(*) FROM inventory.ledger), '>', 300::bigint,
              'the workload moved stock many times');
SELECT is_empty($$
    SELECT s.sku, s.location FROM inventory.stock s
      LEFT JOIN (SELECT sku, location, sum(on_hand_delta) AS oh FROM inventory.ledger
                  GROUP BY 1, 2) l USING (sku, location)
     WHERE s.on_hand <> COALESCE(l.oh, 0)$$,
    'on_hand equals the sum of its ledger movements');
SELECT is_empty($$
    SELECT s.sku, s.location FROM inventory.stock s
      LEFT JOIN (SELECT sku, location, sum(qty) AS q FROM inventory.reservation
                  WHERE state = 'held' GROUP BY 1, 2) h USING (sku, location)
     WHERE s.reserved <> COALESCE(h.q, 0)$$,
    'reserved equals the units of held reservations');
SELECT is_empty($$SELECT * FROM inventory.stock WHERE reserved < 0 OR reserved > on_hand$$,
    '0 <= reserved <= on_hand: nothing oversold');
SELECT is_empty($$SELECT * FROM inventory.stock_levels WHERE available < 0$$,
    'available is never negative');
SELECT is_empty($$
    SELECT ref FROM inventory.ledger WHERE op = 'refund'
     GROUP BY ref
    HAVING sum(on_hand_delta) > (SELECT -sum(on_hand_delta) FROM inventory.ledger s
                                  WHERE s.key = ref AND s.op IN ('deduct', 'confirm'))$$,
    'refunds never exceed what was sold');
SELECT is_empty($$
    SELECT f.ref, f.sku, f.location FROM inventory.ledger f
     WHERE f.op = 'refund'
     GROUP BY f.ref, f.sku, f.location
    HAVING sum(f.on_hand_delta) > (SELECT -sum(on_hand_delta) FROM inventory.ledger s
                                    WHERE s.key = f.ref AND s.op IN ('deduct', 'confirm')
                                      AND s.sku = f.sku AND s.location = f.location)$$,
    'a refund never returns to a row more than the sale took from it');
SELECT is_empty($$SELECT * FROM inventory.reconcile()$$, 'reconcile() finds nothing');

-- replay every applied call: all duplicates, and nothing moves
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM inventory.ledger;
CREATE TEMP TABLE replay (status text);
DO $$
DECLARE a record; st text;
BEGIN
    FOR a IN SELECT * FROM applied LOOP
        EXECUTE format('SELECT (%s).status', a.call) INTO st;
        INSERT INTO replay VALUES (st);
    END LOOP;
END $$;
SELECT is_empty($$SELECT * FROM replay WHERE status <> 'duplicate'$$,
    'every applied call replays as duplicate');
SELECT is((SELECT count(*) FROM inventory.ledger), (SELECT n FROM before),
    'replays wrote nothing to the ledger');

SELECT * FROM finish();
ROLLBACK;
