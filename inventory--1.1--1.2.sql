/* inventory--1.1--1.2.sql: upgrade from 1.1 (ALTER EXTENSION inventory UPDATE) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION inventory UPDATE TO '1.2'" to load this file. \quit

-- The library must be in shared_preload_libraries: say so now, with the
-- hint, rather than at the first call (hot_counters() checks it).
SELECT count(*) FROM inventory.hot_counters();

-- worker_status() also shows the backlog a monitor watches: the age of the
-- oldest held reservation past its expiry, and the ledger rows older than
-- inventory.history_retention (NULL when it is not set)
DROP FUNCTION inventory.worker_status();
CREATE FUNCTION inventory.worker_status(
    OUT pid integer, OUT started_at timestamptz,
    OUT last_merge_at timestamptz, OUT merge_passes bigint,
    OUT rows_merged bigint, OUT movements_merged bigint,
    OUT last_expire_at timestamptz, OUT expire_passes bigint,
    OUT expired bigint, OUT errors bigint, OUT last_error text,
    OUT merged_batches bigint, OUT merged_requests bigint, OUT largest_batch bigint,
    OUT database name, OUT last_archive_at timestamptz, OUT archived bigint,
    OUT promoted bigint, OUT demoted bigint,
    OUT oldest_overdue interval, OUT ledger_past_retention bigint)
AS 'MODULE_PATHNAME', 'worker_status' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.worker_status() FROM PUBLIC;

-- The answers the calls gave, per call and status, since the server
-- started or stats_reset(): counted in shared memory, no table is written.
CREATE FUNCTION inventory.call_counts(OUT call text, OUT status text, OUT calls bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'call_counts' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION inventory.call_counts() FROM PUBLIC;
CREATE VIEW inventory.stats AS SELECT call, status, calls FROM inventory.call_counts();
CREATE FUNCTION inventory.stats_reset() RETURNS void
AS 'MODULE_PATHNAME', 'stats_reset' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION inventory.stats_reset() FROM PUBLIC;

-- Monitoring: members of pg_monitor read the figures, and nothing else.
GRANT USAGE ON SCHEMA inventory TO pg_monitor;
GRANT SELECT ON inventory.stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION inventory.call_counts() TO pg_monitor;
GRANT EXECUTE ON FUNCTION inventory.worker_status() TO pg_monitor;

-- A publication of every table (logical replication, a CDC tool) must not
-- stop the worker: the hot-row queue and the archived keys, which have no
-- key of their own, are identified by their whole rows when their
-- deletions are published (this costs nothing below wal_level = logical).
ALTER TABLE inventory.pending REPLICA IDENTITY FULL;
ALTER TABLE inventory.archived_key REPLICA IDENTITY FULL;

-- A part a partial step settled keeps the step's key: a whole confirm or
-- release, once nothing is held, answers from what it (or the expiry) did
-- with the units the steps left, however often it is retried.
ALTER TABLE inventory.reservation ADD COLUMN step text;

-- Held carts: every line held or none, one reservation under one key, a
-- part per stock row; confirm, release and expiry act on the whole cart.
CREATE FUNCTION inventory.reserve_cart(skus text[], qtys bigint[], key text,
                                       ttl interval DEFAULT '15 minutes',
                                       locations text[] DEFAULT NULL)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'reserve_cart' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.reserve_cart(text[], bigint[], text, interval, text[]) FROM PUBLIC;

-- Reservations settled in parts: confirm(key, qty, step, sku) and release
-- with the same arguments (qty NULL: the whole reservation, as in 1.1).  The
-- functions are re-created with their new arguments; every role that could
-- execute the 1.1 ones keeps that right, so applications go on after the
-- update without new grants.
DO $$
DECLARE
    f text;
    grantee text;
BEGIN
    FOREACH f IN ARRAY ARRAY['confirm', 'release'] LOOP
        CREATE TEMP TABLE IF NOT EXISTS inventory_grantees (f text, role text);
        INSERT INTO inventory_grantees
        SELECT f, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
          FROM pg_catalog.pg_proc p,
               LATERAL pg_catalog.aclexplode(p.proacl) a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE p.oid = pg_catalog.to_regprocedure('inventory.' || f || '(text)')
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner;
    END LOOP;
END $$;
DROP FUNCTION inventory.confirm(text);
DROP FUNCTION inventory.release(text);
CREATE FUNCTION inventory.confirm(key text, qty bigint DEFAULT NULL,
                                  step text DEFAULT NULL, sku text DEFAULT NULL)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'confirm' LANGUAGE C VOLATILE SECURITY DEFINER;
CREATE FUNCTION inventory.release(key text, qty bigint DEFAULT NULL,
                                  step text DEFAULT NULL, sku text DEFAULT NULL)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'release' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.confirm(text, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.release(text, bigint, text, text) FROM PUBLIC;
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT f, role FROM inventory_grantees LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION inventory.%s(text, bigint, text, text) TO %s',
                       g.f, g.role);
    END LOOP;
    DROP TABLE inventory_grantees;
END $$;

-- Grants a user made before the update stay the user's.  PostgreSQL takes
-- the whole ACL of an object an extension's script grants on as the
-- extension's initial privileges, which pg_dump leaves out: the schema's
-- USAGE for pg_monitor above took in every USAGE a user had granted, and
-- confirm and release their grantees.  Their initial privileges are set
-- back to what a fresh install records (the owner's own, pg_monitor's).
UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT a FROM pg_catalog.unnest(i.initprivs) a,
                                       LATERAL (SELECT e.grantor, e.grantee
                                                  FROM pg_catalog.aclexplode(ARRAY[a]) e
                                                 LIMIT 1) e
                          WHERE e.grantee = e.grantor
                             OR e.grantee = 'pg_monitor'::pg_catalog.regrole)
 WHERE i.privtype = 'e'
   AND ((i.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
         AND i.objoid = 'inventory'::pg_catalog.regnamespace)
     OR (i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
         AND i.objoid IN ('inventory.confirm(text, bigint, text, text)'::pg_catalog.regprocedure,
                          'inventory.release(text, bigint, text, text)'::pg_catalog.regprocedure)));

-- A reservation as a whole: its parts (one per stock row, and one more per
-- unit count a step settled) summed.  qty is what it held at first.
CREATE VIEW inventory.reservations AS
SELECT key,
       pg_catalog.min(created_at) AS created_at,
       pg_catalog.max(expires_at) AS expires_at,
       CASE WHEN pg_catalog.bool_or(state OPERATOR(pg_catalog.=) 'held') THEN 'held'
            WHEN pg_catalog.bool_or(state OPERATOR(pg_catalog.=) 'confirmed') THEN 'confirmed'
            WHEN pg_catalog.bool_or(state OPERATOR(pg_catalog.=) 'expired') THEN 'expired'
            ELSE 'released' END AS state,
       pg_catalog.sum(qty)::bigint AS qty,
       COALESCE(pg_catalog.sum(qty) FILTER (WHERE state OPERATOR(pg_catalog.=) 'held'), 0)::bigint AS held,
       COALESCE(pg_catalog.sum(qty) FILTER (WHERE state OPERATOR(pg_catalog.=) 'confirmed'), 0)::bigint AS confirmed,
       COALESCE(pg_catalog.sum(qty) FILTER (WHERE state OPERATOR(pg_catalog.=) 'released'), 0)::bigint AS released,
       COALESCE(pg_catalog.sum(qty) FILTER (WHERE state OPERATOR(pg_catalog.=) 'expired'), 0)::bigint AS expired,
       pg_catalog.array_agg(DISTINCT sku ORDER BY sku) AS skus
  FROM inventory.reservation
 GROUP BY key;

-- Carts across shards (inventory_proxy): the record of a cart or bill whose
-- lines live on several shards, kept on the shard that is its key's home
-- (the partition the key would have as a sku), written before any of its
-- lines is sold (a cart's in the round of its holds, a bill's before
-- them), so that any proxy, or inventory_proxy.resolve() with no client,
-- finishes or undoes it.  lines: {"skus", "locations", "deltas"} in row
-- order, and "ttl" (in seconds) for a held cart (reserve_cart); attempt:
-- the attempt whose derived keys ("<key>#<attempt>.<line>") are in use;
-- state: pending, ok (sold), undone (nothing of it sold: a retry may try
-- again), cancelled (inventory_proxy.cancel, or a release before the cart:
-- a later cart with the key answers conflict), and for a held cart holding
-- (its lines being held), held (every line held, until touched_at + ttl),
-- confirming (being sold: whoever finds it finishes it), released,
-- expired; touched_at: when the attempt began; rest: for a held cart
-- settled in parts (a step was sent to a line), '{}' while held, the units
-- each line still held when its confirm began (what that confirm sells)
-- while confirming, and once released, expired or cancelled the units
-- steps sold of each line.
CREATE TABLE inventory.cart_manifest (
    key        text        PRIMARY KEY,
    lines      jsonb       NOT NULL,
    ttl        interval    NOT NULL,
    attempt    integer     NOT NULL DEFAULT 0,
    state      text        NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    touched_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    rest       bigint[]
);
CREATE INDEX cart_manifest_pending ON inventory.cart_manifest (touched_at)
    WHERE state IN ('pending', 'holding', 'held', 'confirming');
SELECT pg_catalog.pg_extension_config_dump('inventory.cart_manifest', '');

/*
 * The lock of a cross-shard cart's key, and its manifest: the caller (the
 * proxy's connection) tries, without waiting, to take the key's session
 * lock, as 1.1's proxy did, so that calls with one key, from any proxy,
 * take turns, and a proxy that dies lets go with its connection.  Holding
 * it, the manifest is recorded as pending (a held cart's as holding) if
 * the key has none (new_lines not NULL).  Returns whether the lock was taken and what is recorded (NULLs
 * for an unknown key; an earlier call's lines and ttl win).
 */
CREATE FUNCTION inventory.manifest_open(key text, new_lines jsonb, new_ttl interval)
RETURNS TABLE (locked boolean, lines jsonb, ttl interval, attempt integer, state text,
               touched_at timestamptz, rest bigint[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pg_catalog.pg_try_advisory_lock(1769365621, pg_catalog.hashtext(manifest_open.key)) THEN
        RETURN QUERY SELECT false, NULL::jsonb, NULL::interval, NULL::integer, NULL::text,
                            NULL::timestamptz, NULL::bigint[];
        RETURN;
    END IF;
    IF new_lines IS NOT NULL THEN
        INSERT INTO inventory.cart_manifest AS m (key, lines, ttl, state)
        VALUES (manifest_open.key, new_lines, new_ttl,
                CASE WHEN new_lines ? 'ttl' THEN 'holding' ELSE 'pending' END)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN QUERY
    SELECT true, m.lines, m.ttl, m.attempt, m.state, m.touched_at, m.rest
      FROM (SELECT) one LEFT JOIN inventory.cart_manifest m ON m.key = manifest_open.key;
END
$$;

-- What is recorded of a key (no row: unknown).
CREATE FUNCTION inventory.manifest_of(key text)
RETURNS TABLE (lines jsonb, ttl interval, attempt integer, state text, touched_at timestamptz,
               rest bigint[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.lines, m.ttl, m.attempt, m.state, m.touched_at, m.rest FROM inventory.cart_manifest m
     WHERE m.key = manifest_of.key
$$;

-- A cart's move to another attempt or state (pending or holding from
-- another attempt or state: the attempt begins now); a key refused with nothing recorded forgets its manifest
-- (state NULL), and stays unused, as on one node.  With unlock, the
-- caller lets go of its key's lock too (manifest_open); rest, when given,
-- replaces what is recorded of a held cart settled in parts.
CREATE FUNCTION inventory.manifest_mark(key text, attempt integer, state text, unlock boolean,
                                        rest bigint[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF manifest_mark.state IS NULL THEN
        DELETE FROM inventory.cart_manifest m WHERE m.key = manifest_mark.key;
    ELSE
        INSERT INTO inventory.cart_manifest AS m (key, lines, ttl, attempt, state)
        VALUES (manifest_mark.key, '{}', interval '0', manifest_mark.attempt, manifest_mark.state)
        ON CONFLICT ON CONSTRAINT cart_manifest_pkey DO UPDATE
           SET attempt = excluded.attempt, state = excluded.state,
               rest = COALESCE(manifest_mark.rest, m.rest),
               touched_at = CASE WHEN excluded.state IN ('pending', 'holding')
                                      AND (m.attempt <> excluded.attempt OR m.state <> excluded.state)
                                 THEN pg_catalog.statement_timestamp() ELSE m.touched_at END;
    END IF;
    IF unlock THEN
        PERFORM pg_catalog.pg_advisory_unlock_all();
    END IF;
END
$$;

-- For the resolver: the carts left pending, holding or held longer than
-- their ttl, and every cart being confirmed (one whose confirm is under way
-- has its key's lock, and the resolver passes it by).
CREATE FUNCTION inventory.manifests_due()
RETURNS TABLE (key text, lines jsonb, ttl interval, attempt integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.key, m.lines, m.ttl, m.attempt FROM inventory.cart_manifest m
     WHERE (m.state IN ('pending', 'holding', 'held')
            AND m.touched_at + m.ttl < pg_catalog.statement_timestamp())
        OR m.state = 'confirming'
     ORDER BY m.touched_at
$$;

/*
 * One partition's share of a round of a cart across shards, in one call
 * and one transaction (inventory_proxy sends every round this way, so a
 * round costs the shard one short statement and the plans here are
 * cached by the connection).  Each line has its action, applied in
 * row-lock order: hold (reserve under the line's derived key for ttl; a
 * key that already holds this line answers duplicate whatever its ttl,
 * which the cart's manifest records), confirm, release, sell (a step
 * that confirms qty units under "<key>~rest": the rest of a line of a held
 * cart settled in parts), refund (undo a sold line under "<key>~undo") or
 * restock (a receipt).
 * The two actions of the key's home partition name the cart's key as key
 * and sku: open, first (manifest_open with lines and ttl, a held cart's
 * own ttl from its lines: ok when the lock is taken and the manifest is at
 * attempt 0, pending with these lines and this ttl (a held cart's: new,
 * holding), busy when another call has the lock, conflict otherwise; when
 * not ok, the call's other lines are left alone and get no row), and ok,
 * last (the manifest ok at attempt qty, and the lock let go, only if every
 * other line of the call answered ok or duplicate; conflict when not).
 */
CREATE FUNCTION inventory.cart_step(keys text[], skus text[], qtys bigint[], locations text[],
                                    actions text[], ttl interval, lines jsonb)
RETURNS TABLE (key text, status text, available bigint, sku text, location text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    l record;
    o inventory.outcome;
    m record;
    settled boolean := true;
    opened boolean := true;
BEGIN
    FOR l IN SELECT u.k, u.s, u.q, u.loc, u.a
               FROM unnest(keys, skus, qtys, locations, actions) AS u(k, s, q, loc, a)
              ORDER BY CASE u.a WHEN 'open' THEN 0 WHEN 'ok' THEN 2 ELSE 1 END,
                       CASE WHEN u.a NOT IN ('open', 'ok') THEN inventory.lock_key(u.s, u.loc) END
    LOOP
        CONTINUE WHEN NOT opened;
        o := NULL;
        CASE l.a
        WHEN 'hold' THEN
            IF EXISTS (SELECT FROM inventory.reservation r
                        WHERE r.key = l.k AND r.sku = l.s AND r.location = l.loc
                          AND r.qty = l.q) THEN
                o := ROW('duplicate', NULL, l.s, l.loc);
            ELSE
                o := inventory.reserve(l.s, l.q, l.k, ttl, l.loc);
            END IF;
        WHEN 'confirm' THEN
            o := inventory.confirm(l.k);
        WHEN 'release' THEN
            o := inventory.release(l.k);
        WHEN 'sell' THEN
            o := inventory.confirm(l.k, l.q, l.k || '~rest', l.s);
        WHEN 'refund' THEN
            o := inventory.refund(l.k, l.q, l.k || '~undo');
        WHEN 'restock' THEN
            o := inventory.restock(l.s, l.q, l.k, l.loc);
        WHEN 'open' THEN
            SELECT * INTO m FROM inventory.manifest_open(
                l.k, lines, COALESCE(((lines ->> 'ttl') || ' s')::interval, ttl));
            o.status := CASE WHEN NOT m.locked THEN 'busy'
                             WHEN m.state = CASE WHEN lines ? 'ttl' THEN 'holding' ELSE 'pending' END
                                  AND m.attempt = 0 AND m.lines = cart_step.lines
                                  AND m.ttl = COALESCE(((lines ->> 'ttl') || ' s')::interval, ttl)
                                  -- a held cart's manifest only when new (made by this statement)
                                  AND (NOT lines ? 'ttl' OR m.touched_at = pg_catalog.statement_timestamp())
                             THEN 'ok' ELSE 'conflict' END;
            opened := o.status = 'ok';
        WHEN 'ok' THEN
            IF settled THEN
                PERFORM inventory.manifest_mark(l.k, l.q::integer, 'ok', true);
            END IF;
            o.status := CASE WHEN settled THEN 'ok' ELSE 'conflict' END;
        ELSE
            RAISE EXCEPTION 'unknown action of a cart across shards: %', l.a
                USING ERRCODE = 'invalid_parameter_value';
        END CASE;
        settled := settled AND o.status IN ('ok', 'duplicate');
        key := l.k;
        status := o.status;
        available := o.available;
        sku := o.sku;
        location := o.location;
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION inventory.manifest_open(text, jsonb, interval),
                       inventory.manifest_of(text),
                       inventory.manifest_mark(text, integer, text, boolean, bigint[]),
                       inventory.manifests_due(),
                       inventory.cart_step(text[], text[], bigint[], text[], text[], interval, jsonb)
  FROM PUBLIC;

-- What every object is for (psql \df+, \d+, \dT+).
-- types
COMMENT ON TYPE inventory.outcome IS 'The result of every mutating call: a status (ok, duplicate, insufficient, not_found, expired, conflict or busy), the units available at the row after the call, and the stock row it is about. Business outcomes such as sold out are statuses, never errors, so they do not abort the caller''s transaction.';
COMMENT ON COLUMN inventory.outcome.status IS 'The call''s status: ok, duplicate, insufficient, not_found, expired, conflict or busy; only ok changes anything.';
COMMENT ON COLUMN inventory.outcome.available IS 'Units available at the stock row after the call; NULL when there is no row, and for a cart that went through.';
COMMENT ON COLUMN inventory.outcome.sku IS 'SKU of the stock row the outcome is about (for a cart, the line that failed it); NULL when unknown.';
COMMENT ON COLUMN inventory.outcome.location IS 'Location of the stock row the outcome is about; NULL when unknown or when the units came from several locations.';

-- tables
COMMENT ON TABLE inventory.stock IS 'One row per (sku, location) with its stock counters: available = on_hand - reserved, less queued hot-row movements. Only the extension''s calls write it; a CHECK keeps 0 <= reserved <= on_hand.';
COMMENT ON COLUMN inventory.stock.sku IS 'The stock-keeping unit the row counts.';
COMMENT ON COLUMN inventory.stock.location IS 'The location holding the units; ''default'' when none is named.';
COMMENT ON COLUMN inventory.stock.on_hand IS 'Units physically held, as merged into the row (queued hot-row movements not included).';
COMMENT ON COLUMN inventory.stock.reserved IS 'Units held by open reservations, as merged into the row.';
COMMENT ON COLUMN inventory.stock.hot IS 'Whether the row goes through the hot path (a shared-memory escrow counter and the pending queue) instead of updates of this row.';
COMMENT ON COLUMN inventory.stock.next_expiry IS 'No held reservation of the row expires before this time (infinity when none is held); it may be earlier than the true next expiry, never later.';
COMMENT ON COLUMN inventory.stock.pinned IS 'Whether the row''s hot state was set by set_hot, so the automatic rule (inventory.auto_hot) leaves it alone.';

COMMENT ON TABLE inventory.ledger IS 'Append-only journal with exactly one row per change of a stock counter, and the idempotency record of every keyed call (its first row names the call). Per stock row, on_hand = sum(on_hand_delta) and reserved = sum(reserved_delta).';
COMMENT ON COLUMN inventory.ledger.id IS 'Row identity, from the sequence inventory.ledger_id_seq.';
COMMENT ON COLUMN inventory.ledger.op IS 'The movement: restock, adjust, deduct, reserve, confirm, release, expire, refund, bill, or checkpoint (the sums of rows folded by archive()).';
COMMENT ON COLUMN inventory.ledger.key IS 'Idempotency key of the call that wrote the row; on confirm, release and expire rows, the reservation''s key.';
COMMENT ON COLUMN inventory.ledger.sku IS 'SKU of the stock row moved; NULL on a tombstone.';
COMMENT ON COLUMN inventory.ledger.location IS 'Location of the stock row moved; NULL on a tombstone.';
COMMENT ON COLUMN inventory.ledger.on_hand_delta IS 'Signed change to the row''s on_hand.';
COMMENT ON COLUMN inventory.ledger.reserved_delta IS 'Signed change to the row''s reserved.';
COMMENT ON COLUMN inventory.ledger.ref IS 'For a refund, the sale''s key; on the call row of deduct_any, deduct_cart_any and reserve_any, the call''s canonical arguments.';
COMMENT ON COLUMN inventory.ledger.at IS 'When the row was written (the statement''s start time).';
COMMENT ON COLUMN inventory.ledger.call IS 'On the first row a keyed call wrote, the call''s name (unique by key; release on a tombstone); NULL on its other rows and on rows that settle a reservation.';
COMMENT ON COLUMN inventory.ledger.counted IS 'On the call row of an adjust, the stocktake''s counted figure.';

COMMENT ON TABLE inventory.reservation IS 'One row per reservation, or per location part of a reserve_any, with its quantity, state and expiry; (key, part) is its primary key.';
COMMENT ON COLUMN inventory.reservation.key IS 'Idempotency key of the reserve or reserve_any that made the hold.';
COMMENT ON COLUMN inventory.reservation.sku IS 'SKU of the stock row held.';
COMMENT ON COLUMN inventory.reservation.location IS 'Location of the stock row held.';
COMMENT ON COLUMN inventory.reservation.qty IS 'Units held (positive).';
COMMENT ON COLUMN inventory.reservation.state IS 'held, confirmed, released or expired.';
COMMENT ON COLUMN inventory.reservation.created_at IS 'When the reservation was made (the statement''s start time).';
COMMENT ON COLUMN inventory.reservation.expires_at IS 'When the hold expires: created_at plus ttl.';
COMMENT ON COLUMN inventory.reservation.ttl IS 'The ttl the call asked for, kept to compare retries.';
COMMENT ON COLUMN inventory.reservation.part IS '0 for a reserve; 1, 2, ... for the parts of a reserve_any, one per location.';
COMMENT ON COLUMN inventory.reservation.step IS 'The key of the partial confirm or release (step) that settled this part; NULL for a part held, or settled by the whole confirm or release, or by expiry.';

COMMENT ON TABLE inventory.pending IS 'Queue of hot-row movements not yet merged into their stock rows; the worker (or merge()) folds them in, one UPDATE per row.';
COMMENT ON COLUMN inventory.pending.sku IS 'SKU of the hot stock row moved.';
COMMENT ON COLUMN inventory.pending.location IS 'Location of the hot stock row moved.';
COMMENT ON COLUMN inventory.pending.on_hand_delta IS 'Signed change to on_hand, not yet merged into the stock row.';
COMMENT ON COLUMN inventory.pending.reserved_delta IS 'Signed change to reserved, not yet merged into the stock row.';

COMMENT ON TABLE inventory.archived_key IS 'The keys of calls whose ledger rows archive() folded, kept as 16-byte MD5 digests in 4,096 buckets, so a retry of such a key still answers duplicate and applies nothing.';
COMMENT ON COLUMN inventory.archived_key.bucket IS 'The bucket: the first 12 bits of each digest in the row.';
COMMENT ON COLUMN inventory.archived_key.level IS 'Merge level: each archiving batch adds rows of level 0, and four rows of one level merge into one of the next.';
COMMENT ON COLUMN inventory.archived_key.digests IS 'The MD5 digests of archived keys, 16 bytes each, in no order.';

COMMENT ON TABLE inventory.location IS 'Configured locations: each one''s allocation priority and whether it may be allocated from. A location never configured has priority 0 and is active.';
COMMENT ON COLUMN inventory.location.location IS 'The location''s name.';
COMMENT ON COLUMN inventory.location.priority IS 'Allocation priority: higher is allocated from first.';
COMMENT ON COLUMN inventory.location.active IS 'Whether the location may be allocated from.';

-- sequences
COMMENT ON SEQUENCE inventory.ledger_id_seq IS 'Identity sequence of inventory.ledger.id; dumped with the extension''s data so that new ledger ids follow the old ones after a restore.';

-- views
COMMENT ON VIEW inventory.stock_levels IS 'Per stock row: the merged counters, what unmerged hot-row movements take (pending), and the units available now, counting a held reservation already past its expires_at as available.';
COMMENT ON COLUMN inventory.stock_levels.sku IS 'SKU of the stock row.';
COMMENT ON COLUMN inventory.stock_levels.location IS 'Location of the stock row.';
COMMENT ON COLUMN inventory.stock_levels.on_hand IS 'Units physically held, as merged into the stock row.';
COMMENT ON COLUMN inventory.stock_levels.reserved IS 'Units held by open reservations, as merged into the stock row.';
COMMENT ON COLUMN inventory.stock_levels.pending IS 'Units that unmerged hot-row movements take from available; negative when they return more than they take.';
COMMENT ON COLUMN inventory.stock_levels.available IS 'Units available now: on_hand - reserved - pending, with overdue held reservations counted as available.';
COMMENT ON COLUMN inventory.stock_levels.hot IS 'Whether the row goes through the hot path.';

COMMENT ON VIEW inventory.availability IS 'Per SKU, the figures of inventory.stock_levels summed over all its locations.';
COMMENT ON COLUMN inventory.availability.sku IS 'The SKU.';
COMMENT ON COLUMN inventory.availability.locations IS 'Number of locations with a stock row of the SKU.';
COMMENT ON COLUMN inventory.availability.on_hand IS 'Units physically held over all locations, as merged.';
COMMENT ON COLUMN inventory.availability.reserved IS 'Units held by open reservations over all locations, as merged.';
COMMENT ON COLUMN inventory.availability.pending IS 'Units that unmerged hot-row movements take from available, over all locations.';
COMMENT ON COLUMN inventory.availability.available IS 'Units available now over all locations.';

COMMENT ON VIEW inventory.locations IS 'Every location with its allocation rule: the configured ones, and every location that holds stock (priority 0 and active unless configured).';
COMMENT ON COLUMN inventory.locations.location IS 'The location''s name.';
COMMENT ON COLUMN inventory.locations.priority IS 'Allocation priority (higher first); 0 when not configured.';
COMMENT ON COLUMN inventory.locations.active IS 'Whether the location may be allocated from; true when not configured.';

-- functions
COMMENT ON FUNCTION inventory.deduct(text, bigint, text, text, boolean) IS 'Takes qty units of sku at location now (order-time deduction), applied at most once per key; with nowait => true it answers busy instead of queueing behind another writer of the row. Returns an outcome with status ok, duplicate, insufficient, not_found or busy.';
COMMENT ON FUNCTION inventory.deduct_cart(text[], bigint[], text, text[]) IS 'Takes every line of a cart or none, locking its rows in one canonical order so carts never deadlock; lines of one row are summed. Returns one outcome: ok, duplicate, insufficient or not_found, naming the line that failed.';
COMMENT ON FUNCTION inventory.reserve(text, bigint, text, interval, text) IS 'Try phase: holds qty units of sku at location until now + ttl (default 15 minutes), applied at most once per key. Returns an outcome: ok, duplicate, insufficient, not_found, or conflict when the key was released before it arrived.';
COMMENT ON FUNCTION inventory.apply_bills(jsonb) IS 'Applies a JSON array of bills ({"key", "lines": [{"sku", "delta", "location"}]}; a negative delta takes units, a positive one receives them) in order, each all or nothing. Returns one (key, status) row per bill in order: ok, duplicate, insufficient or not_found.';
COMMENT ON FUNCTION inventory.available(text, text) IS 'Returns the units of sku available now at one location, or over all its locations when location is NULL; NULL for an unknown sku.';
COMMENT ON FUNCTION inventory.restock(text, bigint, text, text) IS 'Adds qty units to sku at location, creating the stock row if absent, applied at most once per key. Returns an outcome: ok or duplicate.';
COMMENT ON FUNCTION inventory.adjust(text, bigint, text, text) IS 'Stocktake: sets on_hand of an existing stock row to the counted figure and writes the difference to the ledger, applied at most once per key. Returns an outcome: ok, duplicate, conflict if the count is below reserved, or not_found for an unknown row.';
COMMENT ON FUNCTION inventory.refund(text, bigint, text) IS 'Returns qty units of the sale original_key (a deduct, a cart or allocation of one sku, or a confirmed reservation) to the rows they came from, applied at most once per key. Returns an outcome: ok, duplicate, insufficient beyond what is refundable, not_found if original_key is no sale, or conflict for an unconfirmed reservation.';
COMMENT ON FUNCTION inventory.set_hot(text, boolean, text) IS 'Routes a stock row through the hot path (hot => true) or back (false) and pins it so the automatic rule leaves it alone; hot => NULL hands it back to the rule. Returns an outcome: ok, or not_found for an unknown row.';
COMMENT ON FUNCTION inventory.merge() IS 'Folds every queued hot-row movement into its stock row now, as the worker does every inventory.merge_interval. Returns how many queue rows it folded.';
COMMENT ON FUNCTION inventory.hot_counters() IS 'Lists the escrow counters of this database''s hot rows used since the server started: whether each is loaded, its available units, the transactions using it, units taken and refusals.';
COMMENT ON FUNCTION inventory.expire() IS 'Releases every held reservation past its expires_at now. Returns how many it released.';
COMMENT ON FUNCTION inventory.reconcile() IS 'Checks the invariants: stock counters against the ledger and held reservations, and each hot row''s counter against the tables. Returns one (sku, location, problem, expected, actual) row per breach; no rows when consistent.';
COMMENT ON FUNCTION inventory.lock_key(text, text) IS 'Returns the advisory lock key of a stock row, as pg_locks shows it (classid = high 32 bits, objid = low 32 bits, objsubid = 1).';
COMMENT ON FUNCTION inventory.archive(timestamptz) IS 'Folds the ledger rows older than before into one checkpoint per stock row, keeps the keys of their calls as digests in archived_key, and drops concluded reservations created before it. Returns how many ledger rows it folded.';
COMMENT ON FUNCTION inventory.set_location(text, integer, boolean) IS 'Sets a location''s allocation priority (higher first) and whether it may be allocated from, replacing what was set before. Returns nothing.';
COMMENT ON FUNCTION inventory.deduct_any(text, bigint, text, text[], text) IS 'Takes qty units of sku from one or several candidate locations (those given, or every active one holding it, by priority), all or nothing, by strategy priority, most_available or single. Returns an outcome: ok, duplicate, insufficient or not_found; its location is NULL when the units were split.';
COMMENT ON FUNCTION inventory.reserve_any(text, bigint, text, interval, text[], text) IS 'Holds qty units of sku at one or several candidate locations, all or nothing, as one reservation part per location; confirm, release and expiry act on every part. Returns an outcome: ok, duplicate, insufficient, not_found, or conflict when the key was released before it arrived.';
COMMENT ON FUNCTION inventory.deduct_cart_any(text[], bigint[], text, text[]) IS 'Takes a whole cart, all or nothing, from as few candidate locations as can serve it. Returns one outcome: ok, duplicate, insufficient or not_found, naming the first line no set of locations can serve.';
COMMENT ON FUNCTION inventory.allocation(text) IS 'Returns where the units of an applied deducting or reserving call came from, one (sku, location, qty) row per part in the order taken; empty for an unknown key or a call that changed nothing.';

-- the objects of 1.2
COMMENT ON FUNCTION inventory.worker_status() IS 'Reports what the worker serving this database has done: merge, expiry and archive passes, errors, merged-mode batches, automatic hot-row promotions and demotions; and the backlog: the age of the oldest held reservation past its expiry, and the ledger rows older than inventory.history_retention. Returns one row; pid is NULL, with a warning, when no worker serves the database. Members of pg_monitor may call it.';
COMMENT ON FUNCTION inventory.call_counts() IS 'The answers the calls gave in this database since the server started or stats_reset(): a row per call and status answered at least once. Read it through the view inventory.stats.';
COMMENT ON VIEW inventory.stats IS 'The answers the calls gave in this database, per call and status, since the server started or stats_reset(), counted in shared memory. Members of pg_monitor may read it.';
COMMENT ON COLUMN inventory.stats.call IS 'The call: restock, adjust, deduct, deduct_cart, reserve, confirm, release, refund, deduct_any, reserve_any, deduct_cart_any, apply_bills (one answer per bill) or set_hot.';
COMMENT ON COLUMN inventory.stats.status IS 'The status answered: ok, duplicate, insufficient, not_found, expired, conflict or busy.';
COMMENT ON COLUMN inventory.stats.calls IS 'How many times the call answered that status.';
COMMENT ON FUNCTION inventory.stats_reset() IS 'Sets the counts of inventory.stats of this database back to zero.';
COMMENT ON FUNCTION inventory.reserve_cart(text[], bigint[], text, interval, text[]) IS 'Holds every line of a cart or none until now + ttl, as one reservation under key with a part per stock row (lines of one row summed; locations one per line, NULL for default). Returns ok, duplicate, insufficient, not_found or conflict (a tombstone); confirm, release and expiry act on the whole cart, partial steps on one line.';
COMMENT ON FUNCTION inventory.confirm(text, bigint, text, text) IS 'Sells a reservation''s held units: all of them (qty NULL; idempotent by the reservation''s key), or qty units of one line as a step under its own key (sku names the line when the reservation holds several). Returns ok, duplicate, insufficient (more than is held), not_found, expired or conflict.';
COMMENT ON FUNCTION inventory.release(text, bigint, text, text) IS 'Gives a reservation''s held units back: all of them (qty NULL; records a tombstone for a reservation that has not arrived), or qty units of one line as a step under its own key. Returns ok, duplicate, insufficient, not_found, expired or conflict.';
COMMENT ON VIEW inventory.reservations IS 'Each reservation as a whole, its parts summed: its state (held while any unit is held; then confirmed if any unit was sold, else released or expired), the units it held at first (qty), and how many are held, confirmed, released and expired.';
COMMENT ON TABLE inventory.cart_manifest IS 'Carts and bills across shards whose key has its home on this shard, recorded by inventory_proxy before their first hold: their lines, hold ttl (a held cart''s own ttl), current attempt and state (pending, ok, undone, cancelled; holding, held, confirming, released, expired for a held cart; rest: of a held cart settled in parts, what its lines held when its confirm began, or what steps sold once it was let go), so that any proxy or inventory_proxy.resolve() finishes or undoes them without the client.';
COMMENT ON FUNCTION inventory.manifest_open(text, jsonb, interval) IS 'Internal, for inventory_proxy: tries to take the session lock of a cross-shard cart''s key and, holding it, records the cart''s manifest as pending if it has none; returns whether it got the lock and what is recorded.';
COMMENT ON FUNCTION inventory.manifest_of(text) IS 'Internal, for inventory_proxy: what is recorded of a cross-shard cart''s key.';
COMMENT ON FUNCTION inventory.manifest_mark(text, integer, text, boolean, bigint[]) IS 'Internal, for inventory_proxy: a cross-shard cart moves to another attempt or state (NULL: forgotten, the key unused); with unlock, the caller lets go of the key''s lock.';
COMMENT ON FUNCTION inventory.cart_step(text[], text[], bigint[], text[], text[], interval, jsonb) IS 'Internal, for inventory_proxy: one partition''s share of a round of a cart across shards, in one transaction: each line held, confirmed (whole, or qty units as a step), released, refunded or restocked, in row-lock order, and the manifest opened (first) or marked ok (last) on the key''s home partition; returns each line''s outcome.';
COMMENT ON FUNCTION inventory.manifests_due() IS 'Internal, for inventory_proxy.resolve(): the cross-shard carts pending longer than their ttl.';
