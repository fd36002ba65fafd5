// SPDX-License-Identifier: Apache-2.0
// A small namespace-aware XML reader for libvirt domain XML: elements, attributes, text, with the
// byte range of every attribute value kept so the migrate/restore filter can change one value and
// leave every other byte of libvirt's document as it was. Not a validating parser: no DTDs, no
// entities beyond the five predefined ones and character references.

/// Where a parse failed, for a one-line message ("line 12, column 5: ...").
public struct XMLError: Error, Equatable, CustomStringConvertible, Sendable {
    public let line: Int
    public let column: Int
    public let reason: String

    public var description: String { "XML line \(line), column \(column): \(reason)" }
}

public enum XMLTree {
    public struct Attribute: Sendable {
        public let qualifiedName: String
        public let localName: String
        public let namespaceURI: String?
        public let value: String
        /// Byte offsets of the raw value between the quotes, in the parsed document.
        public let valueRange: Range<Int>
    }

    public final class Element: Sendable {
        public let qualifiedName: String
        public let localName: String
        public let namespaceURI: String?
        public let attributes: [Attribute]
        public let children: [Element]
        /// The element's own character data (not its descendants'), entities decoded.
        public let text: String
        public let line: Int

        init(qualifiedName: String, localName: String, namespaceURI: String?, attributes: [Attribute],
             children: [Element], text: String, line: Int) {
            self.qualifiedName = qualifiedName
            self.localName = localName
            self.namespaceURI = namespaceURI
            self.attributes = attributes
            self.children = children
            self.text = text
            self.line = line
        }

        public func attribute(_ name: String) -> Attribute? {
            attributes.first { $0.namespaceURI == nil && $0.localName == name }
        }

        public subscript(_ name: String) -> String? { attribute(name)?.value }

        /// Children with this local name in no namespace (libvirt's own elements).
        public func children(_ name: String) -> [Element] {
            children.filter { $0.localName == name && $0.namespaceURI == nil }
        }

        public func child(_ name: String) -> Element? { children(name).first }

        public func child(path: String...) -> Element? {
            var e: Element? = self
            for name in path { e = e?.child(name) }
            return e
        }
    }

    /// Nesting deeper than this is refused: domain XML is a handful of levels deep.
    static let maximumDepth = 64

    public static func parse(_ text: String) throws(XMLError) -> Element {
        var reader = Reader(Array(text.utf8))
        return try reader.document()
    }

    /// `document` with each range replaced by its text (ranges must not overlap).
    public static func applying(_ edits: [(range: Range<Int>, replacement: String)], to document: String) -> String {
        var bytes = Array(document.utf8)
        for edit in edits.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
            bytes.replaceSubrange(edit.range, with: Array(escapeAttribute(edit.replacement).utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func escapeAttribute(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}

/// The parser proper: one pass over UTF-8 bytes with an explicit element stack.
private struct Reader {
    let bytes: [UInt8]
    var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    fileprivate final class Open {
        let qualifiedName: String
        let line: Int
        let rawAttributes: [(name: String, value: String, range: Range<Int>)]
        let scope: [String: String]
        var children: [XMLTree.Element] = []
        var text = ""
        init(qualifiedName: String, line: Int, rawAttributes: [(name: String, value: String, range: Range<Int>)], scope: [String: String]) {
            self.qualifiedName = qualifiedName
            self.line = line
            self.rawAttributes = rawAttributes
            self.scope = scope
        }
    }

    func position(_ offset: Int) -> (Int, Int) {
        var line = 1, column = 1
        for b in bytes[..<min(offset, bytes.count)] {
            if b == 0x0A { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
        }
        return (line, column)
    }

    func fail(_ reason: String, at offset: Int? = nil) -> XMLError {
        let (line, column) = position(offset ?? at)
        return XMLError(line: line, column: column, reason: reason)
    }

    func peek(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return at + u.count <= bytes.count && Array(bytes[at..<at + u.count]) == u
    }

    mutating func skipSpace() {
        while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
    }

    /// Skips past `terminator`; returns the bytes before it.
    mutating func until(_ terminator: String, what: String) throws(XMLError) -> ArraySlice<UInt8> {
        let t = Array(terminator.utf8)
        let start = at
        while at + t.count <= bytes.count {
            if bytes[at] == t[0] && Array(bytes[at..<at + t.count]) == t {
                let body = bytes[start..<at]
                at += t.count
                return body
            }
            at += 1
        }
        throw fail("unterminated \(what)", at: start)
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: ":"),
             UInt8(ascii: "-"), UInt8(ascii: "."): true
        default: b >= 0x80
        }
    }

    mutating func name() throws(XMLError) -> String {
        let start = at
        while at < bytes.count, Self.isNameByte(bytes[at]) { at += 1 }
        guard at > start else { throw fail("expected a name") }
        let first = bytes[start]
        if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) || first == UInt8(ascii: "-") || first == UInt8(ascii: ".") {
            throw fail("a name cannot start with '\(Character(UnicodeScalar(first)))'", at: start)
        }
        return String(decoding: bytes[start..<at], as: UTF8.self)
    }

    /// Decodes entity and character references in `raw`.
    func decode(_ raw: ArraySlice<UInt8>, normalizeSpace: Bool) throws(XMLError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        while i < raw.endIndex {
            let b = raw[i]
            if b == UInt8(ascii: "&") {
                guard let semi = raw[i...].firstIndex(of: UInt8(ascii: ";")), semi - i <= 12 else {
                    throw fail("'&' must start an entity reference such as &amp;", at: i)
                }
                let ref = String(decoding: raw[(i + 1)..<semi], as: UTF8.self)
                switch ref {
                case "amp": out.append(UInt8(ascii: "&"))
                case "lt": out.append(UInt8(ascii: "<"))
                case "gt": out.append(UInt8(ascii: ">"))
                case "quot": out.append(UInt8(ascii: "\""))
                case "apos": out.append(UInt8(ascii: "'"))
                default:
                    var code: UInt32?
                    if ref.hasPrefix("#x") { code = UInt32(ref.dropFirst(2), radix: 16) } else if ref.hasPrefix("#") { code = UInt32(ref.dropFirst()) }
                    guard let code, code != 0, let scalar = UnicodeScalar(code) else {
                        throw fail("unknown entity '&\(ref);'", at: i)
                    }
                    out += Array(String(Character(scalar)).utf8)
                }
                i = semi + 1
            } else if b == UInt8(ascii: "<") {
                throw fail("'<' is not allowed in an attribute value", at: i)
            } else {
                out.append(normalizeSpace && (b == 0x09 || b == 0x0A || b == 0x0D) ? 0x20 : b)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Comments, processing instructions and white space between markup outside the root.
    mutating func misc(allowDoctype: Bool) throws(XMLError) {
        while true {
            skipSpace()
            if peek("<?") {
                at += 2
                _ = try until("?>", what: "processing instruction")
            } else if peek("<!--") {
                at += 4
                _ = try until("-->", what: "comment")
            } else if allowDoctype && peek("<!DOCTYPE") {
                let start = at
                let body = try until(">", what: "DOCTYPE")
                if body.contains(UInt8(ascii: "[")) { throw fail("DOCTYPE with an internal subset is not supported", at: start) }
            } else {
                return
            }
        }
    }

    mutating func document() throws(XMLError) -> XMLTree.Element {
        if peek("\u{FEFF}") { at += 3 }
        try misc(allowDoctype: true)
        guard at < bytes.count, bytes[at] == UInt8(ascii: "<") else {
            throw fail(at >= bytes.count ? "no root element (empty input)" : "expected '<' of the root element")
        }
        let root = try element()
        try misc(allowDoctype: false)
        guard at == bytes.count else { throw fail("content after the root element") }
        return root
    }

    mutating func startTag(scope: [String: String]) throws(XMLError) -> (Open, selfClosing: Bool) {
        let (line, _) = position(at)
        at += 1  // '<'
        let qname = try name()
        var raw: [(name: String, value: String, range: Range<Int>)] = []
        var newScope = scope
        while true {
            let hadSpace = at < bytes.count && [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at])
            skipSpace()
            guard at < bytes.count else { throw fail("unterminated start tag <\(qname)>") }
            if bytes[at] == UInt8(ascii: ">") { at += 1; break }
            if peek("/>") { at += 2; return (Open(qualifiedName: qname, line: line, rawAttributes: raw, scope: newScope), true) }
            guard hadSpace else { throw fail("expected white space before an attribute") }
            let attrStart = at
            let attr = try name()
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: "=") else { throw fail("attribute '\(attr)' has no value") }
            at += 1
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") || bytes[at] == UInt8(ascii: "'") else {
                throw fail("the value of '\(attr)' must be quoted")
            }
            let quote = bytes[at]
            at += 1
            let valueStart = at
            while at < bytes.count, bytes[at] != quote { at += 1 }
            guard at < bytes.count else { throw fail("unterminated value of '\(attr)'", at: valueStart) }
            let value = try decode(bytes[valueStart..<at], normalizeSpace: true)
            let range = valueStart..<at
            at += 1
            if raw.contains(where: { $0.name == attr }) { throw fail("attribute '\(attr)' appears twice", at: attrStart) }
            if attr == "xmlns" {
                newScope[""] = value
            } else if attr.hasPrefix("xmlns:") {
                guard !value.isEmpty else { throw fail("namespace prefix '\(attr.dropFirst(6))' bound to an empty URI", at: attrStart) }
                newScope[String(attr.dropFirst(6))] = value
            }
            raw.append((attr, value, range))
        }
        return (Open(qualifiedName: qname, line: line, rawAttributes: raw, scope: newScope), false)
    }

    func split(_ qname: String) -> (prefix: String?, local: String) {
        guard let colon = qname.firstIndex(of: ":") else { return (nil, qname) }
        return (String(qname[..<colon]), String(qname[qname.index(after: colon)...]))
    }

    func close(_ open: Open, at offset: Int) throws(XMLError) -> XMLTree.Element {
        let (prefix, local) = split(open.qualifiedName)
        let uri: String?
        if let prefix {
            guard let bound = open.scope[prefix] else { throw fail("namespace prefix '\(prefix)' is not declared", at: offset) }
            uri = bound
        } else {
            uri = open.scope[""].flatMap { $0.isEmpty ? nil : $0 }
        }
        var attributes: [XMLTree.Attribute] = []
        for a in open.rawAttributes {
            let (ap, al) = split(a.name)
            var aURI: String?
            if let ap, ap != "xmlns" {
                guard let bound = open.scope[ap] else { throw fail("namespace prefix '\(ap)' is not declared", at: a.range.lowerBound) }
                aURI = ap == "xml" ? "http://www.w3.org/XML/1998/namespace" : bound
            } else if ap == "xmlns" || a.name == "xmlns" {
                aURI = "http://www.w3.org/2000/xmlns/"
            }
            attributes.append(XMLTree.Attribute(qualifiedName: a.name, localName: al, namespaceURI: aURI, value: a.value, valueRange: a.range))
        }
        return XMLTree.Element(qualifiedName: open.qualifiedName, localName: local, namespaceURI: uri, attributes: attributes,
                               children: open.children, text: open.text, line: open.line)
    }

    mutating func element() throws(XMLError) -> XMLTree.Element {
        var stack: [Open] = []
        var scope: [String: String] = ["xml": "http://www.w3.org/XML/1998/namespace"]
        let rootStart = at
        let (root, selfClosing) = try startTag(scope: scope)
        if selfClosing { return try close(root, at: rootStart) }
        stack.append(root)
        scope = root.scope
        while let top = stack.last {
            guard at < bytes.count else { throw fail("element <\(top.qualifiedName)> (line \(top.line)) is not closed") }
            if bytes[at] != UInt8(ascii: "<") {
                let start = at
                while at < bytes.count, bytes[at] != UInt8(ascii: "<") { at += 1 }
                let text = try decode(bytes[start..<at], normalizeSpace: false)
                if text.contains("]]>") { throw fail("']]>' is not allowed in text", at: start) }
                top.text += text
            } else if peek("<!--") {
                at += 4
                _ = try until("-->", what: "comment")
            } else if peek("<![CDATA[") {
                at += 9
                top.text += String(decoding: try until("]]>", what: "CDATA section"), as: UTF8.self)
            } else if peek("<?") {
                at += 2
                _ = try until("?>", what: "processing instruction")
            } else if peek("</") {
                let tagStart = at
                at += 2
                let qname = try name()
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ">") else { throw fail("expected '>' to end </\(qname)") }
                at += 1
                guard qname == top.qualifiedName else {
                    throw fail("</\(qname)> closes <\(top.qualifiedName)> opened on line \(top.line)", at: tagStart)
                }
                stack.removeLast()
                let done = try close(top, at: tagStart)
                if let parent = stack.last {
                    parent.children.append(done)
                    scope = parent.scope
                } else {
                    return done
                }
            } else if peek("<!") {
                throw fail("unexpected markup '<!'")
            } else {
                let tagStart = at
                let (child, selfClosing) = try startTag(scope: scope)
                if selfClosing {
                    top.children.append(try close(child, at: tagStart))
                } else {
                    guard stack.count < XMLTree.maximumDepth else { throw fail("elements nested deeper than \(XMLTree.maximumDepth)", at: tagStart) }
                    stack.append(child)
                    scope = child.scope
                }
            }
        }
        throw fail("no root element")
    }
}
