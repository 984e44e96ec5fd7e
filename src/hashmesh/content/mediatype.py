"""Content type detection from magic bytes, with the file name's guess as a hint.

Pure: the caller passes the name-based guess (from :mod:`mimetypes`) and the
first bytes of the content.
"""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"
DIRECTORY = "inode/directory"

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x7fELF", "application/x-executable"),
    (b"\x00asm", "application/wasm"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
)
_FTYP_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"avif": "image/avif",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
}
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
# Container formats whose name-based guess is usually more precise (docx is a zip).
_GENERIC = {"application/zip", "application/gzip", "application/octet-stream", "text/plain"}


_BY_FIRST: dict[int, tuple[tuple[bytes, str], ...]] = {}
for _p, _c in _PREFIXES:
    _BY_FIRST[_p[0]] = (*_BY_FIRST.get(_p[0], ()), (_p, _c))


def sniff_magic(head: bytes) -> str | None:
    """The content type announced by the leading bytes, or None."""
    if not head:
        return None
    for prefix, ctype in _BY_FIRST.get(head[0], ()):
        if head.startswith(prefix):
            return ctype
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if len(head) >= 12 and head[:4] == b"RIFF":
        return _RIFF.get(head[8:12])
    if len(head) > 262 and head[257:262] == b"ustar":
        return "application/x-tar"
    return None


def sniff_text(head: bytes) -> str | None:
    """``application/json`` or ``text/plain`` for text-looking bytes, else None."""
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # only a multi-byte char cut at the end is fine
            return None
        text = head[: exc.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\n\r\f\b" for c in text):
        return None
    stripped = text.lstrip()
    if (stripped[:1] in ("{", "[") and stripped.rstrip()[-1:] in ("}", "]", ",", '"')) or (
        stripped[:1] in ("{", "[") and len(head) >= 4096
    ):
        return "application/json"
    return "text/plain"


def detect(name_guess: str | None, head: bytes) -> str:
    """Pick a content type from the name's guess and the first bytes."""
    magic = sniff_magic(head)
    if magic is not None:
        if name_guess and magic in _GENERIC:
            return name_guess
        return magic
    if name_guess:
        return name_guess
    return sniff_text(head) or OCTET_STREAM


__all__ = ["DIRECTORY", "OCTET_STREAM", "detect", "sniff_magic", "sniff_text"]
