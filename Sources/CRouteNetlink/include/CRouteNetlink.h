// SPDX-License-Identifier: Apache-2.0
// The rtnetlink ABI for the libvirt hook: Linux's own UAPI headers (struct nlmsghdr, ifinfomsg,
// ifla_vf_mac, ifla_vf_guid, IFLA_*), which Glibc's Swift module does not include. Constants and
// layouts only; the messages are built in Swift (LibvirtHook/RouteNetlink.swift).
#ifndef VRDMA_CROUTENETLINK_H
#define VRDMA_CROUTENETLINK_H

#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>

#endif
