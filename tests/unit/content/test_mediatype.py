"""Content type detection from names and magic bytes."""

from hashmesh.content.mediatype import detect


def test_magic_wins_over_a_wrong_name():
    assert detect("text/plain", b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert detect(None, b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert detect(None, b"%PDF-1.7") == "application/pdf"
    assert detect(None, b"\x7fELF\x02") == "application/x-executable"
    assert detect(None, b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert detect(None, b"\x28\xb5\x2f\xfd") == "application/zstd"


def test_name_refines_generic_containers_and_text():
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert detect(docx, b"PK\x03\x04") == docx
    assert detect("text/csv", b"a,b\n1,2\n") == "text/csv"


def test_text_heuristics():
    assert detect(None, b'{"a": 1}') == "application/json"
    assert detect(None, "héllo wörld\n".encode()) == "text/plain"
    assert detect(None, b"\x00\x01\x02\x03") == "application/octet-stream"
    assert detect(None, b"") == "application/octet-stream"
