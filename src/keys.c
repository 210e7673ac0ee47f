/*
 * keys.c
 *	  Idempotency keys: every applied call is recorded once, by its key.
 *
 * Table inventory.request holds one row per applied call: the key, the call
 * (op) and its arguments as canonical JSON built here, so two calls are "the
 * same" exactly when their JSON texts are equal.  The row is written in the
 * transaction that applies the call, so a key is applied at most once, ever:
 *
 * - A retry of the same call is serialised behind the first by the stock row
 *	 lock it also needs; once it has the lock, InvKeyCheck sees the first
 *	 call's committed row and answers "duplicate".
 * - A concurrent call that reuses the key with other arguments (other rows,
 *	 so no shared row lock) meets the primary key: InvKeyRecord's
 *	 INSERT ... ON CONFLICT DO NOTHING waits for the other transaction and
 *	 then finds its row, which is the key-reuse error.
 *
 * Statuses that change nothing (insufficient, not_found, ...) record no key,
 * so a retry after a restock can still succeed.
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

static InvQuery KeyLookup = {
	"SELECT op, args::text FROM inventory.request WHERE key = $1",
	1, {TEXTOID}
};

static InvQuery KeyInsert = {
	"INSERT INTO inventory.request (key, op, args) VALUES ($1, $2, $3::json) "
	"ON CONFLICT (key) DO NOTHING",
	3, {TEXTOID, TEXTOID, TEXTOID}
};

/* Start a canonical argument object. */
void
InvArgsBegin(StringInfo buf)
{
	initStringInfo(buf);
	appendStringInfoChar(buf, '{');
}

/* Separate members of the argument object (which may follow other text). */
static void
ArgsMember(StringInfo buf, const char *name)
{
	if (buf->data[buf->len - 1] != '{')
		appendStringInfoChar(buf, ',');
	escape_json(buf, name);
	appendStringInfoChar(buf, ':');
}

/* Append a string member. */
void
InvArgsText(StringInfo buf, const char *name, const char *value)
{
	ArgsMember(buf, name);
	escape_json(buf, value);
}

/* Append a number member. */
void
InvArgsInt8(StringInfo buf, const char *name, int64 value)
{
	ArgsMember(buf, name);
	appendStringInfo(buf, INT64_FORMAT, value);
}

/* Open a member whose value is an array of objects: "name":[ */
void
InvArgsArray(StringInfo buf, const char *name)
{
	ArgsMember(buf, name);
	appendStringInfoChar(buf, '[');
}

/* Open the next object of that array (close it with InvArgsEnd). */
void
InvArgsItem(StringInfo buf)
{
	if (buf->data[buf->len - 1] != '[')
		appendStringInfoChar(buf, ',');
	appendStringInfoChar(buf, '{');
}

/* Close the argument object. */
void
InvArgsEnd(StringInfo buf)
{
	appendStringInfoChar(buf, '}');
}

/*
 * The canonical arguments of a call on one row: {"sku", "location", and one
 * number member}, e.g. a deduct's or a restock's (name "qty").
 */
char *
InvRowArgs(const char *sku, const char *location, const char *name, int64 value)
{
	StringInfoData buf;

	InvArgsBegin(&buf);
	InvArgsText(&buf, "sku", sku);
	InvArgsText(&buf, "location", location);
	InvArgsInt8(&buf, name, value);
	InvArgsEnd(&buf);
	return buf.data;
}

/* Fetch the recorded call of a key; false when the key is unknown. */
bool
InvKeyLookup(const char *key, char **op, char **args)
{
	Datum		values[1] = {CStringGetTextDatum(key)};

	InvRunLatest(&KeyLookup, values, NULL, 1);
	if (SPI_processed == 0)
		return false;
	*op = InvResultText(0, 1);
	*args = InvResultText(0, 2);
	return true;
}

/*
 * The error for a key that an earlier call used with other arguments.  The
 * detail names both calls only to a role that may read inventory.request
 * (checked for the role outside this SECURITY DEFINER function): an earlier
 * call's arguments are another caller's business.
 */
void
InvKeyReusedError(const char *key, const char *op, const char *args,
				  const char *old_op, const char *old_args)
{
	Oid			nsp = get_namespace_oid("inventory", false);
	Oid			relid = get_relname_relid("request", nsp);
	bool		may_read = OidIsValid(relid) &&
		pg_class_aclcheck(relid, GetOuterUserId(), ACL_SELECT) == ACLCHECK_OK;

	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
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
	if (strcmp(op, "reserve") == 0 && strcmp(old_op, "release") == 0 &&
		old_args == NULL)
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
 * Record the key of a call being applied; it must be the call's first write.
 * Returns INV_KEY_NEW when recorded.  If a concurrent transaction recorded
 * the key meanwhile, the answer is InvKeyCheck's for the key as it is now
 * (duplicate, tombstone, or the key-reuse error), and nothing was written.
 */
InvKeyState
InvKeyRecord(const char *key, const char *op, const char *args)
{
	Datum		values[3] = {CStringGetTextDatum(key), CStringGetTextDatum(op),
	CStringGetTextDatum(args)};
	InvKeyState state;

	InvRun(&KeyInsert, values, NULL, 0);
	if (SPI_processed == 1)
		return INV_KEY_NEW;
	state = InvKeyCheck(key, op, args);
	if (state == INV_KEY_NEW)
		elog(ERROR, "inventory: key \"%s\" conflicted but cannot be found", key);
	return state;
}

/*
 * Record a tombstone: a release that arrived before its reservation.
 * Returns false when the key was recorded meanwhile by another call.
 */
bool
InvKeyTombstone(const char *key)
{
	Datum		values[3] = {CStringGetTextDatum(key), CStringGetTextDatum("release"), (Datum) 0};
	char		nulls[3] = {' ', ' ', 'n'};

	InvRun(&KeyInsert, values, nulls, 0);
	return SPI_processed == 1;
}
