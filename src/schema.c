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
 * The library serves only databases whose tables are of its own version
 * (1.1): a database still at 1.0 is refused, with a hint to update it, until
 * ALTER EXTENSION inventory UPDATE has run there.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "inventory.h"

static Oid	CachedStockRelid = InvalidOid;
static Oid	CachedLedgerRelid = InvalidOid;
static bool SchemaCurrent = false;

/* Relcache invalidation: forget what may be stale. */
static void
Invalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == CachedStockRelid || relid == CachedLedgerRelid)
	{
		CachedStockRelid = InvalidOid;
		CachedLedgerRelid = InvalidOid;
		SchemaCurrent = false;
	}
}

/* An extension table's OID, InvalidOid if there is none. */
static Oid
TableOid(const char *name)
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
		CachedStockRelid = TableOid("stock");
	return CachedStockRelid;
}

/* Are this database's inventory tables of the library's version (1.1)? */
bool
InvSchemaIsCurrent(void)
{
	if (!SchemaCurrent)
	{
		Oid			ledger = TableOid("ledger");

		SchemaCurrent = OidIsValid(ledger) &&
			get_attnum(ledger, "call") != InvalidAttrNumber;
		if (SchemaCurrent)
			CachedLedgerRelid = ledger;
	}
	return SchemaCurrent;
}

/*
 * What every SQL entry point that reads or writes the tables calls first:
 * the library must be preloaded, and the database's tables of its version.
 */
void
InvCheckReady(void)
{
	InvCheckPreloaded();
	if (!InvSchemaIsCurrent())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the inventory extension in this database is older than the loaded library"),
				 errdetail("The library serves version 1.1 of the extension's tables."),
				 errhint("Run ALTER EXTENSION inventory UPDATE in this database.")));
}
