// SPDX-License-Identifier: Apache-2.0
// make bench: placeholder until the benchmark driver lands.
print("vrdma-bench")
