// SPDX-License-Identifier: Apache-2.0
// SR-IOV through sysfs: which PCI function a PF's VF is (class/net/PF/device/virtfnN), which
// driver holds it, and the unbind/bind that makes a new GUID take effect. A VF held by vfio-pci
// (or pci-stub) is claimed for passthrough and is never rebound.

import LinuxSystem

public struct SRIOVSysfs: Sendable {
    /// Drivers that hold a VF for a guest; rebinding them would pull the device from under it.
    public static let passthroughDrivers: Set<String> = ["vfio-pci", "pci-stub"]

    public let root: String

    public init(root: String = "/sys") { self.root = root }

    /// The VF's PCI function, nil if the VF is not a PCI device (netdevsim VFs are not).
    public func vfFunction(pf: String, vf: UInt32) -> PCIAddress? {
        guard let target = readLink("\(root)/class/net/\(pf)/device/virtfn\(vf)") else { return nil }
        return PCIAddress(sysfsName: lastPathComponent(target))
    }

    /// The driver bound to `function`, nil if none.
    public func driver(of function: PCIAddress) -> String? {
        readLink("\(root)/bus/pci/devices/\(function)/driver").map(lastPathComponent)
    }

    /// Unbinds `function` from `driver` and binds it again, so the driver re-reads the VF's
    /// identity (how mlx5 and other IB drivers pick up a new node/port GUID).
    public func rebind(_ function: PCIAddress, driver: String) throws(HookError) {
        do throws(SystemError) {
            try writeSysfs("\(root)/bus/pci/drivers/\(driver)/unbind", function.description)
            try writeSysfs("\(root)/bus/pci/drivers/\(driver)/bind", function.description)
        } catch {
            throw .host("rebinding VF \(function) to \(driver): \(error)")
        }
    }
}
