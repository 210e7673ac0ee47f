#!/usr/bin/env python3
"""A checkout against the inventory extension, with psycopg 3.

What a web shop's order service does, one call per step, each under an
idempotency key the shop chose before it first sent the call:

  1. hold the cart while the customer pays      reserve_cart
  2. payment went through: ship 2 pens today    confirm(key, 2, step, 'pen')
  3. ship the rest next week                    confirm(key)
  4. a second order, of one sku, sold at once   deduct
  5. the customer sends one unit back           refund
  6. read what is left                          stock_levels

Every call answers a status (never an error for "sold out"); the shop maps
it, and the errors it may meet, to what its own API answers (HTTP here).  A
call whose connection drops is sent again with the SAME key on a new
connection: a call the server had applied answers "duplicate", one it had
not is applied now, so nothing is sold twice or lost.

Run: PGHOST=... PGDATABASE=... python3 checkout.py [order-id]
Prints one JSON line per step.  Needs the Debian package python3-psycopg.
"""

import json
import os
import sys
import time

import psycopg
from psycopg import errors

# What each status means to the shop's API.
STATUS_HTTP = {
    "ok": 200,            # applied
    "duplicate": 200,     # applied before (a retry): same answer as the first time
    "insufficient": 409,  # sold out, or more than is held or refundable
    "not_found": 404,     # unknown sku, reservation or sale
    "expired": 410,       # the hold ran out: refund the payment
    "conflict": 409,      # not allowed in this state (released, or never sold)
    "busy": 503,          # only with nowait => true: try again shortly
}


def sqlstate_http(err):
    """What the shop answers for an error the call raised (documented SQLSTATEs)."""
    state = err.sqlstate or ""
    if state == "23505" and err.diag.constraint_name == "inventory_key_reuse":
        return 422   # the key was used before for another call: a client bug
    if state.startswith("22"):
        return 400   # bad input: null, qty <= 0, bad names, bad ttl, bad JSON
    if state == "0A000":
        return 422   # e.g. refund of a cart of several skus by its key
    if state == "42501":
        return 403   # the role lacks the grant
    if state in ("25006", "55P03", "57014"):
        return 503   # read-only (a standby), lock timeout, statement timeout
    if state in ("40001", "40P01"):
        return 503   # retried below; only if retries run out
    return 500       # 55000 (library not preloaded, extension too old), ...


class Shop:
    """One connection, re-made when it drops; every call retried with its key."""

    def __init__(self, dsn):
        self.dsn = dsn
        self.conn = None

    def connect(self):
        self.conn = psycopg.connect(self.dsn, autocommit=True,
                                    application_name="checkout-py")

    def call(self, step, sql, params, attempts=20):
        retried = 0
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.connect()
                row = self.conn.execute(sql, params).fetchone()
                status, available, sku, location = row
                return self.report(step, status, STATUS_HTTP[status], retried,
                                   available=available, sku=sku, location=location)
            except psycopg.OperationalError as e:
                # the connection dropped (server restarted, backend killed,
                # network): the same call, with the same key, on a new one
                if isinstance(e, (errors.SerializationFailure, errors.DeadlockDetected)):
                    pass
                elif getattr(e, "sqlstate", None) and not e.sqlstate.startswith(("08", "57P")):
                    return self.report(step, "error", sqlstate_http(e), retried,
                                       sqlstate=e.sqlstate, message=str(e).strip())
                retried += 1
                if retried >= attempts:
                    return self.report(step, "error", 503, retried, message=str(e).strip())
                self.conn = None
                time.sleep(0.2)
            except psycopg.Error as e:
                if isinstance(e, (errors.SerializationFailure, errors.DeadlockDetected)) \
                        and retried < attempts:
                    retried += 1     # the transaction may be retried as it is
                    continue
                return self.report(step, "error", sqlstate_http(e), retried,
                                   sqlstate=e.sqlstate, message=str(e).strip())

    @staticmethod
    def report(step, status, http, retried, **more):
        line = {"step": step, "status": status, "http": http, "retried": retried}
        line.update({k: v for k, v in more.items() if v is not None})
        print(json.dumps(line), flush=True)
        return line


def main():
    order = sys.argv[1] if len(sys.argv) > 1 else "py-order-1"
    shop = Shop(os.environ.get("INVENTORY_DSN", ""))

    # 1. hold the cart while the customer pays
    shop.call("hold cart",
              "SELECT * FROM inventory.reserve_cart(%s, %s, %s, ttl => %s)",
              (["pen", "ink"], [4, 1], order, "15 minutes"))
    # 2. paid: ship two pens now (a step, under its own key)
    shop.call("ship 2 pens",
              "SELECT * FROM inventory.confirm(%s, 2, %s, 'pen')",
              (order, order + ":ship-1"))
    # the same step again (a client that timed out and sent it twice)
    shop.call("ship 2 pens again",
              "SELECT * FROM inventory.confirm(%s, 2, %s, 'pen')",
              (order, order + ":ship-1"))
    # 3. ship the rest
    shop.call("ship the rest", "SELECT * FROM inventory.confirm(%s)", (order,))
    # 4. a second order of one sku, sold at once
    shop.call("sell 2 ink", "SELECT * FROM inventory.deduct('ink', 2, %s)",
              (order + "-b",))
    # 5. one unit comes back
    shop.call("refund 1 ink", "SELECT * FROM inventory.refund(%s, 1, %s)",
              (order + "-b", order + "-b:rma-1"))
    # a refund of more than was sold: a status, not an error
    shop.call("refund 5 ink", "SELECT * FROM inventory.refund(%s, 5, %s)",
              (order + "-b", order + "-b:rma-2"))
    # a key reused for another call: the documented error, mapped to 422
    shop.call("reuse a key", "SELECT * FROM inventory.deduct('pen', 1, %s)", (order,))
    # 6. what is left
    if shop.conn is None or shop.conn.closed:
        shop.connect()
    levels = shop.conn.execute(
        "SELECT sku, available FROM inventory.stock_levels"
        " WHERE sku = ANY(%s) ORDER BY sku", (["ink", "pen"],)).fetchall()
    print(json.dumps({"step": "stock levels",
                      "levels": {sku: available for sku, available in levels}}), flush=True)


if __name__ == "__main__":
    main()
