// SPDX-License-Identifier: Apache-2.0
// SwiftPM needs one source file per C target; the target is header-only.
#include "CRouteNetlink.h"
