/*
 * shim.c: C functions for the DPDK macros bindgen cannot bind. Declared in wrapper.h.
 */
#include "wrapper.h"

int shim_rte_errno(void) { return rte_errno; }

void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
