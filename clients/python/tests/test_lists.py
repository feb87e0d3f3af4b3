"""Iterators follow next_cursor across pages."""

from __future__ import annotations

import uuid

from cabinet_client import Cabinet


def test_files_list_follows_cursors_across_pages(cabinet: Cabinet, folder: str) -> None:
    names = {f"page-{i}.txt" for i in range(7)}
    for name in sorted(names):
        cabinet.upload(name.encode(), name=name, folder=folder)
    listed = [f["name"] for f in cabinet.files.list(folder=folder, page_size=2, sort="name")]
    assert listed == sorted(names), "every file once, in order, over four pages"
    assert [f["name"] for f in cabinet.files.list(folder=folder, q="page-3", page_size=1)] == ["page-3.txt"]
    first_two = []
    for f in cabinet.files.list(folder=folder, page_size=2):
        first_two.append(f)
        if len(first_two) == 2:
            break  # a generator: stopping early asks for no more pages
    assert len(first_two) == 2


def test_search_follows_cursors_and_returns_files_and_folders(cabinet: Cabinet, folder: str) -> None:
    token = uuid.uuid4().hex[:12]
    for i in range(5):
        cabinet.upload(b"s", name=f"{token}-{i}.txt", folder=folder)
    cabinet.folders.create(f"{token}-dir", parent=folder)
    found = list(cabinet.search(token, page_size=2))
    assert len(found) == 6
    assert sorted(item["type"] for item in found) == ["file"] * 5 + ["folder"]
    assert len({item["id"] for item in found}) == 6
    assert len(list(cabinet.search(token, folder=folder, page_size=4))) == 6


def test_folders_and_trash_lists(cabinet: Cabinet, folder: str) -> None:
    made = {cabinet.folders.create(f"sub-{i}", parent=folder)["id"] for i in range(5)}
    assert {f["id"] for f in cabinet.folders.list(parent=folder, page_size=2)} == made
    gone = sorted(made)[0]
    cabinet.folders.delete(gone)
    assert gone in {item["id"] for item in cabinet.trash.list() if item.get("type") == "folder"}
    assert {f["id"] for f in cabinet.folders.list(parent=folder, trashed=True)} == {gone}
