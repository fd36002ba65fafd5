// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The paired NIC. RoCE GIDs come from a netdev's addresses, so port 1 is associated with the
 * guest's virtio-net interface whose MAC the device names in its config space. With a zero MAC,
 * the only non-loopback Ethernet netdev is used if there is exactly one. ib_core's roce_gid_mgmt
 * then fills the GID table (add_gid/del_gid forward it to the device).
 *
 * A notifier follows NICs that appear, change address or go away after probe. Binding a NIC
 * after registration needs a GID rescan, which takes the RTNL, so it runs from a work item;
 * dropping the reference of a NIC being unregistered happens at once in the notifier, so the
 * unregistration never waits for us.
 */
#include <linux/etherdevice.h>
#include <linux/if_arp.h>
#include <linux/rtnetlink.h>

#include "vrdma.h"

static bool vrdma_netdev_candidate(const struct net_device *ndev)
{
	return ndev->type == ARPHRD_ETHER && !(ndev->flags & IFF_LOOPBACK) &&
	       ndev->reg_state == NETREG_REGISTERED;
}

/* The netdev port 1 belongs to, or NULL. RTNL held. */
static struct net_device *vrdma_find_netdev(struct vrdma_dev *dev)
{
	struct net_device *ndev, *found = NULL;
	unsigned int count = 0;

	ASSERT_RTNL();
	for_each_netdev(&init_net, ndev) {
		if (!vrdma_netdev_candidate(ndev))
			continue;
		if (!is_zero_ether_addr(dev->cfg.mac)) {
			if (ether_addr_equal(ndev->dev_addr, dev->cfg.mac))
				return ndev;
			continue;
		}
		found = ndev;
		count++;
	}
	return count == 1 ? found : NULL;
}

/* Associates port 1 with the right netdev. RTNL held. True if a new one was bound. */
static bool vrdma_netdev_update(struct vrdma_dev *dev)
{
	struct net_device *ndev = vrdma_find_netdev(dev);

	if (ndev == dev->netdev)
		return false;
	if (ib_device_set_netdev(&dev->ib, ndev, 1))
		return false;
	dev->netdev = ndev;
	if (ndev)
		dev_info(&dev->vdev->dev, "port 1 paired with %s\n", netdev_name(ndev));
	else
		dev_info(&dev->vdev->dev, "port 1 has no netdev\n");
	return !!ndev;
}

static void vrdma_netdev_work(struct work_struct *work)
{
	struct vrdma_dev *dev = container_of(work, struct vrdma_dev, netdev_work);
	bool bound;

	rtnl_lock();
	bound = vrdma_netdev_update(dev);
	rtnl_unlock();
	/* ib_core saw the NIC before it was ours: add its GIDs now. */
	if (bound && test_bit(VRDMA_F_REGISTERED, &dev->flags))
		rdma_roce_rescan_device(&dev->ib);
}

static int vrdma_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct vrdma_dev *dev = container_of(nb, struct vrdma_dev, netdev_nb);
	struct net_device *ndev = netdev_notifier_info_to_dev(ptr);

	/* Unregistering the notifier replays NETDEV_UNREGISTER for every netdev: ignore them. */
	if (!READ_ONCE(dev->netdev_follow))
		return NOTIFY_DONE;
	switch (event) {
	case NETDEV_UNREGISTER:
		if (ndev == dev->netdev) {
			ib_device_set_netdev(&dev->ib, NULL, 1);
			dev->netdev = NULL;
			dev_info(&dev->vdev->dev, "%s went away\n", netdev_name(ndev));
		}
		fallthrough;
	case NETDEV_REGISTER:
	case NETDEV_CHANGEADDR:
		if (ndev->type == ARPHRD_ETHER)
			schedule_work(&dev->netdev_work);
		break;
	default:
		break;
	}
	return NOTIFY_DONE;
}

/* Probe, before ib_register_device: bind the NIC that is already there. */
int vrdma_netdev_init(struct vrdma_dev *dev)
{
	INIT_WORK(&dev->netdev_work, vrdma_netdev_work);
	rtnl_lock();
	vrdma_netdev_update(dev);
	rtnl_unlock();
	return 0;
}

/* After ib_register_device: follow NICs from now on. */
void vrdma_netdev_start(struct vrdma_dev *dev)
{
	dev->netdev_nb.notifier_call = vrdma_netdev_event;
	WRITE_ONCE(dev->netdev_follow, true);
	if (register_netdevice_notifier(&dev->netdev_nb)) {
		dev_warn(&dev->vdev->dev, "no netdev notifier: NIC changes are not followed\n");
		dev->netdev_nb.notifier_call = NULL;
	}
}

void vrdma_netdev_cleanup(struct vrdma_dev *dev)
{
	WRITE_ONCE(dev->netdev_follow, false);
	if (dev->netdev_nb.notifier_call)
		unregister_netdevice_notifier(&dev->netdev_nb);
	dev->netdev_nb.notifier_call = NULL;
	cancel_work_sync(&dev->netdev_work);
}
