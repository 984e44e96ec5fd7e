"""Search: full text over name/description/tags, filters, sort and limit."""

from __future__ import annotations

import pytest

from hashmesh.errors import InvalidArgumentError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def _fill(env):
    items = [
        ("beach.png", PNG + b"1", ["holiday", "sea"], "sunny beach in summer"),
        ("beach-party.jpg", b"\xff\xd8\xff" + b"2" * 5000, ["holiday"], "party at night"),
        ("notes.txt", b"shopping list: bread, milk\n" * 10, ["todo"], "groceries"),
        ("report.pdf", b"%PDF-1.4 " + b"3" * 20_000, [], "quarterly beach report"),
        ("data.json", b'{"k": [1, 2, 3]}', ["data"], ""),
    ]
    out = {}
    for name, data, tags, desc in items:
        out[name] = env.run(env.store.put_bytes(data, name=name, tags=tags, description=desc))
        env.clock[0] += 10
    return out


def test_text_filters_sort_limit(env):
    f = _fill(env)
    s = env.store
    assert f["beach.png"].content_type == "image/png"
    assert f["data.json"].content_type == "application/json"
    hits = env.run(s.search("beach"))
    assert {h.name for h in hits} == {"beach.png", "beach-party.jpg", "report.pdf"}
    assert [h.name for h in env.run(s.search("beach", content_type="image/"))] != []
    assert {h.name for h in env.run(s.search("beach", content_type="image/"))} == {
        "beach.png",
        "beach-party.jpg",
    }
    assert [h.name for h in env.run(s.search("holiday", sort="name"))] == [
        "beach-party.jpg",
        "beach.png",
    ]
    assert [h.name for h in env.run(s.search("", sort="size", limit=2))] == [
        "report.pdf",
        "beach-party.jpg",
    ]
    assert [h.name for h in env.run(s.search(sort="created", limit=1))] == ["data.json"]
    assert {h.name for h in env.run(s.search(min_size=1000, max_size=10_000))} == {
        "beach-party.jpg"
    }
    assert {h.name for h in env.run(s.search(tag="holiday"))} == {"beach.png", "beach-party.jpg"}
    assert [h.name for h in env.run(s.search("groc"))] == ["notes.txt"]  # prefix match
    assert env.run(s.search("sunny summer"))[0].name == "beach.png"  # all terms
    assert env.run(s.search("nothing-matches-this")) == []
    assert env.run(s.search('"unbalanced AND (')) == []  # syntax is neutralised


def test_relevance_ranks_better_matches_first(env):
    env.run(env.store.put_bytes(b"a", name="cat.txt", description="about dogs"))
    env.run(env.store.put_bytes(b"b", name="cat cat cat.txt", description="cat cat cat"))
    hits = env.run(env.store.search("cat"))
    assert hits[0].name == "cat cat cat.txt"


def test_bad_search_arguments(env):
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.search("x", sort="color"))
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.search("x", limit=0))
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.search("x", min_size=-1))


def test_metadata_and_access_counts(env):
    info = env.run(env.store.put_bytes(b"hello", name="h.txt", tags=["a", "b"], description="d"))
    assert info.owner == "ab" * 32 and info.tags == ("a", "b") and info.access_count == 0
    env.clock[0] += 5
    env.run(env.store.read(info.id))
    env.run(env.store.get_many([info.id]))
    st = env.run(env.store.stat(info.id))
    assert st.access_count == 2 and st.accessed == env.clock[0]
    env.reopen()
    assert env.run(env.store.stat(info.id)).access_count == 2
    assert env.run(env.store.ls(limit=1))[0].id == info.id


def test_common_terms_rank_a_window_and_fall_back_for_filters(env, monkeypatch):
    from hashmesh.store import index

    monkeypatch.setattr(index, "RANK_WINDOW", 8)
    s = env.store
    for i in range(40):  # the 3 oldest are images; the newest 37 are text
        data = PNG + bytes([i]) if i < 3 else b"plain text %d" % i
        env.run(s.put_bytes(data, name=f"common-{i}", description="common words here"))
        env.clock[0] += 1
    hits = env.run(s.search("common", limit=5))
    assert len(hits) == 5
    assert all(int(h.name.split("-")[1]) >= 32 for h in hits)  # ranked within the newest 8
    images = env.run(s.search("common", content_type="image/", limit=3))
    assert sorted(h.name for h in images) == ["common-0", "common-1", "common-2"]  # fallback
    assert len(env.run(s.search("common", limit=100))) == 40
