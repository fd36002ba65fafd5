/*
 * virtio-probe: read a virtio-pci function's common and device configuration without a driver.
 *
 *   virtio-probe BDF [BYTES]        e.g. virtio-probe 0000:00:03.0 128
 *
 * Walks the PCI capability list in /sys/bus/pci/devices/BDF/config, finds the virtio-pci vendor
 * capabilities COMMON_CFG (cfg_type 1) and DEVICE_CFG (cfg_type 4), maps the BAR they point into
 * through /sys/bus/pci/devices/BDF/resourceN and prints, one "key=value" per line:
 *
 *   common_cfg=bar:B,offset:0xO,length:0xL
 *   device_cfg=bar:B,offset:0xO,length:0xL
 *   num_queues=N                      (common config offset 0x12, le16)
 *   device_cfg_bytes=HH HH ...        (the first BYTES bytes of the device config, default 128)
 *
 * Only reads: nothing is written to the device, so it is harmless with or without a driver.
 * The function's memory decoding must be on (virtio_pci enables it when it binds).
 * Built on the host with `gcc -static -O2` and dropped into the test guest's initramfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PCI_STATUS		0x06	/* le16; bit 4: capability list present */
#define PCI_STATUS_CAP_LIST	0x10
#define PCI_CAPABILITY_LIST	0x34	/* u8: offset of the first capability */
#define PCI_CAP_ID_VNDR		0x09	/* virtio-pci capabilities are vendor-specific ones */

/* struct virtio_pci_cap (virtio 1.x, 4.1.4): where one configuration structure lives. */
#define VCAP_CFG_TYPE		3	/* u8 */
#define VCAP_BAR		4	/* u8 */
#define VCAP_OFFSET		8	/* le32 */
#define VCAP_LENGTH		12	/* le32 */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VCAP_NOTIFY_MULTIPLIER	16	/* le32, notify capability only */

#define COMMON_NUM_QUEUES	0x12	/* le16 in struct virtio_pci_common_cfg */

struct region { int found, bar; uint32_t offset, length; };

static void die(const char *what) { fprintf(stderr, "virtio-probe: %s: %s\n", what, strerror(errno)); exit(1); }

static uint32_t le(const uint8_t *p, int n)
{
	uint32_t v = 0;
	while (n--) v = v << 8 | p[n];
	return v;
}

/* Map the part of BAR `r->bar` that holds the structure; returns a pointer to its first byte. */
static volatile uint8_t *map_region(const char *bdf, const struct region *r, void **base, size_t *len)
{
	char path[128];
	long page = sysconf(_SC_PAGESIZE);
	off_t start = r->offset & ~(off_t)(page - 1);	/* mmap offsets must be page aligned */
	snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource%d", bdf, r->bar);
	int fd = open(path, O_RDONLY);
	if (fd < 0) die(path);
	*len = (r->offset - start) + r->length;
	*base = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, start);
	if (*base == MAP_FAILED) die("mmap BAR");
	close(fd);
	return (volatile uint8_t *)*base + (r->offset - start);
}

int main(int argc, char **argv)
{
	if (argc < 2) { fprintf(stderr, "usage: virtio-probe BDF [BYTES]\n"); return 2; }
	const char *bdf = argv[1];
	unsigned want = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 128;

	/* Config space: 256 bytes are enough for the standard capability list. */
	uint8_t cfg[256];
	char path[128];
	snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", bdf);
	int fd = open(path, O_RDONLY);
	if (fd < 0) die(path);
	if (pread(fd, cfg, sizeof cfg, 0) != (ssize_t)sizeof cfg) die("read config (need root for > 64 bytes)");
	close(fd);
	if (!(le(cfg + PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) { fprintf(stderr, "virtio-probe: no capability list\n"); return 1; }

	struct region common = {0}, device = {0};
	long notify_multiplier = -1;
	int hops = 0;
	/* Each capability: [0] id, [1] next; the low two bits of pointers are reserved. */
	for (unsigned p = cfg[PCI_CAPABILITY_LIST] & ~3u; p && p + 16 <= sizeof cfg && hops < 48;
	     p = cfg[p + 1] & ~3u, hops++) {
		if (cfg[p] != PCI_CAP_ID_VNDR) continue;
		if (cfg[p + VCAP_CFG_TYPE] == VIRTIO_PCI_CAP_NOTIFY_CFG && notify_multiplier < 0 &&
		    p + 20 <= sizeof cfg)
			notify_multiplier = le(cfg + p + VCAP_NOTIFY_MULTIPLIER, 4);
		struct region *r = cfg[p + VCAP_CFG_TYPE] == VIRTIO_PCI_CAP_COMMON_CFG ? &common :
				   cfg[p + VCAP_CFG_TYPE] == VIRTIO_PCI_CAP_DEVICE_CFG ? &device : NULL;
		if (!r || r->found) continue;	/* the spec says: use the first of each type */
		r->found = 1;
		r->bar = cfg[p + VCAP_BAR];
		r->offset = le(cfg + p + VCAP_OFFSET, 4);
		r->length = le(cfg + p + VCAP_LENGTH, 4);
	}
	if (!common.found || !device.found) { fprintf(stderr, "virtio-probe: missing COMMON_CFG or DEVICE_CFG capability\n"); return 1; }
	printf("common_cfg=bar:%d,offset:0x%x,length:0x%x\n", common.bar, common.offset, common.length);
	printf("device_cfg=bar:%d,offset:0x%x,length:0x%x\n", device.bar, device.offset, device.length);
	printf("notify_off_multiplier=%ld\n", notify_multiplier);

	void *base; size_t len;
	volatile uint8_t *cc = map_region(bdf, &common, &base, &len);
	/* One 16-bit MMIO read, as the field is defined; the device model handles 1/2/4-byte reads. */
	uint16_t nq = *(volatile uint16_t *)(cc + COMMON_NUM_QUEUES);
	printf("num_queues=%u\n", (unsigned)nq);	/* x86: little-endian already */
	munmap(base, len);

	if (want > device.length) want = device.length;
	volatile uint8_t *dc = map_region(bdf, &device, &base, &len);
	printf("device_cfg_bytes=");
	for (unsigned i = 0; i < want; i++)	/* byte reads: no assumptions about field widths */
		printf("%02x%s", dc[i], i + 1 < want ? " " : "\n");
	munmap(base, len);
	return 0;
}
