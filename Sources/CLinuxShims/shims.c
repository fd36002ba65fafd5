// SPDX-License-Identifier: Apache-2.0
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CLinuxShims.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <pthread.h>
#include <unistd.h>

// Room for more descriptors than any vhost-user message may carry, so that an over-long fd list
// arrives whole and is rejected by the protocol layer instead of being silently cut by the kernel.
#define SHIM_MAX_FDS 32

ssize_t CLinuxShims_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds,
                                  int *nfds, int *truncated)
{
    union {
        char buf[CMSG_SPACE(SHIM_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;

    *nfds = 0;
    *truncated = 0;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return n;
    if (msg.msg_flags & MSG_CTRUNC)
        *truncated = 1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *data = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            if (*nfds < max_fds) {
                fds[(*nfds)++] = data[i];
            } else {
                // More than the caller can hold: close the rest and report truncation.
                close(data[i]);
                *truncated = 1;
            }
        }
    }
    return n;
}

ssize_t CLinuxShims_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(SHIM_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds < 0 || nfds > SHIM_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

int CLinuxShims_memfd_create(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}

int CLinuxShims_accept_cloexec(int listener)
{
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

void CLinuxShims_set_thread_name(const char *name)
{
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = 0;
    pthread_setname_np(pthread_self(), buf);
}

uint16_t CLinuxShims_load_acquire_u16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
uint32_t CLinuxShims_load_acquire_u32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
uint64_t CLinuxShims_load_acquire_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
void CLinuxShims_store_release_u16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
void CLinuxShims_store_release_u32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
void CLinuxShims_store_release_u64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
void *CLinuxShims_duplicate_mapping(void *old, size_t length, void *new_address)
{
    return mremap(old, 0, length, MREMAP_MAYMOVE | MREMAP_FIXED, new_address);
}

void CLinuxShims_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
void CLinuxShims_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
void CLinuxShims_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void CLinuxShims_atomic_or_u8(void *p, uint8_t v) { __atomic_fetch_or((uint8_t *)p, v, __ATOMIC_RELAXED); }
uint64_t CLinuxShims_atomic_fetch_add_u64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
uint64_t CLinuxShims_atomic_compare_swap_u64(void *p, uint64_t expected, uint64_t desired)
{
    __atomic_compare_exchange_n((uint64_t *)p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
