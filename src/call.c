/*
 * call.c
 *	  Argument checks, canonical argument text, and the inventory.outcome
 *	  result shared by every call.
 *
 * The SQL functions are not STRICT: a NULL argument is an error with SQLSTATE
 * 22004, not a silent NULL result that a caller could mistake for success.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "common/int.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

/* Raise the error for a NULL argument. */
static void
RejectNull(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* Check a sku, location or key: not empty, not longer than the limit. */
void
InvCheckName(const char *value, int len, const char *what)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > INV_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", what),
				 errdetail("It is %d bytes long; the limit is %d bytes.",
						   len, INV_MAX_NAME_BYTES)));
}

/* A sku, location or key argument as a C string. */
char *
InvArgName(FunctionCallInfo fcinfo, int argno, const char *what)
{
	text	   *t;

	RejectNull(fcinfo, argno, what);
	t = PG_GETARG_TEXT_PP(argno);
	InvCheckName(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), what);
	return text_to_cstring(t);
}

/* Check a quantity: units moved by a call are always positive. */
void
InvCheckQty(int64 qty, const char *what)
{
	if (qty <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than zero", what),
				 errdetail("The value given was " INT64_FORMAT ".", qty)));
}

/* A quantity argument. */
int64
InvArgQty(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int64		qty;

	RejectNull(fcinfo, argno, what);
	qty = PG_GETARG_INT64(argno);
	InvCheckQty(qty, what);
	return qty;
}

/* A boolean argument. */
bool
InvArgBool(FunctionCallInfo fcinfo, int argno, const char *what)
{
	RejectNull(fcinfo, argno, what);
	return PG_GETARG_BOOL(argno);
}

/*
 * A reservation's ttl argument: not NULL, greater than zero.  *expires_at
 * gets the statement's start plus the ttl.
 */
Interval *
InvArgTtl(FunctionCallInfo fcinfo, int argno, TimestampTz *expires_at)
{
	Interval   *ttl;
	Interval	zero;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ttl must not be null")));
	ttl = PG_GETARG_INTERVAL_P(argno);
	memset(&zero, 0, sizeof(zero));
	/*
	 * Also a ttl that compares as positive but ends the hold before it
	 * begins ('-2 mon +60 days': months are calendar months when added)
	 */
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(ttl),
										  IntervalPGetDatum(&zero))) <= 0 ||
		(*expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
															   TimestampTzGetDatum(GetCurrentStatementStartTimestamp()),
															   IntervalPGetDatum(ttl)))) <=
		GetCurrentStatementStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be greater than zero"),
				 errdetail("The value given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(ttl))))));
	return ttl;
}

/* Deconstruct a one-dimensional array argument without NULL elements. */
int
InvArgArray(FunctionCallInfo fcinfo, int argno, const char *what, Oid elemtype,
		 Datum **elems)
{
	ArrayType  *array;
	bool	   *nulls;
	int			n;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", what),
					 errdetail("Element %d is null.", i + 1)));
	return n;
}

/* The error for cart arrays of different lengths. */
void
InvCheckSameLength(int n, int m, const char *what)
{
	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("skus and %s must have the same length", what),
				 errdetail("skus has %d elements, %s has %d.", n, what, m)));
}

/* A text array element as a checked name. */
char *
InvElemName(Datum d, const char *what)
{
	text	   *t = DatumGetTextPP(d);

	InvCheckName(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), what);
	return text_to_cstring(t);
}

/* a + b, or an error if the sum leaves bigint. */
int64
InvAddQty(int64 a, int64 b)
{
	int64		sum;

	if (pg_add_s64_overflow(a, b, &sum))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity out of range"),
				 errdetail("The result would not fit in a bigint.")));
	return sum;
}

/*
 * A signed quantity (a delta), refused when its negation would not fit in a
 * bigint: the units it takes must be a quantity too.
 */
int64
InvCheckDelta(int64 delta)
{
	if (delta == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity out of range"),
				 errdetail("A delta must lie between -9223372036854775807 and 9223372036854775807.")));
	return delta;
}

/*
 * An interval as canonical text, equal for intervals that PostgreSQL's "="
 * calls equal (a month is 30 days, a day 24 hours), whatever IntervalStyle.
 */
char *
InvIntervalText(const Interval *interval)
{
	int64		days = (int64) interval->month * DAYS_PER_MONTH + interval->day +
		interval->time / USECS_PER_DAY;
	int64		usecs = interval->time % USECS_PER_DAY;
	int			secs;
	StringInfoData buf;

	if (usecs < 0)
	{
		usecs += USECS_PER_DAY;
		days--;
	}
	/* e.g. "0 days 00:15:00", which reads back as the same interval */
	secs = (int) (usecs / USECS_PER_SEC);
	initStringInfo(&buf);
	appendStringInfo(&buf, INT64_FORMAT " days %02d:%02d:%02d", days,
					 secs / SECS_PER_HOUR, secs / SECS_PER_MINUTE % MINS_PER_HOUR,
					 secs % SECS_PER_MINUTE);
	if (usecs % USECS_PER_SEC != 0)
		appendStringInfo(&buf, ".%06d", (int) (usecs % USECS_PER_SEC));
	return buf.data;
}

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

/* Fill an outcome whose available figure is not known yet. */
void
InvSetOutcome(InvOutcome *out, const char *status,
			  const char *sku, const char *location)
{
	out->status = status;
	out->has_available = false;
	out->available = 0;
	out->sku = sku;
	out->location = location;
}

/* Copy a string out of the SPI context into the caller's context. */
char *
InvCopyOut(const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = SPI_palloc(strlen(s) + 1);
	strcpy(copy, s);
	return copy;
}

/* What a call site keeps of its function: the outcome's type, the call. */
typedef struct OutcomeSite
{
	TupleDesc	tupdesc;
	int			call;			/* InvStatsCall's index of the function */
} OutcomeSite;

/*
 * Build the inventory.outcome composite for a call's result, and count the
 * answer (stats.c).
 */
Datum
InvReturnOutcome(FunctionCallInfo fcinfo, const InvOutcome *out)
{
	OutcomeSite *site = (OutcomeSite *) fcinfo->flinfo->fn_extra;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	/* looked up once per call site, kept with the function's cache */
	if (site == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		char	   *name = get_func_name(fcinfo->flinfo->fn_oid);

		site = palloc(sizeof(OutcomeSite));
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "inventory: return type must be a row type");
		site->tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		site->call = name != NULL ? InvStatsCall(name) : -1;
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = site;
	}
	tupdesc = site->tupdesc;
	InvStatsCount(site->call, out->status);

	values[0] = CStringGetTextDatum(out->status);
	values[1] = Int64GetDatum(out->available);
	nulls[1] = !out->has_available;
	if (out->sku)
		values[2] = CStringGetTextDatum(out->sku);
	else
		nulls[2] = true;
	if (out->location)
		values[3] = CStringGetTextDatum(out->location);
	else
		nulls[3] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
