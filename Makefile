# PGXS build of the inventory extension.
EXTENSION = inventory inventory_proxy
MODULE_big = inventory
DATA = inventory--1.0.sql inventory--1.0--1.1.sql inventory--1.1--1.2.sql inventory_proxy--1.1.sql inventory_proxy--1.1--1.2.sql
OBJS = src/inventory.o src/query.o src/call.o src/rowlock.o src/keys.o \
       src/schema.o src/shmem.o src/hot.o src/tables.o src/movement.o src/passes.o src/autohot.o src/stock.o src/allocate.o src/reservation.o \
       src/refund.o src/report.o src/admin.o src/worker.o src/databases.o src/merged.o src/bills.o src/events.o src/stats.o

REGRESS = inventory_input inventory_stock inventory_reservation inventory_cart inventory_views \
          inventory_hot inventory_bills inventory_archive inventory_allocate inventory_direct inventory_steps
REGRESS_OPTS = --inputdir=. --outputdir=$(REGRESS_OUTPUT)
REGRESS_OUTPUT ?= .

PG_CONFIG ?= pg_config

# Unused parameters are normal for fmgr-style code.  make WERROR=1 makes
# warnings errors (the project's scripts and CI build so); packagers on other
# compilers build without it.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifdef WERROR
PG_CFLAGS += -Werror
endif

# make SANITIZE=address,undefined (any -fsanitize= list): a sanitizer build.
# UBSan loads into a stock server as it is; ASan needs a server that starts
# with its runtime (see the README).  scripts/test --sanitize uses
# SANITIZE=undefined under Valgrind.  Run make clean when switching.
ifdef SANITIZE
PG_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=$(SANITIZE)
endif

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared headers (PGXS tracks no dependencies).
$(OBJS): src/inventory.h src/hot.h
