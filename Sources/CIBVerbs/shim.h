/* SPDX-License-Identifier: Apache-2.0 */
/* libibverbs for Swift: the header itself, plus wrappers for what Swift cannot call (macros). */
#ifndef VRDMA_CIBVERBS_SHIM_H
#define VRDMA_CIBVERBS_SHIM_H
#include <infiniband/verbs.h>

static inline int CIBVerbs_query_port(struct ibv_context *context, uint8_t port, struct ibv_port_attr *attr)
{
    return ibv_query_port(context, port, attr);
}
#endif
