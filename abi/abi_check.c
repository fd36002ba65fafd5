/* SPDX-License-Identifier: Apache-2.0 */
/* Compiles the ABI header on its own (its _Static_asserts run here) and gives the Swift C
 * target CVRDMAABI a translation unit: the device uses the header's structs directly. */
#include "virtio_rdma.h"
