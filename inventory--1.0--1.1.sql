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
