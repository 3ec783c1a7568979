//! The `Content-Type` of a file whose name says nothing, from its first bytes: the WHATWG MIME
//! Sniffing standard's rules for an unknown type (the subset browsers act on: HTML, XML, PDF,
//! images, audio and video, fonts, archives, WebAssembly, then text or binary), plus SVG, which
//! the path gateway spec asks for by name. kubo's gateway sniffs the same way, so a browser
//! shows an image or a page fetched by bare CID instead of downloading it.

/// Bytes of a file's start that [`sniff`] looks at (the standard's resource header).
pub const SNIFF_BYTES: usize = 512;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const BINARY: &str = "application/octet-stream";

/// Tags that make a document HTML when one opens it (after leading whitespace), compared
/// without case and followed by a space or `>`.
const HTML_TAGS: &[&[u8]] = &[
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// Exact signatures at offset 0.
const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"ID3", "audio/mpeg"),
    (b"OggS\x00", "application/ogg"),
    (b"MThd\x00\x00\x00\x06", "audio/midi"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"OTTO", "font/otf"),
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x00asm", "application/wasm"),
];

/// The type of a file that begins with `head` (at most [`SNIFF_BYTES`] are read).
pub fn sniff(head: &[u8]) -> &'static str {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if head.starts_with(b"\xfe\xff") || head.starts_with(b"\xff\xfe") {
        return "text/plain; charset=utf-16";
    }
    if head.starts_with(b"\xef\xbb\xbf") {
        return TEXT;
    }
    let text = trim_leading_whitespace(head);
    if HTML_TAGS.iter().any(|tag| opens_with_tag(text, tag)) {
        return HTML;
    }
    if text.starts_with(b"<?xml") {
        return if contains_svg(head) {
            "image/svg+xml"
        } else {
            "text/xml; charset=utf-8"
        };
    }
    if text.starts_with(b"<svg") {
        return "image/svg+xml";
    }
    if let Some((_, t)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return t;
    }
    if let Some(t) = riff_or_form(head) {
        return t;
    }
    if is_mp4(head) {
        return "video/mp4";
    }
    if head.iter().any(|&b| is_binary(b)) {
        BINARY
    } else if contains_svg(head) {
        "image/svg+xml"
    } else {
        TEXT
    }
}

fn trim_leading_whitespace(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| matches!(c, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        .count();
    &b[n..]
}

/// `text` opens with `tag` (case-insensitively) and the tag ends there (space or `>`).
fn opens_with_tag(text: &[u8], tag: &[u8]) -> bool {
    text.len() > tag.len()
        && text[..tag.len()].eq_ignore_ascii_case(tag)
        && matches!(text[tag.len()], b' ' | b'>')
}

/// An `<svg` element somewhere in the head of an XML or text file.
fn contains_svg(head: &[u8]) -> bool {
    head.windows(4).any(|w| w.eq_ignore_ascii_case(b"<svg"))
}

/// RIFF (WebP, WAVE, AVI) and IFF (AIFF) containers: the form type at offset 8.
fn riff_or_form(head: &[u8]) -> Option<&'static str> {
    let kind = head.get(8..12)?;
    match (&head[..4], kind) {
        (b"RIFF", b"WEBP") => Some("image/webp"),
        (b"RIFF", b"WAVE") => Some("audio/wave"),
        (b"RIFF", b"AVI ") => Some("video/avi"),
        (b"FORM", b"AIFF") => Some("audio/aiff"),
        _ => None,
    }
}

/// An ISO base media file whose `ftyp` box names an `mp4` brand (major or compatible).
fn is_mp4(head: &[u8]) -> bool {
    let Some(size) = head.get(..4) else {
        return false;
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
    if size < 12 || !size.is_multiple_of(4) || head.len() < size || head.get(4..8) != Some(b"ftyp")
    {
        return false;
    }
    if head.get(8..11) == Some(b"mp4") {
        return true;
    }
    // Compatible brands follow the minor version, four bytes each.
    (16..size)
        .step_by(4)
        .any(|at| head.get(at..at + 3) == Some(b"mp4"))
}

/// Control bytes that never appear in text (the standard's binary data bytes).
fn is_binary(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_from_first_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"", TEXT),
            (b"hello world\n", TEXT),
            (b"  \n<!doctype html><p>x", HTML),
            (b"<html>", HTML),
            (b"<p>b</p>", HTML),
            (b"<!-- c -->", HTML),
            (b"<pre>not a listed tag", TEXT),
            (b"<?xml version=\"1.0\"?><note/>", "text/xml; charset=utf-8"),
            (
                b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\">",
                "image/svg+xml",
            ),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "image/svg+xml",
            ),
            (b"%PDF-1.7\n", "application/pdf"),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
            (b"GIF89a\x01\0", "image/gif"),
            (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", "audio/wave"),
            (b"\x1f\x8b\x08\0", "application/x-gzip"),
            (b"PK\x03\x04\x14\0", "application/zip"),
            (b"\0asm\x01\0\0\0", "application/wasm"),
            (b"\xef\xbb\xbfbom text", TEXT),
            (b"\0\x01\x02 binary", BINARY),
            (b"text\0with a nul", BINARY),
        ];
        for (head, want) in cases {
            assert_eq!(sniff(head), *want, "{head:?}");
        }
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
        assert_eq!(sniff(&mp4), "video/mp4");
        // A bad ftyp size reads as binary, not out of bounds.
        let mut bad = vec![0x00, 0xff, 0xff, 0xf0];
        bad.extend_from_slice(b"ftypmp42");
        assert_eq!(sniff(&bad), BINARY);
        // Only the first SNIFF_BYTES count: a NUL past them leaves text as text.
        let mut long = vec![b'a'; SNIFF_BYTES];
        long.push(0);
        assert_eq!(sniff(&long), TEXT);
    }
}
