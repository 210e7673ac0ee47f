/*
 * schema.c
 *	  The extension's tables as this backend knows them: the OID of
 *	  inventory.stock, and whether the tables are of the library's version.
 *
 * Both are looked up once and kept until a relcache invalidation says a
 * table may have changed: dropping or altering a table invalidates it, also
 * within the transaction that does so, so a DROP and CREATE EXTENSION, or an
 * ALTER EXTENSION UPDATE, in one transaction are seen at once.
 *
 * The library serves databases whose tables are of its own version (1.2)
 * or of the version before it (1.1), with that version's behaviour, so that
 * installing a new library and restarting never stops the calls of a
 * database not yet updated: 1.2 adds calls and figures, and keeps the
 * tables of 1.1.  A database still at 1.0 is refused, with a hint to update
 * it, until ALTER EXTENSION inventory UPDATE has run there.
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "inventory.h"

static Oid	CachedStockRelid = InvalidOid;
static bool SchemaCurrent = false;
static InvTables Tables;

/*
 * Relcache invalidation: forget what may be stale.  Any of the relations
 * looked up counts, indexes too: REINDEX CONCURRENTLY gives an index a new
 * OID, and ALTER TABLE, CREATE TRIGGER or a policy change what the direct
 * writes may do (tables.c).
 */
static void
Invalidate(Datum arg, Oid relid)
{
	const Oid	known[] = {CachedStockRelid, Tables.stock, Tables.stock_pkey, Tables.ledger,
		Tables.ledger_call_key, Tables.reservation, Tables.reservation_pkey,
		Tables.archived_key, Tables.archived_key_bucket, Tables.location,
	Tables.location_pkey};
	bool		stale = !OidIsValid(relid);

	for (int i = 0; i < (int) lengthof(known) && !stale; i++)
		stale = relid == known[i];
	if (stale)
	{
		CachedStockRelid = InvalidOid;
		SchemaCurrent = false;
		memset(&Tables, 0, sizeof(Tables));
	}
}

/* An extension relation's OID, InvalidOid if there is none. */
Oid
InvTableOid(const char *name)
{
	static bool registered = false;
	Oid			nsp;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(Invalidate, (Datum) 0);
		registered = true;
	}
	nsp = get_namespace_oid("inventory", true);
	return OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
}

/*
 * The OID of inventory.stock.  A hot row's counter is valid only for the
 * table it was loaded from: counters outlive DROP EXTENSION, and must not
 * outlive the rows.
 */
Oid
InvStockRelid(void)
{
	if (!OidIsValid(CachedStockRelid))
		CachedStockRelid = InvTableOid("stock");
	return CachedStockRelid;
}

/*
 * A column's number, or an error if the table has no such column; *count
 * counts the columns of the table looked up.
 */
static AttrNumber
Column(Oid relid, const char *name, int *count)
{
	AttrNumber	attnum = get_attnum(relid, name);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "inventory: column %s of table %s is missing", name, get_rel_name(relid));
	(*count)++;
	return attnum;
}

/* Look up the tables, indexes and columns the everyday way writes directly. */
static void
LookUpTables(Oid ledger)
{
	InvTables	t;

	memset(&t, 0, sizeof(t));
	t.stock = InvTableOid("stock");
	t.stock_pkey = InvTableOid("stock_pkey");
	t.ledger = ledger;
	t.ledger_call_key = InvTableOid("ledger_call_key");
	t.reservation = InvTableOid("reservation");
	t.reservation_pkey = InvTableOid("reservation_pkey");
	t.archived_key = InvTableOid("archived_key");
	t.archived_key_bucket = InvTableOid("archived_key_bucket");
	t.location = InvTableOid("location");
	t.location_pkey = InvTableOid("location_pkey");
	if (!OidIsValid(t.location) || !OidIsValid(t.location_pkey) ||
		!OidIsValid(t.stock) || !OidIsValid(t.stock_pkey) ||
		!OidIsValid(t.ledger_call_key) || !OidIsValid(t.reservation) ||
		!OidIsValid(t.reservation_pkey) || !OidIsValid(t.archived_key) ||
		!OidIsValid(t.archived_key_bucket))
		elog(ERROR, "inventory: a table or index of the extension is missing");
	t.st_sku = Column(t.stock, "sku", &t.st_columns);
	t.st_location = Column(t.stock, "location", &t.st_columns);
	t.st_on_hand = Column(t.stock, "on_hand", &t.st_columns);
	t.st_reserved = Column(t.stock, "reserved", &t.st_columns);
	t.st_hot = Column(t.stock, "hot", &t.st_columns);
	t.st_next_expiry = Column(t.stock, "next_expiry", &t.st_columns);
	(void) Column(t.stock, "pinned", &t.st_columns);
	t.lg_id = Column(ledger, "id", &t.lg_columns);
	t.lg_op = Column(ledger, "op", &t.lg_columns);
	t.lg_key = Column(ledger, "key", &t.lg_columns);
	t.lg_sku = Column(ledger, "sku", &t.lg_columns);
	t.lg_location = Column(ledger, "location", &t.lg_columns);
	t.lg_on_hand_delta = Column(ledger, "on_hand_delta", &t.lg_columns);
	t.lg_reserved_delta = Column(ledger, "reserved_delta", &t.lg_columns);
	t.lg_ref = Column(ledger, "ref", &t.lg_columns);
	t.lg_at = Column(ledger, "at", &t.lg_columns);
	t.lg_call = Column(ledger, "call", &t.lg_columns);
	t.lg_counted = Column(ledger, "counted", &t.lg_columns);
	t.ledger_seq = getIdentitySequence(ledger, t.lg_id, false);
	t.rs_key = Column(t.reservation, "key", &t.rs_columns);
	t.rs_sku = Column(t.reservation, "sku", &t.rs_columns);
	t.rs_location = Column(t.reservation, "location", &t.rs_columns);
	t.rs_qty = Column(t.reservation, "qty", &t.rs_columns);
	t.rs_state = Column(t.reservation, "state", &t.rs_columns);
	t.rs_created_at = Column(t.reservation, "created_at", &t.rs_columns);
	t.rs_expires_at = Column(t.reservation, "expires_at", &t.rs_columns);
	t.rs_ttl = Column(t.reservation, "ttl", &t.rs_columns);
	t.rs_part = Column(t.reservation, "part", &t.rs_columns);
	/* (1.2's: a 1.1 database, served until its update, has none) */
	t.rs_step = get_attnum(t.reservation, "step");
	if (t.rs_step != InvalidAttrNumber)
		t.rs_columns++;
	t.lc_location = Column(t.location, "location", &t.lc_columns);
	t.lc_priority = Column(t.location, "priority", &t.lc_columns);
	t.lc_active = Column(t.location, "active", &t.lc_columns);
	Tables = t;
}

/* Are this database's inventory tables ones the library serves (1.1, 1.2)? */
bool
InvSchemaIsCurrent(void)
{
	if (!SchemaCurrent)
	{
		Oid			ledger = InvTableOid("ledger");

		if (OidIsValid(ledger) && get_attnum(ledger, "call") != InvalidAttrNumber)
		{
			LookUpTables(ledger);
			SchemaCurrent = true;
		}
	}
	return SchemaCurrent;
}

/*
 * The tables of a current schema (InvCheckReady has passed).  Copy what is
 * needed: the next invalidation (any table_open may process one) clears it.
 */
const InvTables *
InvGetTables(void)
{
	if (!InvSchemaIsCurrent())
		elog(ERROR, "inventory: the tables are not of this version");
	return &Tables;
}

/*
 * The tables, after locking those a caller reads or writes directly (rels,
 * INV_REL_*) in mode: the first lock of a relation in a transaction
 * processes the invalidations sent meanwhile (another session's REINDEX
 * CONCURRENTLY gives an index a new OID), and from then on such a change
 * waits for this transaction, so the copy returned stays true for it.
 */
InvTables
InvLockTables(int rels, LOCKMODE mode)
{
	const InvTables *t = InvGetTables();
	Oid			relids[5] = {
		(rels & INV_REL_STOCK) ? t->stock : InvalidOid,
		(rels & INV_REL_LEDGER) ? t->ledger : InvalidOid,
		(rels & INV_REL_RESERVATION) ? t->reservation : InvalidOid,
		(rels & INV_REL_ARCHIVED_KEY) ? t->archived_key : InvalidOid,
		(rels & INV_REL_LOCATION) ? t->location : InvalidOid
	};

	/* (t may be cleared by the first lock: its OIDs were read before) */
	for (int i = 0; i < (int) lengthof(relids); i++)
		if (OidIsValid(relids[i]))
			LockRelationOid(relids[i], mode);
	return *InvGetTables();
}
