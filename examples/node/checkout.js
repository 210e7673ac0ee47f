// A checkout against the inventory extension, with node-postgres (pg).
//
// The same steps as examples/python/checkout.py: hold a cart while the
// customer pays (reserve_cart), ship two pens (a step of confirm), ship the
// rest (confirm), sell a second order (deduct), refund a unit (refund), read
// what is left (stock_levels).  Every call has an idempotency key chosen
// before it is first sent; a call whose connection drops is sent again with
// the SAME key on a new connection ("duplicate" if the server had applied
// it).  Statuses and errors are mapped to what the shop's API answers.
//
// Run: PGHOST=... PGDATABASE=... node checkout.js [order-id]
// Prints one JSON line per step.  npm ci installs pg (package-lock.json).
'use strict';

const { Client } = require('pg');

// What each status means to the shop's API.
const STATUS_HTTP = {
  ok: 200,            // applied
  duplicate: 200,     // applied before (a retry): same answer as the first time
  insufficient: 409,  // sold out, or more than is held or refundable
  not_found: 404,     // unknown sku, reservation or sale
  expired: 410,       // the hold ran out: refund the payment
  conflict: 409,      // not allowed in this state
  busy: 503,          // only with nowait => true: try again shortly
};

// What the shop answers for an error a call raised (documented SQLSTATEs).
function sqlstateHttp(err) {
  const state = err.code || '';
  if (state === '23505' && err.constraint === 'inventory_key_reuse') return 422;
  if (state.startsWith('22')) return 400;      // bad input
  if (state === '0A000') return 422;           // e.g. refund of a cart of several skus
  if (state === '42501') return 403;           // no grant
  if (['25006', '55P03', '57014', '40001', '40P01'].includes(state)) return 503;
  return 500;
}

// An error after which the same call is sent again: the connection dropped,
// or the transaction may be retried as it is.
function retryable(err) {
  const state = err.code || '';
  return !state || state.startsWith('08') || state.startsWith('57P') ||
    state === '40001' || state === '40P01';
}

class Shop {
  constructor() { this.client = null; }

  async connect() {
    this.client = new Client({ application_name: 'checkout-node' });
    this.client.on('error', () => { this.client = null; });
    await this.client.connect();
  }

  async call(step, sql, params, attempts = 20) {
    let retried = 0;
    for (;;) {
      try {
        if (!this.client) await this.connect();
        const { rows } = await this.client.query(sql, params);
        const o = rows[0];
        return report(step, o.status, STATUS_HTTP[o.status], retried,
          { available: o.available, sku: o.sku, location: o.location });
      } catch (err) {
        if (!retryable(err) || retried + 1 >= attempts) {
          return report(step, 'error', retryable(err) ? 503 : sqlstateHttp(err), retried,
            { sqlstate: err.code, message: err.message });
        }
        retried += 1;
        if (this.client) await this.client.end().catch(() => {});
        this.client = null;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }
}

function report(step, status, http, retried, more) {
  const line = { step, status, http, retried };
  for (const [k, v] of Object.entries(more)) if (v !== null && v !== undefined) line[k] = v;
  console.log(JSON.stringify(line));
  return line;
}

async function main() {
  const order = process.argv[2] || 'node-order-1';
  const shop = new Shop();

  await shop.call('hold cart',
    'SELECT * FROM inventory.reserve_cart($1, $2, $3, ttl => $4)',
    [['pen', 'ink'], [4, 1], order, '15 minutes']);
  await shop.call('ship 2 pens',
    "SELECT * FROM inventory.confirm($1, 2, $2, 'pen')", [order, `${order}:ship-1`]);
  await shop.call('ship 2 pens again',
    "SELECT * FROM inventory.confirm($1, 2, $2, 'pen')", [order, `${order}:ship-1`]);
  await shop.call('ship the rest', 'SELECT * FROM inventory.confirm($1)', [order]);
  await shop.call('sell 2 ink', "SELECT * FROM inventory.deduct('ink', 2, $1)", [`${order}-b`]);
  await shop.call('refund 1 ink', 'SELECT * FROM inventory.refund($1, 1, $2)',
    [`${order}-b`, `${order}-b:rma-1`]);
  await shop.call('refund 5 ink', 'SELECT * FROM inventory.refund($1, 5, $2)',
    [`${order}-b`, `${order}-b:rma-2`]);
  await shop.call('reuse a key', "SELECT * FROM inventory.deduct('pen', 1, $1)", [order]);

  if (!shop.client) await shop.connect();
  const { rows } = await shop.client.query(
    'SELECT sku, available FROM inventory.stock_levels WHERE sku = ANY($1) ORDER BY sku',
    [['ink', 'pen']]);
  const levels = {};
  for (const r of rows) levels[r.sku] = Number(r.available);
  console.log(JSON.stringify({ step: 'stock levels', levels }));
  await shop.client.end();
}

main().catch((err) => { console.error(err); process.exit(1); });
