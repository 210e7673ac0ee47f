/* inventory_proxy--1.1--1.2.sql: upgrade from 1.1 (ALTER EXTENSION inventory_proxy UPDATE) */

\echo Use "ALTER EXTENSION inventory_proxy UPDATE TO '1.2'" to load this file. \quit

/*
 * Calls by key, routed.  A caller that names the sku of the reservation's
 * or the sale's line (sku => ...) reaches that sku's partition only, so a
 * shard that is down stops only the calls whose rows live on it, and a call
 * costs one partition, not all of them.  Without a sku the call asks every
 * partition, as in 1.1 (the one that knows the key answers).  The steps of
 * a partial confirm or release (qty, step) need the shards at 1.2.
 *
 * confirm, release and refund are re-created with their new arguments;
 * every role that could execute the 1.1 ones keeps that right.
 */
CREATE TEMP TABLE inventory_proxy_grantees (f text, role text);
INSERT INTO inventory_proxy_grantees
SELECT f.name, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
  FROM (VALUES ('confirm', 'inventory.confirm(text)'), ('release', 'inventory.release(text)'),
               ('refund', 'inventory.refund(text, bigint, text)')) f(name, signature),
       pg_catalog.pg_proc p,
       LATERAL pg_catalog.aclexplode(p.proacl) a
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
 WHERE p.oid = pg_catalog.to_regprocedure(f.signature)
   AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner;
DROP FUNCTION inventory.confirm(text);
DROP FUNCTION inventory.release(text);
DROP FUNCTION inventory.refund(text, bigint, text);

-- A confirm or release of one line (sku), on that sku's partition (called
-- once: "(f()).*" would call f once for every column of its result).
CREATE FUNCTION inventory_proxy.settle_on(sku text, key text, qty bigint, step text,
                                          confirm boolean)
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON inventory_proxy.route(sku);
    SELECT (s.o).* FROM (SELECT CASE WHEN confirm THEN inventory.confirm(key, qty, step, sku)
                                     ELSE inventory.release(key, qty, step, sku) END AS o
                         OFFSET 0) s;
$$ LANGUAGE plproxy;

-- A step (qty units of the reservation's only sku) on every partition.
CREATE FUNCTION inventory_proxy.step_all(key text, qty bigint, step text, confirm boolean)
RETURNS SETOF inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT (s.o).* FROM (SELECT CASE WHEN confirm THEN inventory.confirm(key, qty, step)
                                     ELSE inventory.release(key, qty, step) END AS o
                         OFFSET 0) s;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.refund_on(sku text, original_key text, qty bigint, key text)
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON inventory_proxy.route(sku);
    SELECT * FROM inventory.refund(original_key, qty, key);
$$ LANGUAGE plproxy;

/*
 * confirm: with a sku, on its partition; without, on every partition.  A
 * key no partition knows may be a held cart across shards (its lines are
 * held under derived keys): its home partition's manifest answers then,
 * and a step goes to its line's partition under the line's key.
 */
CREATE FUNCTION inventory.confirm(key text, qty bigint DEFAULT NULL, step text DEFAULT NULL,
                                  sku text DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o inventory.outcome;
    cart inventory.outcome;
BEGIN
    IF sku IS NOT NULL THEN
        o := inventory_proxy.settle_on(sku, key, qty, step, true);
    ELSIF qty IS NOT NULL THEN
        o := (SELECT inventory_proxy.answer(array_agg(a))
                FROM inventory_proxy.step_all(key, qty, step, true) a);
    ELSE
        o := (SELECT inventory_proxy.answer(array_agg(a)) FROM inventory_proxy.confirm_all(key) a);
    END IF;
    IF o.status = 'not_found' THEN
        cart := inventory_proxy.settle_cart(key, qty, step, sku, true);
        IF cart.status IS NOT NULL THEN
            RETURN cart;
        END IF;
    END IF;
    RETURN o;
END
$$;

/*
 * release: with a sku, on its partition; without, on the partition that
 * recorded the key; a key nobody recorded is released everywhere, so that
 * every partition keeps its tombstone (a late reserve, wherever its sku
 * lives, answers conflict).  A key no partition knows may be a held cart
 * across shards: its manifest answers then, and a key that is not one is
 * recorded cancelled there (a late cart across shards, held or sold,
 * answers conflict too).
 */
CREATE FUNCTION inventory.release(key text, qty bigint DEFAULT NULL, step text DEFAULT NULL,
                                  sku text DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner text;
    o inventory.outcome;
    cart inventory.outcome;
BEGIN
    IF sku IS NOT NULL THEN
        o := inventory_proxy.settle_on(sku, key, qty, step, false);
    ELSIF qty IS NOT NULL THEN
        o := (SELECT inventory_proxy.answer(array_agg(a))
                FROM inventory_proxy.step_all(key, qty, step, false) a);
    ELSE
        SELECT s INTO owner FROM inventory_proxy.key_sku(key) s LIMIT 1;
        IF owner IS NOT NULL THEN
            RETURN inventory_proxy.release_on(owner, key);
        END IF;
        o := ROW('not_found', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
    END IF;
    IF o.status = 'not_found' THEN
        cart := inventory_proxy.settle_cart(key, qty, step, sku, false);
        IF cart.status IS NOT NULL THEN
            RETURN cart;
        END IF;
    END IF;
    IF sku IS NULL AND qty IS NULL THEN
        RETURN (SELECT inventory_proxy.answer(array_agg(a)) FROM inventory_proxy.release_all(key) a);
    END IF;
    RETURN o;
END
$$;

-- refund: with the sale's sku, on its partition; without, every partition.
CREATE FUNCTION inventory.refund(original_key text, qty bigint, key text, sku text DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF sku IS NOT NULL THEN
        RETURN inventory_proxy.refund_on(sku, original_key, qty, key);
    END IF;
    RETURN (SELECT inventory_proxy.answer(array_agg(o))
              FROM inventory_proxy.refund_all(original_key, qty, key) o);
END
$$;

-- A held cart whose lines live on one partition, held there as it is (a
-- cart across shards: hold_cart()).
CREATE FUNCTION inventory_proxy.reserve_cart(part integer, skus text[], qtys bigint[],
                                             key text, ttl interval, locations text[])
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.reserve_cart(skus, qtys, key, ttl, locations);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.reserve_cart(skus text[], qtys bigint[], key text,
                                       ttl interval DEFAULT '15 minutes',
                                       locations text[] DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN inventory_proxy.cart('reserve_cart', skus, qtys, key, locations, ttl);
END
$$;

-- Input the proxy would not split, sent to a shard for its exact error
-- (as refuse_cart).
CREATE FUNCTION inventory_proxy.refuse_held_cart(skus text[], qtys bigint[], key text,
                                                 ttl interval, locations text[])
RETURNS integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON 0;
    SELECT (inventory.reserve_cart(skus, qtys, key, ttl, locations)).status::integer
           AS refuse_held_cart;
$$ LANGUAGE plproxy;

/*
 * A cart: on its shard as it is, or across shards by two_phase() (a sale)
 * or hold_cart() (reserve_cart, with its ttl).
 */
DROP FUNCTION inventory_proxy.cart(text, text[], bigint[], text, text[]);
CREATE FUNCTION inventory_proxy.cart(call text, skus text[], qtys bigint[], key text,
                                     locations text[], ttl interval DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    parts integer[];
    lines record;
    home integer;
BEGIN
    IF NOT inventory_proxy.good_cart(skus, qtys, key, locations)
       OR (call = 'reserve_cart' AND (ttl IS NULL OR ttl <= interval '0')) THEN
        IF call = 'reserve_cart' THEN
            PERFORM inventory_proxy.refuse_held_cart(skus, qtys, key, ttl, locations);
        ELSE
            PERFORM inventory_proxy.refuse_cart(skus, qtys, key, locations, call);
        END IF;
        RAISE EXCEPTION 'the shard accepted a cart the proxy refused' USING ERRCODE = 'internal_error';
    END IF;
    parts := ARRAY(SELECT DISTINCT inventory_proxy.partition_of(u.sku, cluster.n, cluster.modular)
                     FROM unnest(skus) AS u(sku));
    IF cardinality(parts) = 1 THEN
        RETURN CASE call
               WHEN 'deduct_cart' THEN inventory_proxy.deduct_cart(parts[1], skus, qtys, key, locations)
               WHEN 'reserve_cart' THEN inventory_proxy.reserve_cart(parts[1], skus, qtys, key, ttl, locations)
               ELSE inventory_proxy.deduct_cart_any(parts[1], skus, qtys, key, locations) END;
    END IF;
    IF call = 'deduct_cart_any' THEN
        RAISE EXCEPTION 'deduct_cart_any cannot allocate a cart whose skus live on several shards'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Allocate each shard''s lines with a deduct_cart_any of their own, or name the locations and call deduct_cart.';
    END IF;
    PERFORM inventory_proxy.check_key(key);
    IF call = 'reserve_cart' THEN
        -- refused before anything is recorded or held
        IF inventory_proxy.hold_ttl() <= interval '0' THEN
            RAISE EXCEPTION 'inventory_proxy.hold_ttl must be greater than zero'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value set is %s.', inventory_proxy.hold_ttl());
        END IF;
        -- 22008 beyond the range, counted in seconds as the holds will be
        PERFORM statement_timestamp() + make_interval(secs => extract(epoch FROM ttl)
                                                              + extract(epoch FROM inventory_proxy.hold_ttl()));
    END IF;
    -- one line per row, summed, in row order
    SELECT array_agg(c.sku ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS skus,
           array_agg(c.location ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS locations,
           array_agg(-c.qty ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS deltas
      INTO lines
      FROM (SELECT u.sku, COALESCE(u.location, 'default') AS location, sum(u.qty) AS qty
              FROM unnest(skus, qtys, locations) AS u(sku, qty, location)
             GROUP BY 1, 2) c;
    home := inventory_proxy.partition_of(key, cluster.n, cluster.modular);
    IF call = 'reserve_cart' THEN
        RETURN inventory_proxy.hold_cart(key, home, lines.skus, lines.locations,
                                         lines.deltas::bigint[], ttl);
    END IF;
    RETURN inventory_proxy.two_phase(key, home, lines.skus, lines.locations, lines.deltas::bigint[]);
END
$$;

REVOKE ALL ON FUNCTION inventory_proxy.settle_on(text, text, bigint, text, boolean),
                       inventory_proxy.step_all(text, bigint, text, boolean),
                       inventory_proxy.refund_on(text, text, bigint, text),
                       inventory_proxy.reserve_cart(integer, text[], bigint[], text, interval, text[]),
                       inventory.confirm(text, bigint, text, text),
                       inventory.release(text, bigint, text, text),
                       inventory.refund(text, bigint, text, text),
                       inventory.reserve_cart(text[], bigint[], text, interval, text[])
  FROM PUBLIC;
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT f, role FROM inventory_proxy_grantees LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory.%s TO %s',
                       CASE g.f WHEN 'refund' THEN 'refund(text, bigint, text, text)'
                                ELSE g.f || '(text, bigint, text, text)' END, g.role);
    END LOOP;
END $$;
DROP TABLE inventory_proxy_grantees;
-- (their grantees kept as the user's grants, not the extension's initial
-- privileges, which pg_dump leaves out: see inventory--1.1--1.2.sql)
UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT a FROM pg_catalog.unnest(i.initprivs) a,
                                       LATERAL (SELECT e.grantor, e.grantee
                                                  FROM pg_catalog.aclexplode(ARRAY[a]) e
                                                 LIMIT 1) e
                          WHERE e.grantee = e.grantor)
 WHERE i.privtype = 'e' AND i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND i.objoid IN ('inventory.confirm(text, bigint, text, text)'::pg_catalog.regprocedure,
                    'inventory.release(text, bigint, text, text)'::pg_catalog.regprocedure,
                    'inventory.refund(text, bigint, text, text)'::pg_catalog.regprocedure);

/*
 * What a cart costs the proxy.  A SQL function that PostgreSQL cannot
 * inline (a SECURITY DEFINER wrapper, a body with a subquery) is parsed and
 * planned again at every call; in PL/pgSQL the connection keeps its plans.
 * These are 1.1's, with the same arguments and answers.
 */
CREATE OR REPLACE FUNCTION inventory_proxy.pick(a anyarray, positions integer[])
RETURNS anyarray
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN ARRAY(SELECT a[p.i] FROM unnest(positions) WITH ORDINALITY AS p(i, n) ORDER BY p.n);
END
$$;

CREATE OR REPLACE FUNCTION inventory_proxy.good_cart(skus text[], qtys bigint[], key text,
                                                     locations text[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN inventory_proxy.good_name(key)
       AND skus IS NOT NULL AND qtys IS NOT NULL
       AND COALESCE(array_ndims(skus), 1) = 1 AND COALESCE(array_ndims(qtys), 1) = 1
       AND cardinality(skus) > 0 AND cardinality(skus) = cardinality(qtys)
       AND (locations IS NULL OR (COALESCE(array_ndims(locations), 1) = 1
                                  AND cardinality(locations) = cardinality(skus)
                                  AND NOT EXISTS (SELECT FROM unnest(locations) l
                                                   WHERE NOT inventory_proxy.good_name(l))))
       AND NOT EXISTS (SELECT FROM unnest(skus) s WHERE NOT inventory_proxy.good_name(s))
       AND NOT EXISTS (SELECT FROM unnest(qtys) q WHERE q IS NULL OR q <= 0);
END
$$;

CREATE OR REPLACE FUNCTION inventory.deduct_cart(skus text[], qtys bigint[], key text,
                                                 locations text[] DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN inventory_proxy.cart('deduct_cart', skus, qtys, key, locations);
END
$$;

CREATE OR REPLACE FUNCTION inventory.deduct_cart_any(skus text[], qtys bigint[], key text,
                                                     locations text[] DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN inventory_proxy.cart('deduct_cart_any', skus, qtys, key, locations);
END
$$;

/*
 * Carts across shards that finish without the client (1.2).  Before any
 * of its lines is sold (a cart: in the round of its holds; a bill: before
 * them), a cart or bill whose lines live on several partitions is
 * recorded on its key's home partition (inventory.cart_manifest on the
 * shards): its lines, its hold ttl, its attempt, its state.  A retry, from
 * any proxy, reads the recorded ttl and attempt (so a changed
 * inventory_proxy.hold_ttl never makes it a different call), and
 * inventory_proxy.resolve(), run on a schedule (pg_cron), finishes or undoes
 * every attempt left pending longer than its ttl, with no client.
 * inventory_proxy.status(key) and inventory_proxy.cancel(key) read and end
 * a cart.  The protocol of the attempts is 1.1's (see attempt()).  The
 * key's lock on its home partition makes calls with one key take turns, the
 * resolver's and cancel()'s too, so that the manifest moves one way: the
 * cancel of a cart can never race a retry that completes it.  It costs no
 * round trip of its own: opening the manifest takes it, and the last mark
 * of an attempt lets go of it.
 */
CREATE FUNCTION inventory_proxy.manifest_open(part integer, key text, lines jsonb, ttl interval)
RETURNS TABLE (locked boolean, lines jsonb, ttl interval, attempt integer, state text,
               touched_at timestamptz, rest bigint[]) AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.manifest_open(key, lines, ttl);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.manifest_of(part integer, key text)
RETURNS TABLE (lines jsonb, ttl interval, attempt integer, state text, touched_at timestamptz,
               rest bigint[]) AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.manifest_of(key);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.manifest_mark(part integer, key text, attempt integer, state text,
                                              unlock boolean DEFAULT false, rest bigint[] DEFAULT NULL)
RETURNS integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT 1 AS manifest_mark FROM inventory.manifest_mark(key, attempt, state, unlock, rest);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.manifests_due(part integer)
RETURNS TABLE (key text, lines jsonb, ttl interval, attempt integer) AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.manifests_due();
$$ LANGUAGE plproxy;

/*
 * A round of a cart across shards: each partition's lines, and the home
 * partition's open or ok (a line that names the cart's key as key and
 * sku, so that it routes there), in one call and one transaction per
 * partition (inventory.cart_step on the shards).  hold and settle, the
 * rounds of 1.1, go the same way.
 */
CREATE FUNCTION inventory_proxy.cart_step(keys text[], skus text[], qtys bigint[],
                                          locations text[], actions text[], ttl interval,
                                          lines jsonb)
RETURNS TABLE (key text, status text, available bigint, sku text, location text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus, qtys, locations, actions;
    RUN ON inventory_proxy.route(skus);
    SELECT * FROM inventory.cart_step(keys, skus, qtys, locations, actions, ttl, lines);
$$ LANGUAGE plproxy;

CREATE OR REPLACE FUNCTION inventory_proxy.hold(keys text[], skus text[], qtys bigint[],
                                                locations text[], ttl interval)
RETURNS TABLE (key text, status text, available bigint, sku text, location text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus, qtys, locations;
    RUN ON inventory_proxy.route(skus);
    SELECT * FROM inventory.cart_step(keys, skus, qtys, locations,
                                      pg_catalog.array_fill('hold'::text, ARRAY[cardinality(keys)]),
                                      ttl, NULL);
$$ LANGUAGE plproxy;

CREATE OR REPLACE FUNCTION inventory_proxy.settle(keys text[], skus text[], qtys bigint[],
                                                  locations text[], actions text[])
RETURNS TABLE (key text, status text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus, qtys, locations, actions;
    RUN ON inventory_proxy.route(skus);
    SELECT c.key, c.status FROM inventory.cart_step(keys, skus, qtys, locations, actions,
                                                    NULL, NULL) c;
$$ LANGUAGE plproxy;

/*
 * The last round of a cart without receipts: the home partition's held
 * lines (picked by number) confirmed and the manifest marked ok at attempt
 * g, letting go of the key's lock, in one transaction there; the mark only
 * if every line confirmed.  Returns each line's status, then the mark's
 * (ok, or conflict when it was not made).
 */
CREATE FUNCTION inventory_proxy.close_home(key text, g integer, keys text[], skus text[],
                                           qtys bigint[], locations text[], picked integer[])
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    mine text[] := inventory_proxy.pick(keys, picked) || key;
    answers text[];
BEGIN
    WITH s AS MATERIALIZED (
        SELECT * FROM inventory_proxy.cart_step(
            mine, inventory_proxy.pick(skus, picked) || key,
            inventory_proxy.pick(qtys, picked) || g::bigint,
            inventory_proxy.pick(locations, picked) || NULL::text,
            array_fill('confirm'::text, ARRAY[cardinality(picked)]) || 'ok'::text, NULL, NULL))
    SELECT array_agg(s.status ORDER BY p.n) INTO answers
      FROM unnest(mine) WITH ORDINALITY p(k, n) LEFT JOIN s ON s.key = p.k;
    IF array_position(answers, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a shard did not answer for a line of a cart across shards'
            USING ERRCODE = 'internal_error';
    END IF;
    RETURN answers;
END
$$;

-- A cart's lines as its manifest records them.
CREATE FUNCTION inventory_proxy.manifest_lines(skus text[], locations text[], deltas bigint[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('skus', to_jsonb(skus), 'locations', to_jsonb(locations),
                              'deltas', to_jsonb(deltas))
$$;

/*
 * The lines picked (by number) held under their derived keys for ttl, on
 * their partitions; each one's outcome in the order picked (an error if a
 * partition did not answer for a line).
 */
CREATE FUNCTION inventory_proxy.hold_lines(keys text[], skus text[], qtys bigint[],
                                           locations text[], picked integer[], ttl interval)
RETURNS inventory.outcome[]
LANGUAGE plpgsql AS $$
DECLARE
    outs inventory.outcome[];
BEGIN
    WITH h AS MATERIALIZED (
        SELECT * FROM inventory_proxy.hold(
            inventory_proxy.pick(keys, picked), inventory_proxy.pick(skus, picked),
            inventory_proxy.pick(qtys, picked), inventory_proxy.pick(locations, picked), ttl))
    SELECT array_agg(CASE WHEN h.key IS NULL THEN NULL
                          ELSE ROW(h.status, h.available, h.sku, h.location)::inventory.outcome
                     END ORDER BY t.n)
      INTO outs
      FROM unnest(picked) WITH ORDINALITY t(i, n) LEFT JOIN h ON h.key = keys[t.i];
    IF array_position(outs, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a shard did not answer for a line of a cart across shards'
            USING ERRCODE = 'internal_error';
    END IF;
    RETURN COALESCE(outs, '{}');
END
$$;

-- The states of the holds of keys, read on their partitions, a hold that
-- ends before until (a held cart's end, when given) as short.
CREATE FUNCTION inventory_proxy.hold_states(keys text[], skus text[], until timestamptz)
RETURNS TABLE (key text, state text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus;
    RUN ON inventory_proxy.route(skus);
    SELECT r.key, CASE WHEN r.state = 'held' AND r.expires_at < until THEN 'short' ELSE r.state END
      FROM inventory.reservation r
     WHERE r.key = ANY (keys) AND r.part = 0;
$$ LANGUAGE plproxy;

-- What earlier calls left of the lines picked, read after their holds
-- answered outs: each one's state, in the order picked (NULL for a line
-- whose hold is not a duplicate, and for one whose record is archived;
-- short for a hold that ends before until, when given); '{}' when no hold
-- was a duplicate (no round trip).
CREATE FUNCTION inventory_proxy.line_states(keys text[], skus text[], picked integer[],
                                            outs inventory.outcome[], until timestamptz DEFAULT NULL)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    states text[];
BEGIN
    IF NOT EXISTS (SELECT FROM unnest(outs) o WHERE o.status = 'duplicate') THEN
        RETURN '{}';
    END IF;
    WITH s AS MATERIALIZED (
        SELECT * FROM inventory_proxy.hold_states(inventory_proxy.pick(keys, picked),
                                                  inventory_proxy.pick(skus, picked), until))
    SELECT array_agg(s.state ORDER BY t.n) INTO states
      FROM unnest(picked) WITH ORDINALITY t(i, n) LEFT JOIN s ON s.key = keys[t.i];
    RETURN states;
END
$$;

/*
 * The first round of a cart across shards: every line held under attempt
 * 0's keys for ttl and, on the home partition, the key's lock taken and the
 * manifest recorded (lines), all at once.  outs: each line's outcome
 * (NULL when its partition did not answer); opened: the open's status
 * (ok when the lock was taken and the manifest is new, or left at attempt
 * 0 with these lines by a call that died).  A partition that fails the
 * round leaves outs and opened NULL (the caller's way under the lock says
 * which), and the lock let go.
 */
CREATE FUNCTION inventory_proxy.first_round(key text, home integer, keys text[], skus text[],
                                            qtys bigint[], locations text[], ttl interval,
                                            lines jsonb, OUT outs inventory.outcome[],
                                            OUT opened text)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(keys);
BEGIN
    WITH h AS MATERIALIZED (
        SELECT * FROM inventory_proxy.cart_step(
            keys || key, skus || key, qtys || 0::bigint, locations || NULL::text,
            array_fill('hold'::text, ARRAY[n]) || 'open'::text, ttl, lines))
    -- by line number; a line with no answer is NULL
    SELECT array_agg(CASE WHEN h.key IS NULL THEN NULL
                          ELSE ROW(h.status, h.available, h.sku, h.location)::inventory.outcome
                     END ORDER BY t.i) FILTER (WHERE t.i <= n),
           min(h.status) FILTER (WHERE t.i > n)
      INTO outs, opened
      FROM unnest(keys || key) WITH ORDINALITY t(k, i) LEFT JOIN h ON h.key = t.k;
EXCEPTION WHEN query_canceled THEN
    PERFORM inventory_proxy.unlock_quietly(home);
    RAISE;
WHEN OTHERS THEN
    PERFORM inventory_proxy.unlock_quietly(home);
    outs := NULL;
    opened := NULL;
END
$$;

-- The key-reuse error of a cart across shards (the key is another cart's).
CREATE FUNCTION inventory_proxy.key_reused(key text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'idempotency key "%" was already used by another cart', key
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'inventory_key_reuse',
              HINT = 'Use a new key for every distinct cart; retry only with the same lines.';
END
$$;

DROP FUNCTION inventory_proxy.attempt(text, text[], text[], bigint[]);
DROP FUNCTION inventory_proxy.try_lock_key(integer, text);   -- manifest_open takes the lock

/*
 * A cart or bill whose lines live on several partitions, all or nothing for
 * the caller (try/confirm/cancel).  Lines are canonical: one per row, in
 * row order, delta < 0 takes units, delta > 0 receives them.  Calls with
 * one key take turns (two_phase).  Attempt g holds line i under the key
 * "<key>#<g>.<i>", for ttl; it starts at the manifest's attempt, and every
 * move is recorded there (home partition):
 *
 *  - every taking line held (or sold by an earlier call of attempt g):
 *    confirm them all, then receive the receipts (restock under the line's
 *    key); ok (manifest ok), or duplicate when an earlier call had done it
 *    all;
 *  - a line refused (insufficient, not_found, busy) and nothing of attempt
 *    g recorded: the refusal, and the key stays unused (manifest forgotten);
 *  - a line refused after others were held, a line of attempt g spent
 *    (released, expired, tombstoned) by an earlier call, or a hold that
 *    expired before its confirm: abandon attempt g (every line released,
 *    what it sold refunded; manifest undone at g + 1), then the refusal, or
 *    attempt g + 1 (pending); the resolver (resolving) never begins one:
 *    it finishes an attempt or undoes it (manifest undone, or the state
 *    given: a held cart's confirm that finds a line gone ends expired);
 *  - a line's history archived: an error, the outcome cannot be told;
 *  - a line sold and another never held: the key was another cart's.
 *
 * Abandoning refunds only when some line can never be sold (its release
 * did not answer conflict), so whatever order two calls with one key run
 * in, no call answers ok for an attempt another one refunds.
 *
 * Every step is idempotent by its derived key, so a call that dies anywhere
 * (proxy or shard) leaves what a retry, or the resolver, finishes or undoes,
 * and holds nobody finishes expire after their ttl.  Units are never taken
 * twice: an attempt is confirmed only when all of its lines are held, and
 * an abandoned attempt can never be completed.
 */
CREATE FUNCTION inventory_proxy.attempt(key text, home integer, skus text[], locations text[],
                                        deltas bigint[], ttl interval, first integer,
                                        resolving boolean, given inventory.outcome[] DEFAULT NULL,
                                        undone text DEFAULT 'undone')
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(skus);
    cluster record;
    away integer[];
    mine integer[];
    receipted text[] := '{}';
    qtys bigint[] := ARRAY(SELECT abs(d) FROM unnest(deltas) d);
    takes integer[] := ARRAY(SELECT i FROM generate_subscripts(deltas, 1) i WHERE deltas[i] < 0);
    receipts integer[] := ARRAY(SELECT i FROM generate_subscripts(deltas, 1) i WHERE deltas[i] > 0);
    closing boolean := cardinality(receipts) = 0;     -- the ok mark goes with home's confirms
    keys text[];
    outs inventory.outcome[];
    states text[];
    held integer[];
    sold integer[];
    spent boolean;
    archived integer;
    refusals inventory.outcome[];
    answers text[];
BEGIN
    FOR g IN first .. first + 99 LOOP
        keys := ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_series(1, n) i);
        outs := '{}';
        states := '{}';
        IF g = first AND given IS NOT NULL THEN
            outs := given;      -- the caller's first round held every line
        ELSIF cardinality(takes) > 0 THEN
            outs := inventory_proxy.hold_lines(keys, skus, qtys, locations, takes, ttl);
        END IF;
        states := inventory_proxy.line_states(keys, skus, takes, outs);

        SELECT COALESCE(array_agg(takes[t.j] ORDER BY t.j) FILTER (
                   WHERE (outs[t.j]).status = 'ok'
                      OR ((outs[t.j]).status = 'duplicate' AND states[t.j] = 'held')), '{}'),
               COALESCE(array_agg(takes[t.j] ORDER BY t.j) FILTER (
                   WHERE (outs[t.j]).status = 'duplicate' AND states[t.j] = 'confirmed'), '{}'),
               COALESCE(bool_or((outs[t.j]).status = 'conflict' OR ((outs[t.j]).status = 'duplicate'
                                AND states[t.j] IN ('released', 'expired'))), false),
               count(*) FILTER (WHERE (outs[t.j]).status = 'duplicate' AND states[t.j] IS NULL),
               array_agg(outs[t.j] ORDER BY t.j) FILTER (
                   WHERE (outs[t.j]).status NOT IN ('ok', 'duplicate', 'conflict'))
          INTO held, sold, spent, archived, refusals
          FROM generate_subscripts(takes, 1) AS t(j);

        IF archived > 0 THEN
            PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, held, 'release');
            RAISE EXCEPTION 'the history of key "%" across shards is archived', key
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Its outcome cannot be told any more.',
                      HINT = 'Keep inventory.history_retention far longer than inventory_proxy.hold_ttl, retry unanswered carts before it passes, and use a new key for a new order.';
        END IF;
        IF refusals IS NOT NULL AND cardinality(sold) > 0 THEN
            -- sold lines and a line never held: another cart's key
            PERFORM inventory_proxy.key_reused(key);
        END IF;

        IF refusals IS NULL AND NOT spent THEN
            IF closing THEN
                -- no receipts: the lines away from the home partition, then
                -- the home partition's with the ok mark, in one transaction
                cluster := inventory_proxy.shards();
                away := ARRAY(SELECT i FROM unnest(held) i
                               WHERE inventory_proxy.partition_of(skus[i], cluster.n, cluster.modular) <> home);
                mine := ARRAY(SELECT i FROM unnest(held) i
                               WHERE inventory_proxy.partition_of(skus[i], cluster.n, cluster.modular) = home);
                answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, away, 'confirm');
                IF NOT EXISTS (SELECT FROM unnest(answers) a WHERE a NOT IN ('ok', 'duplicate')) THEN
                    answers := inventory_proxy.close_home(key, g, keys, skus, qtys, locations, mine);
                END IF;
            ELSE
                answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, held, 'confirm');
            END IF;
            IF EXISTS (SELECT FROM unnest(answers) a WHERE a NOT IN ('ok', 'duplicate')) THEN
                -- a hold expired before its confirm: abandon attempt g
                IF inventory_proxy.undo(keys, skus, qtys, locations, takes) THEN
                    PERFORM inventory_proxy.manifest_mark(home, key, g + 1,
                                                         CASE WHEN resolving THEN undone ELSE 'pending' END,
                                                         resolving);
                    IF resolving THEN
                        RETURN ROW('expired', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
                    END IF;
                    CONTINUE;
                END IF;
            END IF;
            -- every line sold: the receipts, and the answer
            receipted := inventory_proxy.settle_lines(keys, skus, qtys, locations, receipts, 'restock');
            IF NOT closing OR EXISTS (SELECT FROM unnest(answers) a WHERE a NOT IN ('ok', 'duplicate')) THEN
                -- (not closed at home: close_home failed, and undo found every line sold)
                PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true);
            END IF;
            RETURN ROW(CASE WHEN cardinality(held) = 0
                             AND NOT EXISTS (SELECT FROM unnest(receipted) a WHERE a <> 'duplicate')
                            THEN 'duplicate' ELSE 'ok' END,
                       NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;

        IF cardinality(held) = 0 AND NOT spent THEN
            -- nothing recorded: the key stays unused
            PERFORM inventory_proxy.manifest_mark(home, key, g, NULL, true);
            RETURN refusals[1];
        END IF;
        -- a line refused after others were held, or attempt g spent earlier
        IF NOT inventory_proxy.undo(keys, skus, qtys, locations, takes) THEN
            -- every line sold: a call with the same key completed attempt g meanwhile
            PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, receipts, 'restock');
            PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true);
            RETURN ROW('duplicate', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;
        IF NOT spent OR resolving THEN
            PERFORM inventory_proxy.manifest_mark(home, key, g + 1,
                                                 CASE WHEN resolving THEN undone ELSE 'undone' END, true);
            RETURN COALESCE(refusals[1], ROW('expired', NULL::bigint, NULL::text, NULL::text)::inventory.outcome);
        END IF;
        PERFORM inventory_proxy.manifest_mark(home, key, g + 1, 'pending');
    END LOOP;
    RAISE EXCEPTION 'key "%" was refused too often across shards', key
        USING ERRCODE = 'program_limit_exceeded',
              HINT = 'Use a new key for this order.';
END
$$;

/*
 * Take the lock of a key on its home partition and read its manifest
 * (recorded with new_lines and new_ttl if it has none and they are given), waiting for the lock at most until deadline (then 55P03),
 * or, with deadline NULL, not at all (locked false).  A home partition that
 * cannot be reached stops only the carts homed there: the error says which.
 */
CREATE FUNCTION inventory_proxy.open_key(home integer, key text, new_lines jsonb, new_ttl interval,
                                         deadline timestamptz)
RETURNS TABLE (locked boolean, lines jsonb, ttl interval, attempt integer, state text,
               touched_at timestamptz, rest bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    pause float8 := 0.001;
    m record;
BEGIN
    LOOP
        BEGIN
            SELECT * INTO m FROM inventory_proxy.manifest_open(home, key, new_lines, new_ttl);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'the home partition of key "%" (partition %) cannot be reached', key, home
                USING ERRCODE = 'connection_failure',
                      DETAIL = SQLERRM,
                      HINT = 'Carts and bills whose key has its home on a running partition go on; retry this one with the same key when the partition is back.';
        END;
        IF m.locked OR deadline IS NULL THEN
            RETURN QUERY SELECT m.locked, m.lines, m.ttl, m.attempt, m.state, m.touched_at, m.rest;
            RETURN;
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'another call with key "%" is in progress', key
                USING ERRCODE = 'lock_not_available',
                      HINT = 'Retry with the same key: it finishes what the other call leaves.';
        END IF;
        PERFORM pg_sleep(pause);
        pause := least(pause * 2, 0.1);
    END LOOP;
END
$$;

-- Let go of the key locks on a partition, if its connection is still there
-- (when it is gone, the locks went with it).
CREATE FUNCTION inventory_proxy.unlock_quietly(part integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM inventory_proxy.unlock_keys(part);
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;

/*
 * Whether the holds a first round made under attempt 0's keys, for a call
 * that then found the key's manifest so, may have been counted by the
 * held cart it records (another call with the key, which held the cart
 * while this one waited for the key, counted them as its lines: they must
 * stay, whatever this call's own lines, ttl, or kind of cart).
 */
CREATE FUNCTION inventory_proxy.counted(lines jsonb, attempt integer, state text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(lines ? 'ttl' AND attempt = 0
                    AND state IN ('holding', 'held', 'confirming', 'ok'), false)
$$;

/*
 * A cart or bill across shards: under its key's lock on its home partition,
 * with its manifest (recorded there if new), attempt() finishes it or
 * undoes it, and lets go of the lock with its last mark.  A cart cancelled
 * answers conflict; a finished one, duplicate; other lines under the key
 * raise 23505.
 *
 * A cart (no receipts) begins with one round that holds every line under
 * attempt 0's keys and, on the home partition, takes the lock and records
 * the manifest, all at once.  The manifest must be there before any line
 * is sold, and is (the confirms come a round later); a hold made without
 * it sells nothing and expires by itself, as the resolver would undo it.
 * When that round took the lock and found the manifest at attempt 0 with
 * these lines and this ttl (new, or left by a call that died), attempt()
 * goes on from its answers.  Otherwise (another call has the key, the cart
 * finished or was cancelled, it was recorded with another ttl) the call
 * goes the way of a bill, below, and releases the holds the round made
 * that belong to no attempt of the cart (unless a held cart with the key
 * may have counted them: counted()).  When a partition did not answer,
 * the round's answers are lost: what it held elsewhere expires after the
 * ttl, unless a retry adopts it (a hold answers duplicate).
 */
CREATE OR REPLACE FUNCTION inventory_proxy.two_phase(key text, home integer, skus text[],
                                                     locations text[], deltas bigint[])
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    lines jsonb := inventory_proxy.manifest_lines(skus, locations, deltas);
    qtys bigint[] := ARRAY(SELECT abs(d) FROM unnest(deltas) d);
    keys text[] := ARRAY(SELECT format('%s#0.%s', key, i) FROM generate_series(1, cardinality(skus)) i);
    outs inventory.outcome[];
    opened text;
    fresh integer[] := '{}';
    m record;
    result inventory.outcome;
BEGIN
    IF NOT EXISTS (SELECT FROM unnest(deltas) d WHERE d > 0) THEN
        SELECT r.outs, r.opened INTO outs, opened
          FROM inventory_proxy.first_round(key, home, keys, skus, qtys, locations,
                                           inventory_proxy.hold_ttl(), lines) r;
        IF opened = 'ok' AND array_position(outs, NULL) IS NULL THEN
            BEGIN
                RETURN inventory_proxy.attempt(key, home, skus, locations, deltas,
                                               inventory_proxy.hold_ttl(), 0, false, outs);
            EXCEPTION WHEN OTHERS OR query_canceled THEN
                PERFORM inventory_proxy.unlock_quietly(home);
                RAISE;
            END;
        END IF;
        fresh := ARRAY(SELECT i FROM generate_subscripts(outs, 1) i WHERE (outs[i]).status = 'ok'
                        ORDER BY i);
    END IF;

    BEGIN
        -- (in the block: a call cut off as it takes the key's lock lets go)
        SELECT * INTO m FROM inventory_proxy.open_key(home, key, lines, inventory_proxy.hold_ttl(),
                                                      clock_timestamp() + inventory_proxy.hold_ttl());
        IF m.state IN ('pending', 'undone') AND m.lines = lines THEN
            IF m.state = 'undone' THEN
                PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'pending');
            END IF;
            RETURN inventory_proxy.attempt(key, home, skus, locations, deltas, m.ttl,
                                           m.attempt, false);
        END IF;
        IF NOT inventory_proxy.counted(m.lines, m.attempt, m.state) THEN
            PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, fresh, 'release');
        END IF;
        IF m.state = 'cancelled' THEN
            result := ROW('conflict', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        ELSIF m.lines <> lines THEN
            PERFORM inventory_proxy.key_reused(key);
        ELSE
            result := ROW('duplicate', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM inventory_proxy.unlock_quietly(home);
        RAISE;
    END;
    PERFORM inventory_proxy.unlock_keys(home);
    RETURN result;
END
$$;

/*
 * The resolver: every cart or bill across shards left pending longer than
 * its hold ttl (its client gone, or still waiting on a shard), and every
 * held cart whose confirm began and did not end (at once), is finished if
 * every line can be sold, else undone (every line released, what was sold
 * refunded), with no client; a held cart past its ttl is released
 * (expired), one whose holding never ended undone.  A cart whose key another call holds is
 * left to the next run.  Returns how many it resolved.  Run it on a
 * schedule, e.g. with pg_cron in the proxy database:
 *   SELECT cron.schedule('inventory-resolve', '* * * * *', 'SELECT inventory_proxy.resolve()');
 */
CREATE FUNCTION inventory_proxy.resolve()
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    d record;
    m record;
    resolved integer := 0;
BEGIN
    FOR home IN 0 .. cluster.n - 1 LOOP
        BEGIN
            FOR d IN SELECT * FROM inventory_proxy.manifests_due(home) LOOP
                BEGIN
                    SELECT * INTO m FROM inventory_proxy.open_key(home, d.key, NULL, NULL, NULL);
                    CONTINUE WHEN NOT m.locked;
                    IF m.attempt = d.attempt
                       AND (m.state = 'confirming'
                            OR (m.state IN ('pending', 'holding', 'held')
                                AND m.touched_at + m.ttl < clock_timestamp())) THEN
                        -- end_cart() lets go of the lock with its last mark
                        PERFORM inventory_proxy.end_cart(d.key, home, m.lines, m.ttl, m.attempt,
                                                         CASE m.state WHEN 'held' THEN 'expired'
                                                                      WHEN 'holding' THEN 'undone'
                                                                      ELSE 'resolve' END, m.rest);
                        resolved := resolved + 1;
                        CONTINUE;
                    END IF;
                    PERFORM inventory_proxy.unlock_keys(home);
                EXCEPTION WHEN query_canceled THEN
                    PERFORM inventory_proxy.unlock_quietly(home);
                    RAISE;
                WHEN OTHERS THEN
                    RAISE WARNING 'inventory_proxy.resolve: cart "%": %', d.key, SQLERRM;
                    PERFORM inventory_proxy.unlock_quietly(home);
                END;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- a partition down: its carts wait for the next run
            RAISE WARNING 'inventory_proxy.resolve: partition %: %', home, SQLERRM;
        END;
    END LOOP;
    RETURN resolved;
END
$$;

-- The state of a cart or bill across shards: ok, pending (also a held
-- cart being held or confirmed), undone (also cancelled, and a held cart
-- released or expired), held (a held cart within its ttl), or NULL for a
-- key no such cart has.
CREATE FUNCTION inventory_proxy.status(key text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    m record;
BEGIN
    SELECT * INTO m
      FROM inventory_proxy.manifest_of(inventory_proxy.partition_of(key, cluster.n, cluster.modular), key);
    RETURN CASE WHEN m.state IN ('cancelled', 'released', 'expired')
                  OR (m.state = 'held' AND m.touched_at + m.ttl <= clock_timestamp()) THEN 'undone'
                WHEN m.state IN ('holding', 'confirming') THEN 'pending'
                ELSE m.state END;
END
$$;

/*
 * Undo a cart or bill across shards that has not finished (a held cart
 * too): every line released, what it sold refunded; ok.  A cart that finished answers
 * conflict (refund its lines one by one); one already undone, ok (or
 * duplicate when cancelled before).  A key no cart has is recorded
 * cancelled, so that a cart arriving late with it answers conflict
 * (not_found), as a release before its reservation does.
 */
CREATE FUNCTION inventory_proxy.cancel(key text)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    home integer := inventory_proxy.partition_of(key, cluster.n, cluster.modular);
    m record;
    status text;
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION 'key must not be null' USING ERRCODE = 'null_value_not_allowed';
    ELSIF key = '' THEN
        RAISE EXCEPTION 'key must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM inventory_proxy.check_key(key);
    BEGIN
        SELECT * INTO m FROM inventory_proxy.open_key(home, key, NULL, NULL,
                                                      clock_timestamp() + inventory_proxy.hold_ttl());
        IF m.state IS NULL THEN
            PERFORM inventory_proxy.manifest_mark(home, key, 0, 'cancelled');
            status := 'not_found';
        ELSIF m.state IN ('cancelled', 'released', 'expired') THEN
            -- let go already (a held cart released or expired stays so: a
            -- retry of it answers duplicate); what a call cut off midway
            -- left held is let go
            IF m.rest IS NOT NULL THEN
                PERFORM inventory_proxy.let_go(key, m.attempt, m.lines);
            END IF;
            status := CASE WHEN m.state = 'cancelled' THEN 'duplicate' ELSE 'ok' END;
        ELSIF m.state = 'ok' THEN
            status := 'conflict';
        ELSIF m.state = 'undone' THEN
            PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'cancelled');
            status := 'ok';
        ELSE
            -- pending, held or confirming: every line released, what was
            -- sold refunded (conflict when every line was sold: it
            -- finished meanwhile); end_cart() lets go of the lock
            RETURN inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt, 'cancelled',
                                            m.rest);
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM inventory_proxy.unlock_quietly(home);
        RAISE;
    END;
    PERFORM inventory_proxy.unlock_keys(home);
    RETURN ROW(status, NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
END
$$;

/*
 * Held carts across shards (reserve_cart).  Each line is held on its
 * partition under attempt g's derived key ("<key>#<g>.<line>") for the
 * cart's ttl plus inventory_proxy.hold_ttl, and the cart is recorded on its
 * key's home partition with its own ttl: holding while its lines are being
 * held, held once every one is.  The manifest, not the lines' expiry, is
 * the authority on the cart's (a confirm that began before the ttl finds
 * every line still held).  A confirm marks it confirming (before its ttl
 * has passed; after, it is expired) and then sells every line as a sale's
 * attempt does (attempt(), resolving: it finishes or undoes, never begins
 * another attempt), so one that dies is finished by whoever comes next: a
 * retry, or the resolver.  A release, the resolver past the ttl, and
 * cancel() release every line.  All of them take the key's lock, as a
 * sale's calls do, so the manifest moves one way.  A step settles part of
 * one line, on its shard, under the same lock; the cart is then settled in
 * parts, and settles what its lines still hold (end_parted()).
 *
 * The first round holds every line and records the manifest (holding) at
 * once, as a sale's does.  When that round did not take the lock or find
 * the manifest new (another call has the key, a retry, a call that died),
 * the call reads the manifest under the lock and goes on from it: left
 * holding by a call that died, or undone, with these lines, it holds the
 * next attempt (the dead call's holds would expire before this call's
 * ttl); otherwise it keeps what its round held of attempt 0 (another call
 * may count those holds as the cart's) and lets go of the rest.  The call that
 * marks the cart held answers ok; a retry of a cart held, confirmed,
 * released or expired, duplicate; a line short, its outcome (insufficient
 * or not_found), with every line released (a retry tries the next
 * attempt); conflict when the key was released or cancelled before the
 * cart arrived; 23505 for another cart's key.
 */
CREATE FUNCTION inventory_proxy.hold_cart(key text, home integer, skus text[], locations text[],
                                          deltas bigint[], ttl interval)
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    -- the ttl in seconds: equal intervals ('1 day', '24 hours') are one cart
    lines jsonb := inventory_proxy.manifest_lines(skus, locations, deltas)
                   || jsonb_build_object('ttl', extract(epoch FROM ttl));
    n integer := cardinality(skus);
    every integer[] := ARRAY(SELECT generate_series(1, cardinality(skus)));
    qtys bigint[] := ARRAY(SELECT abs(d) FROM unnest(deltas) d);
    -- the cart's ttl and its lines', which outlive it by hold_ttl, counted
    -- in seconds as the manifest counts them (no calendar day or month,
    -- which a shard's time zone would make shorter or longer)
    cart_ttl interval := make_interval(secs => extract(epoch FROM ttl));
    hold_for interval := make_interval(secs => extract(epoch FROM ttl)
                                               + extract(epoch FROM inventory_proxy.hold_ttl()));
    keys text[] := ARRAY(SELECT format('%s#0.%s', key, i) FROM generate_series(1, n) i);
    g integer := 0;
    outs inventory.outcome[];
    opened text;
    fresh integer[];
    m record;
    states text[];
    held integer;
    refused integer;
BEGIN
    SELECT r.outs, r.opened INTO outs, opened
      FROM inventory_proxy.first_round(key, home, keys, skus, qtys, locations, hold_for, lines) r;
    BEGIN
        IF opened IS DISTINCT FROM 'ok' OR array_position(outs, NULL) IS NOT NULL THEN
            fresh := ARRAY(SELECT i FROM generate_subscripts(outs, 1) i
                            WHERE (outs[i]).status = 'ok' ORDER BY i);
            outs := NULL;
            SELECT * INTO m FROM inventory_proxy.open_key(home, key, lines, cart_ttl,
                                                          clock_timestamp() + inventory_proxy.hold_ttl());
            IF NOT inventory_proxy.counted(m.lines, m.attempt, m.state) THEN
                -- the round's holds belong to no attempt of a cart (a
                -- holding one's are let go below)
                PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, fresh, 'release');
            END IF;
            IF m.state = 'cancelled' OR (m.lines = lines AND m.state NOT IN ('holding', 'undone')) THEN
                PERFORM inventory_proxy.unlock_keys(home);
                RETURN ROW(CASE m.state WHEN 'cancelled' THEN 'conflict' ELSE 'duplicate' END,
                           NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
            END IF;
            IF m.lines <> lines THEN
                PERFORM inventory_proxy.key_reused(key);
            END IF;
            g := m.attempt;
            IF m.state = 'holding' THEN
                -- left by a call that died: its holds would end earlier
                -- than this call's ttl says, so they are let go, and the
                -- cart is held anew under the next attempt's keys
                PERFORM inventory_proxy.undo(
                    ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_series(1, n) i),
                    skus, qtys, locations, every);
                g := g + 1;
            END IF;
            -- holding from now (a new attempt, or one after a refusal)
            PERFORM inventory_proxy.manifest_mark(home, key, g, 'holding');
        END IF;
        FOR tries IN 1 .. 100 LOOP
            IF outs IS NULL THEN
                keys := ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_series(1, n) i);
                outs := inventory_proxy.hold_lines(keys, skus, qtys, locations, every, hold_for);
            END IF;
            -- a line held before (by a call that died, or by another call
            -- with the key and another ttl) counts only if it outlives the
            -- cart; if not, the attempt is spent
            states := inventory_proxy.line_states(keys, skus, every, outs, clock_timestamp() + cart_ttl);
            SELECT count(*) FILTER (WHERE (outs[i]).status = 'ok'
                                       OR ((outs[i]).status = 'duplicate' AND states[i] = 'held')),
                   min(i) FILTER (WHERE (outs[i]).status NOT IN ('ok', 'duplicate', 'conflict'))
              INTO held, refused
              FROM generate_subscripts(outs, 1) i;
            IF held = n THEN
                PERFORM inventory_proxy.manifest_mark(home, key, g, 'held', true);
                RETURN ROW('ok', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
            END IF;
            IF refused IS NOT NULL AND NOT EXISTS (
                   SELECT FROM unnest(outs) o WHERE o.status IN ('ok', 'duplicate', 'conflict')) THEN
                -- nothing held: the key stays unused (at attempt 0), or the
                -- refused attempt may be tried again
                PERFORM inventory_proxy.manifest_mark(home, key, g, CASE WHEN g > 0 THEN 'undone' END, true);
                RETURN outs[refused];
            END IF;
            -- a line refused after others were held: attempt g is given up,
            -- and a retry tries the next; a line of it spent (expired,
            -- released by an undo that did not finish, or held too short):
            -- the next attempt
            PERFORM inventory_proxy.undo(keys, skus, qtys, locations, every);
            IF refused IS NOT NULL THEN
                PERFORM inventory_proxy.manifest_mark(home, key, g + 1, 'undone', true);
                RETURN outs[refused];
            END IF;
            g := g + 1;
            PERFORM inventory_proxy.manifest_mark(home, key, g, 'holding');
            outs := NULL;
        END LOOP;
        RAISE EXCEPTION 'key "%" was refused too often across shards', key
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Use a new key for this order.';
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM inventory_proxy.unlock_quietly(home);
        RAISE;
    END;
END
$$;

/*
 * End attempt g of a cart across shards as its manifest records it, under
 * the key's lock, and let go of the lock with the last mark.  how:
 * resolve finishes it if every line can be sold, else undoes it (attempt(),
 * resolving: a sale ends undone, a held cart expired); any other state
 * (released, expired, cancelled) releases every line, refunds what was sold,
 * and marks the cart so: ok, or conflict when every line had been sold
 * (the cart is marked ok).  A held cart settled in parts (rest not NULL)
 * ends by end_parted().
 */
CREATE FUNCTION inventory_proxy.end_cart(key text, home integer, lines jsonb, ttl interval,
                                         g integer, how text, rest bigint[])
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    skus text[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'skus'));
    locations text[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'locations'));
    deltas bigint[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'deltas')::bigint);
    held boolean := lines ? 'ttl';
BEGIN
    IF rest IS NOT NULL THEN
        RETURN inventory_proxy.end_parted(key, home, lines, g, rest, how);
    END IF;
    IF how = 'resolve' THEN
        RETURN inventory_proxy.attempt(
            key, home, skus, locations, deltas,
            ttl + CASE WHEN held THEN inventory_proxy.hold_ttl() ELSE interval '0' END,
            g, true, NULL, CASE WHEN held THEN 'expired' ELSE 'undone' END);
    END IF;
    IF inventory_proxy.undo(ARRAY(SELECT format('%s#%s.%s', key, g, i)
                                    FROM generate_subscripts(skus, 1) i),
                            skus, ARRAY(SELECT abs(d) FROM unnest(deltas) d), locations,
                            ARRAY(SELECT i FROM generate_subscripts(deltas, 1) i WHERE deltas[i] < 0)) THEN
        PERFORM inventory_proxy.manifest_mark(home, key, g + 1, how, true);
        RETURN ROW('ok', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
    END IF;
    -- every line sold: it finished meanwhile
    PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true);
    RETURN ROW('conflict', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
END
$$;

/*
 * A held cart across shards settled in parts: a step (settle_cart) was
 * sent to one of its lines, so its lines no longer hold what the cart was
 * held with, and a whole confirm, release or expiry settles what each line
 * still holds (never what a step settled).  A confirm records in the
 * manifest (rest) the units each line held when it began, and sells them
 * as a step of each line ("<line key>~rest"), so that a retry or the
 * resolver finishes it, and an undo refunds exactly what it sold: when a
 * line's hold ran out before its confirm (the confirm stalled longer than
 * inventory_proxy.hold_ttl past the cart's ttl), every line is released
 * and what the confirm sold refunded, and the cart is expired (a confirm
 * that sold every line is complete: conflict, and the cart is ok).  A
 * line that holds less than the confirm read, and did not run out, was
 * settled in part by a step that went on after its call lost the key's
 * lock (its proxy died): what it holds then is sold instead (one that
 * holds nothing may have been let go whole: the confirm is undone).  A
 * release, the expiry or cancel() marks the cart before it lets go of any
 * line, so that no confirm begins once one is let go.  how: as
 * end_cart()'s; the lock goes with the last mark.  A release, the expiry
 * and cancel() of a cart whose confirm had not begun only release: ok;
 * when nothing was held any more, conflict (the cart is ok) if steps sold
 * all of it, else expired if some ran out on its shard, conflict if steps
 * sold some, duplicate if they released it all.  A cart let go records in
 * rest what steps sold of each line: once released or cancelled, a later
 * confirm answers expired, a release duplicate, as one reservation (but
 * duplicate and conflict when steps had settled every unit and sold some;
 * once expired: expired).
 */
CREATE FUNCTION inventory_proxy.end_parted(key text, home integer, lines jsonb, g integer,
                                           rest bigint[], how text)
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    skus text[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'skus'));
    locations text[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'locations'));
    keys text[] := ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_subscripts(skus, 1) i);
    every integer[] := ARRAY(SELECT generate_subscripts(skus, 1));
    qtys bigint[] := array_fill(0::bigint, ARRAY[cardinality(skus)]);
    sold integer[] := ARRAY(SELECT i FROM generate_subscripts(rest, 1) i WHERE rest[i] > 0);
    answers text[];
    u record;
BEGIN
    IF cardinality(rest) > 0 THEN
        qtys := rest;
    END IF;
    IF how = 'resolve' THEN
        FOR tries IN 1 .. 10 LOOP
            answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, sold, 'sell');
            IF NOT EXISTS (SELECT FROM unnest(answers) a WHERE a NOT IN ('ok', 'duplicate')) THEN
                PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true);
                RETURN ROW('ok', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
            END IF;
            EXIT WHEN EXISTS (SELECT FROM unnest(answers) a
                               WHERE a NOT IN ('ok', 'duplicate', 'insufficient'));
            -- a line holds less than this confirm read, and still some: a
            -- step that went on after its call lost the key's lock (its
            -- proxy gone) settled part of it, and what it holds now is
            -- sold.  A line that holds nothing any more may have been let
            -- go whole (a release that went on so): the confirm is undone.
            u := inventory_proxy.units(keys, skus);
            EXIT WHEN EXISTS (SELECT FROM generate_subscripts(sold, 1) n
                               WHERE answers[n] = 'insufficient' AND u.held[sold[n]] = 0);
            qtys := ARRAY(SELECT CASE WHEN answers[array_position(sold, i)] = 'insufficient'
                                      THEN u.held[i] ELSE qtys[i] END
                            FROM generate_subscripts(qtys, 1) i ORDER BY i);
            PERFORM inventory_proxy.manifest_mark(home, key, g, 'confirming', false, qtys);
            sold := ARRAY(SELECT i FROM generate_subscripts(qtys, 1) i WHERE qtys[i] > 0);
        END LOOP;
        how := 'expired';
    END IF;
    IF cardinality(sold) = 0 THEN
        -- no confirm began: what the lines hold let go; the manifest
        -- records (rest) what steps sold of each line, for later answers
        u := inventory_proxy.units(keys, skus);
        IF EXISTS (SELECT FROM unnest(u.held) h WHERE h > 0) THEN
            -- marked first: once a line is let go, no confirm may begin
            -- (it would sell the others), even if this call dies midway
            -- (what its lines still hold is let go by the next call with
            -- the key, or by their own expiry)
            PERFORM inventory_proxy.manifest_mark(home, key, g, how, false, u.sold);
            PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, every, 'release');
            PERFORM inventory_proxy.unlock_keys(home);
            RETURN ROW(CASE WHEN how = 'expired' THEN 'expired' ELSE 'ok' END,
                       NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;
        -- nothing was held: every unit was settled by steps, or ran out
        -- on its shard.  Every unit sold: the cart is ok (conflict); else
        -- expired when some ran out (never duplicate: the cart was not
        -- sold whole), conflict when steps sold some and released the
        -- rest, else duplicate (released by steps)
        IF NOT EXISTS (SELECT FROM generate_subscripts(skus, 1) i
                        WHERE u.sold[i] <> abs((lines -> 'deltas' ->> (i - 1))::bigint)) THEN
            PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true, u.sold);
            RETURN ROW('conflict', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;
        PERFORM inventory_proxy.manifest_mark(
            home, key, g,
            CASE WHEN how = 'cancelled' THEN how
                 WHEN EXISTS (SELECT FROM unnest(u.lapsed) q WHERE q > 0) THEN 'expired'
                 ELSE 'released' END,
            true, u.sold);
        RETURN ROW(CASE WHEN EXISTS (SELECT FROM unnest(u.lapsed) q WHERE q > 0) THEN 'expired'
                        WHEN EXISTS (SELECT FROM unnest(u.sold) q WHERE q > 0) THEN 'conflict'
                        ELSE 'duplicate' END,
                   NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
    END IF;
    -- undo the confirm: every line released; the lines it sold, whose
    -- step answers duplicate now that nothing is held (one it did not
    -- make is refused, and changes nothing), refunded, unless it sold
    -- every line (it is complete: conflict, and the cart is ok, as a
    -- sale's attempt)
    PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, every, 'release');
    answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, sold, 'sell');
    IF NOT EXISTS (SELECT FROM unnest(answers) a WHERE a <> 'duplicate') THEN
        PERFORM inventory_proxy.manifest_mark(home, key, g, 'ok', true);
        RETURN ROW('conflict', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
    END IF;
    IF EXISTS (SELECT FROM unnest(inventory_proxy.settle_lines(
                                      keys, skus, qtys, locations,
                                      ARRAY(SELECT sold[n] FROM generate_subscripts(sold, 1) n
                                             WHERE answers[n] = 'duplicate'),
                                      'refund')) a
                WHERE a NOT IN ('ok', 'duplicate')) THEN
        RAISE EXCEPTION 'a sold line of a cart across shards could not be refunded'
            USING ERRCODE = 'internal_error',
                  HINT = 'Check the refunds of the keys ending in "~undo" on the shards.';
    END IF;
    -- what steps sold of each line (its sold parts, less what this
    -- confirm sold and refunded), for later answers
    u := inventory_proxy.units(keys, skus);
    PERFORM inventory_proxy.manifest_mark(
        home, key, g, how, true,
        ARRAY(SELECT u.sold[i] - CASE WHEN answers[array_position(sold, i)] = 'duplicate'
                                      THEN qtys[i] ELSE 0 END
                FROM generate_subscripts(qtys, 1) i ORDER BY i));
    RETURN ROW(CASE WHEN how = 'expired' THEN 'expired' ELSE 'ok' END,
               NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
END
$$;

-- What the reservations of keys hold, sold and let expire (units), and
-- what a whole release let go (not a step), read on their partitions.
CREATE FUNCTION inventory_proxy.line_units(keys text[], skus text[])
RETURNS TABLE (key text, held bigint, sold bigint, lapsed bigint, let_go bigint) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus;
    RUN ON inventory_proxy.route(skus);
    SELECT r.key, COALESCE(sum(r.qty) FILTER (WHERE r.state = 'held'), 0)::bigint AS held,
           COALESCE(sum(r.qty) FILTER (WHERE r.state = 'confirmed'), 0)::bigint AS sold,
           COALESCE(sum(r.qty) FILTER (WHERE r.state = 'expired'), 0)::bigint AS lapsed,
           COALESCE(sum(r.qty) FILTER (WHERE r.state = 'released' AND r.step IS NULL), 0)::bigint
               AS let_go
      FROM inventory.reservation r
     WHERE r.key = ANY (keys)
     GROUP BY r.key;
$$ LANGUAGE plproxy;

-- line_units() in line order (0 for a key with no reservation).
CREATE FUNCTION inventory_proxy.units(keys text[], skus text[], OUT held bigint[], OUT sold bigint[],
                                      OUT lapsed bigint[], OUT let_go bigint[])
LANGUAGE sql AS $$
    SELECT array_agg(COALESCE(u.held, 0) ORDER BY t.i), array_agg(COALESCE(u.sold, 0) ORDER BY t.i),
           array_agg(COALESCE(u.lapsed, 0) ORDER BY t.i), array_agg(COALESCE(u.let_go, 0) ORDER BY t.i)
      FROM unnest(keys) WITH ORDINALITY t(k, i)
           LEFT JOIN inventory_proxy.line_units(keys, skus) u ON u.key = t.k
$$;

-- Let go of what the lines of a held cart settled in parts still hold,
-- once it was released, expired or cancelled (by a call that may have died
-- before it let go of every line).
CREATE FUNCTION inventory_proxy.let_go(key text, g integer, lines jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    skus text[] := ARRAY(SELECT jsonb_array_elements_text(lines -> 'skus'));
BEGIN
    PERFORM inventory_proxy.settle_lines(
        ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_subscripts(skus, 1) i),
        skus, array_fill(0::bigint, ARRAY[cardinality(skus)]),
        ARRAY(SELECT jsonb_array_elements_text(lines -> 'locations')),
        ARRAY(SELECT generate_subscripts(skus, 1)), 'release');
END
$$;

/*
 * A confirm or release of a held cart across shards, for a key no
 * partition knows (its lines are held under derived keys); NULL when the
 * key has no such cart, and then a whole release records it cancelled on
 * its home partition, so that a late cart across shards (held or sold)
 * answers conflict, as a late reserve does after its release's tombstone
 * (also a release of a cart not held yet, or refused: not_found).  The
 * statuses are those of one reservation: a whole confirm ok, duplicate
 * (confirmed before), expired (past its ttl, or released: every line is
 * let go); a whole release ok, duplicate, conflict (confirmed, or being
 * confirmed), expired; not_found for a cart not held yet, or refused
 * (nothing held), and for a sku that is none of its lines.
 *
 * A step (qty units of the line of sku, under the key step) goes to that
 * line's partition under the line's key, and answers as a step of one
 * reservation does; the manifest records first that the cart is settled
 * in parts (end_parted() says what that changes).  A step on a cart being
 * confirmed finishes that confirm first; one past the cart's ttl expires
 * it.  A sku on several lines of the cart cannot be named by a step
 * (0A000).
 */
CREATE FUNCTION inventory_proxy.settle_cart(key text, qty bigint, step text, sku text,
                                            confirm boolean)
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    home integer;
    m record;
    skus text[];
    line integer;
    keys text[];
    u record;
    past boolean;
    lapsed boolean := false;
    status text;
    result inventory.outcome;
BEGIN
    IF NOT inventory_proxy.good_name(key) OR octet_length(key) > 232 THEN
        RETURN NULL;        -- no cart across shards has such a key
    END IF;
    home := inventory_proxy.partition_of(key, cluster.n, cluster.modular);
    BEGIN
        SELECT * INTO m FROM inventory_proxy.open_key(home, key, NULL, NULL,
                                                      clock_timestamp() + inventory_proxy.hold_ttl());
        IF m.state IS NOT NULL AND m.lines ? 'ttl' THEN
            skus := ARRAY(SELECT jsonb_array_elements_text(m.lines -> 'skus'));
            line := array_position(skus, sku);
            keys := ARRAY(SELECT format('%s#%s.%s', key, m.attempt, i)
                            FROM generate_subscripts(skus, 1) i);
            past := m.state = 'held' AND m.touched_at + m.ttl <= clock_timestamp();
        END IF;
        IF m.state IS NULL OR NOT m.lines ? 'ttl' THEN
            IF m.state IS NULL AND NOT confirm AND qty IS NULL THEN
                PERFORM inventory_proxy.manifest_mark(home, key, 0, 'cancelled');
            END IF;
        ELSIF qty IS NOT NULL AND sku IS NULL THEN
            RAISE EXCEPTION 'sku must be given: reservation "%" holds several skus', key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Name the line to %s with sku => ...',
                                    CASE WHEN confirm THEN 'confirm' ELSE 'release' END);
        ELSIF m.state IN ('holding', 'undone') OR (sku IS NOT NULL AND line IS NULL) THEN
            IF m.state IN ('holding', 'undone') AND NOT confirm AND qty IS NULL THEN
                -- a release before the cart was held (or after it was
                -- refused): what its lines hold let go, and the key cancelled
                IF m.state = 'holding' THEN
                    PERFORM inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt,
                                                     'cancelled', m.rest);
                ELSE
                    PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'cancelled', true);
                END IF;
                RETURN ROW('not_found', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
            END IF;
            status := 'not_found';
        ELSIF qty IS NOT NULL AND array_position(skus, sku, line + 1) IS NOT NULL THEN
            RAISE EXCEPTION 'sku "%" is on several lines of held cart "%" across shards', sku, key
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Settle the cart whole, or hold a sku in one line of a cart to settle it in parts.';
        ELSIF qty IS NOT NULL THEN
            IF m.state = 'held' AND past THEN
                -- (units let go: ok, or expired from end_parted())
                lapsed := (inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt, 'expired',
                                                    m.rest)).status IN ('ok', 'expired');
            ELSIF m.state = 'confirming' THEN
                lapsed := (inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt, 'resolve',
                                                    m.rest)).status = 'expired';
            ELSIF m.state = 'held' AND m.rest IS NULL THEN
                -- the first step: every line must hold what the cart was
                -- held with (a release or cancel() cut off midway let some
                -- go before it marked the cart; a line may run out on a
                -- shard whose clock is ahead): if not, the cart is let go
                u := inventory_proxy.units(keys, skus);
                IF EXISTS (SELECT FROM generate_subscripts(skus, 1) i
                            WHERE u.held[i] <> abs((m.lines -> 'deltas' ->> (i - 1))::bigint)) THEN
                    lapsed := EXISTS (SELECT FROM unnest(u.lapsed) q WHERE q > 0);
                    PERFORM inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt,
                                                     CASE WHEN lapsed THEN 'expired' ELSE 'released' END,
                                                     NULL);
                ELSE
                    PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'held', false, '{}');
                END IF;
            ELSIF m.rest IS NOT NULL AND m.state IN ('released', 'expired', 'cancelled') THEN
                PERFORM inventory_proxy.let_go(key, m.attempt, m.lines);
            END IF;
            IF m.rest IS NULL AND m.state IN ('released', 'expired', 'cancelled') THEN
                -- never settled in parts, and let go (its lines under the
                -- keys of the attempt before the one recorded)
                result := ROW(CASE WHEN m.state = 'expired' THEN 'expired' ELSE 'insufficient' END,
                              CASE WHEN m.state = 'expired' THEN NULL ELSE 0 END,
                              sku, NULL::text)::inventory.outcome;
            ELSE
                -- under the key's lock (a whole confirm must find the
                -- lines as they are); once the cart is ok, released or
                -- expired, its lines answer as reservations settled so,
                -- and a step's retry as a duplicate
                result := inventory_proxy.settle_on(sku, keys[line], qty, step, confirm);
                IF (lapsed OR m.state = 'expired') AND result.status <> 'duplicate' THEN
                    result := ROW('expired', NULL::bigint, sku, NULL::text)::inventory.outcome;
                END IF;
            END IF;
        ELSIF m.state = 'held' THEN
            IF confirm AND NOT past AND m.rest IS NULL THEN
                PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'confirming');
                RETURN inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt, 'resolve', NULL);
            ELSIF confirm AND NOT past THEN
                -- settled in parts: what each line still holds is sold,
                -- unless a line ran out on its shard (its clock ahead):
                -- then the cart is expired
                u := inventory_proxy.units(keys, skus);
                past := EXISTS (SELECT FROM unnest(u.lapsed) q WHERE q > 0);
                IF NOT past AND EXISTS (SELECT FROM unnest(u.held) h WHERE h > 0) THEN
                    PERFORM inventory_proxy.manifest_mark(home, key, m.attempt, 'confirming',
                                                         false, u.held);
                    RETURN inventory_proxy.end_parted(key, home, m.lines, m.attempt, u.held, 'resolve');
                END IF;
            END IF;
            -- a release, the ttl passed, or a cart settled in parts with
            -- nothing held: every line let go; the statuses of one
            -- reservation, whose every unit was sold (the cart is ok:
            -- conflict), or released by steps (duplicate)
            result := inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt,
                                               CASE WHEN past THEN 'expired' ELSE 'released' END, m.rest);
            RETURN ROW(CASE result.status
                       WHEN 'conflict' THEN CASE WHEN confirm THEN 'duplicate' ELSE 'conflict' END
                       WHEN 'duplicate' THEN CASE WHEN confirm THEN 'expired' ELSE 'duplicate' END
                       WHEN 'ok' THEN CASE WHEN past THEN 'expired' ELSE 'ok' END
                       ELSE 'expired' END,
                       NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        ELSIF m.state = 'confirming' AND confirm THEN
            RETURN inventory_proxy.end_cart(key, home, m.lines, m.ttl, m.attempt, 'resolve', m.rest);
        ELSE
            IF m.rest IS NOT NULL AND m.state IN ('released', 'expired', 'cancelled') THEN
                PERFORM inventory_proxy.let_go(key, m.attempt, m.lines);
            END IF;
            IF m.state IN ('released', 'cancelled') AND EXISTS (SELECT FROM unnest(m.rest) q WHERE q > 0) THEN
                -- settled in parts, steps sold some: as one reservation,
                -- from what the whole release (or cancel()) let go of the
                -- units steps left (or what expired, after a release that
                -- died), or, when steps had settled them all, as one whose
                -- steps sold units
                u := inventory_proxy.units(keys, skus);
                IF NOT EXISTS (SELECT FROM unnest(u.let_go || u.lapsed) q WHERE q > 0) THEN
                    status := CASE WHEN confirm THEN 'duplicate' ELSE 'conflict' END;
                END IF;
            END IF;
            status := CASE WHEN status IS NOT NULL THEN status
                           WHEN m.state = 'expired' THEN 'expired'
                           WHEN m.state = 'ok' AND confirm THEN 'duplicate'
                           WHEN m.state IN ('ok', 'confirming') THEN 'conflict'
                           WHEN confirm THEN 'expired'          -- released or cancelled
                           ELSE 'duplicate' END;
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM inventory_proxy.unlock_quietly(home);
        RAISE;
    END;
    PERFORM inventory_proxy.unlock_keys(home);
    RETURN CASE WHEN result.status IS NOT NULL THEN result
                WHEN status IS NOT NULL
                THEN ROW(status, NULL::bigint, NULL::text, NULL::text)::inventory.outcome END;
END
$$;

REVOKE ALL ON FUNCTION inventory_proxy.manifest_open(integer, text, jsonb, interval),
                       inventory_proxy.manifest_of(integer, text),
                       inventory_proxy.manifest_mark(integer, text, integer, text, boolean, bigint[]),
                       inventory_proxy.manifests_due(integer),
                       inventory_proxy.manifest_lines(text[], text[], bigint[]),
                       inventory_proxy.attempt(text, integer, text[], text[], bigint[], interval, integer, boolean, inventory.outcome[], text),
                       inventory_proxy.cart_step(text[], text[], bigint[], text[], text[], interval, jsonb),
                       inventory_proxy.close_home(text, integer, text[], text[], bigint[], text[], integer[]),
                       inventory_proxy.unlock_quietly(integer),
                       inventory_proxy.open_key(integer, text, jsonb, interval, timestamptz),
                       inventory_proxy.hold_lines(text[], text[], bigint[], text[], integer[], interval),
                       inventory_proxy.hold_states(text[], text[], timestamptz),
                       inventory_proxy.line_states(text[], text[], integer[], inventory.outcome[], timestamptz),
                       inventory_proxy.first_round(text, integer, text[], text[], bigint[], text[], interval, jsonb),
                       inventory_proxy.hold_cart(text, integer, text[], text[], bigint[], interval),
                       inventory_proxy.counted(jsonb, integer, text),
                       inventory_proxy.key_reused(text),
                       inventory_proxy.end_cart(text, integer, jsonb, interval, integer, text, bigint[]),
                       inventory_proxy.end_parted(text, integer, jsonb, integer, bigint[], text),
                       inventory_proxy.line_units(text[], text[]),
                       inventory_proxy.units(text[], text[]),
                       inventory_proxy.let_go(text, integer, jsonb),
                       inventory_proxy.settle_cart(text, bigint, text, text, boolean),
                       inventory_proxy.refuse_held_cart(text[], bigint[], text, interval, text[]),
                       inventory_proxy.cart(text, text[], bigint[], text, text[], interval),
                       inventory_proxy.resolve(),
                       inventory_proxy.status(text),
                       inventory_proxy.cancel(text)
  FROM PUBLIC;

-- What every object is for (psql \df+, \d+, \dT+).
-- them; it creates no table and no sequence)

-- schemas
COMMENT ON SCHEMA inventory_proxy IS 'Internal: helper functions of inventory_proxy that route the inventory calls to the partitions of the PL/Proxy cluster inventory_shards and coordinate carts and bills across them; not for direct use.';

-- types
COMMENT ON TYPE inventory.outcome IS 'The result of every mutating call, as on a shard: a status (ok, duplicate, insufficient, not_found, expired, conflict or busy), the units available at the row after the call, and the stock row it is about. Business outcomes such as sold out are statuses, never errors.';
COMMENT ON COLUMN inventory.outcome.status IS 'The call''s status: ok, duplicate, insufficient, not_found, expired, conflict or busy; only ok changes anything.';
COMMENT ON COLUMN inventory.outcome.available IS 'Units available at the stock row after the call; NULL when there is no row, and for a cart that went through.';
COMMENT ON COLUMN inventory.outcome.sku IS 'SKU of the stock row the outcome is about (for a cart, the line that failed it); NULL when unknown.';
COMMENT ON COLUMN inventory.outcome.location IS 'Location of the stock row the outcome is about; NULL when unknown or when the units came from several locations.';

-- views
COMMENT ON VIEW inventory.stock_levels IS 'Per stock row of every partition (read through inventory_proxy.stock_levels_all): the merged counters, what unmerged hot-row movements take (pending), and the units available now.';
COMMENT ON COLUMN inventory.stock_levels.sku IS 'SKU of the stock row.';
COMMENT ON COLUMN inventory.stock_levels.location IS 'Location of the stock row.';
COMMENT ON COLUMN inventory.stock_levels.on_hand IS 'Units physically held, as merged into the stock row.';
COMMENT ON COLUMN inventory.stock_levels.reserved IS 'Units held by open reservations, as merged into the stock row.';
COMMENT ON COLUMN inventory.stock_levels.pending IS 'Units that unmerged hot-row movements take from available; negative when they return more than they take.';
COMMENT ON COLUMN inventory.stock_levels.available IS 'Units available now: on_hand - reserved - pending, with overdue held reservations counted as available.';
COMMENT ON COLUMN inventory.stock_levels.hot IS 'Whether the row goes through the hot path.';

COMMENT ON VIEW inventory.availability IS 'Per SKU, the figures of inventory.stock_levels summed over all its locations (a SKU''s locations all live on one partition).';
COMMENT ON COLUMN inventory.availability.sku IS 'The SKU.';
COMMENT ON COLUMN inventory.availability.locations IS 'Number of locations with a stock row of the SKU.';
COMMENT ON COLUMN inventory.availability.on_hand IS 'Units physically held over all locations, as merged.';
COMMENT ON COLUMN inventory.availability.reserved IS 'Units held by open reservations over all locations, as merged.';
COMMENT ON COLUMN inventory.availability.pending IS 'Units that unmerged hot-row movements take from available, over all locations.';
COMMENT ON COLUMN inventory.availability.available IS 'Units available now over all locations.';

COMMENT ON VIEW inventory.locations IS 'Every location with its allocation rule, as the partitions list it (set_location sets every partition alike): the configured ones, and every location that holds stock.';
COMMENT ON COLUMN inventory.locations.location IS 'The location''s name.';
COMMENT ON COLUMN inventory.locations.priority IS 'Allocation priority (higher first); 0 when not configured.';
COMMENT ON COLUMN inventory.locations.active IS 'Whether the location may be allocated from; true when not configured.';

-- functions
COMMENT ON FUNCTION inventory_proxy.shards() IS 'Internal: returns the partition count of the PL/Proxy cluster inventory_shards and whether it maps by modulus (modular_mapping); raises 55000 when the server lists no partitions.';
COMMENT ON FUNCTION inventory_proxy.route(text) IS 'Internal: returns the hash PL/Proxy routes a sku by (hashtext of the sku; a NULL sku goes somewhere, to be refused there).';
COMMENT ON FUNCTION inventory_proxy.partition_of(text, integer, boolean) IS 'Internal: returns the partition a sku maps to among n partitions, as PL/Proxy maps route(sku): by bit mask, or by modulus when modular.';
COMMENT ON FUNCTION inventory_proxy.pick(anyarray, integer[]) IS 'Internal: returns the elements of an array at the positions given, in their order.';
COMMENT ON FUNCTION inventory_proxy.hold_ttl() IS 'Internal: returns how long a cross-shard cart''s holds last if nobody finishes it: the setting inventory_proxy.hold_ttl, default 1 minute.';
COMMENT ON FUNCTION inventory.deduct(text, bigint, text, text, boolean) IS 'Runs inventory.deduct on the shard that owns sku: takes qty units at location now, applied at most once per key (nowait => true answers busy instead of queueing). Returns the shard''s outcome: ok, duplicate, insufficient, not_found or busy.';
COMMENT ON FUNCTION inventory.reserve(text, bigint, text, interval, text) IS 'Runs inventory.reserve on the shard that owns sku: holds qty units at location until now + ttl, applied at most once per key. Returns the shard''s outcome: ok, duplicate, insufficient, not_found, or conflict when the key was released before it arrived.';
COMMENT ON FUNCTION inventory.available(text, text) IS 'Runs inventory.available on the shard that owns sku: returns the units available now at one location, or over all its locations when location is NULL; NULL for an unknown sku.';
COMMENT ON FUNCTION inventory.restock(text, bigint, text, text) IS 'Runs inventory.restock on the shard that owns sku: adds qty units at location, creating the stock row if absent, applied at most once per key. Returns the shard''s outcome: ok or duplicate.';
COMMENT ON FUNCTION inventory.adjust(text, bigint, text, text) IS 'Runs inventory.adjust on the shard that owns sku: a stocktake that sets on_hand of an existing row to the counted figure. Returns the shard''s outcome: ok, duplicate, conflict if the count is below reserved, or not_found for an unknown row.';
COMMENT ON FUNCTION inventory.set_hot(text, boolean, text) IS 'Runs inventory.set_hot on the shard that owns sku: routes the row through the hot path or back and pins it (hot => NULL hands it back to the automatic rule). Returns the shard''s outcome: ok, or not_found for an unknown row.';
COMMENT ON FUNCTION inventory.deduct_any(text, bigint, text, text[], text) IS 'Runs inventory.deduct_any on the shard that owns sku: takes qty units from one or several candidate locations, all or nothing, by strategy. Returns the shard''s outcome: ok, duplicate, insufficient or not_found.';
COMMENT ON FUNCTION inventory.reserve_any(text, bigint, text, interval, text[], text) IS 'Runs inventory.reserve_any on the shard that owns sku: holds qty units at one or several candidate locations, all or nothing. Returns the shard''s outcome: ok, duplicate, insufficient, not_found, or conflict when the key was released before it arrived.';
COMMENT ON FUNCTION inventory_proxy.deduct_cart(integer, text[], bigint[], text, text[]) IS 'Internal: runs inventory.deduct_cart on the partition numbered part, for a cart whose skus all live there; returns its outcome.';
COMMENT ON FUNCTION inventory_proxy.deduct_cart_any(integer, text[], bigint[], text, text[]) IS 'Internal: runs inventory.deduct_cart_any on the partition numbered part, for a cart whose skus all live there; returns its outcome.';
COMMENT ON FUNCTION inventory_proxy.apply_bills(integer, jsonb) IS 'Internal: runs inventory.apply_bills on the partition numbered part with a document of bills that live there; returns (key, status) per bill in order.';
COMMENT ON FUNCTION inventory_proxy.refuse_cart(text[], bigint[], text, text[], text) IS 'Internal: sends a cart the proxy would not split to partition 0 in a statement that can only fail, so the caller gets the shard''s own error.';
COMMENT ON FUNCTION inventory_proxy.refuse_bills(jsonb) IS 'Internal: sends a bills document the proxy would not split to partition 0 in a statement that can only fail, so the caller gets the shard''s own error.';
COMMENT ON FUNCTION inventory_proxy.confirm_all(text) IS 'Internal: runs inventory.confirm(key) on every partition; returns each partition''s outcome.';
COMMENT ON FUNCTION inventory_proxy.release_all(text) IS 'Internal: runs inventory.release(key) on every partition, so each keeps the tombstone of a key nobody recorded; returns each partition''s outcome.';
COMMENT ON FUNCTION inventory_proxy.release_on(text, text) IS 'Internal: runs inventory.release(key) on the partition that owns sku; returns its outcome.';
COMMENT ON FUNCTION inventory_proxy.refund_all(text, bigint, text) IS 'Internal: runs inventory.refund on every partition; returns each partition''s outcome.';
COMMENT ON FUNCTION inventory_proxy.key_sku(text) IS 'Internal: returns the sku of the call a key recorded (other than a release tombstone), from the partition that has it.';
COMMENT ON FUNCTION inventory_proxy.answer(inventory.outcome[]) IS 'Internal: returns, of the outcomes of every partition, the answer of the partition that knew the key (not_found if none did).';
COMMENT ON FUNCTION inventory_proxy.allocation_all(text) IS 'Internal: runs inventory.allocation(key) on every partition; returns their (sku, location, qty) rows.';
COMMENT ON FUNCTION inventory.allocation(text) IS 'Returns where the units of an applied deducting or reserving call came from, one (sku, location, qty) row per part, asked of every partition; empty for an unknown key, and for the key of a cart across shards.';
COMMENT ON FUNCTION inventory_proxy.set_location_all(text, integer, boolean) IS 'Internal: runs inventory.set_location on every partition; returns one row per partition.';
COMMENT ON FUNCTION inventory.set_location(text, integer, boolean) IS 'Sets a location''s allocation priority (higher first) and whether it may be allocated from, on every partition. Returns nothing.';
COMMENT ON FUNCTION inventory_proxy.counts(text) IS 'Internal: runs inventory.merge() or inventory.expire() (what = ''merge'' or ''expire'') on every partition; returns each partition''s count.';
COMMENT ON FUNCTION inventory.merge() IS 'Folds every queued hot-row movement into its stock row now, on every partition. Returns how many queue rows were folded in all.';
COMMENT ON FUNCTION inventory.expire() IS 'Releases every held reservation past its expires_at now, on every partition. Returns how many were released in all.';
COMMENT ON FUNCTION inventory_proxy.archive_all(timestamptz) IS 'Internal: runs inventory.archive(before) on every partition; returns each partition''s count.';
COMMENT ON FUNCTION inventory.archive(timestamptz) IS 'Archives the history older than before on every partition: ledger rows folded into checkpoints, keys kept as digests, concluded reservations dropped. Returns how many ledger rows were folded in all.';
COMMENT ON FUNCTION inventory_proxy.reconcile_all() IS 'Internal: runs inventory.reconcile() on every partition; returns their breach rows.';
COMMENT ON FUNCTION inventory.reconcile() IS 'Checks the invariants on every partition. Returns one (sku, location, problem, expected, actual) row per breach; no rows when every partition is consistent.';
COMMENT ON FUNCTION inventory_proxy.hot_counters_all() IS 'Internal: runs inventory.hot_counters() on every partition; returns their rows.';
COMMENT ON FUNCTION inventory.hot_counters() IS 'Lists the escrow counters of every partition''s hot rows used since their servers started: whether each is loaded, its available units, the transactions using it, units taken and refusals.';
COMMENT ON FUNCTION inventory_proxy.stock_levels_all() IS 'Internal: reads inventory.stock_levels on every partition; the view inventory.stock_levels reads through it, which is why PUBLIC may execute it.';
COMMENT ON FUNCTION inventory_proxy.locations_all() IS 'Internal: reads inventory.locations on every partition; the view inventory.locations reads through it, which is why PUBLIC may execute it.';
COMMENT ON FUNCTION inventory_proxy.hold(text[], text[], bigint[], text[], interval) IS 'Internal: phase one of a cross-shard cart or bill: reserves each line under its derived key on its sku''s partition, a partition''s lines in one transaction in row-lock order; returns each line''s outcome.';
COMMENT ON FUNCTION inventory_proxy.states(text[], text[]) IS 'Internal: returns the states of the holds of derived keys, read on their partitions after phase one.';
COMMENT ON FUNCTION inventory_proxy.settle(text[], text[], bigint[], text[], text[]) IS 'Internal: phase two, line by line on its partition in row-lock order: confirms or releases a hold, refunds a sold line (undo), or restocks a receipt; returns each line''s status.';
COMMENT ON FUNCTION inventory_proxy.unlock_keys(integer) IS 'Internal: lets go of every session advisory lock of the proxy''s connection to the partition numbered part.';
COMMENT ON FUNCTION inventory_proxy.undo(text[], text[], bigint[], text[], integer[]) IS 'Internal: abandons an attempt of a cross-shard cart by releasing every line, then refunding the lines sold; returns false, refunding nothing, when every line answers conflict (the attempt is complete).';
COMMENT ON FUNCTION inventory_proxy.two_phase(text, integer, text[], text[], bigint[]) IS 'Internal: runs attempt() holding the key''s session lock on its home partition, waiting for it at most inventory_proxy.hold_ttl, then raising 55P03 (retry); returns attempt()''s outcome.';
COMMENT ON FUNCTION inventory_proxy.check_key(text) IS 'Internal: raises 22001 for a key too long (over 232 bytes) for the derived keys of a cart across shards.';
COMMENT ON FUNCTION inventory_proxy.good_name(text) IS 'Internal: returns whether a name passes the shards'' checks (not NULL, 1 to 256 bytes).';
COMMENT ON FUNCTION inventory_proxy.good_cart(text[], bigint[], text, text[]) IS 'Internal: returns whether a cart''s arguments pass every check the shards make; the proxy splits only such carts.';
COMMENT ON FUNCTION inventory.deduct_cart(text[], bigint[], text, text[]) IS 'Takes every line of a cart or none: on its shard as it is when its skus share one, otherwise across shards by try/confirm/cancel under derived keys. Returns one outcome: ok, duplicate, insufficient or not_found.';
COMMENT ON FUNCTION inventory.deduct_cart_any(text[], bigint[], text, text[]) IS 'Takes a whole cart, all or nothing, from as few locations as can serve it, on the shard its skus share; a cart whose skus live on several shards is refused with 0A000. Returns one outcome: ok, duplicate, insufficient or not_found.';
COMMENT ON FUNCTION inventory_proxy.good_bills(jsonb) IS 'Internal: returns whether a bills document passes every check of the shards'' parser; the proxy splits only such documents.';
COMMENT ON FUNCTION inventory.apply_bills(jsonb) IS 'Applies a JSON array of bills in order, each all or nothing: runs of bills on one partition go there as one document, a bill across partitions by try/confirm/cancel. Returns one (key, status) row per bill in order: ok, duplicate, insufficient or not_found.';

-- the objects of 1.2
COMMENT ON FUNCTION inventory.confirm(text, bigint, text, text) IS 'Confirms a reservation on the shard that holds it: with sku, on that sku''s partition only; without, every partition is asked; a held cart across shards by its manifest. With qty, a step of one line under its own key (shards at 1.2).';
COMMENT ON FUNCTION inventory.release(text, bigint, text, text) IS 'Releases a reservation on the shard that holds it: with sku, on that sku''s partition only; without, the partition that recorded the key, or every partition (tombstones) for a key nobody recorded; a held cart across shards by its manifest. With qty, a step of one line.';
COMMENT ON FUNCTION inventory.refund(text, bigint, text, text) IS 'Refunds units of a sale on the shard that made it: with the sale''s sku, on that partition only; without, every partition is asked.';
COMMENT ON FUNCTION inventory.reserve_cart(text[], bigint[], text, interval, text[]) IS 'Holds every line of a cart until now + ttl, or none: on its shard as it is when its skus share one, otherwise across shards under derived keys, recorded on the key''s home partition. Returns one outcome: ok, duplicate, insufficient, not_found, or conflict when the key was released before it arrived.';
COMMENT ON FUNCTION inventory_proxy.refuse_held_cart(text[], bigint[], text, interval, text[]) IS 'Internal: sends a held cart the proxy would not split to partition 0 in a statement that can only fail, so the caller gets the shard''s own error.';
COMMENT ON FUNCTION inventory_proxy.cart(text, text[], bigint[], text, text[], interval) IS 'Internal: runs a deduct_cart, deduct_cart_any or reserve_cart (named by call; ttl for reserve_cart) on its shard when its skus share one, or across shards by two_phase() or hold_cart(); a deduct_cart_any across shards raises 0A000.';
COMMENT ON FUNCTION inventory_proxy.settle_on(text, text, bigint, text, boolean) IS 'Internal: a confirm or release of one line on its sku''s partition.';
COMMENT ON FUNCTION inventory_proxy.step_all(text, bigint, text, boolean) IS 'Internal: a step of a confirm or release on every partition.';
COMMENT ON FUNCTION inventory_proxy.refund_on(text, text, bigint, text) IS 'Internal: a refund on the partition of the sale''s sku.';
COMMENT ON FUNCTION inventory_proxy.reserve_cart(integer, text[], bigint[], text, interval, text[]) IS 'Internal: a held cart on the partition given.';
COMMENT ON FUNCTION inventory_proxy.resolve() IS 'Finishes or undoes every cart or bill across shards left pending longer than its hold ttl, finishes every held cart whose confirm began, and releases every held cart past its ttl, with no client; returns how many. Schedule it, e.g. with pg_cron once a minute.';
COMMENT ON FUNCTION inventory_proxy.status(text) IS 'The state of a cart or bill across shards: ok, pending, undone (or cancelled, released, expired), held (a held cart within its ttl), or NULL for an unknown key.';
COMMENT ON FUNCTION inventory_proxy.hold_lines(text[], text[], bigint[], text[], integer[], interval) IS 'Internal: holds the lines picked under their derived keys on their partitions; returns each one''s outcome in the order picked.';
COMMENT ON FUNCTION inventory_proxy.hold_states(text[], text[], timestamptz) IS 'Internal: the states of the holds of derived keys, read on their partitions; a hold that ends before until is short.';
COMMENT ON FUNCTION inventory_proxy.line_states(text[], text[], integer[], inventory.outcome[], timestamptz) IS 'Internal: the states of the holds of the lines picked, read when one of their holds answered duplicate; short for a hold that ends before until.';
COMMENT ON FUNCTION inventory_proxy.first_round(text, integer, text[], text[], bigint[], text[], interval, jsonb) IS 'Internal: the first round of a cart across shards: every line held under attempt 0''s keys and the manifest recorded under the key''s lock, at once; returns the lines'' outcomes and the open''s status.';
COMMENT ON FUNCTION inventory_proxy.hold_cart(text, integer, text[], text[], bigint[], interval) IS 'Internal: a held cart across shards (reserve_cart): every line held under derived keys for ttl plus inventory_proxy.hold_ttl, recorded as held on the key''s home partition; returns the cart''s outcome.';
COMMENT ON FUNCTION inventory_proxy.key_reused(text) IS 'Internal: raises the key-reuse error (23505, constraint inventory_key_reuse) of a cart across shards whose key is another cart''s.';
COMMENT ON FUNCTION inventory_proxy.counted(jsonb, integer, text) IS 'Internal: whether the attempt-0 holds of a call that found this manifest may have been counted by the held cart it records (then they stay).';
COMMENT ON FUNCTION inventory_proxy.end_cart(text, integer, jsonb, interval, integer, text, bigint[]) IS 'Internal: ends an attempt of a cart across shards under its key''s lock: resolve finishes or undoes it; released, expired or cancelled lets every line go and marks it so (a held cart settled in parts: end_parted).';
COMMENT ON FUNCTION inventory_proxy.end_parted(text, integer, jsonb, integer, bigint[], text) IS 'Internal: ends a held cart across shards settled in parts under its key''s lock: resolve sells what each line held when its confirm began (rest), or undoes that confirm; released, expired or cancelled releases what each line still holds.';
COMMENT ON FUNCTION inventory_proxy.line_units(text[], text[]) IS 'Internal: the units the reservations of derived keys still hold and have sold, read on their partitions.';
COMMENT ON FUNCTION inventory_proxy.let_go(text, integer, jsonb) IS 'Internal: releases what the lines of a held cart settled in parts still hold, once it was released, expired or cancelled.';
COMMENT ON FUNCTION inventory_proxy.units(text[], text[]) IS 'Internal: line_units() as two arrays in the order of the keys.';
COMMENT ON FUNCTION inventory_proxy.settle_cart(text, bigint, text, text, boolean) IS 'Internal: a confirm or release of a held cart across shards, by its manifest, whole or a step of one line (sent to its partition under the line''s key); NULL when the key has no such cart (a whole release then records the key cancelled).';
COMMENT ON FUNCTION inventory_proxy.cancel(text) IS 'Undoes a cart or bill across shards that has not finished (every line released, what was sold refunded): ok; conflict if it finished; duplicate if cancelled before; not_found (recording the cancel) for an unknown key.';
COMMENT ON FUNCTION inventory_proxy.attempt(text, integer, text[], text[], bigint[], interval, integer, boolean, inventory.outcome[], text) IS 'Internal: one call''s attempts at a cart across shards (try/confirm/cancel under derived keys), recorded in its manifest; given: the outcomes of the first attempt''s holds of every line, when the caller made them.';
COMMENT ON FUNCTION inventory_proxy.cart_step(text[], text[], bigint[], text[], text[], interval, jsonb) IS 'Internal: a round of a cart across shards, each partition''s lines (and the home partition''s open or ok of the manifest) in one call there; returns each line''s outcome.';
COMMENT ON FUNCTION inventory_proxy.close_home(text, integer, text[], text[], bigint[], text[], integer[]) IS 'Internal: the last round of a cart without receipts: the home partition''s lines confirmed and the manifest marked ok in one transaction there; returns each line''s status, then the mark''s.';
COMMENT ON FUNCTION inventory_proxy.unlock_quietly(integer) IS 'Internal: unlock_keys(part), ignoring a connection that is gone (its locks went with it).';
COMMENT ON FUNCTION inventory_proxy.open_key(integer, text, jsonb, interval, timestamptz) IS 'Internal: takes the lock of a cart''s key on its home partition, waiting for it until a deadline, and returns its manifest (recorded if new).';
COMMENT ON FUNCTION inventory_proxy.manifest_open(integer, text, jsonb, interval) IS 'Internal: tries to take the lock of a cart''s key on its home partition and returns its manifest (recorded if new).';
COMMENT ON FUNCTION inventory_proxy.manifest_of(integer, text) IS 'Internal: what the home partition records of a cart.';
COMMENT ON FUNCTION inventory_proxy.manifest_mark(integer, text, integer, text, boolean, bigint[]) IS 'Internal: a cart''s move to another attempt or state (unlock: and the key''s lock let go).';
COMMENT ON FUNCTION inventory_proxy.manifests_due(integer) IS 'Internal: the carts pending longer than their ttl, on one partition.';
COMMENT ON FUNCTION inventory_proxy.manifest_lines(text[], text[], bigint[]) IS 'Internal: a cart''s lines as its manifest records them.';
