/*
 * wrapper.h: the DPDK 22.11 surface psp binds (bindgen reads this file; build.rs allowlists what
 * it needs from it). The shim_* functions, defined in shim.c, cover what bindgen cannot bind:
 * macros (rte_errno, rte_pktmbuf_mtod). static inline functions (rx/tx burst, mbuf alloc/free...)
 * are wrapped by bindgen's wrap_static_fns, compiled by build.rs.
 */
#ifndef PSP_DPDK_WRAPPER_H
#define PSP_DPDK_WRAPPER_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_debug.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_bus_vdev.h>

/* rte_errno is a macro over a per-lcore (thread-local) variable. */
int shim_rte_errno(void);

/* rte_pktmbuf_mtod(m, void *) is a macro. */
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);

#endif /* PSP_DPDK_WRAPPER_H */
