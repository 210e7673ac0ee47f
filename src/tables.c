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
 * the executor's single-row routines, the ones logical replication applies
 * changes with (ExecSimpleRelationUpdate, ExecSimpleRelationInsert): they
 * keep every index (also any an admin adds), check the tables' constraints
 * and fire their triggers, exactly as a statement would.
 *
 * The decision is the one the statement made: with the row's lock held
 * exclusively (rowlock.c), the call goes through only if the row exists, is
 * ordinary, has no hold due to expire (stock.next_expiry), has the units and
 * stays within bigint, and the call's key is free; otherwise nothing is
 * written and the general way (movement.c) decides.  The key is probed first
 * in the unique index of call rows, with a dirty snapshot, so a key being
 * recorded by a transaction still in progress counts as taken too (the
 * general way then waits for it); the row is read with the latest snapshot,
 * which under READ COMMITTED (the only level this way serves) is what a
 * statement taken after the lock would see.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "inventory.h"

/* An executor state for writing the extension's tables one row at a time. */
typedef struct Writer
{
	EState	   *estate;
	ResultRelInfo *stock;
	ResultRelInfo *ledger;
	ResultRelInfo *reservation;	/* NULL unless a hold is made */
} Writer;

/* A result relation of the writer, its indexes open. */
static ResultRelInfo *
WriterRelation(EState *estate, Relation rel, Index rti)
{
	ResultRelInfo *info = makeNode(ResultRelInfo);

	InitResultRelInfo(info, rel, rti, NULL, 0);
	ExecOpenIndices(info, false);
	return info;
}

/* Open the tables a movement writes, in an executor state of their own. */
static void
WriterBegin(Writer *w, const InvTables *t, Relation stock, bool hold, Snapshot snapshot)
{
	List	   *rtable = NIL;
	Relation	rels[3];
	int			n = hold ? 3 : 2;

	rels[0] = stock;
	rels[1] = table_open(t->ledger, RowExclusiveLock);
	rels[2] = hold ? table_open(t->reservation, RowExclusiveLock) : NULL;
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
	w->stock = WriterRelation(w->estate, rels[0], 1);
	w->ledger = WriterRelation(w->estate, rels[1], 2);
	w->reservation = hold ? WriterRelation(w->estate, rels[2], 3) : NULL;
	AfterTriggerBeginQuery();
}

/* Fire any after-row triggers, close everything; the locks stay held. */
static void
WriterEnd(Writer *w)
{
	ResultRelInfo *infos[3] = {w->stock, w->ledger, w->reservation};

	AfterTriggerEndQuery(w->estate);
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
 * Is a call row with this key in the ledger, committed or being inserted by
 * a transaction still running?  (The general way then decides, and waits.)
 */
static bool
KeyTaken(const InvTables *t, const char *key)
{
	Relation	ledger = table_open(t->ledger, AccessShareLock);
	Relation	index = index_open(t->ledger_call_key, AccessShareLock);
	SnapshotData dirty;
	ScanKeyData skey;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(ledger, NULL);
	bool		taken;

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
 * The everyday way, directly (see the file header): apply a movement of an
 * ordinary row, keeping need units available; ttl (not NULL) makes it a
 * reserve's, with its hold.  The caller holds the row's lock exclusively and
 * runs at READ COMMITTED.  Returns false, having written nothing, when the
 * general way must decide; true with *available after the move.
 */
bool
InvTablesMove(const InvMovement *m, const char *sku, const char *location,
			  int64 need, Interval *ttl, int64 *available)
{
	/* a copy: opening a table may process an invalidation that clears them */
	InvTables	tables = *InvGetTables();
	const InvTables *t = &tables;
	Relation	stock;
	Relation	pkey;
	Snapshot	snapshot;
	ScanKeyData skeys[2];
	IndexScanDesc scan;
	TupleTableSlot *old;
	bool		found;
	bool		go = false;
	bool		isnull;
	int64		on_hand = 0;
	int64		reserved = 0;
	TimestampTz next_expiry = 0;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	Writer		w;
	TupleTableSlot *slot;
	EPQState	epq;

	if (m->call != NULL && KeyTaken(t, m->key))
		return false;

	/* the row, as the latest commits left it */
	stock = table_open(t->stock, RowExclusiveLock);
	pkey = index_open(t->stock_pkey, AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(sku));
	ScanKeyInit(&skeys[1], 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(location));
	skeys[0].sk_collation = pkey->rd_indcollation[0];
	skeys[1].sk_collation = pkey->rd_indcollation[1];
	old = table_slot_create(stock, NULL);
	scan = index_beginscan(stock, pkey, snapshot, 2, 0);
	index_rescan(scan, skeys, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, old);
	index_endscan(scan);
	index_close(pkey, AccessShareLock);

	if (found)
	{
		bool		hot = DatumGetBool(slot_getattr(old, t->st_hot, &isnull));
		int64		after;

		on_hand = DatumGetInt64(slot_getattr(old, t->st_on_hand, &isnull));
		reserved = DatumGetInt64(slot_getattr(old, t->st_reserved, &isnull));
		next_expiry = DatumGetTimestampTz(slot_getattr(old, t->st_next_expiry, &isnull));
		go = !hot && next_expiry > now && on_hand - reserved >= need &&
			!pg_add_s64_overflow(on_hand, m->on_hand_delta, &after) &&
			!pg_add_s64_overflow(reserved, m->reserved_delta, &after);
	}
	if (!go)
	{
		ExecDropSingleTupleTableSlot(old);
		UnregisterSnapshot(snapshot);
		table_close(stock, NoLock);
		return false;
	}

	WriterBegin(&w, t, stock, ttl != NULL, snapshot);

	/* the stock row */
	slot = NewRow(&w, w.stock);
	slot_getallattrs(old);
	memcpy(slot->tts_values, old->tts_values, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memcpy(slot->tts_isnull, old->tts_isnull, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	on_hand += m->on_hand_delta;
	reserved += m->reserved_delta;
	SetColumn(slot, t->st_on_hand, Int64GetDatum(on_hand));
	SetColumn(slot, t->st_reserved, Int64GetDatum(reserved));
	if (m->expires_at < next_expiry)
		SetColumn(slot, t->st_next_expiry, TimestampTzGetDatum(m->expires_at));
	ExecStoreVirtualTuple(slot);
	EvalPlanQualInit(&epq, w.estate, NULL, NIL, -1);
	ExecSimpleRelationUpdate(w.stock, w.estate, &epq, old, slot);
	EvalPlanQualEnd(&epq);

	/* its ledger row, which records the call's key */
	slot = NewRow(&w, w.ledger);
	SetColumn(slot, t->lg_id, Int64GetDatum(nextval_internal(t->ledger_seq, false)));
	SetColumn(slot, t->lg_op, CStringGetTextDatum(m->op));
	SetColumn(slot, t->lg_key, CStringGetTextDatum(m->key));
	SetColumn(slot, t->lg_sku, CStringGetTextDatum(sku));
	SetColumn(slot, t->lg_location, CStringGetTextDatum(location));
	SetColumn(slot, t->lg_on_hand_delta, Int64GetDatum(m->on_hand_delta));
	SetColumn(slot, t->lg_reserved_delta, Int64GetDatum(m->reserved_delta));
	if (m->ref)
		SetColumn(slot, t->lg_ref, CStringGetTextDatum(m->ref));
	SetColumn(slot, t->lg_at, TimestampTzGetDatum(now));
	if (m->call)
		SetColumn(slot, t->lg_call, CStringGetTextDatum(m->call));
	if (m->has_counted)
		SetColumn(slot, t->lg_counted, Int64GetDatum(m->counted));
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(w.ledger, w.estate, slot);

	/* a reserve's hold */
	if (ttl != NULL)
	{
		slot = NewRow(&w, w.reservation);
		SetColumn(slot, t->rs_key, CStringGetTextDatum(m->key));
		SetColumn(slot, t->rs_sku, CStringGetTextDatum(sku));
		SetColumn(slot, t->rs_location, CStringGetTextDatum(location));
		SetColumn(slot, t->rs_qty, Int64GetDatum(m->reserved_delta));
		SetColumn(slot, t->rs_state, CStringGetTextDatum("held"));
		SetColumn(slot, t->rs_created_at, TimestampTzGetDatum(now));
		SetColumn(slot, t->rs_expires_at, TimestampTzGetDatum(m->expires_at));
		SetColumn(slot, t->rs_ttl, IntervalPGetDatum(ttl));
		ExecStoreVirtualTuple(slot);
		ExecSimpleRelationInsert(w.reservation, w.estate, slot);
	}

	ExecDropSingleTupleTableSlot(old);
	WriterEnd(&w);
	UnregisterSnapshot(snapshot);
	*available = on_hand - reserved;
	return true;
}
