-- apply_bills: many documents at once; each bill all or nothing, in order,
-- against the stock the bills before it left; partial success.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT status FROM inventory.restock('bolt', 10, 'po-1');
SELECT status FROM inventory.restock('nut', 4, 'po-2');
SELECT status FROM inventory.restock('nut', 6, 'po-3', 'w2');

-- partial success, in order: b2 fits only after b1's receipt; b3 does not fit
SELECT * FROM inventory.apply_bills('[
  {"key": "b1", "lines": [{"sku": "bolt", "delta": -6}, {"sku": "nut", "delta": 5}]},
  {"key": "b2", "lines": [{"sku": "nut", "delta": -8}, {"sku": "nut", "delta": -1, "location": "w2"}]},
  {"key": "b3", "lines": [{"sku": "bolt", "delta": -3}, {"sku": "nut", "delta": -2}]},
  {"key": "b4", "lines": [{"sku": "bolt", "delta": -4}]},
  {"key": "b5", "lines": [{"sku": "washer", "delta": -1}]},
  {"key": "b6", "lines": [{"sku": "washer", "delta": 7}, {"sku": "bolt", "delta": 2}]},
  {"key": "b7", "lines": [{"sku": "washer", "delta": -2}]}
]');
SELECT sku, location, on_hand, available FROM inventory.stock_levels ORDER BY sku, location;
-- the ledger: one row per bill and row; lines of one row in a bill are summed
SELECT op, key, sku, location, on_hand_delta FROM inventory.ledger
 WHERE op = 'bill' ORDER BY id;

-- a replay: duplicates, alone or mixed with new bills; lines may come in any order
SELECT * FROM inventory.apply_bills('[
  {"key": "b2", "lines": [{"sku": "nut", "delta": -1, "location": "w2"}, {"sku": "nut", "delta": -8}]},
  {"key": "b3", "lines": [{"sku": "bolt", "delta": -3}, {"sku": "nut", "delta": -2}]},
  {"key": "b8", "lines": [{"sku": "bolt", "delta": 1}, {"sku": "nut", "delta": 1}]},
  {"key": "b8", "lines": [{"sku": "nut", "delta": 1}, {"sku": "bolt", "delta": 1}]}
]');

-- a hot row takes part through its counter
SELECT status FROM inventory.set_hot('bolt');
SELECT status FROM inventory.deduct('bolt', 1, 'warm-up');
SELECT * FROM inventory.apply_bills('[
  {"key": "h1", "lines": [{"sku": "bolt", "delta": -2}, {"sku": "nut", "delta": -1}]},
  {"key": "h2", "lines": [{"sku": "bolt", "delta": -100}]},
  {"key": "h3", "lines": [{"sku": "bolt", "delta": 10}]},
  {"key": "h4", "lines": [{"sku": "bolt", "delta": -10}]}
]');
SELECT available FROM inventory.hot_counters();
SELECT inventory.merge() > 0 AS merged;
SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels ORDER BY sku, location;
SELECT * FROM inventory.reconcile();

-- bad input: an error, and nothing applied
SELECT count(*) AS ledger_rows_before FROM inventory.ledger;
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('{"key": "x"}')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[1]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "", "lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": 5, "lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x"}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": []}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut"}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 0}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 1.5}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": "3"}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 1e30}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 1, "location": ""}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "ok-1", "lines": [{"sku": "nut", "delta": 1}]}, {"key": "x", "lines": [{"sku": "nut", "delta": 1}, 7]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 9223372036854775807}, {"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": -9223372036854775808}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": -4611686018427387904}, {"sku": "nut", "delta": -4611686018427387904}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('not json')$$);
-- unknown members are refused, not ignored; the context names the bill and line
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": -1, "locaton": "w2"}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "x", "note": "rush", "lines": [{"sku": "nut", "delta": -1}]}]')$$);
SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 1}]}, {"key": "y", "lines": [{"sku": "nut", "delta": 1}, {"sku": "", "delta": 1}]}]');
SELECT * FROM inventory.apply_bills('[{"key": "x", "lines": [{"sku": "nut", "delta": 1}]}, {"key": "y", "lines": [{"sku": "nut", "delta": 99999999999999999999}]}]');
-- a bill key used by another call, or with other lines
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "po-1", "lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "b1", "lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "y", "lines": [{"sku": "nut", "delta": 1}]}, {"key": "y", "lines": [{"sku": "nut", "delta": 2}]}]')$$);
-- (also when the first of them is refused: a retry then answers the same)
SELECT pg_temp.err($$SELECT * FROM inventory.apply_bills('[{"key": "y", "lines": [{"sku": "nut", "delta": -999999}]}, {"key": "y", "lines": [{"sku": "nut", "delta": 1}]}]')$$);
SELECT count(*) AS ledger_rows_after FROM inventory.ledger;
SELECT * FROM inventory.reconcile();

-- a bill expires the overdue holds of the rows it touches before deciding
SELECT status FROM inventory.restock('cog', 4, 'po-cog');
SELECT status FROM inventory.reserve('cog', 3, 'cog-hold', ttl => '1 millisecond');
SELECT pg_sleep(0.05);
SELECT * FROM inventory.apply_bills('[{"key": "cog-bill", "lines": [{"sku": "cog", "delta": -4}]}]');
SELECT key, state FROM inventory.reservation WHERE key = 'cog-hold';
SELECT sku, on_hand, reserved, available FROM inventory.stock_levels WHERE sku = 'cog';
SELECT * FROM inventory.reconcile();

-- a large document: its work is linear in its lines and can be interrupted
-- (5,000 rows: each row a document touches takes a lock until commit, and a
-- server with default settings takes documents of about 12,000 rows)
CREATE TEMP TABLE big_doc AS
SELECT jsonb_build_array(jsonb_build_object('key', 'big-1', 'lines',
         jsonb_agg(jsonb_build_object('sku', 'big-' || i, 'delta', 1)))) AS d
  FROM generate_series(1, 5000) i;
\set VERBOSITY terse
SET statement_timeout = '1ms';
SELECT count(*) FROM inventory.apply_bills((SELECT d FROM big_doc));
RESET statement_timeout;
\set VERBOSITY default
SELECT count(*) AS big_rows_before FROM inventory.stock WHERE sku LIKE 'big-%';
SELECT * FROM inventory.apply_bills((SELECT d FROM big_doc));
SELECT count(*) AS big_rows_after FROM inventory.stock WHERE sku LIKE 'big-%';
SELECT * FROM inventory.reconcile();
