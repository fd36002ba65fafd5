// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a hostile front-end owns every byte of the socket. Input layout:
//   byte 0          descriptor count (mod 10: 0...9, one more than any message may carry)
//   bytes 1...12    the message header (zero-padded when the input is shorter)
//   the rest        the payload
// The bytes go twice through the code under test: straight into the syntax layer (header check,
// then decode), and as a raw stream through a real connection, so framing and descriptor passing
// are fuzzed too. Any crash, sanitizer report, broken invariant or leaked descriptor is a bug.
import CLinuxShims
import Glibc
import LinuxSystem
import VhostUser

/// Eventfds made once: each input gets fresh duplicates, so every descriptor is a real open file
/// and closing one never affects the next input.
private let descriptorPool: [OwnedFileDescriptor] = {
    do { return try (0..<9).map { _ in try EventFD().descriptor } } catch { fatalError("fuzz setup: \(error)") }
}()

/// Where decoded values are folded, so the optimiser cannot drop the reads that touch them.
nonisolated(unsafe) private var sink: UInt64 = 0

/// The connection path writes the whole input before reading it back; a socket buffer holds far
/// more than this, so the write never blocks and no timeout is needed.
private let maxStreamBytes = 64 * 1024

func messageDecoderFuzzTarget(_ data: UnsafeRawBufferPointer) -> Int32 {
    // Everything an input opens is released before it returns. Counted per input, not against
    // a start-up baseline: libFuzzer itself opens descriptors between inputs.
    _ = descriptorPool
    let before = openFileDescriptorCount()
    guard let first = data.first else { return 0 }
    let descriptorCount = Int(first % 10)
    let stream = Array(data.dropFirst().prefix(maxStreamBytes))
    var headerBytes = Array(stream.prefix(MessageHeader.size))
    headerBytes += Array(repeating: 0, count: MessageHeader.size - headerBytes.count)
    let payload = Array(stream.dropFirst(MessageHeader.size))

    do {
        // Direct path. The connection guarantees header.size == payload.count (it reads exactly
        // `size` bytes), and decode relies on it, so the direct path keeps that contract.
        var header = MessageHeader(decoding: headerBytes)
        let sizeField = header.size
        header.size = UInt32(payload.count)
        let fds = duplicates(descriptorCount)
        check(ReceivedMessage(header: header, payload: payload, descriptors: fds), validatedSize: sizeField)
    }
    streamThroughConnection(stream, descriptorCount: descriptorCount)

    precondition(openFileDescriptorCount() == before, "descriptor leak")
    return 0
}

private func duplicates(_ count: Int) -> [OwnedFileDescriptor] {
    descriptorPool.prefix(count).map { fd in
        do { return try fd.duplicate() } catch { fatalError("fuzz: \(error)") }
    }
}

/// Header check and decode of one message, then the invariants of whatever was accepted.
private func check(_ message: ReceivedMessage, validatedSize: UInt32) {
    var header = message.header
    header.size = validatedSize
    do { try header.validateAsRequest() } catch { sink &+= UInt64(error.description.utf8.count) }
    let attached = message.descriptors.count
    let decoded: FrontendMessage
    do {
        decoded = try FrontendMessage.decode(message)
    } catch {
        sink &+= UInt64(error.description.utf8.count)  // builds every error's text, specName included
        return
    }
    sink &+= touch(decoded, payloadSize: message.payload.count, attached: attached)
}

/// Reads every field of an accepted message and checks what the syntax layer promises.
private func touch(_ m: FrontendMessage, payloadSize: Int, attached: Int) -> UInt64 {
    func fd(_ d: OwnedFileDescriptor) -> UInt64 { precondition(d.rawValue >= 0); return UInt64(d.rawValue) }
    func region(_ r: MemoryRegionDescription) -> UInt64 { r.guestPhysicalAddress ^ r.size ^ r.userAddress ^ r.mmapOffset }
    func state(_ s: VringState) -> UInt64 { UInt64(s.index) << 32 | UInt64(s.num) }
    func vringFD(_ i: VringDescriptorIndex, _ d: OwnedFileDescriptor?) -> UInt64 {
        precondition(i.hasDescriptor == (d != nil) && i.index <= 0xff, "NOFD disagrees with the descriptor")
        precondition(VringDescriptorIndex.isValid(i.rawValue))
        return i.rawValue ^ (d.map(fd) ?? 0)
    }
    if let request = m.request { sink &+= UInt64(request.specName.utf8.count) }
    switch m {
    case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum, .resetDevice, .getMaxMemSlots, .getStatus:
        precondition(payloadSize == 0 && attached == 0)
        return 1
    case .setFeatures(let v), .setProtocolFeatures(let v), .setStatus(let v):
        precondition(payloadSize == 8 && attached == 0)
        return v
    case .setMemTable(let regions, let fds):
        precondition((1...MemoryTablePayload.maxRegions).contains(regions.count) && fds.count == regions.count)
        precondition(payloadSize == 8 + 32 * regions.count && attached == fds.count)
        return regions.reduce(0) { $0 ^ region($1) } ^ fds.reduce(0) { $0 ^ fd($1) }
    case .setLogBase(let l, let d): return l.mmapSize ^ l.mmapOffset ^ fd(d)
    case .setLogFD(let d), .setBackendReqFD(let d): return fd(d)
    case .setVringNum(let s), .setVringBase(let s), .getVringBase(let s), .setVringEnable(let s), .vringKick(let s):
        precondition(payloadSize == VringState.encodedSize && attached == 0)
        return state(s)
    case .setVringAddr(let a):
        return UInt64(a.index) ^ UInt64(a.flags) ^ a.descriptorUserAddress ^ a.usedUserAddress ^ a.availUserAddress ^ a.logGuestAddress
    case .setVringKick(let i, let d), .setVringCall(let i, let d), .setVringErr(let i, let d):
        return vringFD(i, d)
    case .getConfig(let c), .setConfig(let c):
        precondition(c.size <= UInt32(ConfigAccess.maxSize) && c.payload.count == Int(c.size))
        precondition(payloadSize == ConfigAccess.headerSize + c.payload.count && c.encoded.count == payloadSize)
        return UInt64(c.offset) ^ UInt64(c.flags) ^ c.payload.reduce(0) { $0 &+ UInt64($1) }
    case .getInflightFD(let i): return i.mmapSize ^ i.mmapOffset ^ UInt64(i.queueCount) ^ UInt64(i.queueSize)
    case .setInflightFD(let i, let d): return i.mmapSize ^ UInt64(i.queueSize) ^ fd(d)
    case .addMemReg(let r, let d): return region(r) ^ fd(d)
    case .remMemReg(let r):
        precondition(payloadSize == SingleRegionPayload.encodedSize && attached <= 1)
        return region(r)
    case .unsupported(let r): return UInt64(r.rawValue)
    case .unknown(let n):
        precondition(FrontendRequest(rawValue: n) == nil)
        return UInt64(n)
    }
}

/// Writes the raw bytes into one end of a socket pair (descriptors on the first byte, as QEMU
/// sends them), shuts that end, and reads messages from the other end until EOF or an error.
private func streamThroughConnection(_ bytes: [UInt8], descriptorCount: Int) {
    let sockets: (OwnedFileDescriptor, OwnedFileDescriptor)
    do { sockets = try UnixSocket.pair() } catch { fatalError("fuzz: \(error)") }
    let (writer, reader) = sockets
    if !bytes.isEmpty {
        // The owners must outlive sendmsg: an optimised build releases an array after its last
        // use, which would close the descriptors before the kernel copies them (EBADF).
        let fds = duplicates(descriptorCount)
        var sent = withExtendedLifetime(fds) {
            bytes.withUnsafeBytes { b in
                fds.map(\.rawValue).withUnsafeBufferPointer {
                    CLinuxShims_send_with_fds(writer.rawValue, b.baseAddress, b.count, $0.baseAddress, Int32($0.count))
                }
            }
        }
        precondition(sent > 0, "sendmsg into a fresh socket pair failed")
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(writer.rawValue, $0.baseAddress! + sent, $0.count - sent) }
            precondition(n > 0, "write into a fresh socket pair failed")
            sent += n
        }
    }
    UnixSocket.shutdown(writer)
    let connection = VhostUserConnection(socket: reader)
    while true {
        do {
            guard let message = try connection.receive() else { break }
            precondition(message.payload.count == Int(message.header.size), "framing lost the payload size")
            precondition(message.descriptors.count <= VhostUserConnection.maxDescriptors)
            check(message, validatedSize: message.header.size)
        } catch {
            sink &+= UInt64(error.description.utf8.count)
            break  // a protocol error ends the connection, as in the daemon
        }
    }
}
