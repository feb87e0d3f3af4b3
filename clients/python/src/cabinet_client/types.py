"""The API's JSON shapes, as TypedDicts (plain dicts at run time)."""

from __future__ import annotations

from typing import Dict, List, Optional, TypedDict, Union

JsonValue = Union[None, bool, int, float, str, List["JsonValue"], Dict[str, "JsonValue"]]


class Reference(TypedDict):
    kind: str
    id: str
    label: Optional[str]
    created_at: str


class _FileBase(TypedDict):
    id: str
    workspace_id: str
    name: str
    mime_type: str
    size: int
    sha256: str
    folder_id: Optional[str]
    is_favorite: bool
    tags: List[str]
    alt_text: Optional[str]
    caption: Optional[str]
    copyright: Optional[str]
    metadata: Dict[str, JsonValue]
    created_by: Optional[str]
    created_at: str
    updated_at: str
    trashed_at: Optional[str]
    public_url: Optional[str]
    thumbnail_url: Optional[str]


class File(_FileBase, total=False):
    """A stored, verified file. ``references`` only in a file's details."""

    references: List[Reference]
    type: str  # "file", in search results and the trash


class Breadcrumb(TypedDict):
    id: str
    name: str


class _FolderBase(TypedDict):
    id: str
    workspace_id: str
    name: str
    parent_id: Optional[str]
    is_favorite: bool
    created_at: str
    updated_at: str
    trashed_at: Optional[str]


class Folder(_FolderBase, total=False):
    """A folder. ``path`` (root down to it) only in a folder's details."""

    path: List[Breadcrumb]
    type: str  # "folder", in search results and the trash


Item = Union[File, Folder]
"""A search or trash entry: ``item["type"]`` is ``"file"`` or ``"folder"``."""


class Upload(TypedDict):
    id: str
    workspace_id: str
    status: str  # WAITING, UPLOADING, SUCCESS, FAILED
    reason: Optional[str]
    name: str
    size: int
    mime_type: Optional[str]
    sha256: Optional[str]
    folder_id: Optional[str]
    created_at: str
    updated_at: str
    expires_at: str
    file: Optional[File]


class PartPlan(TypedDict):
    part_size: int
    part_count: int


class UploadTicket(TypedDict):
    id: str
    status: str
    upload_url: Optional[str]
    method: Optional[str]
    headers: Optional[Dict[str, str]]
    expires_at: str
    multipart: Optional[PartPlan]
    upload: Upload


class PartUrl(TypedDict):
    part_number: int
    size: int
    url: str
    method: str
    headers: Dict[str, str]
    expires_at: str


class Part(TypedDict):
    part_number: int
    size: int
    etag: str


class PartList(TypedDict):
    part_size: int
    part_count: int
    parts: List[Part]


class DownloadUrl(TypedDict):
    url: str
    expires_at: Optional[str]


class Quota(TypedDict):
    used_bytes: int
    reserved_bytes: int
    limit_bytes: Optional[int]
    available_bytes: Optional[int]
    max_file_size_bytes: int
    percent_used: Optional[float]


class Favorite(TypedDict):
    id: str
    is_favorite: bool


class RestoreNote(TypedDict):
    restored_to_root: bool
    recreated_folders: List[str]
    renamed_to: Optional[str]


class RestoredFile(TypedDict):
    file: File
    restore: RestoreNote


class RestoredFolder(TypedDict):
    folder: Folder
    restore: RestoreNote


__all__ = [
    "JsonValue",
    "Reference",
    "File",
    "Breadcrumb",
    "Folder",
    "Item",
    "Upload",
    "PartPlan",
    "UploadTicket",
    "PartUrl",
    "Part",
    "PartList",
    "DownloadUrl",
    "Quota",
    "Favorite",
    "RestoreNote",
    "RestoredFile",
    "RestoredFolder",
]
