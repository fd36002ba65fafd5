// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The control virtqueue: one command is one descriptor chain, readable cmd_hdr + request, then
 * writable resp_hdr + response (abi/virtio_rdma.h, spec section 9).
 *
 * A command's buffer belongs to the virtqueue from the moment it is added until the device
 * returns it (or the device is reset), so each command is reference counted: one reference for
 * the caller, one for the virtqueue. A caller that gives up (timeout, dead device) drops only its
 * own; the buffer is freed when the queue gives it back. Nothing waits forever: a command the
 * device does not answer within vrdma_cmd_timeout_ms marks the device dead.
 */
#include <linux/ktime.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/delay.h>

#include "vrdma.h"

/* Busy-polled commands (atomic context) give up sooner: the CPU spins meanwhile. */
#define VRDMA_ATOMIC_TIMEOUT_MS	5000

struct vrdma_cmd {
	struct kref ref;
	struct list_head node;		/* dev->ctrl_inflight while the device holds it */
	struct completion done;
	bool finished;			/* returned by the device, or aborted (ctrl_lock) */
	bool aborted;			/* the device was declared dead first */
	u32 used_len;
	size_t out_len;
	size_t in_len;
	u8 *in;				/* resp_hdr + response, inside buf */
	u8 buf[];			/* cmd_hdr + request, then resp_hdr + response */
};

static void vrdma_cmd_release(struct kref *ref)
{
	kfree(container_of(ref, struct vrdma_cmd, ref));
}

static void vrdma_cmd_put(struct vrdma_cmd *cmd)
{
	kref_put(&cmd->ref, vrdma_cmd_release);
}

/* Takes every returned command off the control queue. ctrl_lock held. */
static void vrdma_ctrl_reap(struct vrdma_dev *dev)
{
	struct virtqueue *vq = dev->vqs[VIRTIO_RDMA_VQ_CONTROL];
	struct vrdma_cmd *cmd;
	unsigned int len;
	bool any = false;

	while ((cmd = virtqueue_get_buf(vq, &len))) {
		cmd->used_len = len;
		if (!cmd->finished) {
			cmd->finished = true;
			list_del(&cmd->node);
			complete(&cmd->done);
		}
		vrdma_cmd_put(cmd);	/* the queue's reference */
		any = true;
	}
	if (any)
		wake_up(&dev->ctrl_wait);
}

void vrdma_ctrl_done(struct virtqueue *vq)
{
	struct vrdma_dev *dev = vq->vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&dev->ctrl_lock, flags);
	vrdma_ctrl_reap(dev);
	spin_unlock_irqrestore(&dev->ctrl_lock, flags);
}

/*
 * The device is dead: wake every caller with an error. The buffers stay with the virtqueue (the
 * device could still write them) until vrdma_ctrl_cleanup after the reset.
 */
void vrdma_ctrl_abort_all(struct vrdma_dev *dev)
{
	struct vrdma_cmd *cmd, *tmp;
	unsigned long flags;

	spin_lock_irqsave(&dev->ctrl_lock, flags);
	list_for_each_entry_safe(cmd, tmp, &dev->ctrl_inflight, node) {
		cmd->finished = true;
		cmd->aborted = true;
		list_del(&cmd->node);
		complete(&cmd->done);
	}
	spin_unlock_irqrestore(&dev->ctrl_lock, flags);
	wake_up_all(&dev->ctrl_wait);
}

/* After the device reset: the buffers it never returned are ours again. */
void vrdma_ctrl_cleanup(struct vrdma_dev *dev)
{
	struct virtqueue *vq = dev->vqs[VIRTIO_RDMA_VQ_CONTROL];
	struct vrdma_cmd *cmd;

	vrdma_ctrl_abort_all(dev);
	while ((cmd = virtqueue_detach_unused_buf(vq)))
		vrdma_cmd_put(cmd);
}

static int vrdma_status_errno(u32 status)
{
	switch (status) {
	case VIRTIO_RDMA_S_OK:
		return 0;
	case VIRTIO_RDMA_S_UNSUPPORTED:
		return -EOPNOTSUPP;
	case VIRTIO_RDMA_S_INVALID:
	case VIRTIO_RDMA_S_BAD_STATE:
		return -EINVAL;
	case VIRTIO_RDMA_S_NO_RESOURCES:
		return -ENOMEM;
	case VIRTIO_RDMA_S_BAD_HANDLE:
		return -ENOENT;
	case VIRTIO_RDMA_S_BUSY:
		return -EBUSY;
	case VIRTIO_RDMA_S_ACCESS:
		return -EACCES;
	case VIRTIO_RDMA_S_FAULT:
		return -EFAULT;
	case VIRTIO_RDMA_S_PROVIDER:
	default:
		return -EIO;
	}
}

/* Adds the command to the control queue and kicks. 0, -EIO (dead) or -ENOSPC (full). */
static int vrdma_ctrl_add(struct vrdma_dev *dev, struct vrdma_cmd *cmd)
{
	struct virtqueue *vq = dev->vqs[VIRTIO_RDMA_VQ_CONTROL];
	struct scatterlist out, in, *sgs[2] = { &out, &in };
	unsigned long flags;
	int ret;

	sg_init_one(&out, cmd->buf, cmd->out_len);
	sg_init_one(&in, cmd->in, cmd->in_len);
	spin_lock_irqsave(&dev->ctrl_lock, flags);
	if (vrdma_dead(dev)) {
		ret = -EIO;
		goto out;
	}
	vrdma_ctrl_reap(dev);
	ret = virtqueue_add_sgs(vq, sgs, 1, 1, cmd, GFP_ATOMIC);
	if (ret) {
		ret = ret == -ENOSPC || ret == -ENOMEM ? -ENOSPC : -EIO;
		goto out;
	}
	kref_get(&cmd->ref);		/* the queue's reference */
	list_add_tail(&cmd->node, &dev->ctrl_inflight);
	if (!virtqueue_kick(vq))
		ret = -EIO;		/* broken queue: the command never reaches the device */
out:
	spin_unlock_irqrestore(&dev->ctrl_lock, flags);
	return ret;
}

static bool vq_has_room(struct vrdma_dev *dev)
{
	return READ_ONCE(dev->vqs[VIRTIO_RDMA_VQ_CONTROL]->num_free) >= 2;
}

static bool vrdma_cmd_finished(struct vrdma_dev *dev, struct vrdma_cmd *cmd)
{
	unsigned long flags;
	bool done;

	spin_lock_irqsave(&dev->ctrl_lock, flags);
	done = cmd->finished;
	spin_unlock_irqrestore(&dev->ctrl_lock, flags);
	return done;
}

/* Atomic context: poll the used ring until the command is back or the deadline passes. */
static bool vrdma_cmd_poll(struct vrdma_dev *dev, struct vrdma_cmd *cmd, ktime_t deadline)
{
	unsigned long flags;
	bool done;

	for (;;) {
		spin_lock_irqsave(&dev->ctrl_lock, flags);
		vrdma_ctrl_reap(dev);
		done = cmd->finished;
		spin_unlock_irqrestore(&dev->ctrl_lock, flags);
		if (done)
			return true;
		if (ktime_after(ktime_get(), deadline))
			return false;
		udelay(5);
	}
}

/* Queues the command, waiting for room if the queue is full. */
static int vrdma_cmd_submit(struct vrdma_dev *dev, struct vrdma_cmd *cmd, bool can_sleep,
			    ktime_t deadline)
{
	unsigned long flags;
	int ret;

	for (;;) {
		ret = vrdma_ctrl_add(dev, cmd);
		if (ret != -ENOSPC)
			return ret;
		if (ktime_after(ktime_get(), deadline))
			return -ETIMEDOUT;
		if (can_sleep) {
			wait_event_timeout(dev->ctrl_wait, vrdma_dead(dev) ||
					   vq_has_room(dev), msecs_to_jiffies(100));
		} else {
			spin_lock_irqsave(&dev->ctrl_lock, flags);
			vrdma_ctrl_reap(dev);
			spin_unlock_irqrestore(&dev->ctrl_lock, flags);
			udelay(5);
		}
	}
}

/**
 * vrdma_exec - run one control command
 * @dev: the device
 * @opcode: VIRTIO_RDMA_CMD_*
 * @req: the request (may be NULL if @req_len is 0)
 * @req_len: its size
 * @rsp: where the response goes on success (may be NULL if @rsp_len is 0)
 * @rsp_len: the response size the opcode has
 * @can_sleep: wait on a completion (true) or busy-poll (false, atomic context)
 *
 * Return: 0, the errno of the device's status, -EIO if the device is dead, gave a malformed
 * answer or did not answer in time (which makes it dead), -ENOMEM.
 */
int vrdma_exec(struct vrdma_dev *dev, u32 opcode, const void *req, size_t req_len,
	       void *rsp, size_t rsp_len, bool can_sleep)
{
	size_t out_len = sizeof(struct virtio_rdma_cmd_hdr) + req_len;
	size_t in_len = sizeof(struct virtio_rdma_resp_hdr) + rsp_len;
	unsigned int timeout_ms = vrdma_cmd_timeout_ms;
	struct virtio_rdma_cmd_hdr *hdr;
	struct virtio_rdma_resp_hdr *rhdr;
	struct vrdma_cmd *cmd;
	ktime_t deadline;
	bool done;
	int ret;

	if (vrdma_dead(dev))
		return -EIO;
	if (!can_sleep && timeout_ms > VRDMA_ATOMIC_TIMEOUT_MS)
		timeout_ms = VRDMA_ATOMIC_TIMEOUT_MS;
	deadline = ktime_add_ms(ktime_get(), timeout_ms);

	cmd = kzalloc(struct_size(cmd, buf, out_len + in_len), can_sleep ? GFP_KERNEL : GFP_ATOMIC);
	if (!cmd)
		return -ENOMEM;
	kref_init(&cmd->ref);
	init_completion(&cmd->done);
	INIT_LIST_HEAD(&cmd->node);
	cmd->out_len = out_len;
	cmd->in_len = in_len;
	cmd->in = cmd->buf + out_len;
	hdr = (struct virtio_rdma_cmd_hdr *)cmd->buf;
	hdr->opcode = cpu_to_le32(opcode);
	if (req_len)
		memcpy(cmd->buf + sizeof(*hdr), req, req_len);

	ret = vrdma_cmd_submit(dev, cmd, can_sleep, deadline);
	if (ret == -ETIMEDOUT) {
		vrdma_mark_dead(dev, "control queue stayed full");
		ret = -EIO;
	}
	if (ret)
		goto out;

	if (can_sleep) {
		s64 left = ktime_ms_delta(deadline, ktime_get());

		done = wait_for_completion_timeout(&cmd->done,
						   msecs_to_jiffies(max_t(s64, left, 1))) ||
		       vrdma_cmd_finished(dev, cmd);
	} else {
		done = vrdma_cmd_poll(dev, cmd, deadline);
	}
	if (!done) {
		dev_err(&dev->vdev->dev, "command %u got no answer in %u ms\n", opcode, timeout_ms);
		vrdma_mark_dead(dev, "control command timed out");
		ret = -EIO;
		goto out;
	}
	if (cmd->aborted) {
		ret = -EIO;
		goto out;
	}

	/* The device is not trusted: check the length it claims before reading anything. */
	rhdr = (struct virtio_rdma_resp_hdr *)cmd->in;
	if (cmd->used_len < sizeof(*rhdr) || cmd->used_len > in_len) {
		dev_warn_ratelimited(&dev->vdev->dev, "command %u: used length %u\n",
				     opcode, cmd->used_len);
		ret = -EIO;
		goto out;
	}
	ret = vrdma_status_errno(le32_to_cpu(rhdr->status));
	if (ret) {
		dev_dbg(&dev->vdev->dev, "command %u: status %u\n", opcode,
			le32_to_cpu(rhdr->status));
		goto out;
	}
	if (cmd->used_len < in_len) {
		dev_warn_ratelimited(&dev->vdev->dev, "command %u: short response (%u of %zu)\n",
				     opcode, cmd->used_len, in_len);
		ret = -EIO;
		goto out;
	}
	if (rsp_len)
		memcpy(rsp, cmd->in + sizeof(*rhdr), rsp_len);
out:
	vrdma_cmd_put(cmd);
	return ret;
}

/* Commands whose request is one handle: destroys, queries without a body. */
int vrdma_exec_handle(struct vrdma_dev *dev, u32 opcode, u32 handle, bool can_sleep)
{
	struct virtio_rdma_cmd_handle req = { .handle = cpu_to_le32(handle) };

	return vrdma_exec(dev, opcode, &req, sizeof(req), NULL, 0, can_sleep);
}
