/* inventory_proxy--1.1.sql: the inventory calls on a proxy database, run on the shards */

\echo Use "CREATE EXTENSION inventory_proxy" to load this file. \quit

/*
 * The shards are the partitions of the PL/Proxy cluster inventory_shards, a
 * SQL/MED server the admin creates (see the README).  Every row of a sku,
 * at every location, lives on the partition PL/Proxy maps hashtext(sku) to,
 * so a call about one sku runs there, as it is.  A call that names only a
 * key runs on every partition (the one that knows the key answers).  A cart
 * or bill whose skus live on several partitions is held on each (reserve
 * under derived keys), then confirmed everywhere, or released everywhere:
 * see two_phase() below.  Helpers live in schema inventory_proxy.
 */
CREATE SCHEMA inventory_proxy;

CREATE TYPE inventory.outcome AS (
    status    text,
    available bigint,
    sku       text,
    location  text
);

-- Partitions and routing --------------------------------------------------
-- (The helpers in schema inventory_proxy are not callable by PUBLIC; they
-- run inside the calls below, whose search_path is pg_catalog, and take
-- it from them: without a SET clause of their own, SQL ones are inlined.)

-- The partition count of inventory_shards and whether it maps by modulus.
CREATE FUNCTION inventory_proxy.shards(OUT n integer, OUT modular boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT count(*) FILTER (WHERE o.option_name ~ '^(p|partition_)[0-9]+$')::integer,
           COALESCE(bool_or(o.option_name = 'modular_mapping' AND o.option_value = '1'), false)
      INTO n, modular
      FROM pg_catalog.pg_foreign_server s
     CROSS JOIN LATERAL pg_catalog.pg_options_to_table(s.srvoptions) o
     WHERE s.srvname = 'inventory_shards';
    IF n < 1 THEN
        RAISE EXCEPTION 'the PL/Proxy cluster inventory_shards lists no partitions'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create the server inventory_shards with the options p0, p1, ... (see the README).';
    END IF;
END
$$;

-- The hash PL/Proxy routes a sku by (a NULL sku goes somewhere, to be refused there).
CREATE FUNCTION inventory_proxy.route(sku text)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.hashtext(COALESCE(sku, ''))
$$;

-- The partition of a sku, as PL/Proxy maps route(sku).
CREATE FUNCTION inventory_proxy.partition_of(sku text, n integer, modular boolean)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN modular THEN abs(inventory_proxy.route(sku) % n)
                ELSE inventory_proxy.route(sku) & (n - 1) END
$$;

-- The elements of an array at the positions given, in their order.
CREATE FUNCTION inventory_proxy.pick(a anyarray, positions integer[])
RETURNS anyarray
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT a[p.i] FROM unnest(positions) WITH ORDINALITY AS p(i, n) ORDER BY p.n)
$$;

-- How long a cross-shard hold lasts if nobody finishes it.
CREATE FUNCTION inventory_proxy.hold_ttl()
RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('inventory_proxy.hold_ttl', true), ''),
                    '1 minute')::interval
$$;

-- Calls about one sku: run on its shard -----------------------------------

-- Each is the shard's own call, run on the partition of its sku: one body
-- for all, made from their signatures (as on a shard).
DO $do$
DECLARE
    signature text;
BEGIN
    FOREACH signature IN ARRAY ARRAY[
        $s$deduct(sku text, qty bigint, key text, location text DEFAULT 'default',
                  nowait boolean DEFAULT false) RETURNS inventory.outcome$s$,
        $s$reserve(sku text, qty bigint, key text, ttl interval DEFAULT '15 minutes',
                   location text DEFAULT 'default') RETURNS inventory.outcome$s$,
        $s$available(sku text, location text DEFAULT NULL) RETURNS bigint$s$,
        $s$restock(sku text, qty bigint, key text, location text DEFAULT 'default')
           RETURNS inventory.outcome$s$,
        $s$adjust(sku text, on_hand bigint, key text, location text DEFAULT 'default')
           RETURNS inventory.outcome$s$,
        $s$set_hot(sku text, hot boolean DEFAULT true, location text DEFAULT 'default')
           RETURNS inventory.outcome$s$,
        $s$deduct_any(sku text, qty bigint, key text, locations text[] DEFAULT NULL,
                      strategy text DEFAULT 'priority') RETURNS inventory.outcome$s$,
        $s$reserve_any(sku text, qty bigint, key text, ttl interval DEFAULT '15 minutes',
                       locations text[] DEFAULT NULL, strategy text DEFAULT 'priority')
           RETURNS inventory.outcome$s$]
    LOOP
        EXECUTE format($f$CREATE FUNCTION inventory.%s AS $$
                              CLUSTER 'inventory_shards';
                              RUN ON inventory_proxy.route(sku);
                          $$ LANGUAGE plproxy SECURITY DEFINER
                          SET search_path = pg_catalog, pg_temp$f$, signature);
    END LOOP;
END
$do$;

-- Calls on one partition named by number (helpers of the calls below) -----

CREATE FUNCTION inventory_proxy.deduct_cart(part integer, skus text[], qtys bigint[],
                                            key text, locations text[])
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.deduct_cart(skus, qtys, key, locations);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.deduct_cart_any(part integer, skus text[], qtys bigint[],
                                                key text, locations text[])
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT * FROM inventory.deduct_cart_any(skus, qtys, key, locations);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.apply_bills(part integer, bills jsonb)
RETURNS TABLE (key text, status text) AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT b.key, b.status FROM inventory.apply_bills(bills) WITH ORDINALITY b(key, status, i)
     ORDER BY b.i;
$$ LANGUAGE plproxy;

/*
 * Input the proxy would not split, sent to a shard for its exact error.  The
 * statement can only fail: were the input good after all, its outcome's
 * cast (or the division) fails, and the shard rolls the call back.
 */
CREATE FUNCTION inventory_proxy.refuse_cart(skus text[], qtys bigint[], key text,
                                            locations text[], call text)
RETURNS integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON 0;
    SELECT (CASE call WHEN 'deduct_cart'
                      THEN inventory.deduct_cart(skus, qtys, key, locations)
                      ELSE inventory.deduct_cart_any(skus, qtys, key, locations)
            END).status::integer AS refuse_cart;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.refuse_bills(bills jsonb)
RETURNS integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON 0;
    SELECT (count(*) / 0)::integer AS refuse_bills FROM inventory.apply_bills(bills);
$$ LANGUAGE plproxy;

-- Calls about a key: every partition, the one that knows it answers -------

CREATE FUNCTION inventory_proxy.confirm_all(key text)
RETURNS SETOF inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT * FROM inventory.confirm(key);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.release_all(key text)
RETURNS SETOF inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT * FROM inventory.release(key);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.release_on(sku text, key text)
RETURNS inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON inventory_proxy.route(sku);
    SELECT * FROM inventory.release(key);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.refund_all(original_key text, qty bigint, key text)
RETURNS SETOF inventory.outcome AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT * FROM inventory.refund(original_key, qty, key);
$$ LANGUAGE plproxy;

-- The sku of the call a key recorded, on the partition that has it.
CREATE FUNCTION inventory_proxy.key_sku(key text)
RETURNS SETOF text AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT l.sku AS key_sku FROM inventory.ledger l
     WHERE l.key = key AND l.call IS NOT NULL AND l.call <> 'release';
$$ LANGUAGE plproxy;

-- The answer of the partition that knew the key (not_found if none did).
CREATE FUNCTION inventory_proxy.answer(outcomes inventory.outcome[])
RETURNS inventory.outcome
LANGUAGE sql IMMUTABLE AS $$
    SELECT o FROM unnest(outcomes) o
     ORDER BY (o.status = 'not_found') LIMIT 1
$$;

CREATE FUNCTION inventory.confirm(key text)
RETURNS inventory.outcome
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT inventory_proxy.answer(array_agg(o)) FROM inventory_proxy.confirm_all(key) o
$$;

CREATE FUNCTION inventory.refund(original_key text, qty bigint, key text)
RETURNS inventory.outcome
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT inventory_proxy.answer(array_agg(o))
      FROM inventory_proxy.refund_all(original_key, qty, key) o
$$;

/*
 * release: on the partition that recorded the key; a key nobody recorded is
 * released everywhere, so that every partition keeps its tombstone (a late
 * reserve, wherever its sku lives, answers conflict).
 */
CREATE FUNCTION inventory.release(key text)
RETURNS inventory.outcome
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner text;
BEGIN
    SELECT s INTO owner FROM inventory_proxy.key_sku(key) s LIMIT 1;
    IF owner IS NOT NULL THEN
        RETURN inventory_proxy.release_on(owner, key);
    END IF;
    RETURN (SELECT inventory_proxy.answer(array_agg(o)) FROM inventory_proxy.release_all(key) o);
END
$$;

CREATE FUNCTION inventory_proxy.allocation_all(key text)
RETURNS TABLE(sku text, location text, qty bigint) AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT a.sku, a.location, a.qty FROM inventory.allocation(key) a;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.allocation(key text)
RETURNS TABLE(sku text, location text, qty bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.sku, a.location, a.qty FROM inventory_proxy.allocation_all(key) a
$$;

-- Admin calls and views over every partition ------------------------------

CREATE FUNCTION inventory_proxy.set_location_all(location text, priority integer,
                                                 active boolean)
RETURNS SETOF integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT 1 AS set_location_all FROM inventory.set_location(location, priority, active);
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.set_location(location text, priority integer DEFAULT 0,
                                       active boolean DEFAULT true)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT FROM (SELECT count(*) FROM inventory_proxy.set_location_all(location, priority, active)) c
$$;

CREATE FUNCTION inventory_proxy.counts(what text)
RETURNS SETOF bigint AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT CASE what WHEN 'merge' THEN inventory.merge()
                     WHEN 'expire' THEN inventory.expire() END AS counts;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.merge()
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(sum(c), 0)::bigint FROM inventory_proxy.counts('merge') c
$$;

CREATE FUNCTION inventory.expire()
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(sum(c), 0)::bigint FROM inventory_proxy.counts('expire') c
$$;

CREATE FUNCTION inventory_proxy.archive_all(before timestamptz)
RETURNS SETOF bigint AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT inventory.archive(before) AS archive_all;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.archive(before timestamptz)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(sum(c), 0)::bigint FROM inventory_proxy.archive_all(before) c
$$;

CREATE FUNCTION inventory_proxy.reconcile_all()
RETURNS TABLE (sku text, location text, problem text, expected bigint, actual bigint) AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT r.sku, r.location, r.problem, r.expected, r.actual FROM inventory.reconcile() r;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.reconcile()
RETURNS TABLE (sku text, location text, problem text, expected bigint, actual bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.sku, r.location, r.problem, r.expected, r.actual
      FROM inventory_proxy.reconcile_all() r
$$;

CREATE FUNCTION inventory_proxy.hot_counters_all(
    OUT sku text, OUT location text, OUT loaded boolean, OUT available bigint,
    OUT transactions integer, OUT units_taken bigint, OUT refusals bigint)
RETURNS SETOF record AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT h.sku, h.location, h.loaded, h.available, h.transactions, h.units_taken,
           h.refusals FROM inventory.hot_counters() h;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory.hot_counters(
    OUT sku text, OUT location text, OUT loaded boolean, OUT available bigint,
    OUT transactions integer, OUT units_taken bigint, OUT refusals bigint)
RETURNS SETOF record
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM inventory_proxy.hot_counters_all()
$$;

CREATE FUNCTION inventory_proxy.stock_levels_all(
    OUT sku text, OUT location text, OUT on_hand bigint, OUT reserved bigint,
    OUT pending bigint, OUT available bigint, OUT hot boolean)
RETURNS SETOF record AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT s.sku, s.location, s.on_hand, s.reserved, s.pending, s.available, s.hot
      FROM inventory.stock_levels s;
$$ LANGUAGE plproxy SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION inventory_proxy.locations_all(
    OUT location text, OUT priority integer, OUT active boolean)
RETURNS SETOF record AS $$
    CLUSTER 'inventory_shards';
    RUN ON ALL;
    SELECT l.location, l.priority, l.active FROM inventory.locations l;
$$ LANGUAGE plproxy SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE VIEW inventory.stock_levels AS
SELECT sku, location, on_hand, reserved, pending, available, hot
  FROM inventory_proxy.stock_levels_all();

CREATE VIEW inventory.availability AS
SELECT sku,
       pg_catalog.count(*)::integer       AS locations,
       pg_catalog.sum(on_hand)::bigint    AS on_hand,
       pg_catalog.sum(reserved)::bigint   AS reserved,
       pg_catalog.sum(pending)::bigint    AS pending,
       pg_catalog.sum(available)::bigint  AS available
  FROM inventory.stock_levels
 GROUP BY sku;

-- every partition has the same location rules (set_location sets them all)
CREATE VIEW inventory.locations AS
SELECT DISTINCT location, priority, active FROM inventory_proxy.locations_all();

-- Carts and bills across shards -------------------------------------------

/*
 * Phase one: hold what the lines take, each line on its sku's partition
 * (the lines of a partition in one transaction there, in the order of their
 * rows' locks, as every call of one node takes them).
 */
CREATE FUNCTION inventory_proxy.hold(keys text[], skus text[], qtys bigint[],
                                     locations text[], ttl interval)
RETURNS TABLE (key text, status text, available bigint, sku text, location text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus, qtys, locations;
    RUN ON inventory_proxy.route(skus);
    SELECT l.k AS key, o.status, o.available, o.sku, o.location
      FROM (SELECT u.k, u.s, u.q, u.loc FROM unnest(keys, skus, qtys, locations) AS u(k, s, q, loc)
             ORDER BY inventory.lock_key(u.s, u.loc) OFFSET 0) l
     CROSS JOIN LATERAL inventory.reserve(l.s, l.q, l.k, ttl, l.loc) o;
$$ LANGUAGE plproxy;

-- The states of the holds of keys, read after phase one (a fresh snapshot).
CREATE FUNCTION inventory_proxy.states(keys text[], skus text[])
RETURNS TABLE (key text, state text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus;
    RUN ON inventory_proxy.route(skus);
    SELECT r.key, r.state FROM inventory.reservation r
     WHERE r.key = ANY (keys) AND r.part = 0;
$$ LANGUAGE plproxy;

/*
 * Phase two, line by line on its partition, in the order of the rows'
 * locks: confirm or release a hold, refund a sold line (undo), or receive
 * units (a bill's receipt).
 */
CREATE FUNCTION inventory_proxy.settle(keys text[], skus text[], qtys bigint[],
                                       locations text[], actions text[])
RETURNS TABLE (key text, status text) AS $$
    CLUSTER 'inventory_shards';
    SPLIT keys, skus, qtys, locations, actions;
    RUN ON inventory_proxy.route(skus);
    SELECT l.k AS key,
           (CASE l.a WHEN 'confirm' THEN inventory.confirm(l.k)
                     WHEN 'release' THEN inventory.release(l.k)
                     WHEN 'refund' THEN inventory.refund(l.k, l.q, l.k || '~undo')
                     ELSE inventory.restock(l.s, l.q, l.k, l.loc) END).status AS status
      FROM (SELECT u.k, u.s, u.q, u.loc, u.a
              FROM unnest(keys, skus, qtys, locations, actions) AS u(k, s, q, loc, a)
             ORDER BY inventory.lock_key(u.s, u.loc) OFFSET 0) l;
$$ LANGUAGE plproxy;

/*
 * The lock of a key's cross-shard calls: a session lock of the proxy's
 * connection to the key's home partition, so that calls with one key, from
 * any proxy, take turns (a proxy that dies lets go with its connection).
 * try_lock_key does not wait; unlock_keys lets go of every such lock of the
 * connection (a backend runs one call at a time, so there is only its own).
 */
CREATE FUNCTION inventory_proxy.try_lock_key(part integer, key text)
RETURNS boolean AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT pg_catalog.pg_try_advisory_lock(1769365621, pg_catalog.hashtext(key)) AS try_lock_key;
$$ LANGUAGE plproxy;

CREATE FUNCTION inventory_proxy.unlock_keys(part integer)
RETURNS integer AS $$
    CLUSTER 'inventory_shards';
    RUN ON part;
    SELECT 1 AS unlock_keys FROM pg_catalog.pg_advisory_unlock_all();
$$ LANGUAGE plproxy;

/*
 * Settle the lines picked (by number) of the derived keys, one action for
 * all; the answer of each, in the order picked (an error if a partition
 * did not answer for a line).
 */
CREATE FUNCTION inventory_proxy.settle_lines(keys text[], skus text[], qtys bigint[],
                                             locations text[], picked integer[],
                                             action text)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    answers text[];
BEGIN
    IF cardinality(picked) = 0 THEN
        RETURN '{}';
    END IF;
    WITH s AS MATERIALIZED (
        SELECT * FROM inventory_proxy.settle(
            inventory_proxy.pick(keys, picked), inventory_proxy.pick(skus, picked),
            inventory_proxy.pick(qtys, picked), inventory_proxy.pick(locations, picked),
            array_fill(action, ARRAY[cardinality(picked)])))
    SELECT array_agg(s.status ORDER BY p.n) INTO answers
      FROM unnest(picked) WITH ORDINALITY p(i, n) LEFT JOIN s ON s.key = keys[p.i];
    IF array_position(answers, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a shard did not answer for a line of a cart across shards'
            USING ERRCODE = 'internal_error';
    END IF;
    RETURN answers;
END
$$;

/*
 * Abandon an attempt of a cross-shard cart: release every line (a hold is
 * freed; a line never held keeps a tombstone, so nobody can complete the
 * attempt any more), then refund the lines sold (release answers conflict).
 * Unless every line answers conflict: then every line is sold, the attempt
 * is complete (a call with the same key finished it meanwhile), nothing is
 * refunded, and the answer is false.
 */
CREATE FUNCTION inventory_proxy.undo(keys text[], skus text[], qtys bigint[],
                                     locations text[], lines integer[])
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    released text[] := inventory_proxy.settle_lines(keys, skus, qtys, locations, lines, 'release');
    refunds integer[];
BEGIN
    IF NOT EXISTS (SELECT FROM unnest(released) a WHERE a <> 'conflict') THEN
        RETURN false;
    END IF;
    refunds := ARRAY(SELECT lines[n] FROM generate_subscripts(lines, 1) n
                      WHERE released[n] = 'conflict' ORDER BY n);
    IF EXISTS (SELECT FROM unnest(inventory_proxy.settle_lines(keys, skus, qtys, locations,
                                                             refunds, 'refund')) a
                WHERE a NOT IN ('ok', 'duplicate')) THEN
        RAISE EXCEPTION 'a sold line of a cart across shards could not be refunded'
            USING ERRCODE = 'internal_error',
                  HINT = 'Check the refunds of the keys ending in "~undo" on the shards.';
    END IF;
    RETURN true;
END
$$;

/*
 * A cart or bill whose lines live on several partitions, all or nothing for
 * the caller (try/confirm/cancel).  Lines are canonical: one per row, in
 * row order, delta < 0 takes units, delta > 0 receives them.  Calls with
 * one key take turns (lock_key).  Attempt g holds line i under the key
 * "<key>#<g>.<i>":
 *
 *  - every taking line held (or sold by an earlier call of attempt g):
 *    confirm them all, then receive the receipts (restock under the line's
 *    key); ok, or duplicate when an earlier call had done it all;
 *  - a line refused (insufficient, not_found, busy) and nothing of attempt
 *    g recorded: the refusal, and the key stays unused;
 *  - a line refused after others were held, a line of attempt g spent
 *    (released, expired, tombstoned) by an earlier call, or a hold that
 *    expired before its confirm: abandon attempt g (every line released,
 *    what it sold refunded), then the refusal, or attempt g + 1;
 *  - a line's history archived: an error, the outcome cannot be told;
 *  - a line sold and another never held: the key was another cart's.
 *
 * Abandoning refunds only when some line can never be sold (its release
 * did not answer conflict), so whatever order two calls with one key run
 * in, no call answers ok for an attempt another one refunds.
 *
 * Every step is idempotent by its derived key, so a call that dies anywhere
 * (proxy or shard) leaves what the caller's retry with the same key
 * finishes or undoes, and holds nobody finishes expire after
 * inventory_proxy.hold_ttl.  Units are never taken twice: an attempt is
 * confirmed only when all of its lines are held, and an abandoned attempt
 * can never be completed.
 */
CREATE FUNCTION inventory_proxy.attempt(key text, skus text[], locations text[],
                                        deltas bigint[])
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    ttl interval := inventory_proxy.hold_ttl();
    n integer := cardinality(skus);
    qtys bigint[] := ARRAY(SELECT abs(d) FROM unnest(deltas) d);
    takes integer[] := ARRAY(SELECT i FROM generate_subscripts(deltas, 1) i WHERE deltas[i] < 0);
    receipts integer[] := ARRAY(SELECT i FROM generate_subscripts(deltas, 1) i WHERE deltas[i] > 0);
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
    FOR g IN 0 .. 99 LOOP
        keys := ARRAY(SELECT format('%s#%s.%s', key, g, i) FROM generate_series(1, n) i);
        outs := '{}';
        states := '{}';
        IF cardinality(takes) > 0 THEN
            WITH h AS MATERIALIZED (
                SELECT * FROM inventory_proxy.hold(
                    inventory_proxy.pick(keys, takes), inventory_proxy.pick(skus, takes),
                    inventory_proxy.pick(qtys, takes), inventory_proxy.pick(locations, takes), ttl))
            SELECT array_agg(CASE WHEN h.key IS NULL THEN NULL
                                  ELSE ROW(h.status, h.available, h.sku, h.location)::inventory.outcome
                             END ORDER BY t.n)
              INTO outs
              FROM unnest(takes) WITH ORDINALITY t(i, n) LEFT JOIN h ON h.key = keys[t.i];
            IF array_position(outs, NULL) IS NOT NULL THEN
                RAISE EXCEPTION 'a shard did not answer for a line of a cart across shards'
                    USING ERRCODE = 'internal_error';
            END IF;
            -- what earlier calls left of attempt g, read after the holds
            IF EXISTS (SELECT FROM unnest(outs) o WHERE o.status = 'duplicate') THEN
                WITH s AS MATERIALIZED (
                    SELECT * FROM inventory_proxy.states(
                        inventory_proxy.pick(keys, takes), inventory_proxy.pick(skus, takes)))
                SELECT array_agg(s.state ORDER BY t.n) INTO states
                  FROM unnest(takes) WITH ORDINALITY t(i, n) LEFT JOIN s ON s.key = keys[t.i];
            END IF;
        END IF;

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
            RAISE EXCEPTION 'idempotency key "%" was already used by another cart', key
                USING ERRCODE = 'unique_violation',
                      HINT = 'Use a new key for every distinct cart; retry only with the same lines.';
        END IF;

        IF refusals IS NULL AND NOT spent THEN
            answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, held, 'confirm');
            IF EXISTS (SELECT FROM unnest(answers) a WHERE a NOT IN ('ok', 'duplicate')) THEN
                -- a hold expired before its confirm: abandon attempt g
                IF inventory_proxy.undo(keys, skus, qtys, locations, takes) THEN
                    CONTINUE;
                END IF;
            END IF;
            -- every line sold: the receipts, and the answer
            answers := inventory_proxy.settle_lines(keys, skus, qtys, locations, receipts, 'restock');
            RETURN ROW(CASE WHEN cardinality(held) = 0
                             AND NOT EXISTS (SELECT FROM unnest(answers) a WHERE a <> 'duplicate')
                            THEN 'duplicate' ELSE 'ok' END,
                       NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;

        IF cardinality(held) = 0 AND NOT spent THEN
            RETURN refusals[1];     -- nothing recorded: the key stays unused
        END IF;
        -- a line refused after others were held, or attempt g spent earlier
        IF NOT inventory_proxy.undo(keys, skus, qtys, locations, takes) THEN
            -- every line sold: a call with the same key completed attempt g meanwhile
            PERFORM inventory_proxy.settle_lines(keys, skus, qtys, locations, receipts, 'restock');
            RETURN ROW('duplicate', NULL::bigint, NULL::text, NULL::text)::inventory.outcome;
        END IF;
        IF NOT spent THEN
            RETURN refusals[1];
        END IF;
    END LOOP;
    RAISE EXCEPTION 'key "%" was refused too often across shards', key
        USING ERRCODE = 'program_limit_exceeded',
              HINT = 'Use a new key for this order.';
END
$$;

-- attempt() with the key's lock held on its home partition (the partition
-- the key would have as a sku), waited for at most inventory_proxy.hold_ttl,
-- then 55P03: retry.
CREATE FUNCTION inventory_proxy.two_phase(key text, home integer, skus text[],
                                          locations text[], deltas bigint[])
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + inventory_proxy.hold_ttl();
    pause float8 := 0.001;
    result inventory.outcome;
BEGIN
    BEGIN
        WHILE NOT inventory_proxy.try_lock_key(home, key) LOOP
            IF clock_timestamp() > deadline THEN
                RAISE EXCEPTION 'another call with key "%" is in progress', key
                    USING ERRCODE = 'lock_not_available',
                          HINT = 'Retry with the same key: it finishes what the other call leaves.';
            END IF;
            PERFORM pg_sleep(pause);
            pause := least(pause * 2, 0.1);
        END LOOP;
        result := inventory_proxy.attempt(key, skus, locations, deltas);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        BEGIN
            PERFORM inventory_proxy.unlock_keys(home);
        EXCEPTION WHEN OTHERS THEN
            NULL;   -- the connection is gone, and the lock with it
        END;
        RAISE;
    END;
    PERFORM inventory_proxy.unlock_keys(home);
    RETURN result;
END
$$;

-- A key the derived keys "<key>#<g>.<i>~undo" of a cross-shard cart fit in.
CREATE FUNCTION inventory_proxy.check_key(key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF octet_length(key) > 232 THEN
        RAISE EXCEPTION 'key is too long for a cart across shards'
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('It is %s bytes long; the limit across shards is 232 bytes.',
                                  octet_length(key));
    END IF;
END
$$;

-- Whether a name passes the shards' checks (not empty, at most 256 bytes).
CREATE FUNCTION inventory_proxy.good_name(name text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT name IS NOT NULL AND octet_length(name) BETWEEN 1 AND 256
$$;

/*
 * Whether a cart's arguments pass every check the shards make (the proxy
 * splits only such carts; the others get the shard's own error).
 */
CREATE FUNCTION inventory_proxy.good_cart(skus text[], qtys bigint[], key text,
                                          locations text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT inventory_proxy.good_name(key)
       AND skus IS NOT NULL AND qtys IS NOT NULL
       AND COALESCE(array_ndims(skus), 1) = 1 AND COALESCE(array_ndims(qtys), 1) = 1
       AND cardinality(skus) > 0 AND cardinality(skus) = cardinality(qtys)
       AND (locations IS NULL OR (COALESCE(array_ndims(locations), 1) = 1
                                  AND cardinality(locations) = cardinality(skus)
                                  AND NOT EXISTS (SELECT FROM unnest(locations) l
                                                   WHERE NOT inventory_proxy.good_name(l))))
       AND NOT EXISTS (SELECT FROM unnest(skus) s WHERE NOT inventory_proxy.good_name(s))
       AND NOT EXISTS (SELECT FROM unnest(qtys) q WHERE q IS NULL OR q <= 0)
$$;

-- A cart: on its shard as it is, or across shards by two_phase().
CREATE FUNCTION inventory_proxy.cart(call text, skus text[], qtys bigint[], key text,
                                     locations text[])
RETURNS inventory.outcome
LANGUAGE plpgsql AS $$
DECLARE
    cluster record := inventory_proxy.shards();
    parts integer[];
    lines record;
BEGIN
    IF NOT inventory_proxy.good_cart(skus, qtys, key, locations) THEN
        PERFORM inventory_proxy.refuse_cart(skus, qtys, key, locations, call);
        RAISE EXCEPTION 'the shard accepted a cart the proxy refused' USING ERRCODE = 'internal_error';
    END IF;
    parts := ARRAY(SELECT DISTINCT inventory_proxy.partition_of(u.sku, cluster.n, cluster.modular)
                     FROM unnest(skus) AS u(sku));
    IF cardinality(parts) = 1 THEN
        IF call = 'deduct_cart' THEN
            RETURN inventory_proxy.deduct_cart(parts[1], skus, qtys, key, locations);
        END IF;
        RETURN inventory_proxy.deduct_cart_any(parts[1], skus, qtys, key, locations);
    END IF;
    IF call = 'deduct_cart_any' THEN
        RAISE EXCEPTION 'deduct_cart_any cannot allocate a cart whose skus live on several shards'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Allocate each shard''s lines with a deduct_cart_any of their own, or name the locations and call deduct_cart.';
    END IF;
    PERFORM inventory_proxy.check_key(key);
    -- one line per row, summed, in row order
    SELECT array_agg(c.sku ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS skus,
           array_agg(c.location ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS locations,
           array_agg(-c.qty ORDER BY c.sku COLLATE "C", c.location COLLATE "C") AS deltas
      INTO lines
      FROM (SELECT u.sku, COALESCE(u.location, 'default') AS location, sum(u.qty) AS qty
              FROM unnest(skus, qtys, locations) AS u(sku, qty, location)
             GROUP BY 1, 2) c;
    RETURN inventory_proxy.two_phase(key, inventory_proxy.partition_of(key, cluster.n, cluster.modular),
                                     lines.skus, lines.locations, lines.deltas::bigint[]);
END
$$;

CREATE FUNCTION inventory.deduct_cart(skus text[], qtys bigint[], key text,
                                      locations text[] DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT inventory_proxy.cart('deduct_cart', skus, qtys, key, locations)
$$;

CREATE FUNCTION inventory.deduct_cart_any(skus text[], qtys bigint[], key text,
                                          locations text[] DEFAULT NULL)
RETURNS inventory.outcome
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT inventory_proxy.cart('deduct_cart_any', skus, qtys, key, locations)
$$;

/*
 * Whether a bills document passes every check of the shards' parser (the
 * proxy splits only such documents; the others get the shard's own error).
 */
CREATE FUNCTION inventory_proxy.good_bills(bills jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT bills IS NOT NULL AND jsonb_typeof(bills) = 'array'
       AND jsonb_array_length(bills) > 0
       AND NOT EXISTS (
           SELECT FROM jsonb_array_elements(bills) b
            WHERE jsonb_typeof(b) <> 'object'
               OR EXISTS (SELECT FROM jsonb_object_keys(b) k WHERE k NOT IN ('key', 'lines'))
               OR jsonb_typeof(b -> 'key') IS DISTINCT FROM 'string'
               OR NOT inventory_proxy.good_name(b ->> 'key')
               OR jsonb_typeof(b -> 'lines') IS DISTINCT FROM 'array'
               OR jsonb_array_length(b -> 'lines') = 0
               OR EXISTS (
                  SELECT FROM jsonb_array_elements(b -> 'lines') l
                   WHERE jsonb_typeof(l) <> 'object'
                      OR EXISTS (SELECT FROM jsonb_object_keys(l) k
                                  WHERE k NOT IN ('sku', 'delta', 'location'))
                      OR jsonb_typeof(l -> 'sku') IS DISTINCT FROM 'string'
                      OR NOT inventory_proxy.good_name(l ->> 'sku')
                      OR (l ? 'location' AND (jsonb_typeof(l -> 'location') <> 'string'
                                              OR NOT inventory_proxy.good_name(l ->> 'location')))
                      OR jsonb_typeof(l -> 'delta') IS DISTINCT FROM 'number'
                      OR (l ->> 'delta')::numeric <> trunc((l ->> 'delta')::numeric)
                      OR (l ->> 'delta')::numeric = 0
                      OR abs((l ->> 'delta')::numeric) > 9223372036854775807)
               OR EXISTS (
                  SELECT FROM jsonb_array_elements(b -> 'lines') l
                   GROUP BY l ->> 'sku', COALESCE(l ->> 'location', 'default')
                  HAVING abs(sum((l ->> 'delta')::numeric)) > 9223372036854775807))
$$;

/*
 * apply_bills: bills in order; a run of bills that each live on one
 * partition goes to each partition as one document, a bill across
 * partitions by two_phase() (the bills of one row always share a
 * partition, so every row sees its bills in the document's order).
 */
CREATE FUNCTION inventory.apply_bills(bills jsonb)
RETURNS TABLE (key text, status text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
    b record;
    docs jsonb[];       -- by partition + 1: the bills of the current run
    nos jsonb[];        -- and their numbers in the document
    answers text[];
    r record;
    outcome inventory.outcome;
BEGIN
    IF NOT inventory_proxy.good_bills(bills) THEN
        PERFORM inventory_proxy.refuse_bills(bills);
        RAISE EXCEPTION 'the shard accepted bills the proxy refused' USING ERRCODE = 'internal_error';
    END IF;
    SELECT * INTO c FROM inventory_proxy.shards();
    docs := array_fill(NULL::jsonb, ARRAY[c.n]);
    nos := docs;
    answers := array_fill(NULL::text, ARRAY[jsonb_array_length(bills)]);
    FOR b IN
        SELECT d.o::integer AS no, d.e AS bill,
               (SELECT array_agg(DISTINCT inventory_proxy.partition_of(l ->> 'sku', c.n, c.modular))
                  FROM jsonb_array_elements(d.e -> 'lines') l) AS parts
          FROM jsonb_array_elements(bills) WITH ORDINALITY AS d(e, o)
        UNION ALL
        SELECT NULL, NULL, NULL     -- the end: send the last run
        ORDER BY 1 NULLS LAST
    LOOP
        IF cardinality(b.parts) = 1 THEN
            docs[b.parts[1] + 1] := COALESCE(docs[b.parts[1] + 1], '[]') || jsonb_build_array(b.bill);
            nos[b.parts[1] + 1] := COALESCE(nos[b.parts[1] + 1], '[]') || to_jsonb(b.no);
            CONTINUE;
        END IF;
        -- a bill across partitions, or the end: first the run before it
        FOR p IN 1 .. c.n LOOP
            CONTINUE WHEN docs[p] IS NULL;
            FOR r IN SELECT a.status, row_number() OVER () - 1 AS i
                       FROM inventory_proxy.apply_bills(p - 1, docs[p]) a LOOP
                answers[(nos[p] ->> r.i::integer)::integer] := r.status;
            END LOOP;
        END LOOP;
        docs := array_fill(NULL::jsonb, ARRAY[c.n]);
        nos := docs;
        CONTINUE WHEN b.no IS NULL;
        PERFORM inventory_proxy.check_key(b.bill ->> 'key');
        outcome := (SELECT CASE WHEN count(*) = 0
                                THEN ROW('ok', NULL, NULL, NULL)::inventory.outcome
                                ELSE inventory_proxy.two_phase(b.bill ->> 'key',
                   inventory_proxy.partition_of(b.bill ->> 'key', c.n, c.modular),
                   array_agg(x.sku ORDER BY x.sku COLLATE "C", x.location COLLATE "C"),
                   array_agg(x.location ORDER BY x.sku COLLATE "C", x.location COLLATE "C"),
                   array_agg(x.delta ORDER BY x.sku COLLATE "C", x.location COLLATE "C")) END
          FROM (SELECT l ->> 'sku' AS sku, COALESCE(l ->> 'location', 'default') AS location,
                       sum((l ->> 'delta')::numeric)::bigint AS delta
                  FROM jsonb_array_elements(b.bill -> 'lines') l
                 GROUP BY 1, 2) x
         WHERE x.delta <> 0);
        answers[b.no] := outcome.status;
    END LOOP;
    RETURN QUERY
        SELECT d.e ->> 'key', answers[d.o]
          FROM jsonb_array_elements(bills) WITH ORDINALITY AS d(e, o)
         ORDER BY d.o;
END
$$;

-- Nothing is callable by PUBLIC; see the README for the grants.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA inventory FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA inventory_proxy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA inventory FROM PUBLIC;
-- the views read through these: a role that may select a view may run them
-- (and without usage on schema inventory_proxy, nothing else)
GRANT EXECUTE ON FUNCTION inventory_proxy.stock_levels_all(),
                          inventory_proxy.locations_all() TO PUBLIC;
