/*
 * tables.c
 *	  The everyday way's writes without a statement: an ordinary stock row,
 *	  its ledger row and a reservation, read and written directly.
 *
 * An ordinary deduct is one row updated and one row inserted.  Written as a
 * statement, most of its cost went to the statement itself: executing a
 * data-modifying CTE through SPI starts and ends an executor for a plan of
 * two ModifyTable nodes, their CTE scans and subplans, every time, for two
 * rows.  Here the rows are found through their indexes and written through
 * the table access method and the executor's index routines, keeping every
 * index (also any an admin adds) and checking the tables' constraints.
 *
 * Only tables exactly as the extension made them are written this way: no
 * trigger, no rule, no row-level security, and no column beyond the
 * extension's own (PlainTable).  A table an admin has given any of those
 * takes the general way (movement.c), whose statements fire every trigger,
 * fill every default and apply every policy, as a user's own statement
 * would.  The choice is made afresh after every relcache invalidation of
 * the tables, so a CREATE TRIGGER or ALTER TABLE counts at once.
 *
 * The decision is the one the statement made: with the row's lock held
 * exclusively (rowlock.c), the call goes through only if the row exists, is
 * ordinary, has no hold due to expire (stock.next_expiry), has the units and
 * stays within bigint, and the call's key is free; otherwise nothing is
 * written and the general way decides.  The row is read with the latest
 * snapshot, which under READ COMMITTED (the only level this way serves) is
 * what a statement taken after the lock would see.
 *
 * The key is recorded as INSERT ... ON CONFLICT DO NOTHING records it, by a
 * speculative insertion into the unique index of call rows: a key taken, or
 * being taken by a transaction still running, or one whose call row an
 * archiving transaction is deleting (or deleted: its digest is checked after
 * the insertion, before it is confirmed), makes the call write nothing and
 * take the general way, which waits as a statement would and answers from
 * the key.  A writer of
 * the stock row that does not take the row's lock (an admin's UPDATE) is
 * waited for as a statement would wait; if it changed the row, the call
 * takes the general way too (or, for a cart whose first row is written
 * already, fails with a serialization error).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "common/md5.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "inventory.h"

/* A movement that moves nothing yet: fill in op, key and the deltas. */
void
InvMovementInit(InvMovement *m, const char *op, const char *key,
				int64 on_hand_delta, int64 reserved_delta)
{
	memset(m, 0, sizeof(*m));
	m->op = op;
	m->key = key;
	m->on_hand_delta = on_hand_delta;
	m->reserved_delta = reserved_delta;
	m->expires_at = DT_NOEND;
}

/* An executor state for writing the extension's tables one row at a time. */
typedef struct Writer
{
	EState	   *estate;
	ResultRelInfo *stock;
	ResultRelInfo *ledger;
	ResultRelInfo *reservation;	/* NULL unless a hold is made */
	uint32		token;			/* of the call row's speculative insertion */
} Writer;

/*
 * Is the table as the extension made it (see the file header): no trigger,
 * rule or row-level security, and exactly its columns?
 */
static bool
PlainTable(Relation rel, int columns)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			n = 0;

	if (rel->trigdesc != NULL || rel->rd_rules != NULL || rel->rd_rel->relrowsecurity)
		return false;
	for (int i = 0; i < desc->natts; i++)
		n += TupleDescAttr(desc, i)->attisdropped ? 0 : 1;
	return n == columns;
}

/*
 * A result relation of the writer, its indexes open (with what ON CONFLICT
 * needs of them, for the ledger's call rows: speculative).
 */
static ResultRelInfo *
WriterRelation(EState *estate, Relation rel, Index rti, bool speculative)
{
	ResultRelInfo *info = makeNode(ResultRelInfo);

	InitResultRelInfo(info, rel, rti, NULL, 0);
	ExecOpenIndices(info, speculative);
	return info;
}

/*
 * Open the tables a movement writes (stock is open already), in an executor
 * state of their own; false, having opened nothing, if the ledger (or the
 * reservation table, for a hold) is not the extension's own as it made it.
 */
static bool
WriterBegin(Writer *w, const InvTables *t, Relation stock, bool hold, Snapshot snapshot)
{
	List	   *rtable = NIL;
	Relation	rels[3];
	int			n = hold ? 3 : 2;

	rels[0] = stock;
	rels[1] = table_open(t->ledger, RowExclusiveLock);
	rels[2] = hold ? table_open(t->reservation, RowExclusiveLock) : NULL;
	if (!PlainTable(rels[1], t->lg_columns) ||
		(hold && !PlainTable(rels[2], t->rs_columns)))
	{
		for (int i = 1; i < n; i++)
			table_close(rels[i], NoLock);
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relid = RelationGetRelid(rels[i]);
		rte->relkind = rels[i]->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		rtable = lappend(rtable, rte);
	}
	w->estate = CreateExecutorState();
	ExecInitRangeTable(w->estate, rtable);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = snapshot;
	w->stock = WriterRelation(w->estate, rels[0], 1, false);
	w->ledger = WriterRelation(w->estate, rels[1], 2, true);
	w->reservation = hold ? WriterRelation(w->estate, rels[2], 3, false) : NULL;
	return true;
}

/* A writer of one table only (kept in w->stock). */
static void
WriterBeginOne(Writer *w, Relation rel, Snapshot snapshot)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	w->estate = CreateExecutorState();
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = snapshot;
	w->stock = WriterRelation(w->estate, rel, 1, false);
	w->ledger = NULL;
	w->reservation = NULL;
}

/* Close everything; the locks stay held. */
static void
WriterEnd(Writer *w)
{
	ResultRelInfo *infos[3] = {w->stock, w->ledger, w->reservation};

	for (int i = 0; i < 3; i++)
		if (infos[i] != NULL)
		{
			ExecCloseIndices(infos[i]);
			table_close(infos[i]->ri_RelationDesc, NoLock);
		}
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	/* later statements of the transaction see these rows */
	CommandCounterIncrement();
}

/* A new virtual tuple of a table: every column NULL for a start. */
static TupleTableSlot *
NewRow(Writer *w, ResultRelInfo *info)
{
	TupleTableSlot *slot = table_slot_create(info->ri_RelationDesc,
											 &w->estate->es_tupleTable);

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

/* Set a column of a new row. */
static void
SetColumn(TupleTableSlot *slot, AttrNumber attnum, Datum value)
{
	slot->tts_values[attnum - 1] = value;
	slot->tts_isnull[attnum - 1] = false;
}

/*
 * While an archive runs (InvArchiveRunning), is a call row with this key in
 * the ledger in any state: committed, being inserted by a transaction still
 * running, or being deleted by one (an archiving transaction)?  A writer
 * that records its key by an insertion that waits for such a deletion asks
 * this first: if so, the caller looks the key up (keys.c) rather than
 * insert; if not, a digest found in the archive after this (InvKeyArchived)
 * is the only other trace it can have, since a call row and its digest
 * change places in one transaction.  With no archive running it answers
 * false without a look: nothing can be deleting the row, and the check
 * after the insertion (InvKeyNotArchived) catches an archive begun since.
 */
bool
InvKeyInArchiving(const char *key)
{
	InvTables	tables;
	Relation	ledger;
	Relation	index;
	SnapshotData dirty;
	ScanKeyData skey;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		taken;

	if (!InvArchiveRunning())
		return false;
	tables = InvLockTables(INV_REL_LEDGER, AccessShareLock);
	ledger = table_open(tables.ledger, AccessShareLock);
	index = index_open(tables.ledger_call_key, AccessShareLock);
	slot = table_slot_create(ledger, NULL);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(key));
	skey.sk_collation = index->rd_indcollation[0];
	scan = index_beginscan(ledger, index, &dirty, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	taken = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(ledger, AccessShareLock);
	return taken;
}

/*
 * The digest a key is archived under (16 bytes): MD5, so that two keys that
 * share a digest (and would share an archived identity) are as unlikely as
 * any two random 128-bit numbers being equal.
 */
void
InvKeyDigest(const char *key, uint8 *digest)
{
	const char *error;

	if (!pg_md5_binary(key, strlen(key), digest, &error))
		elog(ERROR, "inventory: could not digest a key: %s", error);
}

/*
 * Was this key archived (archive() folded the call that applied it into a
 * checkpoint)?  Read with the latest snapshot; nothing to read at all until
 * the first archive() of the database wrote a bucket.
 */
bool
InvKeyArchived(const char *key)
{
	InvTables	tables = InvLockTables(INV_REL_ARCHIVED_KEY, AccessShareLock);
	Relation	rel = table_open(tables.archived_key, AccessShareLock);
	bool		archived = false;

	if (RelationGetNumberOfBlocks(rel) > 0)
	{
		uint8		digest[16];
		Relation	index = index_open(tables.archived_key_bucket, AccessShareLock);
		Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		ScanKeyData skey;
		IndexScanDesc scan;

		InvKeyDigest(key, digest);
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT4EQ,
					Int32GetDatum(InvDigestBucket(digest)));
		scan = index_beginscan(rel, index, snapshot, 1, 0);
		index_rescan(scan, &skey, 1, NULL, 0);
		while (!archived && index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			bytea	   *digests = DatumGetByteaPP(slot_getattr(slot, 3, &isnull));
			const uint8 *p = (const uint8 *) VARDATA_ANY(digests);
			int			n = VARSIZE_ANY_EXHDR(digests) / 16;

			for (int i = 0; i < n && !archived; i++)
				archived = memcmp(p + 16 * i, digest, 16) == 0;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		UnregisterSnapshot(snapshot);
		index_close(index, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
	return archived;
}

/* The archive bucket of a digest: its first 12 bits. */
int
InvDigestBucket(const uint8 *digest)
{
	return (digest[0] << 4) | (digest[1] >> 4);
}

/* Find a row by the text columns of a unique index; false if none. */
static bool
FindRow(Relation rel, Oid indexoid, const char **values, int n, Snapshot snapshot,
		TupleTableSlot *slot)
{
	Relation	index = index_open(indexoid, AccessShareLock);
	ScanKeyData skeys[2];
	IndexScanDesc scan;
	bool		found;

	for (int i = 0; i < n; i++)
	{
		ScanKeyInit(&skeys[i], i + 1, BTEqualStrategyNumber, F_TEXTEQ,
					CStringGetTextDatum(values[i]));
		skeys[i].sk_collation = index->rd_indcollation[i];
	}
	scan = index_beginscan(rel, index, snapshot, n, 0);
	index_rescan(scan, skeys, n, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	return found;
}

/* A stock row as the everyday way sees it. */
typedef struct StockRow
{
	TupleTableSlot *slot;		/* the row as read */
	int64		on_hand;
	int64		reserved;
	TimestampTz next_expiry;
} StockRow;

/*
 * Read an ordinary stock row and check that a movement of it can go the
 * everyday way: the table is the extension's own, the row exists, is
 * ordinary (its writers hold its lock exclusively), no hold of it is due,
 * need units are available, and its counters stay within bigint.  False if
 * not (row->slot is to be dropped either way).
 */
static bool
ReadStock(const InvTables *t, Relation stock, Snapshot snapshot, const char *sku,
		  const char *location, int64 need, int64 on_hand_delta, int64 reserved_delta,
		  StockRow *row)
{
	const char *names[2] = {sku, location};
	bool		isnull;
	int64		after;

	row->slot = table_slot_create(stock, NULL);
	if (!PlainTable(stock, t->st_columns) ||
		!FindRow(stock, t->stock_pkey, names, 2, snapshot, row->slot))
		return false;
	row->on_hand = DatumGetInt64(slot_getattr(row->slot, t->st_on_hand, &isnull));
	row->reserved = DatumGetInt64(slot_getattr(row->slot, t->st_reserved, &isnull));
	row->next_expiry = DatumGetTimestampTz(slot_getattr(row->slot, t->st_next_expiry, &isnull));
	return !DatumGetBool(slot_getattr(row->slot, t->st_hot, &isnull)) &&
		row->next_expiry > GetCurrentStatementStartTimestamp() &&
		row->on_hand - row->reserved >= need &&
		!pg_add_s64_overflow(row->on_hand, on_hand_delta, &after) &&
		!pg_add_s64_overflow(row->reserved, reserved_delta, &after);
}

/* A copy of a row read, to be changed and written back. */
static TupleTableSlot *
CopyRow(Writer *w, ResultRelInfo *info, TupleTableSlot *old)
{
	TupleTableSlot *slot = NewRow(w, info);
	int			natts = slot->tts_tupleDescriptor->natts;

	slot_getallattrs(old);
	memcpy(slot->tts_values, old->tts_values, sizeof(Datum) * natts);
	memcpy(slot->tts_isnull, old->tts_isnull, sizeof(bool) * natts);
	return slot;
}

/*
 * Write a row read as old with the new values of slot, as an UPDATE would:
 * constraints checked, a transaction that has the row waited for, indexes
 * kept.  False, having written nothing, if that transaction changed the row
 * (then a statement would have to decide again from the new version).
 */
static bool
UpdateRow(Writer *w, ResultRelInfo *info, TupleTableSlot *old, TupleTableSlot *slot)
{
	Relation	rel = info->ri_RelationDesc;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		update_indexes;

	ExecStoreVirtualTuple(slot);
	if (rel->rd_att->constr)
		ExecConstraints(info, slot, w->estate);
	CheckCmdReplicaIdentity(rel, CMD_UPDATE);
	if (table_tuple_update(rel, &old->tts_tid, slot, w->estate->es_output_cid,
						   w->estate->es_snapshot, InvalidSnapshot, true, &tmfd,
						   &lockmode, &update_indexes) != TM_Ok)
		return false;
	if (update_indexes)
		(void) ExecInsertIndexTuples(info, slot, w->estate, true, false, NULL, NIL);
	return true;
}

/*
 * Write a stock row's new counters (and its next expiry, if a hold is
 * made); false, having written nothing, if it was changed since it was read
 * (UpdateRow).
 */
static bool
UpdateStock(Writer *w, const InvTables *t, StockRow *row, const InvMovement *m)
{
	TupleTableSlot *slot = CopyRow(w, w->stock, row->slot);

	SetColumn(slot, t->st_on_hand, Int64GetDatum(row->on_hand + m->on_hand_delta));
	SetColumn(slot, t->st_reserved, Int64GetDatum(row->reserved + m->reserved_delta));
	if (m->expires_at < row->next_expiry)
		SetColumn(slot, t->st_next_expiry, TimestampTzGetDatum(m->expires_at));
	if (!UpdateRow(w, w->stock, row->slot, slot))
		return false;
	row->on_hand += m->on_hand_delta;
	row->reserved += m->reserved_delta;
	return true;
}

/* A new row of a table, inserted as an INSERT would insert it. */
static void
InsertRow(Writer *w, ResultRelInfo *info, TupleTableSlot *slot)
{
	Relation	rel = info->ri_RelationDesc;

	ExecStoreVirtualTuple(slot);
	if (rel->rd_att->constr)
		ExecConstraints(info, slot, w->estate);
	CheckCmdReplicaIdentity(rel, CMD_INSERT);
	table_tuple_insert(rel, slot, w->estate->es_output_cid, 0, NULL);
	(void) ExecInsertIndexTuples(info, slot, w->estate, false, false, NULL, NIL);
}

/* The ledger row journalling a movement of a row, not inserted yet. */
static TupleTableSlot *
LedgerRow(Writer *w, const InvTables *t, const InvMovement *m,
		  const char *sku, const char *location)
{
	TupleTableSlot *slot = NewRow(w, w->ledger);

	SetColumn(slot, t->lg_id, Int64GetDatum(nextval_internal(t->ledger_seq, false)));
	SetColumn(slot, t->lg_op, CStringGetTextDatum(m->op));
	SetColumn(slot, t->lg_key, CStringGetTextDatum(m->key));
	SetColumn(slot, t->lg_sku, CStringGetTextDatum(sku));
	SetColumn(slot, t->lg_location, CStringGetTextDatum(location));
	SetColumn(slot, t->lg_on_hand_delta, Int64GetDatum(m->on_hand_delta));
	SetColumn(slot, t->lg_reserved_delta, Int64GetDatum(m->reserved_delta));
	if (m->ref)
		SetColumn(slot, t->lg_ref, CStringGetTextDatum(m->ref));
	SetColumn(slot, t->lg_at, TimestampTzGetDatum(GetCurrentStatementStartTimestamp()));
	if (m->call)
		SetColumn(slot, t->lg_call, CStringGetTextDatum(m->call));
	if (m->has_counted)
		SetColumn(slot, t->lg_counted, Int64GetDatum(m->counted));
	return slot;
}

/*
 * Insert a call row speculatively, as INSERT ... ON CONFLICT (key) WHERE
 * call IS NOT NULL DO NOTHING does, but without its pre-check: the
 * insertion into the unique index of call rows reports a row of the key in
 * any state (committed, being inserted, being deleted) without waiting, and
 * then the row is taken back and the call goes the general way, whose
 * statement waits and decides.  So false, having left nothing, if the key
 * is taken in any state, or turns out archived (an archiving transaction
 * that committed meanwhile); on true the row is in but unconfirmed, w->token
 * held, until EndCallRow: anyone else inserting the key waits for that.
 */
static bool
BeginCallRow(Writer *w, TupleTableSlot *slot, const char *key)
{
	Relation	rel = w->ledger->ri_RelationDesc;
	bool		conflict = false;

	ExecStoreVirtualTuple(slot);
	if (rel->rd_att->constr)
		ExecConstraints(w->ledger, slot, w->estate);
	CheckCmdReplicaIdentity(rel, CMD_INSERT);
	w->token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
	table_tuple_insert_speculative(rel, slot, w->estate->es_output_cid, 0, NULL, w->token);
	/*
	 * Every unique index is an arbiter (NIL), as for ON CONFLICT DO NOTHING
	 * with no target: a key taken shows as a conflict also in a copy of the
	 * index of keys (REINDEX CONCURRENTLY builds one beside it; an admin may
	 * make one) or in an index of an admin's over the key and more, rather
	 * than raise a unique violation; the general way's statement then
	 * answers as PostgreSQL does
	 */
	(void) ExecInsertIndexTuples(w->ledger, slot, w->estate, false, true, &conflict, NIL);
	if (!conflict && !InvKeyArchived(key))
		return true;
	table_tuple_complete_speculative(rel, slot, w->token, false);
	SpeculativeInsertionLockRelease(GetCurrentTransactionId());
	return false;
}

/* Confirm (or take back) a call row inserted by BeginCallRow. */
static void
EndCallRow(Writer *w, TupleTableSlot *slot, bool confirm)
{
	table_tuple_complete_speculative(w->ledger->ri_RelationDesc, slot, w->token, confirm);
	SpeculativeInsertionLockRelease(GetCurrentTransactionId());
}

/* The hold a reserve's movement makes: part of its reservation. */
static void
InsertHold(Writer *w, const InvTables *t, const InvMovement *m,
		   const char *sku, const char *location, Interval *ttl, int part)
{
	TupleTableSlot *slot = NewRow(w, w->reservation);

	SetColumn(slot, t->rs_key, CStringGetTextDatum(m->key));
	SetColumn(slot, t->rs_sku, CStringGetTextDatum(sku));
	SetColumn(slot, t->rs_location, CStringGetTextDatum(location));
	SetColumn(slot, t->rs_qty, Int64GetDatum(m->reserved_delta));
	SetColumn(slot, t->rs_state, CStringGetTextDatum("held"));
	SetColumn(slot, t->rs_created_at, TimestampTzGetDatum(GetCurrentStatementStartTimestamp()));
	SetColumn(slot, t->rs_expires_at, TimestampTzGetDatum(m->expires_at));
	SetColumn(slot, t->rs_ttl, IntervalPGetDatum(ttl));
	SetColumn(slot, t->rs_part, InvPartDatum(part));
	InsertRow(w, w->reservation, slot);
}

/*
 * Write the movements m[0..n) of rows read directly (row[i], named skus[i]
 * and locations[i]), each journalled by a ledger row, and with ttl (not
 * NULL) the hold each makes, parts numbered from first_part.  m[0]'s ledger
 * row records its call's key, if
 * it has one, before anything else is written.  False, having written
 * nothing, if the key is taken (BeginCallRow), or if a writer that does not
 * take the row lock changed the first row since it was read; if that writer
 * changed a later row, a cart's earlier rows are written already, and the
 * call fails with a serialization error.
 */
static bool
WriteMovements(Writer *w, const InvTables *t, StockRow **rows, const InvMovement *m,
			   char **skus, char **locations, int n, Interval *ttl, int first_part)
{
	TupleTableSlot *call = NULL;

	if (m[0].call != NULL)
	{
		call = LedgerRow(w, t, &m[0], skus[0], locations[0]);
		if (!BeginCallRow(w, call, m[0].key))
			return false;
	}
	for (int i = 0; i < n; i++)
		if (!UpdateStock(w, t, rows[i], &m[i]))
		{
			if (i > 0)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not apply call: stock row (%s, %s) was changed concurrently",
								skus[i], locations[i]),
						 errdetail("A transaction changed the row without taking its lock."),
						 errhint("Retry the transaction.  Writers of inventory.stock outside the extension's calls should take the row's lock first (pg_advisory_xact_lock(inventory.lock_key(sku, location))).")));
			if (call != NULL)
				EndCallRow(w, call, false);
			return false;
		}
	if (call != NULL)
		EndCallRow(w, call, true);
	for (int i = call != NULL ? 1 : 0; i < n; i++)
		InsertRow(w, w->ledger, LedgerRow(w, t, &m[i], skus[i], locations[i]));
	for (int i = 0; ttl != NULL && i < n; i++)
		InsertHold(w, t, &m[i], skus[i], locations[i], ttl, first_part + i);
	return true;
}

/*
 * The everyday way, directly (see the file header): the movements m[0..n)
 * of ordinary rows (skus[i] at locations[i], each locked exclusively by the
 * caller, at READ COMMITTED), each row keeping need[i] units available,
 * applied only if every row can take its own: all updated and journalled in
 * that order, m[0]'s ledger row recording its call's key, if it has one.
 * ttl (not NULL, one movement) makes it a reserve's, with its hold.
 * Returns false, having written nothing, when the general way must decide;
 * available[i] gets each row's units left.
 */
bool
InvTablesMoves(const InvMovement *m, char **skus, char **locations, const int64 *need,
			   int n, Interval *ttl, int64 *available)
{
	InvTables	tables = InvLockTables(INV_REL_STOCK | INV_REL_LEDGER |
									   (ttl ? INV_REL_RESERVATION : 0), RowExclusiveLock);
	const InvTables *t = &tables;
	Relation	stock = table_open(t->stock, RowExclusiveLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	StockRow   *rows = palloc0(sizeof(StockRow) * n);
	StockRow  **refs = palloc(sizeof(StockRow *) * n);
	bool		go;
	int			read = 0;
	Writer		w = {0};

	Assert(ttl == NULL || n == 1);
	do
	{
		go = ReadStock(t, stock, snapshot, skus[read], locations[read], need[read],
					   m[read].on_hand_delta, m[read].reserved_delta, &rows[read]);
		refs[read] = &rows[read];
		read++;
	} while (go && read < n);

	go = go && WriterBegin(&w, t, stock, ttl != NULL, snapshot);
	if (go)
		go = WriteMovements(&w, t, refs, m, skus, locations, n, ttl, 0);
	for (int i = 0; i < read; i++)
		ExecDropSingleTupleTableSlot(rows[i].slot);
	for (int i = 0; go && i < n; i++)
		available[i] = rows[i].on_hand - rows[i].reserved;
	if (w.estate != NULL)
		WriterEnd(&w);
	else
		table_close(stock, NoLock);
	UnregisterSnapshot(snapshot);
	return go;
}

/*
 * The everyday confirm or release: every part of the reservation, if all
 * are held and not due (and, with only_sku, if it has one part, of that
 * sku), set to its final state (confirmed or released) directly.  Returns
 * how many parts, their sku, location and units in (*held)[] in part order;
 * 0, having changed nothing, for any other (an unknown key, a part settled
 * or due, a concurrent change: the general way decides, under the
 * reservation's row locks).  Of several parts, every one is locked before
 * any is written, so that a part changed meanwhile (expired by a writer of
 * its stock row, split by a step) leaves them all as they were.  The stock
 * rows are the caller's to move, after taking their locks: reservations are
 * always locked before stock rows.
 */
int
InvTablesSettle(const char *key, const char *state, const char *only_sku, InvHeld **held)
{
	InvTables	tables = InvLockTables(INV_REL_RESERVATION, RowExclusiveLock);
	const InvTables *t = &tables;
	Relation	reservation = table_open(t->reservation, RowExclusiveLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	TimestampTz now = GetCurrentStatementStartTimestamp();
	int			size = 4;
	TupleTableSlot **parts = palloc(sizeof(TupleTableSlot *) * size);
	int			n = 0;
	bool		go = PlainTable(reservation, t->rs_columns);
	bool		isnull;
	Writer		w = {0};

	if (go)
	{
		Relation	index = index_open(t->reservation_pkey, AccessShareLock);
		ScanKeyData skey;
		IndexScanDesc scan = index_beginscan(reservation, index, snapshot, 1, 0);

		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(key));
		skey.sk_collation = index->rd_indcollation[0];
		index_rescan(scan, &skey, 1, NULL, 0);
		while (go)
		{
			TupleTableSlot *slot = table_slot_create(reservation, NULL);

			if (!index_getnext_slot(scan, ForwardScanDirection, slot))
			{
				ExecDropSingleTupleTableSlot(slot);
				break;
			}
			/* a copy, so that no buffer stays pinned until the write */
			ExecMaterializeSlot(slot);
			if (n == size)
				parts = repalloc(parts, sizeof(TupleTableSlot *) * (size *= 2));
			parts[n++] = slot;
			go = strcmp(TextDatumGetCString(slot_getattr(slot, t->rs_state, &isnull)), "held") == 0 &&
				DatumGetTimestampTz(slot_getattr(slot, t->rs_expires_at, &isnull)) > now;
		}
		index_endscan(scan);
		index_close(index, AccessShareLock);
	}
	go = go && n > 0 &&
		(only_sku == NULL ||
		 (n == 1 &&
		  strcmp(TextDatumGetCString(slot_getattr(parts[0], t->rs_sku, &isnull)), only_sku) == 0));
	if (go)
	{
		WriterBeginOne(&w, reservation, snapshot);
		/* several parts: lock them all first (a part changed: write none) */
		for (int i = 0; go && n > 1 && i < n; i++)
		{
			TM_FailureData tmfd;

			go = table_tuple_lock(reservation, &parts[i]->tts_tid, snapshot, parts[i],
								  w.estate->es_output_cid, LockTupleExclusive,
								  LockWaitBlock, 0, &tmfd) == TM_Ok;
			ExecMaterializeSlot(parts[i]);
		}
		*held = palloc(sizeof(InvHeld) * n);
		for (int i = 0; go && i < n; i++)
		{
			TupleTableSlot *slot = CopyRow(&w, w.stock, parts[i]);

			SetColumn(slot, t->rs_state, CStringGetTextDatum(state));

			/*
			 * Waits for a transaction that has the row; if it changed the
			 * row, give up (one part, unlocked): the general way locks it
			 * and sees what became of it.
			 */
			go = UpdateRow(&w, w.stock, parts[i], slot);
			if (!go && n > 1)
				elog(ERROR, "inventory: a locked reservation part was changed");
			if (!go)
				break;
			(*held)[i].sku = TextDatumGetCString(slot_getattr(parts[i], t->rs_sku, &isnull));
			(*held)[i].location = TextDatumGetCString(slot_getattr(parts[i], t->rs_location, &isnull));
			(*held)[i].qty = DatumGetInt64(slot_getattr(parts[i], t->rs_qty, &isnull));
		}
		WriterEnd(&w);
	}
	else
		table_close(reservation, NoLock);
	for (int i = 0; i < n; i++)
		ExecDropSingleTupleTableSlot(parts[i]);
	UnregisterSnapshot(snapshot);
	return go ? n : 0;
}

/*
 * The locations of a sku's stock rows, read from the stock table's primary
 * key alone, in index order: the candidates of an allocation that names
 * none.  A list of rows to lock, not a read of them: an entry of a row not
 * (or no longer) visible only adds a candidate that turns out to hold
 * nothing.  *n gets how many.
 */
char **
InvTablesSkuLocations(const char *sku, int *n)
{
	InvTables	tables = InvLockTables(INV_REL_STOCK, AccessShareLock);
	Relation	stock = table_open(tables.stock, AccessShareLock);
	Relation	index = index_open(tables.stock_pkey, AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyData skey;
	IndexScanDesc scan;
	int			max = 8;
	char	  **names = palloc(sizeof(char *) * max);
	bool		isnull;

	*n = 0;
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(sku));
	skey.sk_collation = index->rd_indcollation[0];
	scan = index_beginscan(stock, index, snapshot, 1, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, &skey, 1, NULL, 0);
	while (index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		Datum		location = index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull);

		if (*n == max)
			names = repalloc(names, sizeof(char *) * (max *= 2));
		names[(*n)++] = TextDatumGetCString(location);
	}
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(stock, AccessShareLock);
	return names;
}

/*
 * Each location's allocation rule, read directly: its priority and whether
 * it is active (a location never configured: 0, active).  A table of one
 * page (a few dozen locations) is read whole; a larger one through its key.
 */
void
InvTablesLocationRules(char **names, int n, int *priority, bool *active)
{
	InvTables	tables = InvLockTables(INV_REL_LOCATION, AccessShareLock);
	Relation	rel = table_open(tables.location, AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		isnull;

	for (int i = 0; i < n; i++)
	{
		priority[i] = 0;
		active[i] = true;
	}
	if (RelationGetNumberOfBlocks(rel) <= 1)
	{
		TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			char	   *name = TextDatumGetCString(slot_getattr(slot, tables.lc_location, &isnull));

			for (int i = 0; i < n; i++)
				if (strcmp(names[i], name) == 0)
				{
					priority[i] = DatumGetInt32(slot_getattr(slot, tables.lc_priority, &isnull));
					active[i] = DatumGetBool(slot_getattr(slot, tables.lc_active, &isnull));
				}
		}
		table_endscan(scan);
	}
	else
		for (int i = 0; i < n; i++)
			if (FindRow(rel, tables.location_pkey, (const char **) &names[i], 1, snapshot, slot))
			{
				priority[i] = DatumGetInt32(slot_getattr(slot, tables.lc_priority, &isnull));
				active[i] = DatumGetBool(slot_getattr(slot, tables.lc_active, &isnull));
			}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
}

/* Stock rows read directly, to be written directly (InvTablesReadRows). */
struct InvDirectRows
{
	InvTables	tables;
	Relation	stock;
	Snapshot	snapshot;
	int			n;
	char	  **skus;			/* the caller's names of the rows */
	char	  **locations;
	StockRow   *rows;			/* slot NULL: the row does not exist */
};

/* Let go of rows read directly, writing nothing. */
void
InvTablesReleaseRows(InvDirectRows *d)
{
	for (int i = 0; i < d->n; i++)
		if (d->rows[i].slot)
			ExecDropSingleTupleTableSlot(d->rows[i].slot);
	UnregisterSnapshot(d->snapshot);
	table_close(d->stock, NoLock);
}

/*
 * Read ordinary stock rows directly (the caller holds each one's lock
 * exclusively and runs at READ COMMITTED): available[i] gets the units row i
 * can give (0 for a row that does not exist).  NULL, having kept nothing,
 * if a row is not the everyday way's (hot, a hold due), or the table not
 * the extension's own as it made it.
 */
InvDirectRows *
InvTablesReadRows(char **skus, char **locations, int n, int64 *available)
{
	InvDirectRows *d = palloc0(sizeof(InvDirectRows));
	const InvTables *t;
	Relation	index;
	IndexScanDesc scan;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	bool		ok;

	d->tables = InvLockTables(INV_REL_STOCK | INV_REL_LEDGER | INV_REL_RESERVATION,
							  RowExclusiveLock);
	t = &d->tables;
	d->skus = skus;
	d->locations = locations;
	d->stock = table_open(t->stock, RowExclusiveLock);
	d->snapshot = RegisterSnapshot(GetLatestSnapshot());
	ok = PlainTable(d->stock, t->st_columns);
	d->rows = palloc0(sizeof(StockRow) * Max(n, 1));
	index = index_open(t->stock_pkey, AccessShareLock);
	scan = index_beginscan(d->stock, index, d->snapshot, 2, 0);
	for (int i = 0; i < n && ok; i++)
	{
		StockRow   *row = &d->rows[i];
		ScanKeyData skeys[2];
		bool		isnull;

		ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(skus[i]));
		skeys[0].sk_collation = index->rd_indcollation[0];
		ScanKeyInit(&skeys[1], 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(locations[i]));
		skeys[1].sk_collation = index->rd_indcollation[1];
		index_rescan(scan, skeys, 2, NULL, 0);
		row->slot = table_slot_create(d->stock, NULL);
		d->n = i + 1;
		available[i] = 0;
		if (!index_getnext_slot(scan, ForwardScanDirection, row->slot))
		{
			ExecDropSingleTupleTableSlot(row->slot);
			row->slot = NULL;
			continue;
		}
		/* a copy, so that no buffer stays pinned until the write */
		ExecMaterializeSlot(row->slot);
		row->on_hand = DatumGetInt64(slot_getattr(row->slot, t->st_on_hand, &isnull));
		row->reserved = DatumGetInt64(slot_getattr(row->slot, t->st_reserved, &isnull));
		row->next_expiry = DatumGetTimestampTz(slot_getattr(row->slot, t->st_next_expiry, &isnull));
		ok = !DatumGetBool(slot_getattr(row->slot, t->st_hot, &isnull)) &&
			row->next_expiry > now;
		available[i] = row->on_hand - row->reserved;
	}
	index_endscan(scan);
	index_close(index, AccessShareLock);
	if (ok)
		return d;
	InvTablesReleaseRows(d);
	return NULL;
}

/*
 * Take qtys[k] units from row parts[k] of rows read directly, in that order,
 * as sales, or with ttl (not NULL) as holds until expires_at, a reservation
 * part per row numbered from 1; the first part's ledger row records the
 * call's key (and ref).  Then let go of the rows.  False, having written
 * nothing, if the key is taken (see WriteMovements).  available[k] gets
 * each part's row's units left.
 */
bool
InvTablesWriteRows(InvDirectRows *d, const char *call, const char *key, const char *ref,
				   const int *parts, const int64 *qtys, int nparts, Interval *ttl,
				   TimestampTz expires_at, int64 *available)
{
	const InvTables *t = &d->tables;
	StockRow  **rows = palloc(sizeof(StockRow *) * Max(nparts, 1));
	InvMovement *m = palloc(sizeof(InvMovement) * Max(nparts, 1));
	char	  **skus = palloc(sizeof(char *) * Max(nparts, 1));
	char	  **locations = palloc(sizeof(char *) * Max(nparts, 1));
	Writer		w = {0};
	bool		go;

	for (int k = 0; k < nparts; k++)
	{
		rows[k] = &d->rows[parts[k]];
		if (rows[k]->slot == NULL || rows[k]->on_hand - rows[k]->reserved < qtys[k])
			elog(ERROR, "inventory: a row read for an allocation cannot give its part");
		if (ttl != NULL)
		{
			InvMovementInit(&m[k], "reserve", key, 0, qtys[k]);
			m[k].expires_at = expires_at;
		}
		else
			InvMovementInit(&m[k], "deduct", key, -qtys[k], 0);
		skus[k] = d->skus[parts[k]];
		locations[k] = d->locations[parts[k]];
	}
	m[0].call = call;
	m[0].ref = ref;
	if (nparts == 0 || !WriterBegin(&w, t, d->stock, ttl != NULL, d->snapshot))
	{
		InvTablesReleaseRows(d);
		return false;
	}
	go = WriteMovements(&w, t, rows, m, skus, locations, nparts, ttl, 1);
	for (int k = 0; go && k < nparts; k++)
		available[k] = rows[k]->on_hand - rows[k]->reserved;
	for (int i = 0; i < d->n; i++)
		if (d->rows[i].slot)
			ExecDropSingleTupleTableSlot(d->rows[i].slot);
	WriterEnd(&w);
	UnregisterSnapshot(d->snapshot);
	return go;
}
