/* inventory--1.0--1.1.sql: upgrade from 1.0 (ALTER EXTENSION inventory UPDATE) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION inventory UPDATE TO '1.1'" to load this file. \quit

-- worker_status() names the database the workers serve, and shows archiving
-- and the automatic rule's promotions and demotions
DROP FUNCTION inventory.worker_status();
CREATE FUNCTION inventory.worker_status(
    OUT pid integer, OUT started_at timestamptz,
    OUT last_merge_at timestamptz, OUT merge_passes bigint,
    OUT rows_merged bigint, OUT movements_merged bigint,
    OUT last_expire_at timestamptz, OUT expire_passes bigint,
    OUT expired bigint, OUT errors bigint, OUT last_error text,
    OUT merged_batches bigint, OUT merged_requests bigint, OUT largest_batch bigint,
    OUT database name, OUT last_archive_at timestamptz, OUT archived bigint,
    OUT promoted bigint, OUT demoted bigint)
AS 'MODULE_PATHNAME', 'worker_status' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.worker_status() FROM PUBLIC;

-- The ordinary path (1.1): one write per movement.  The idempotency record
-- moves into the ledger: the first row a keyed call writes carries the call's
-- name (call) and is unique by key; its arguments are the row itself (sku,
-- location, quantities, ref), plus the counted figure of a stocktake and the
-- ttl of a reservation.  A tombstone (a release that arrived before its
-- reservation) is a call row that moves nothing and names no stock row.
-- (Only the extension writes these tables; no CHECK is added, since every
-- constraint is evaluated anew by each statement that writes a row.)
ALTER TABLE inventory.ledger
    ADD COLUMN call text,
    ADD COLUMN counted bigint,
    ALTER COLUMN sku DROP NOT NULL,
    ALTER COLUMN location DROP NOT NULL;
ALTER TABLE inventory.reservation ADD COLUMN ttl interval;
-- a reservation from several locations (reserve_any) is one row per part,
-- parts 1, 2, ... under the call's key; a reserve's single row is part 0
ALTER TABLE inventory.reservation ADD COLUMN part smallint NOT NULL DEFAULT 0;
ALTER TABLE inventory.reservation DROP CONSTRAINT reservation_pkey,
    ADD CONSTRAINT reservation_pkey PRIMARY KEY (key, part);

-- the earliest expiry of the row's held reservations, or earlier (never
-- later): a writer that finds it in the future knows no hold of the row is
-- due without reading the reservations
ALTER TABLE inventory.stock
    ADD COLUMN next_expiry timestamptz NOT NULL DEFAULT 'infinity';

-- set_hot decides for good: a row whose hot state was set by hand is pinned,
-- and the automatic rule (inventory.auto_hot) leaves it alone; in 1.0 every
-- hot row was made so by hand
ALTER TABLE inventory.stock
    ADD COLUMN pinned boolean NOT NULL DEFAULT false;
UPDATE inventory.stock SET pinned = true WHERE hot;

-- 1.0's keys: each becomes the call row of the call that applied it, its
-- first ledger row of the call's op (found for all keys in one pass: the
-- ledger has no index on key yet, so nothing may look rows up key by key)
UPDATE inventory.ledger l SET call = q.op,
       counted = CASE WHEN q.op = 'adjust' THEN (q.args->>'on_hand')::bigint END
  FROM (SELECT f.key, min(f.id) AS id
          FROM inventory.ledger f
          JOIN inventory.request r ON r.key = f.key
         WHERE r.args IS NOT NULL
           AND f.op = CASE r.op WHEN 'deduct_cart' THEN 'deduct' ELSE r.op END
         GROUP BY f.key) m
  JOIN inventory.request q ON q.key = m.key
 WHERE l.id = m.id;
INSERT INTO inventory.ledger (op, key, call, at)
SELECT 'release', key, 'release', at FROM inventory.request WHERE args IS NULL;
UPDATE inventory.reservation r SET ttl = (q.args->>'ttl')::interval
  FROM inventory.request q WHERE q.key = r.key AND q.op = 'reserve';
UPDATE inventory.stock s SET next_expiry = h.next_expiry
  FROM (SELECT sku, location, min(expires_at) AS next_expiry
          FROM inventory.reservation WHERE state = 'held' GROUP BY 1, 2) h
 WHERE h.sku = s.sku AND h.location = s.location;
CREATE UNIQUE INDEX ledger_call_key ON inventory.ledger (key) WHERE call IS NOT NULL;
-- the other rows of a cart, a bill, an allocation or a refund over several
-- rows, found by key (a retry compares them)
CREATE INDEX ledger_call_lines ON inventory.ledger (key)
    WHERE call IS NULL AND op IN ('deduct', 'bill', 'refund');
DROP TABLE inventory.request;

-- Every CHECK is compiled anew by each statement that writes a row, and the
-- ledger's list of ops cost a sixth of an ordinary deduct; only the
-- extension writes these tables (the README lists the values it writes).
ALTER TABLE inventory.ledger DROP CONSTRAINT ledger_op_check;
-- likewise the reservation's list of states (a reserve and a confirm each
-- compiled it); quantities and the stock row's counters keep their checks
ALTER TABLE inventory.reservation DROP CONSTRAINT reservation_state_check;

-- History (archive()): ledger rows before a cutoff fold into one checkpoint
-- per stock row, and the keys of the calls they recorded are kept here, as
-- the MD5 digests of the keys (16 bytes each, in no order) in 4,096 buckets
-- by the digest's first 12 bits: a retry of such a key still answers
-- "duplicate" and applies nothing.  Each archiving batch adds a row of level
-- 0 per bucket; four rows of one level merge into one of the next, so a
-- bucket holds a few rows however long history grows, and a digest is
-- rewritten only a few times.
CREATE TABLE inventory.archived_key (
    bucket  integer NOT NULL,
    level   integer NOT NULL DEFAULT 0,
    digests bytea   NOT NULL
);
ALTER TABLE inventory.archived_key ALTER COLUMN digests SET STORAGE EXTERNAL;
CREATE INDEX archived_key_bucket ON inventory.archived_key (bucket);
-- what archive() looks for, by time (BRIN: next to nothing to keep up)
CREATE INDEX ledger_at ON inventory.ledger USING brin (at);
CREATE INDEX reservation_created_at ON inventory.reservation USING brin (created_at);

CREATE FUNCTION inventory.archive(before timestamptz)
RETURNS bigint
AS 'MODULE_PATHNAME', 'archive' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.archive(timestamptz) FROM PUBLIC;

-- Allocation across locations: a location's priority (higher first) and
-- whether it may be allocated from; a location never configured has
-- priority 0 and is active.  The call row of an allocating call keeps the
-- call's canonical arguments in ref (its candidates and strategy are not in
-- its rows).
CREATE TABLE inventory.location (
    location text    PRIMARY KEY,
    priority integer NOT NULL DEFAULT 0,
    active   boolean NOT NULL DEFAULT true
);
CREATE VIEW inventory.locations AS
SELECT l.location, COALESCE(c.priority, 0) AS priority, COALESCE(c.active, true) AS active
  FROM (SELECT location FROM inventory.location
        UNION SELECT location FROM inventory.stock) l
  LEFT JOIN inventory.location c ON c.location = l.location;

CREATE FUNCTION inventory.set_location(location text, priority integer DEFAULT 0,
                                       active boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'set_location' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.deduct_any(sku text, qty bigint, key text,
                                     locations text[] DEFAULT NULL,
                                     strategy text DEFAULT 'priority')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'deduct_any' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.reserve_any(sku text, qty bigint, key text,
                                      ttl interval DEFAULT '15 minutes',
                                      locations text[] DEFAULT NULL,
                                      strategy text DEFAULT 'priority')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'reserve_any' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.deduct_cart_any(skus text[], qtys bigint[], key text,
                                          locations text[] DEFAULT NULL)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'deduct_cart_any' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.allocation(key text)
RETURNS TABLE(sku text, location text, qty bigint)
AS 'MODULE_PATHNAME', 'allocation' LANGUAGE C STABLE SECURITY DEFINER;

REVOKE ALL ON FUNCTION inventory.set_location(text, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.deduct_any(text, bigint, text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.reserve_any(text, bigint, text, interval, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.deduct_cart_any(text[], bigint[], text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.allocation(text) FROM PUBLIC;

-- pg_dump dumps the rows of an extension's tables only when the extension
-- marks them: every table here holds user data, and the ledger's identity
-- sequence must restore its position so that new ids follow the old ones.
SELECT pg_catalog.pg_extension_config_dump('inventory.stock', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.reservation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.pending', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.archived_key', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.location', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger_id_seq', '');

