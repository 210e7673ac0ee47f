/*
 * inventory.h
 *	  Declarations shared by the modules of the inventory extension.
 *
 * Module map: one file per concern, in layers whose calls point down only
 * (no file calls into a file of a layer above it):
 *
 *	 SQL entry points
 *	  stock.c		restock, adjust, deduct, deduct_cart, available
 *	  reservation.c reserve, confirm, release, expire
 *	  refund.c		refund
 *	  bills.c		apply_bills
 *	  admin.c		set_hot, merge, hot_counters, worker_status
 *	  report.c		reconcile
 *	 background workers (beside the entry points)
 *	  worker.c		the worker's schedule; what every worker starts with
 *	  databases.c	the databases served; standing aside for DROP DATABASE...
 *	  merged.c		merged mode: the worker's batches and its callers' queue
 *	 the pipeline every call shares (check the key, lock, decide, write)
 *	  passes.c		the merge and expiry passes over every row that needs them
 *	  autohot.c		hot or ordinary, by hand or by the rule that watches lock waits
 *	  movement.c	opening a row (hot or cold), tidying it, moving its counters
 *	  events.c		NOTIFY announcements
 *	 storage
 *	  keys.c		idempotency keys (the ledger's call rows)
 *	  tables.c		the everyday way's direct writes of one row at a time
 *	 shared memory
 *	  hot.c			escrow counters of hot rows and their transaction callbacks
 *	  shmem.c		the hot-row table, the worker's status, the readiness checks
 *	 foundations
 *	  query.c		prepared SPI statements under a fixed, safe search_path
 *	  schema.c		the extension's tables as this backend knows them
 *	  rowlock.c		the advisory lock that queues the writers of one stock row,
 *					and the count of waits for it
 *	  call.c		argument checks, canonical argument text, the outcome
 *	  inventory.c	_PG_init: calls each module's init
 */
#ifndef INVENTORY_H
#define INVENTORY_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/lockdefs.h"
#include "utils/timestamp.h"

/* Longest sku, location or key accepted, in bytes. */
#define INV_MAX_NAME_BYTES 256

/* Statuses of inventory.outcome. */
#define INV_OK			"ok"
#define INV_DUPLICATE	"duplicate"
#define INV_INSUFFICIENT "insufficient"
#define INV_NOT_FOUND	"not_found"
#define INV_EXPIRED		"expired"
#define INV_CONFLICT	"conflict"
#define INV_BUSY		"busy"

/* query.c */
#define INV_MAX_QUERY_ARGS 12

typedef struct InvQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[INV_MAX_QUERY_ARGS];
	SPIPlanPtr	plan;			/* prepared on first use, kept for the backend */
} InvQuery;

extern int	InvRun(InvQuery *query, Datum *values, const char *nulls, long tcount);
extern int	InvRunLatest(InvQuery *query, Datum *values, const char *nulls, long tcount);
extern bool InvResultIsNull(int row, int col);
extern int64 InvResultInt8(int row, int col);
extern bool InvResultBool(int row, int col);
extern char *InvResultText(int row, int col);
extern Datum InvTextArray(char **values, int n);
extern Datum InvInt8Array(int64 *values, int n);
extern char *InvTryInSubxact(void (*fn) (void *arg), void *arg);

/* call.c */
typedef struct InvOutcome
{
	const char *status;
	bool		has_available;
	int64		available;
	const char *sku;
	const char *location;
} InvOutcome;

extern char *InvArgName(FunctionCallInfo fcinfo, int argno, const char *what);
extern int64 InvArgQty(FunctionCallInfo fcinfo, int argno, const char *what);
extern bool InvArgBool(FunctionCallInfo fcinfo, int argno, const char *what);
extern Interval *InvArgTtl(FunctionCallInfo fcinfo, int argno, TimestampTz *expires_at);
extern int	InvArgArray(FunctionCallInfo fcinfo, int argno, const char *what, Oid elemtype,
						Datum **elems);
extern void InvCheckSameLength(int n, int m, const char *what);
extern char *InvElemName(Datum d, const char *what);
extern void InvCheckName(const char *value, int len, const char *what);
extern void InvCheckQty(int64 qty, const char *what);
extern int64 InvAddQty(int64 a, int64 b);
extern int64 InvCheckDelta(int64 delta);
extern void InvSetOutcome(InvOutcome *out, const char *status,
						  const char *sku, const char *location);
extern Datum InvReturnOutcome(FunctionCallInfo fcinfo, const InvOutcome *out);
extern char *InvCopyOut(const char *s);
extern char *InvIntervalText(const Interval *interval);
extern void InvArgsBegin(StringInfo buf);
extern void InvArgsText(StringInfo buf, const char *name, const char *value);
extern void InvArgsInt8(StringInfo buf, const char *name, int64 value);
extern void InvArgsArray(StringInfo buf, const char *name);
extern void InvArgsItem(StringInfo buf);
extern void InvArgsEnd(StringInfo buf);
extern char *InvRowArgs(const char *sku, const char *location,
						const char *name, int64 value);

/* rowlock.c */
typedef struct InvRowRef
{
	char	   *sku;
	char	   *location;
	int64		lock_key;
} InvRowRef;

/* A row and a count of something about it (waits for its lock, changes). */
typedef struct InvRowTally
{
	char		sku[INV_MAX_NAME_BYTES + 1];
	char		location[INV_MAX_NAME_BYTES + 1];
	int			count;
} InvRowTally;

extern bool InvAutoHot;
extern void InvRowLockInit(void);
extern int	InvTakeLockWaits(int min_waits, InvRowTally *rows, int max);
extern int64 InvRowLockKey(const char *sku, const char *location);
extern bool InvLockRow(const char *sku, const char *location, bool nowait);
extern bool InvLockRowShared(const char *sku, const char *location, bool nowait);
extern void InvUnlockRow(const char *sku, const char *location, bool shared);
extern int	InvRowOrder(const InvRowRef *a, const InvRowRef *b);
extern InvRowRef *InvRowsInLockOrder(InvQuery *query, int *n);

/* keys.c */
typedef enum InvKeyState
{
	INV_KEY_NEW,				/* never applied */
	INV_KEY_DUPLICATE,			/* applied by the same call with the same args */
	INV_KEY_TOMBSTONE,			/* a release recorded before its reservation */
	INV_KEY_REUSED				/* applied by another call or other args */
} InvKeyState;

extern int	errkeyreuse(void);
extern void InvKeyReusedError(const char *key, const char *op, const char *args,
							  const char *old_op, const char *old_args) pg_attribute_noreturn();
extern InvKeyState InvKeyClassify(const char *key, const char *op, const char *args);
extern InvKeyState InvKeyCheck(const char *key, const char *op, const char *args);
extern void InvKeyTaken(const char *key, const char *call, const char *args) pg_attribute_noreturn();
extern bool InvKeyTombstone(const char *key);
extern bool InvKeyLookup(const char *key, char **call, char **args);
struct InvMovement;
extern void InvKeyNotArchived(const struct InvMovement *m);

/* movement.c */
struct HotEntry;

typedef struct InvRow
{
	int64		on_hand;		/* including queued movements */
	int64		reserved;		/* including queued movements */
	int64		overdue;		/* held reservations already past expires_at */
	int64		queued;			/* queued movements not merged yet */
	TimestampTz next_expiry;	/* earliest expires_at of a held reservation */
	TimestampTz noted_expiry;	/* stock.next_expiry: no hold is due before it */
	bool		hot;
	bool		mine;			/* this transaction changed the stock row */
} InvRow;

/* A stock row opened for writing (InvOpen). */
typedef struct InvTarget
{
	const char *sku;
	const char *location;
	struct HotEntry *hot;		/* hot mode: the row's escrow counter */
	bool		found;			/* the row exists */
	bool		prepared;		/* cold mode: InvPrepare done */
	InvRow		row;			/* cold mode: the row as read under its lock */
} InvTarget;

#define INV_NOWAIT	0x01		/* answer busy rather than wait for the lock */
#define INV_LOCK	0x02		/* hold the row lock exclusively, in hot mode too */

extern bool InvRowRead(const char *sku, const char *location, InvRow *row);
extern void InvRowsRead(char **skus, char **locations, int n, InvRow *rows, bool *found);
extern void InvRowsCreate(char **skus, char **locations, int n);
extern int64 InvRowAvailable(const InvRow *row);
extern bool InvHotLoaded(const char *sku, const char *location);
extern bool InvOpen(InvTarget *target, const char *sku, const char *location, int flags);
extern void InvPrepare(InvTarget *target);
extern bool InvTake(InvTarget *target, int64 qty, int64 *available);
/* A movement of one stock row: what its one ledger row says. */
typedef struct InvMovement
{
	const char *op;				/* the ledger's op */
	const char *key;
	int64		on_hand_delta;
	int64		reserved_delta;
	const char *ref;			/* a refund's sale, or NULL */
	const char *call;			/* the call whose key this row records, or NULL */
	const char *args;			/* that call's canonical arguments (for errors) */
	bool		has_counted;	/* a stocktake's counted figure: */
	int64		counted;
	TimestampTz expires_at;		/* when a hold it makes expires, or DT_NOEND */
} InvMovement;

extern void InvRowCreate(const char *sku, const char *location);
extern Datum InvPartDatum(int part);
extern void InvInsertHold(const char *key, int part, const char *sku, const char *location,
						  int64 qty, TimestampTz expires_at, Interval *ttl);
extern void InvMovementInit(InvMovement *m, const char *op, const char *key,
							int64 on_hand_delta, int64 reserved_delta);
extern int64 InvMove(const InvMovement *m, InvTarget *target);
extern bool InvMoveRecorded(const InvMovement *m, InvTarget *target, int64 *available);
extern bool InvFastMove(const InvMovement *m, const char *sku, const char *location,
						int64 need, Interval *ttl, int64 *available);

/* tables.c */
extern bool InvTablesMoves(const InvMovement *m, char **skus, char **locations,
						   const int64 *need, int n, Interval *ttl, int64 *available);
extern char **InvTablesSkuLocations(const char *sku, int *n);
extern void InvTablesLocationRules(char **names, int n, int *priority, bool *active);
typedef struct InvDirectRows InvDirectRows;
extern InvDirectRows *InvTablesReadRows(char **skus, char **locations, int n, int64 *available);
extern bool InvTablesWriteRows(InvDirectRows *rows, const char *call, const char *key,
							   const char *ref, const int *parts, const int64 *qtys,
							   int nparts, Interval *ttl, TimestampTz expires_at,
							   int64 *available);
extern void InvTablesReleaseRows(InvDirectRows *rows);
/* A held part of a reservation, as settled by InvTablesSettle. */
typedef struct InvHeld
{
	char	   *sku;
	char	   *location;
	int64		qty;
} InvHeld;
extern int	InvTablesSettle(const char *key, const char *state, const char *only_sku,
							InvHeld **held);
extern void InvKeyDigest(const char *key, uint8 *digest);
extern bool InvKeyArchived(const char *key);
extern bool InvKeyInArchiving(const char *key);
extern int	InvDigestBucket(const uint8 *digest);
extern int64 InvMerge(const char *sku, const char *location);
extern void InvReadAvailable(InvOutcome *out);

/* allocate.c */
extern const char *InvReserveLines(char **skus, char **locations, int64 *qtys, int n,
								   const char *key, const char *args, Interval *ttl,
								   TimestampTz expires_at, int64 *available, int *failed);

/* reservation.c */
extern int64 InvExpireOverdue(InvTarget *target, int64 limit, int64 *count);
extern int64 InvExpirePass(int64 batch, bool nowait);

/* schema.c */

/* The extension's tables, indexes and columns, as this backend knows them. */
typedef struct InvTables
{
	Oid			stock;
	Oid			stock_pkey;
	Oid			ledger;
	Oid			ledger_call_key;
	Oid			ledger_seq;
	Oid			reservation;
	Oid			reservation_pkey;
	Oid			archived_key;
	Oid			archived_key_bucket;
	Oid			location;
	Oid			location_pkey;
	AttrNumber	st_sku,
				st_location,
				st_on_hand,
				st_reserved,
				st_hot,
				st_next_expiry;
	AttrNumber	lg_id,
				lg_op,
				lg_key,
				lg_sku,
				lg_location,
				lg_on_hand_delta,
				lg_reserved_delta,
				lg_ref,
				lg_at,
				lg_call,
				lg_counted;
	AttrNumber	rs_key,
				rs_sku,
				rs_location,
				rs_qty,
				rs_state,
				rs_created_at,
				rs_expires_at,
				rs_ttl,
				rs_part,
				rs_step;		/* 1.2: InvalidAttrNumber in a 1.1 database */
	AttrNumber	lc_location,
				lc_priority,
				lc_active;
	/* how many columns each table has as the extension made it */
	int			st_columns,
				lg_columns,
				rs_columns,
				lc_columns;
} InvTables;

extern Oid	InvStockRelid(void);
extern const InvTables *InvGetTables(void);

/* Relations for InvLockTables. */
#define INV_REL_STOCK			0x01
#define INV_REL_LEDGER			0x02
#define INV_REL_RESERVATION		0x04
#define INV_REL_ARCHIVED_KEY	0x08
#define INV_REL_LOCATION		0x10
extern InvTables InvLockTables(int rels, LOCKMODE mode);
extern bool InvSchemaIsCurrent(void);
extern Oid	InvTableOid(const char *name);

/* shmem.c, worker.c */
extern void InvShmemInit(void);
extern void InvCheckPreloaded(void);
extern void InvCheckReady(const char *call);
extern void InvWorkerInit(void);
extern void InvRegisterWorker(const char *name, const char *function);
extern void InvWorkerStart(const char *name, Oid dbid);
/* What a merge pass did: rows merged, movements folded, rows that failed. */
typedef struct InvMergeResult
{
	int64		rows;
	int64		moved;
	int64		failed;
	char	   *last_error;		/* the last failure's message, or NULL */
} InvMergeResult;

extern void InvMergePass(bool nowait, InvMergeResult *result);
/* Ledger rows (and reservations) archive() folds per batch. */
#define INV_ARCHIVE_BATCH 10000
extern int64 InvArchiveBatch(TimestampTz before, int64 batch, int64 *reservations);
extern bool InvArchiveRunning(void);
extern int	InvExpireBatch;
extern int	InvHistoryRetention;
extern char *InvWorkerDatabase;

/* databases.c */
extern void InvDatabasesInit(void);
extern void InvServeDatabase(void);

/* autohot.c */
extern int	InvAutoHotWaits;
extern int	InvAutoHotInterval;
extern void InvAutoHotInit(void);
extern bool InvSetHot(const char *sku, const char *location, bool hot, bool by_hand);
extern bool InvUnpinHot(const char *sku, const char *location);
extern InvRowTally *InvAutoHotCandidates(int *n);
extern bool InvAutoHotPromote(const InvRowTally *row);
extern InvRowTally *InvAutoHotQuiet(int max, int *n);
extern bool InvAutoHotDemote(const InvRowTally *row);

/* events.c */
extern void InvEventsInit(void);
extern void InvNotifyLevel(const char *sku, const char *location,
						   int64 before, int64 after);
extern void InvNotifyExpired(int64 count);

/* merged.c */
extern void InvMergedInit(void);
extern void InvMergedCallbacks(void);
extern bool InvMergedEligible(void);
extern bool InvMergedDeduct(const char *sku, const char *location, int64 qty,
							const char *key, InvOutcome *out);
extern void InvMergedStats(int64 *batches, int64 *requests, int64 *largest);
extern void InvMergedServe(int index);
extern bool InvMergedQueued(void);
extern void InvMergedCommit(void);
extern void InvMergedPause(void);
extern void InvMergedResume(void);

#endif							/* INVENTORY_H */
