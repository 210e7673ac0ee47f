/*
 * keys.c
 *	  Idempotency keys: every applied call is recorded once, by its key.
 *
 * The record is the ledger itself: the first ledger row a keyed call writes
 * names the call (ledger.call), and a partial unique index (ledger_call_key)
 * allows one such row per key, so recording the key costs no write of its
 * own.  The call's arguments are what its rows say: sku, location and
 * quantity of a deduct, restock or reserve (plus the reservation's ttl),
 * the sale and quantity of a refund (ref; all its rows, when it went to
 * several), the counted figure of a stocktake (counted), every line of a cart
 * or a bill (all its rows).  An allocating call (deduct_any, deduct_cart_any,
 * reserve_any), a held cart (reserve_cart) and a step of a partial confirm
 * or release (confirm_part, release_part, whose call row moves nothing)
 * keep their canonical arguments in the call row's ref: their candidates,
 * strategy, ttl or reservation are in none of their rows.  A release that
 * arrives before its reservation records a tombstone: a call row "release"
 * that moves nothing and names no stock row.
 *
 * Two calls are "the same" when their canonical arguments, built here as
 * JSON text from either side, are equal; that is only ever computed when a
 * key is found taken (a retry, or a reuse), never on the way to "ok".
 *
 * - A retry of the same call is serialised behind the first by the stock row
 *	 lock it also needs; once it has the lock, it finds the first call's
 *	 committed row (InvKeyCheck, or the key probe of a one-statement write)
 *	 and answers "duplicate".
 * - A concurrent call that reuses the key with other arguments (other rows,
 *	 so no shared row lock) meets the unique index: the insert waits for the
 *	 other transaction and then finds its row (InvKeyTaken), which is the
 *	 key-reuse error.
 *
 * Statuses that change nothing (insufficient, not_found, ...) record no key,
 * so a retry after a restock can still succeed.
 *
 * archive() folds old ledger rows, call rows among them, into checkpoints,
 * and keeps the keys of those calls only as digests (inventory.archived_key):
 * a retry of such a key answers "duplicate" whatever its arguments, and the
 * everyday way checks the archive too before it records a key.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "inventory.h"

/*
 * The rows of a key's call: its call row, and the other rows of a cart, a
 * bill, an allocation or a refund over several rows.
 */
static InvQuery KeyRows = {
	"SELECT l.call, l.sku, l.location, l.on_hand_delta, l.reserved_delta, "
	"       l.ref, l.counted, r.ttl "
	"FROM inventory.ledger l "
	"LEFT JOIN inventory.reservation r ON r.key = l.key AND l.call = 'reserve' "
	"WHERE l.key = $1 AND l.call IS NOT NULL "
	"UNION ALL "
	"SELECT NULL, sku, location, on_hand_delta, reserved_delta, NULL, NULL, NULL "
	"FROM inventory.ledger "
	"WHERE key = $1 AND call IS NULL AND op IN ('deduct', 'bill', 'refund')",
	1, {TEXTOID}
};

static InvQuery TombstoneInsert = {
	"INSERT INTO inventory.ledger (op, key, call) VALUES ('release', $1, 'release') "
	"ON CONFLICT (key) WHERE call IS NOT NULL DO NOTHING",
	1, {TEXTOID}
};

/* One line of a recorded cart or bill, for sorting into canonical order. */
typedef struct KeyLine
{
	InvRowRef	row;
	int64		value;
} KeyLine;

/* Order recorded lines canonically (as the calls themselves order them). */
static int
CompareKeyLines(const void *a, const void *b)
{
	return InvRowOrder(&((const KeyLine *) a)->row, &((const KeyLine *) b)->row);
}

/*
 * Fetch the recorded call of a key: its name and canonical arguments (NULL
 * for a tombstone); false when the key is unknown.  Reads the latest
 * commits, whatever the isolation level.
 */
bool
InvKeyLookup(const char *key, char **call, char **args)
{
	Datum		values[1] = {CStringGetTextDatum(key)};
	int			n;
	int			first = -1;
	KeyLine    *lines;
	int			nlines = 0;
	StringInfoData buf;

	InvRunLatest(&KeyRows, values, NULL, 0);
	n = (int) SPI_processed;
	for (int i = 0; i < n && first < 0; i++)
		if (!InvResultIsNull(i, 1))
			first = i;
	if (first < 0)
	{
		/* archived: the call is known to have been applied, nothing more */
		if (!InvKeyArchived(key))
			return false;
		*call = "archived";
		*args = NULL;
		return true;
	}
	*call = InvResultText(first, 1);
	*args = NULL;
	if (strcmp(*call, "release") == 0)
		return true;			/* a tombstone */

	if (strcmp(*call, "deduct_cart") == 0 || strcmp(*call, "bill") == 0)
	{
		bool		cart = strcmp(*call, "deduct_cart") == 0;

		lines = palloc(sizeof(KeyLine) * n);
		for (int i = 0; i < n; i++)
		{
			lines[nlines].row.sku = InvResultText(i, 2);
			lines[nlines].row.location = InvResultText(i, 3);
			lines[nlines].row.lock_key = InvRowLockKey(lines[nlines].row.sku,
													   lines[nlines].row.location);
			lines[nlines].value = cart ? -InvResultInt8(i, 4) : InvResultInt8(i, 4);
			nlines++;
		}
		qsort(lines, nlines, sizeof(KeyLine), CompareKeyLines);
		InvArgsBegin(&buf);
		InvArgsArray(&buf, "lines");
		for (int i = 0; i < nlines; i++)
		{
			InvArgsItem(&buf);
			InvArgsText(&buf, "sku", lines[i].row.sku);
			InvArgsText(&buf, "location", lines[i].row.location);
			InvArgsInt8(&buf, cart ? "qty" : "delta", lines[i].value);
			InvArgsEnd(&buf);
		}
		appendStringInfoChar(&buf, ']');
		InvArgsEnd(&buf);
		*args = buf.data;
	}
	else if (strcmp(*call, "refund") == 0)
	{
		int64		qty = 0;

		/* its rows' units (a split sale is refunded to several rows) */
		for (int i = 0; i < n; i++)
			qty += InvResultInt8(i, 4);
		InvArgsBegin(&buf);
		InvArgsText(&buf, "original_key", InvResultText(first, 6));
		InvArgsInt8(&buf, "qty", qty);
		InvArgsEnd(&buf);
		*args = buf.data;
	}
	else if (strcmp(*call, "deduct_any") == 0 || strcmp(*call, "deduct_cart_any") == 0 ||
			 strcmp(*call, "reserve_any") == 0 || strcmp(*call, "reserve_cart") == 0 ||
			 strcmp(*call, "confirm_part") == 0 || strcmp(*call, "release_part") == 0)
	{
		/*
		 * The candidates and strategy, a cart's ttl, a step's reservation and
		 * line are not in the rows (a step's call row moves nothing): ref
		 * keeps the canonical arguments.
		 */
		*args = InvResultText(first, 6);
	}
	else if (strcmp(*call, "reserve") == 0)
	{
		bool		isnull;
		Datum		ttl = SPI_getbinval(SPI_tuptable->vals[first], SPI_tuptable->tupdesc,
										8, &isnull);

		InvArgsBegin(&buf);
		InvArgsText(&buf, "sku", InvResultText(first, 2));
		InvArgsText(&buf, "location", InvResultText(first, 3));
		InvArgsInt8(&buf, "qty", InvResultInt8(first, 5));
		InvArgsText(&buf, "ttl", isnull ? "" : InvIntervalText(DatumGetIntervalP(ttl)));
		InvArgsEnd(&buf);
		*args = buf.data;
	}
	else
	{
		/* deduct, restock, adjust */
		int64		value = strcmp(*call, "deduct") == 0 ? -InvResultInt8(first, 4)
			: strcmp(*call, "adjust") == 0 ? InvResultInt8(first, 7)
			: InvResultInt8(first, 4);

		*args = InvRowArgs(InvResultText(first, 2), InvResultText(first, 3),
						   strcmp(*call, "adjust") == 0 ? "on_hand" : "qty", value);
	}
	return true;
}

/*
 * The constraint a key-reuse error names (with the ledger, its table), so
 * that drivers can tell it from an application's own unique violation
 * (psycopg: diag.constraint_name; node-postgres: error.constraint).
 */
int
errkeyreuse(void)
{
	err_generic_string(PG_DIAG_SCHEMA_NAME, "inventory");
	err_generic_string(PG_DIAG_TABLE_NAME, "ledger");
	err_generic_string(PG_DIAG_CONSTRAINT_NAME, "inventory_key_reuse");
	return 0;
}

/*
 * The error for a key that an earlier call used with other arguments.  The
 * detail names both calls only to a role that may read inventory.ledger
 * (checked for the role outside this SECURITY DEFINER function): an earlier
 * call's arguments are another caller's business.
 */
void
InvKeyReusedError(const char *key, const char *op, const char *args,
				  const char *old_op, const char *old_args)
{
	Oid			nsp = get_namespace_oid("inventory", false);
	Oid			relid = get_relname_relid("ledger", nsp);
	bool		may_read = OidIsValid(relid) &&
		pg_class_aclcheck(relid, GetOuterUserId(), ACL_SELECT) == ACLCHECK_OK;

	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION), errkeyreuse(),
			 errmsg("idempotency key \"%s\" was already used by another call", key),
			 may_read ?
			 errdetail("It was used by %s(%s); this call is %s(%s).",
					   old_op, old_args ? old_args : "", op, args ? args : "") :
			 errdetail("It was applied before by another call or with other arguments."),
			 errhint("Use a new key for every distinct call; retry only with the same arguments.")));
}

/*
 * Has this key been applied?  INV_KEY_DUPLICATE for the same call with the
 * same arguments, INV_KEY_TOMBSTONE when a release recorded the key before
 * its reservation arrived (only for op "reserve"), INV_KEY_REUSED for any
 * other use of the key, INV_KEY_NEW for an unknown key.
 */
InvKeyState
InvKeyClassify(const char *key, const char *op, const char *args)
{
	char	   *old_op;
	char	   *old_args;

	if (!InvKeyLookup(key, &old_op, &old_args))
		return INV_KEY_NEW;
	if (strcmp(old_op, "archived") == 0)
		return INV_KEY_DUPLICATE;	/* its arguments are no longer kept */
	if ((strcmp(op, "reserve") == 0 || strcmp(op, "reserve_any") == 0 ||
		 strcmp(op, "reserve_cart") == 0) &&
		strcmp(old_op, "release") == 0 && old_args == NULL)
		return INV_KEY_TOMBSTONE;
	if (strcmp(op, old_op) == 0 && old_args != NULL && strcmp(args, old_args) == 0)
		return INV_KEY_DUPLICATE;
	return INV_KEY_REUSED;
}

/* InvKeyClassify, with the key-reuse error instead of INV_KEY_REUSED. */
InvKeyState
InvKeyCheck(const char *key, const char *op, const char *args)
{
	InvKeyState state = InvKeyClassify(key, op, args);
	char	   *old_op;
	char	   *old_args;

	if (state == INV_KEY_REUSED && InvKeyLookup(key, &old_op, &old_args))
		InvKeyReusedError(key, op, args, old_op, old_args);
	return state;
}

/*
 * A call's key could not be recorded with its first movement, although the
 * key was free when the call looked: another transaction recorded it since.
 * Raises the key-reuse error for another call or other arguments; for the
 * same call (a retry whose first attempt this transaction could not see, as
 * under REPEATABLE READ) a serialization failure, since this call has moved
 * stock already: retrying the transaction answers "duplicate".
 */
void
InvKeyTaken(const char *key, const char *call, const char *args)
{
	if (InvKeyCheck(key, call, args) == INV_KEY_NEW)
		elog(ERROR, "inventory: key \"%s\" conflicted but cannot be found", key);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not apply call: key \"%s\" was recorded concurrently", key),
			 errhint("Retry the transaction: the call will answer duplicate.")));
}

/*
 * After a movement recorded its call's key by INSERT ... ON CONFLICT DO
 * NOTHING: that insertion waits for a transaction deleting a row of the key
 * and then goes through, so if an archiving transaction folded the key's
 * call row meanwhile (a retry that committed after this call looked, then
 * archived at once), the call has been applied twice in this transaction.
 * It raises a serialization failure then: the retry answers "duplicate".
 * Callers look the key up first, so this is only the last line of defence.
 */
void
InvKeyNotArchived(const InvMovement *m)
{
	if (m->call != NULL && InvKeyArchived(m->key))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not apply call: key \"%s\" was archived concurrently", m->key),
				 errhint("Retry the transaction: the call will answer duplicate.")));
}

/*
 * Record a tombstone: a release that arrived before its reservation.
 * Returns false when the key was recorded meanwhile by another call.
 */
bool
InvKeyTombstone(const char *key)
{
	Datum		values[1] = {CStringGetTextDatum(key)};

	InvRun(&TombstoneInsert, values, NULL, 0);
	return SPI_processed == 1;
}
