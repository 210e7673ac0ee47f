-- deduct_cart: all lines or none, lines of one row summed, one outcome.
-- no background worker in this database: its passes would race the steps
-- (a server with the library preloaded serves every database by default)
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET inventory.serve_database = off', current_database());
END $$;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory CASCADE;
CREATE EXTENSION inventory;
RESET client_min_messages;

SELECT status FROM inventory.restock('pen', 10, 'po-1');
SELECT status FROM inventory.restock('ink', 3, 'po-2');
SELECT status FROM inventory.restock('pen', 4, 'po-3', 'shop');

-- ok: the outcome names no row
SELECT * FROM inventory.deduct_cart('{pen,ink}', '{2,1}', 'cart-1');
-- a replay, also with the lines in another order, is a duplicate
SELECT * FROM inventory.deduct_cart('{pen,ink}', '{2,1}', 'cart-1');
SELECT * FROM inventory.deduct_cart('{ink,pen}', '{1,2}', 'cart-1');

-- all or nothing: one short line and nothing moves; the outcome names it
SELECT * FROM inventory.deduct_cart('{pen,ink}', '{1,3}', 'cart-2');
-- the same sku on two lines is summed before the check: 2 + 1 > 2 ink left
SELECT * FROM inventory.deduct_cart('{ink,pen,ink}', '{2,1,1}', 'cart-3');
-- 1 + 1 = 2 ink left: ok
SELECT * FROM inventory.deduct_cart('{ink,pen,ink}', '{1,1,1}', 'cart-3b');
-- an unknown row fails the cart
SELECT * FROM inventory.deduct_cart('{pen,paper}', '{1,1}', 'cart-4');

-- locations, line by line
SELECT * FROM inventory.deduct_cart('{pen,pen}', '{4,1}', 'cart-5', '{shop,default}');
SELECT * FROM inventory.deduct_cart('{pen}', '{1}', 'cart-6', '{shop}');

-- a one-line cart can be refunded like a deduct
SELECT * FROM inventory.deduct_cart('{pen}', '{2}', 'cart-7');
SELECT * FROM inventory.refund('cart-7', 2, 'rma-1');

SELECT sku, location, on_hand, reserved, available FROM inventory.stock_levels
 ORDER BY sku, location;
SELECT op, key, sku, location, on_hand_delta FROM inventory.ledger ORDER BY id;
SELECT * FROM inventory.reconcile();
