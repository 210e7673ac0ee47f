/*
 * events.c
 *	  Announcements of changes on the NOTIFY channel "inventory_events".
 *
 * NOTIFY is transactional: a notification is delivered to listeners when
 * (and only if) the transaction that raised it commits, and identical
 * notifications of one transaction are sent once.  Payloads are JSON:
 *
 *	 {"event": "sold_out", "sku": "a", "location": "default", "available": 0}
 *	 {"event": "back_in_stock", "sku": "a", "location": "default", "available": 5}
 *	 {"event": "expired", "count": 120}
 *
 * "sold_out" when a movement takes a row's available units to zero, and
 * "back_in_stock" when one brings them up from zero; "expired" for each batch
 * of reservations an expiry pass (the worker's or expire()) released.
 */
#include "postgres.h"

#include "commands/async.h"
#include "lib/stringinfo.h"

#include "inventory.h"

#define INV_CHANNEL "inventory_events"

/* Announce a row crossing zero available units, if it did. */
void
InvNotifyLevel(const char *sku, const char *location, int64 before, int64 after)
{
	StringInfoData payload;

	if (before > 0 && after <= 0)
	{
		InvArgsBegin(&payload);
		InvArgsText(&payload, "event", "sold_out");
	}
	else if (before <= 0 && after > 0)
	{
		InvArgsBegin(&payload);
		InvArgsText(&payload, "event", "back_in_stock");
	}
	else
		return;
	InvArgsText(&payload, "sku", sku);
	InvArgsText(&payload, "location", location);
	InvArgsInt8(&payload, "available", after);
	InvArgsEnd(&payload);
	Async_Notify(INV_CHANNEL, payload.data);
}

/* Announce a batch of expired reservations. */
void
InvNotifyExpired(int64 count)
{
	StringInfoData payload;

	if (count <= 0)
		return;
	InvArgsBegin(&payload);
	InvArgsText(&payload, "event", "expired");
	InvArgsInt8(&payload, "count", count);
	InvArgsEnd(&payload);
	Async_Notify(INV_CHANNEL, payload.data);
}
