// SPDX-License-Identifier: Apache-2.0
// MAC and GUID text forms, and the derivation from the domain UUID: deterministic, pinned
// (docs/libvirt.md documents it; a change would give every existing domain new GUIDs), never
// zero, locally administered, unicast.
import Testing

@testable import LibvirtHook

@Suite("identities")
struct IdentityTests {
    @Test("GUID text forms")
    func guidForms() {
        #expect(GUID("11:22:33:44:55:66:77:88")?.value == 0x1122_3344_5566_7788)
        #expect(GUID("0x0002c90300a1b2c3")?.value == 0x0002_c903_00a1_b2c3)
        #expect(GUID("0002C90300A1B2C3")?.value == 0x0002_c903_00a1_b2c3)
        #expect(GUID(0x0002_c903_00a1_b2c3).description == "00:02:c9:03:00:a1:b2:c3")
        #expect(GUID(0x10).hex == "0000000000000010")
        for bad in ["", "0x", "11:22:33", "11:22:33:44:55:66:77:88:99", "xyz", "0x11223344556677889"] {
            #expect(GUID(bad) == nil, "\(bad)")
        }
    }

    @Test("MAC text forms")
    func macForms() {
        #expect(MACAddress("52:54:00:AB:cd:0f")?.description == "52:54:00:ab:cd:0f")
        #expect(MACAddress("52-54-00-ab-cd-0f")?.bytes == [0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:11", "5:54:00:ab:cd:0f", "zz:54:00:ab:cd:0f"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast && MACAddress("00:00:00:00:00:00")!.isZero)
    }

    static let uuid = "3e9a0d2c-5b71-4c88-a0f4-1d2e3f405162"

    @Test("derivation is pinned: these values are in docs/libvirt.md")
    func pinned() {
        #expect(IdentityDerivation.guid(uuid: Self.uuid, role: .deviceNodeGUID, index: 0).description == "b2:63:e7:0c:a6:92:e3:d0")
        #expect(IdentityDerivation.mac(uuid: Self.uuid, role: .hostdevMAC, index: 0).description == "b2:02:1b:e2:5a:cb")
        // Case does not matter: libvirt may print the UUID either way.
        #expect(IdentityDerivation.guid(uuid: Self.uuid.uppercased(), role: .deviceNodeGUID, index: 0)
            == IdentityDerivation.guid(uuid: Self.uuid, role: .deviceNodeGUID, index: 0))
    }

    @Test("derived values are locally administered, unicast, non-zero and distinct across roles, indices and domains")
    func properties() {
        var seen = Set<UInt64>()
        var macs = Set<MACAddress>()
        let roles: [IdentityDerivation.Role] = [.deviceNodeGUID, .devicePortGUID, .hostdevNodeGUID, .hostdevPortGUID]
        for n in 0..<200 {
            let uuid = "00000000-0000-4000-8000-\(String(repeating: "0", count: 12 - String(n).count))\(n)"
            for index in 0..<4 {
                for role in roles {
                    let g = IdentityDerivation.guid(uuid: uuid, role: role, index: index)
                    #expect(g.value != 0 && g.value >> 56 & 0x03 == 0x02)
                    seen.insert(g.value)
                }
                let m = IdentityDerivation.mac(uuid: uuid, role: .hostdevMAC, index: index)
                #expect(!m.isZero && !m.isMulticast && m.bytes[0] & 0x02 == 0x02)
                macs.insert(m)
            }
        }
        #expect(seen.count == 200 * 4 * roles.count)
        #expect(macs.count == 200 * 4)
    }
}
