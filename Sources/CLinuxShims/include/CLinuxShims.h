// SPDX-License-Identifier: Apache-2.0
// What Swift cannot import from glibc: function-like macros (CMSG_*), memfd_create, and
// ordered accesses to shared guest memory (Swift's Atomic cannot be laid over foreign memory).
// Nothing else belongs here.
#ifndef VRDMA_CLINUXSHIMS_H
#define VRDMA_CLINUXSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
// Re-exported: Glibc's Swift module does not include these Linux-only headers.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <signal.h>

/// recvmsg() of up to `len` bytes collecting at most `max_fds` SCM_RIGHTS descriptors
/// (received close-on-exec). Returns the byte count or -1 with errno set. `*nfds` is the number
/// of descriptors stored in `fds`; `*truncated` is 1 when the kernel dropped control data
/// (MSG_CTRUNC): the caller must treat the message as a protocol error after closing `fds`.
ssize_t CLinuxShims_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds,
                                  int *nfds, int *truncated);

/// sendmsg() of `len` bytes with `nfds` descriptors attached to the first byte.
ssize_t CLinuxShims_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/// memfd_create(name, MFD_CLOEXEC).
int CLinuxShims_memfd_create(const char *name);

/// GNU extensions the Swift importer does not see: accept4(SOCK_CLOEXEC), pthread_setname_np.
int CLinuxShims_accept_cloexec(int listener);
void CLinuxShims_set_thread_name(const char *name);

/* Ordered accesses on shared memory (guest RAM, logs). */
uint16_t CLinuxShims_load_acquire_u16(const void *p);
uint32_t CLinuxShims_load_acquire_u32(const void *p);
uint64_t CLinuxShims_load_acquire_u64(const void *p);
void CLinuxShims_store_release_u16(void *p, uint16_t v);
void CLinuxShims_store_release_u32(void *p, uint32_t v);
void CLinuxShims_store_release_u64(void *p, uint64_t v);
/* A second mapping of the pages of a shared mapping at [old, old + length), placed at exactly
   new_address (mremap with old_size 0 and MREMAP_FIXED). MAP_FAILED and errno on failure. */
void *CLinuxShims_duplicate_mapping(void *old, size_t length, void *new_address);

void CLinuxShims_fence_acquire(void);
void CLinuxShims_fence_release(void);
void CLinuxShims_fence_seq_cst(void);
void CLinuxShims_atomic_or_u8(void *p, uint8_t v);
/// 8-byte atomics on guest memory (RDMA atomics). `p` must be 8-byte aligned.
uint64_t CLinuxShims_atomic_fetch_add_u64(void *p, uint64_t v);
uint64_t CLinuxShims_atomic_compare_swap_u64(void *p, uint64_t expected, uint64_t desired);

#endif
