#!/usr/bin/env python3
"""The Serenities AI Files API examples (shared/seeds/003_*.txt), run against Cabinet.

Each documented `curl -X POST https://app.serenitiesai.com/api/v1/files/<procedure>` example is
made here with `requests`, in the order a client would use them; only the base URL and the key
are changed (CABINET_BASE_URL, e.g. http://127.0.0.1:8080, and CABINET_KEY). The docs' bodies use
the placeholder "example" for ids; here they are the ids earlier calls returned ("File ID from
list"). Exits non-zero on the first failed expectation.
"""
import base64
import os
import sys

import requests

BASE_URL = os.environ["CABINET_BASE_URL"].rstrip("/") + "/compat/serenities/api/v1"
API_KEY = os.environ["CABINET_KEY"]
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def call(procedure, body, expect=200):
    response = requests.post(f"{BASE_URL}/files/{procedure}", headers=HEADERS, json=body)
    if response.status_code != expect:
        sys.exit(f"FAIL {procedure}: expected {expect}, got {response.status_code}: {response.text}")
    data = response.json()
    print(f"{procedure}: {data}")
    return data


def check(condition, what):
    if not condition:
        sys.exit(f"FAIL: {what}")


# Get storage quota info. Call BEFORE upload to check available space.
quota = call("getQuota", {})
content = b"Hello from the Serenities seed client\n"
check(quota["availableBytes"] >= len(content), "there is space for the upload")
check(set(quota) >= {"usedBytes", "limitBytes", "availableBytes", "maxFileSizeBytes", "percentUsed"}, "quota fields")

# Upload a file. Content must be base64 encoded.
uploaded = call("upload", {
    "fileName": "serenities-example.txt",
    "content": base64.b64encode(content).decode(),
    "mimeType": "text/plain",
})
file_id = uploaded["id"]
check(uploaded["size"] == len(content), "upload reports the size")

# List user files. Returns {files[], total}.
listed = call("list", {"folderId": "root", "sortBy": "uploadedAt", "sortOrder": "desc", "limit": 50, "offset": 0})
check(any(f["id"] == file_id for f in listed["files"]), "the upload is listed at the root")
check(listed["total"] >= 1, "total counts it")

# Get a specific file by ID.
check(call("get", {"fileId": file_id})["fileName"] == "serenities-example.txt", "get returns the file")

# Get a presigned download URL for a file (1 hour expiry).
link = call("getDownloadUrl", {"fileId": file_id})
check(requests.get(link["url"]).content == content, "the download URL serves the bytes")

# Rename a file.
check(call("rename", {"fileId": file_id, "newName": "renamed.txt"})["fileName"] == "renamed.txt", "rename")

# Create a new folder; list folders; move the file into it; rename the folder.
folder = call("createFolder", {"name": "Seed examples", "parentId": None})
folders = call("listFolders", {"parentId": None})
check(isinstance(folders, list) and any(f["id"] == folder["id"] for f in folders), "listFolders is a bare array")
check(call("move", {"fileId": file_id, "folderId": folder["id"]})["folderId"] == folder["id"], "move")
check(call("list", {"folderId": folder["id"]})["total"] == 1, "the folder lists the file")
check(call("renameFolder", {"folderId": folder["id"], "newName": "Seed examples (renamed)"})["name"]
      == "Seed examples (renamed)", "renameFolder")

# Access rules: who can create/read/delete files in published apps.
rules = call("setAccessRules", {"fileId": file_id, "accessRules": {"read": "public"}, "trackCreator": True})
check(rules["accessRules"]["read"] == "public", "setAccessRules")
check(call("getAccessRules", {"fileId": file_id})["accessRules"]["read"] == "public", "getAccessRules")

# Get storage stats. Returns {totalSize (bytes), fileCount}.
usage = call("getUsage", {})
check(usage["fileCount"] >= 1 and usage["totalSize"] >= len(content), "getUsage counts the file")

# Delete an empty folder: this one is not empty yet.
refused = call("deleteFolder", {"folderId": folder["id"]}, expect=409)
check(refused["error"]["code"] == "CONFLICT", "a non-empty folder is refused")

# Delete a file (move to trash), then the now empty folder.
check(call("delete", {"fileId": file_id})["success"] is True, "delete")
check(call("get", {"fileId": file_id}, expect=404)["error"]["code"] == "NOT_FOUND", "a deleted file is gone")
check(call("deleteFolder", {"folderId": folder["id"]})["success"] is True, "deleteFolder")

# A wrong key is refused.
response = requests.post(f"{BASE_URL}/files/list", headers={**HEADERS, "Authorization": "Bearer mk_live_wrong"}, json={})
check(response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED", "a wrong key is 401")

print("serenities: all examples passed")
