/*
 * hot.h
 *	  Shared-memory state: hot-row escrow counters and the worker's status.
 */
#ifndef INVENTORY_HOT_H
#define INVENTORY_HOT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

#include "inventory.h"

/* A hot row: its database and names, zero-padded so the key hashes whole. */
typedef struct HotKey
{
	Oid			dbid;
	char		sku[INV_MAX_NAME_BYTES + 1];
	char		location[INV_MAX_NAME_BYTES + 1];
} HotKey;

/*
 * A hot row's counter: one of inventory.hot_rows slots in shared memory,
 * found by key through InvHotTable.  A slot is freed (set_hot(false), or
 * reclaimed when it holds nothing) and used again for another row, so a
 * backend that kept a pointer to it checks its generation, under the
 * spinlock, before believing anything it reads there.
 */
typedef struct HotEntry
{
	slock_t		mutex;			/* protects the fields below */
	uint64		generation;		/* of the row that has the slot; 0: free */
	HotKey		key;
	bool		loaded;			/* counter valid: the row runs in hot mode */
	Oid			stock_relid;	/* inventory.stock it was loaded from */
	int64		available;		/* units that can be taken now */
	int			uses;			/* live transaction records on this entry */
	TimestampTz next_expiry;	/* no held reservation expires before this */
	uint64		expiry_notes;	/* bumped whenever next_expiry is lowered */
	uint64		changes;		/* bumped by every change of available */
	int64		takes;			/* statistics: units taken, refusals */
	int64		refusals;
} HotEntry;

/* InvHotTable: a row's key to its slot. */
typedef struct HotMapEntry
{
	HotKey		key;
	int			slot;
} HotMapEntry;

/* Bits of the shared filter of rows that have an entry (a power of two). */
#define INV_HOT_BITS (1 << 20)

/* Databases the workers serve at once, at most. */
#define INV_MAX_DATABASES 32

/* What the worker of one database did, for inventory.worker_status(). */
typedef struct InvWorkerStats
{
	Oid			dbid;			/* the database this worker serves */
	int			pid;			/* 0: no worker runs there now */
	TimestampTz started_at;
	TimestampTz last_merge_at;
	int64		merge_passes;
	int64		rows_merged;
	int64		movements_merged;
	TimestampTz last_expire_at;
	int64		expire_passes;
	int64		expired;
	TimestampTz last_archive_at;
	int64		archived;		/* ledger rows folded */
	int64		promoted;		/* rows the automatic rule made hot */
	int64		demoted;		/* and ordinary again */
	int64		errors;
	char		last_error[256];
	/* the launcher's: start its worker at once (not after the relaunch delay) */
	bool		launch_now;
	bool		warned;			/* the missing worker slot was logged */
	bool		opted_out;		/* inventory.serve_database is off there */
} InvWorkerStats;

/* The calls and statuses counted per database (stats.c). */
#define INV_STATS_CALLS 16
#define INV_STATS_STATUSES 7

/* Databases set aside for a command at once, at most. */
#define INV_MAX_ASIDE 8

/* A database whose workers stay away while a command runs (databases.c). */
typedef struct InvAside
{
	Oid			dbid;			/* InvalidOid: a free entry */
	int			pid;			/* of the backend running the command */
} InvAside;

typedef struct InvShared
{
	LWLock	   *lock;			/* protects InvHotTable and the free slots */
	uint64		generation;		/* the last slot generation handed out */
	int			nfree;			/* free slots, listed in free[] */
	/* one bit per hash of a row that has (or had) an entry: see HotMaybeLoaded */
	pg_atomic_uint64 hot_bits[INV_HOT_BITS / 64];
	slock_t		mutex;			/* protects workers, aside and launcher */
	InvWorkerStats workers[INV_MAX_DATABASES];	/* by database, first come */
	InvAside	aside[INV_MAX_ASIDE];
	Latch	   *launcher;		/* the launcher's latch while it runs */
	/* answers per database slot (as workers), call and status: stats.c */
	pg_atomic_uint64 counts[INV_MAX_DATABASES][INV_STATS_CALLS][INV_STATS_STATUSES];
	/* transactions that archive (and may delete call rows) now: passes.c */
	pg_atomic_uint32 archiving;
} InvShared;

extern InvShared *InvState;
extern HTAB *InvHotTable;
extern HotEntry *InvHotSlots;
extern int *InvHotFree;
extern int	InvHotRows;

/* hot.c */
extern HotEntry *HotFind(const char *sku, const char *location, bool create,
						 uint64 *generation);
extern bool HotMaybeLoaded(const char *sku, const char *location);
extern bool HotPeek(HotEntry *entry, uint64 generation, int64 *available,
					bool *expiry_due);
extern bool HotBegin(HotEntry *entry, uint64 generation);
extern bool HotLoad(HotEntry *entry, uint64 generation, int64 available,
					TimestampTz next_expiry);
extern bool HotTake(HotEntry *entry, int64 qty, int64 *available);
extern void HotUntake(HotEntry *entry, int64 qty);
extern void HotArrive(HotEntry *entry, int64 qty);
extern void HotRefused(HotEntry *entry, uint64 generation);
extern int64 HotAvailable(HotEntry *entry);
extern bool HotExpiryDue(HotEntry *entry);
extern uint64 HotExpiryNotes(HotEntry *entry);
extern void HotSetNextExpiry(HotEntry *entry, TimestampTz next_expiry, uint64 notes);
extern void HotNoteExpiry(HotEntry *entry, TimestampTz expires_at);
extern void HotUnload(HotEntry *entry, uint64 generation);
extern void HotForgetDatabase(Oid dbid);
extern void HotInit(void);

/* databases.c */
extern bool InvSetAside(Oid dbid);
extern int	InvDatabaseSlot(void);

/* stats.c */
extern int	InvStatsCall(const char *call);
extern void InvStatsCount(int call, const char *status);
extern void InvStatsClear(int slot);

#endif							/* INVENTORY_HOT_H */
