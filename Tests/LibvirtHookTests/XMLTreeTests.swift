// SPDX-License-Identifier: Apache-2.0
// The XML reader: namespaces, entities, value ranges and in-place edits, and the errors it gives
// for malformed input (line and column, one line).
import Testing

@testable import LibvirtHook

@Suite("XML reader")
struct XMLTreeTests {
    @Test("namespaces resolve through prefixes and defaults; attributes keep their raw ranges")
    func namespaces() throws {
        let text = """
            <?xml version="1.0"?>
            <!-- a comment -->
            <domain xmlns:q='urn:q'><metadata><x:a xmlns:x="urn:x" k="v&amp;w"><x:b/></x:a></metadata>
            <q:commandline><q:arg value='-chardev'/></q:commandline><plain xmlns="urn:d"><inner/></plain></domain>
            """
        let root = try XMLTree.parse(text)
        #expect(root.localName == "domain" && root.namespaceURI == nil)
        let a = try #require(root.child("metadata")?.children.first)
        #expect(a.qualifiedName == "x:a" && a.localName == "a" && a.namespaceURI == "urn:x")
        #expect(a["k"] == "v&w")
        let range = try #require(a.attribute("k")?.valueRange)
        #expect(String(decoding: Array(text.utf8)[range], as: UTF8.self) == "v&amp;w")
        #expect(a.children.first?.namespaceURI == "urn:x")
        let arg = root.children.first { $0.localName == "commandline" }?.children.first
        #expect(arg?.namespaceURI == "urn:q" && arg?["value"] == "-chardev")
        let plain = root.children.first { $0.localName == "plain" }
        #expect(plain?.namespaceURI == "urn:d" && plain?.children.first?.namespaceURI == "urn:d")
    }

    @Test("text, CDATA, character references")
    func text() throws {
        let root = try XMLTree.parse("<a>x &lt;&#65;&#x42;<![CDATA[<raw>]]> y</a>")
        #expect(root.text == "x <AB<raw> y")
    }

    @Test("edits replace exactly the value bytes and escape the new value")
    func edits() throws {
        let text = "<a><b x='0x03' y=\"1\"/>\n<c x='0x03'/></a>"
        let root = try XMLTree.parse(text)
        let r = try #require(root.children.first?.attribute("x")?.valueRange)
        let out = XMLTree.applying([(r, "0x81&")], to: text)
        #expect(out == "<a><b x='0x81&amp;' y=\"1\"/>\n<c x='0x03'/></a>")
    }

    @Test("malformed documents are refused with their position", arguments: [
        ("", "no root element"),
        ("<a>", "is not closed"),
        ("<a></b>", "</b> closes <a>"),
        ("<a x='1' x='2'/>", "appears twice"),
        ("<p:a/>", "prefix 'p' is not declared"),
        ("<a x=1/>", "must be quoted"),
        ("<a>&nbsp;</a>", "unknown entity"),
        ("<!DOCTYPE a [<!ENTITY e 'x'>]><a/>", "internal subset"),
        ("<a/><b/>", "content after the root element"),
        ("<a x='<'/>", "'<' is not allowed"),
        ("<1a/>", "cannot start with"),
    ])
    func malformed(input: String, reason: String) {
        #expect {
            _ = try XMLTree.parse(input)
        } throws: { error in
            guard let e = error as? XMLError else { return false }
            return e.reason.contains(reason) && e.line >= 1 && !e.description.contains("\n")
        }
    }

    @Test("line and column point at the fault")
    func position() {
        do {
            _ = try XMLTree.parse("<a>\n  <b>\n  </c>\n</a>")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3 && error.column == 3, "\(error)")
        }
    }

    @Test("nesting is bounded")
    func depth() {
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        #expect(throws: XMLError.self) { try XMLTree.parse(deep) }
    }
}
