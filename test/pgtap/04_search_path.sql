-- A caller whose search_path puts a schema with its own now(),
-- statement_timestamp(), sum() and text "=" first must never reach them: the
-- extension resolves every name under a fixed path (pg_catalog only).
-- Names and keys with quotes, backslashes and unicode are data.
BEGIN;
SELECT plan(10);

CREATE SCHEMA evil;
CREATE TABLE evil.calls (what text);
CREATE FUNCTION evil.statement_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('statement_timestamp'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION evil.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('='); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.sum_sfunc(numeric, bigint) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('sum'); RETURN coalesce($1, 0) + $2; END $$;
CREATE AGGREGATE evil.sum(bigint) (SFUNC = evil.sum_sfunc, STYPE = numeric);

-- only the extension's calls run under the hostile path
SET LOCAL search_path = evil, pg_catalog, public;
CREATE TEMP TABLE got AS
SELECT (inventory.restock('sp-''quote\back"dq', 10, 'sp-1')).status AS restock,
       (inventory.deduct('sp-''quote\back"dq', 2, 'sp-k''ey\x')).status AS deduct,
       (inventory.deduct('sp-''quote\back"dq', 2, 'sp-k''ey\x')).status AS replay,
       (inventory.reserve('sp-''quote\back"dq', 1, 'sp-ü✓')).status AS reserve,
       (inventory.confirm('sp-ü✓')).status AS confirm,
       (inventory.restock('Ω≈ç√∫', 3, 'sp-2', 'ƒ-場所')).status AS unicode,
       inventory.available('sp-''quote\back"dq') AS available,
       (SELECT count(*) FROM inventory.reconcile()) AS breaches,
       (SELECT count(*) FROM inventory.apply_bills('[{"key": "sp-b", "lines": [{"sku": "Ω≈ç√∫", "delta": -1, "location": "ƒ-場所"}]}]')
         WHERE status OPERATOR(pg_catalog.=) 'ok') AS bills;
RESET search_path;

SELECT is(restock, 'ok', 'restock of a sku with quotes and a backslash') FROM got;
SELECT is(deduct, 'ok', 'deduct with such a sku and key') FROM got;
SELECT is(replay, 'duplicate', 'its replay is a duplicate') FROM got;
SELECT is(reserve, 'ok', 'reserve with a unicode key') FROM got;
SELECT is(confirm, 'ok', 'confirm it') FROM got;
SELECT is(unicode, 'ok', 'unicode sku and location') FROM got;
SELECT is(available, 7::bigint, 'available()') FROM got;
SELECT is(breaches, 0::bigint, 'reconcile() is empty') FROM got;
SELECT is(bills, 1::bigint, 'apply_bills') FROM got;
SELECT is_empty($$SELECT * FROM evil.calls$$,
                'no shadowing function, operator or aggregate was ever called');

SELECT * FROM finish();
ROLLBACK;
