/* inventory--1.0--1.1.sql: upgrade from 1.0 (ALTER EXTENSION inventory UPDATE) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION inventory UPDATE TO '1.1'" to load this file. \quit

-- pg_dump dumps the rows of an extension's tables only when the extension
-- marks them: every table here holds user data, and the ledger's identity
-- sequence must restore its position so that new ids follow the old ones.
SELECT pg_catalog.pg_extension_config_dump('inventory.stock', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.request', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.reservation', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.pending', '');
SELECT pg_catalog.pg_extension_config_dump('inventory.ledger_id_seq', '');

-- worker_status() names the database the workers serve
DROP FUNCTION inventory.worker_status();
CREATE FUNCTION inventory.worker_status(
    OUT pid integer, OUT started_at timestamptz,
    OUT last_merge_at timestamptz, OUT merge_passes bigint,
    OUT rows_merged bigint, OUT movements_merged bigint,
    OUT last_expire_at timestamptz, OUT expire_passes bigint,
    OUT expired bigint, OUT errors bigint, OUT last_error text,
    OUT merged_batches bigint, OUT merged_requests bigint, OUT largest_batch bigint,
    OUT database name)
AS 'MODULE_PATHNAME', 'worker_status' LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION inventory.worker_status() FROM PUBLIC;
