/* inventory--1.0.sql: schema, views and SQL entry points of the extension */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION inventory" to load this file. \quit

-- The result of every mutating call.  Business outcomes ("sold out") are
-- statuses, never errors, so a caller's transaction is not aborted by them.
CREATE TYPE inventory.outcome AS (
    status    text,     -- ok | duplicate | insufficient | not_found | expired | conflict | busy
    available bigint,   -- units available at sku+location after the call
    sku       text,     -- the stock row the outcome is about
    location  text
);

-- One row per (sku, location).  available = on_hand - reserved.
CREATE TABLE inventory.stock (
    sku       text    NOT NULL,
    location  text    NOT NULL DEFAULT 'default',
    on_hand   bigint  NOT NULL DEFAULT 0,
    reserved  bigint  NOT NULL DEFAULT 0,
    hot       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (sku, location),
    CONSTRAINT stock_counts_valid CHECK (reserved >= 0 AND reserved <= on_hand)
);

-- Every applied call, by its idempotency key: one namespace per database.
-- A key is recorded in the same transaction that applies the call, so it is
-- applied at most once, ever.  op = 'release' with no args is a tombstone: a
-- release that arrived before its reservation.
CREATE TABLE inventory.request (
    key   text        PRIMARY KEY,
    op    text        NOT NULL,
    args  json,
    at    timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp()
);

-- Append-only movement journal: exactly one row per change of a counter.
-- on_hand = sum(on_hand_delta) and reserved = sum(reserved_delta) per row.
CREATE TABLE inventory.ledger (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    op             text        NOT NULL
                   CHECK (op IN ('restock', 'adjust', 'deduct', 'reserve',
                                 'confirm', 'release', 'expire', 'refund', 'bill')),
    key            text        NOT NULL,
    sku            text        NOT NULL,
    location       text        NOT NULL,
    on_hand_delta  bigint      NOT NULL DEFAULT 0,
    reserved_delta bigint      NOT NULL DEFAULT 0,
    ref            text,
    at             timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp()
);
CREATE INDEX ledger_ref ON inventory.ledger (ref) WHERE ref IS NOT NULL;

CREATE TABLE inventory.reservation (
    key        text        PRIMARY KEY,
    sku        text        NOT NULL,
    location   text        NOT NULL,
    qty        bigint      NOT NULL CHECK (qty > 0),
    state      text        NOT NULL DEFAULT 'held'
               CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX reservation_held_by_row ON inventory.reservation (sku, location, expires_at)
    WHERE state = 'held';
CREATE INDEX reservation_held_by_expiry ON inventory.reservation (expires_at)
    WHERE state = 'held';

-- Queue of movements of hot rows, not yet merged into their stock rows: the
-- hot path writes here instead of updating the stock row, and the worker (or
-- merge()) folds them in, one UPDATE per row.
CREATE TABLE inventory.pending (
    sku            text   NOT NULL,
    location       text   NOT NULL,
    on_hand_delta  bigint NOT NULL DEFAULT 0,
    reserved_delta bigint NOT NULL DEFAULT 0
);
CREATE INDEX pending_row ON inventory.pending (sku, location);

-- Per stock row.  on_hand and reserved are the merged figures; pending is
-- what unmerged movements take from available (negative when they return
-- more than they take).  A held reservation past its expires_at is counted
-- as available even before anyone has expired it.
CREATE VIEW inventory.stock_levels AS
SELECT s.sku, s.location, s.on_hand, s.reserved,
       p.pending,
       s.on_hand - s.reserved - p.pending + o.overdue AS available,
       s.hot
  FROM inventory.stock s
 CROSS JOIN LATERAL (
       SELECT COALESCE(pg_catalog.sum(q.reserved_delta) OPERATOR(pg_catalog.-)
                       pg_catalog.sum(q.on_hand_delta), 0)::bigint AS pending
         FROM inventory.pending q
        WHERE q.sku OPERATOR(pg_catalog.=) s.sku
          AND q.location OPERATOR(pg_catalog.=) s.location) p
 CROSS JOIN LATERAL (
       SELECT COALESCE(pg_catalog.sum(r.qty), 0)::bigint AS overdue
         FROM inventory.reservation r
        WHERE r.sku OPERATOR(pg_catalog.=) s.sku
          AND r.location OPERATOR(pg_catalog.=) s.location
          AND r.state OPERATOR(pg_catalog.=) 'held'
          AND r.expires_at OPERATOR(pg_catalog.<=) pg_catalog.statement_timestamp()) o;

-- Per sku, all locations.
CREATE VIEW inventory.availability AS
SELECT sku,
       pg_catalog.count(*)::integer       AS locations,
       pg_catalog.sum(on_hand)::bigint    AS on_hand,
       pg_catalog.sum(reserved)::bigint   AS reserved,
       pg_catalog.sum(pending)::bigint    AS pending,
       pg_catalog.sum(available)::bigint  AS available
  FROM inventory.stock_levels
 GROUP BY sku;

-- Sale calls ---------------------------------------------------------------

CREATE FUNCTION inventory.deduct(sku text, qty bigint, key text,
                                 location text DEFAULT 'default',
                                 nowait boolean DEFAULT false)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'deduct' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.deduct_cart(skus text[], qtys bigint[], key text,
                                      locations text[] DEFAULT NULL)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'deduct_cart' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.reserve(sku text, qty bigint, key text,
                                  ttl interval DEFAULT '15 minutes',
                                  location text DEFAULT 'default')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'reserve' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.confirm(key text)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'confirm' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.release(key text)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'release' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.apply_bills(bills jsonb)
RETURNS TABLE (key text, status text)
AS 'MODULE_PATHNAME', 'apply_bills' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.available(sku text, location text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'available' LANGUAGE C STABLE SECURITY DEFINER;

-- Admin calls --------------------------------------------------------------

CREATE FUNCTION inventory.restock(sku text, qty bigint, key text,
                                  location text DEFAULT 'default')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'restock' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.adjust(sku text, on_hand bigint, key text,
                                 location text DEFAULT 'default')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'adjust' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.refund(original_key text, qty bigint, key text)
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'refund' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.set_hot(sku text, hot boolean DEFAULT true,
                                  location text DEFAULT 'default')
RETURNS inventory.outcome
AS 'MODULE_PATHNAME', 'set_hot' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.merge()
RETURNS bigint
AS 'MODULE_PATHNAME', 'merge' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.worker_status(
    OUT pid integer, OUT started_at timestamptz,
    OUT last_merge_at timestamptz, OUT merge_passes bigint,
    OUT rows_merged bigint, OUT movements_merged bigint,
    OUT last_expire_at timestamptz, OUT expire_passes bigint,
    OUT expired bigint, OUT errors bigint, OUT last_error text,
    OUT merged_batches bigint, OUT merged_requests bigint, OUT largest_batch bigint)
AS 'MODULE_PATHNAME', 'worker_status' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.hot_counters(
    OUT sku text, OUT location text, OUT loaded boolean, OUT available bigint,
    OUT transactions integer, OUT units_taken bigint, OUT refusals bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'hot_counters' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.expire()
RETURNS bigint
AS 'MODULE_PATHNAME', 'expire' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION inventory.reconcile()
RETURNS TABLE (sku text, location text, problem text, expected bigint, actual bigint)
AS 'MODULE_PATHNAME', 'reconcile' LANGUAGE C VOLATILE SECURITY DEFINER;

-- The advisory lock key of a stock row, as pg_locks shows it
-- (classid = high 32 bits, objid = low 32 bits, objsubid = 1).
CREATE FUNCTION inventory.lock_key(sku text, location text DEFAULT 'default')
RETURNS bigint
AS 'MODULE_PATHNAME', 'lock_key' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Nothing is callable or readable by PUBLIC; see the README for the grants an
-- application role and an admin role need.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA inventory FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA inventory FROM PUBLIC;
