#!/usr/bin/env python3
"""The CMS media library examples (shared/seeds/002_*.txt: List files, Upload file, Get file
details, Update file metadata, Delete file), run against Cabinet with `requests`.

The seed document gives parameters, not code; this client makes each documented operation the
way a DRF client would, changing only the base URL and the key (CABINET_BASE_URL, e.g.
http://127.0.0.1:8080, and CABINET_KEY). The organization is the key's workspace: from
CABINET_ORGANIZATION_ID or, when unset, learnt once from Cabinet's native API (a probe upload,
then purged). Exits non-zero on the first failed expectation.
"""
import base64
import os
import sys

import requests

BASE_URL = os.environ["CABINET_BASE_URL"].rstrip("/") + "/compat/cms"
API_KEY = os.environ["CABINET_KEY"]
HEADERS = {"Authorization": f"Token {API_KEY}"}


def check(condition, what):
    if not condition:
        sys.exit(f"FAIL: {what}")


def expect(response, status, what):
    if response.status_code != status:
        sys.exit(f"FAIL {what}: expected {status}, got {response.status_code}: {response.text}")
    body = response.json() if response.content else None
    print(f"{what}: {response.status_code} {body}")
    return body


# Which organization: the environment, or the one the key's list shows.
ORGANIZATION_ID = os.environ.get("CABINET_ORGANIZATION_ID")
if not ORGANIZATION_ID:
    probe = requests.post(f"{BASE_URL}/files/", headers=HEADERS,
                          json={"file_base64": base64.b64encode(b"probe").decode(), "file_name": "probe.txt"})
    check(probe.status_code == 400 and "organization_id" in probe.json(), "organization_id is required")
    # Cabinet's native API names the key's workspace on any file it stores.
    native = requests.post(os.environ["CABINET_BASE_URL"].rstrip("/") + "/v1/files",
                           headers={"Authorization": f"Bearer {API_KEY}"},
                           json={"name": "cms-probe.txt", "content_base64": base64.b64encode(b"probe").decode()})
    check(native.status_code == 201, f"native probe upload: {native.text}")
    ORGANIZATION_ID = native.json()["workspace_id"]
    requests.delete(os.environ["CABINET_BASE_URL"].rstrip("/") + f"/v1/files/{native.json()['id']}?permanent=true",
                    headers={"Authorization": f"Bearer {API_KEY}"})

# Upload file: multipart/form-data with the 'file' field; organization_id is required.
with_multipart = expect(requests.post(
    f"{BASE_URL}/files/",
    headers=HEADERS,
    data={"organization_id": ORGANIZATION_ID, "tags": "product,event"},
    files={"file": ("poster.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png")},
), 201, "Upload file (multipart)")
check(with_multipart["file_name"] == "poster.png", "the multipart upload keeps its name")
check(sorted(with_multipart["tags"]) == ["event", "product"], "tags were set")

# Upload file: JSON with 'file_base64'.
with_base64 = expect(requests.post(
    f"{BASE_URL}/files/",
    headers=HEADERS,
    json={
        "organization_id": ORGANIZATION_ID,
        "file_base64": base64.b64encode(b"Hello from the CMS seed client\n").decode(),
        "file_name": "notes.txt",
        "tags": ["product"],
    },
), 201, "Upload file (base64)")
api_id = with_base64["api_id"]

# List files: filters, ordering, pagination, available_tags.
page = expect(requests.get(f"{BASE_URL}/files/", headers=HEADERS, params={
    "organization_id": ORGANIZATION_ID, "tags": "product", "ordering": "-created_at", "page": 1, "page_size": 1,
}), 200, "List files")
check(page["count"] >= 2 and len(page["results"]) == 1, "page_size limits the page")
check(page["next"] and page["next"].startswith("http"), "next is an absolute URL")
check({"event", "product"} <= set(page["available_tags"]), "available_tags")
second = expect(requests.get(page["next"], headers=HEADERS), 200, "List files (next page)")
check(second["previous"] is not None, "previous is set on page 2")
by_name = expect(requests.get(f"{BASE_URL}/files/", headers=HEADERS,
                              params={"organization_id": ORGANIZATION_ID, "file_name": "NOTES"}), 200, "List files (file_name)")
check(any(f["api_id"] == api_id for f in by_name["results"]), "file_name is a case-insensitive contains")

# Get file details, including where it is used.
details = expect(requests.get(f"{BASE_URL}/files/{api_id}/", headers=HEADERS), 200, "Get file details")
check(isinstance(details["usage"], list), "details list the usage")
check(requests.get(details["file_url"]).content == b"Hello from the CMS seed client\n", "file_url serves the bytes")

# Update file metadata.
updated = expect(requests.patch(f"{BASE_URL}/files/{api_id}/", headers=HEADERS, json={
    "image_alt_text": "A note", "caption": "Seed caption", "copyright": "(c) Seed", "tags": ["product", "notes"],
}), 200, "Update file metadata")
check(updated["caption"] == "Seed caption" and sorted(updated["tags"]) == ["notes", "product"], "metadata updated")

# Delete file: refused while in use unless force=true. Cabinet references say what uses a file.
requests.post(os.environ["CABINET_BASE_URL"].rstrip("/") + f"/v1/files/{api_id}/references",
              headers={"Authorization": f"Bearer {API_KEY}"},
              json={"kind": "edition", "id": "seed-1", "label": "Seed edition"})
refused = expect(requests.delete(f"{BASE_URL}/files/{api_id}/", headers=HEADERS), 409, "Delete file (in use)")
check(refused["detail"] == "File is in use by 1 objects" and refused["usage"][0]["model"] == "edition", "usage shown")
expect(requests.delete(f"{BASE_URL}/files/{api_id}/", headers=HEADERS, params={"force": "true"}), 204, "Delete file (force)")
expect(requests.delete(f"{BASE_URL}/files/{with_multipart['api_id']}/", headers=HEADERS), 204, "Delete file")
gone = expect(requests.get(f"{BASE_URL}/files/{api_id}/", headers=HEADERS), 404, "Get deleted file")
check(gone == {"detail": "Not found."}, "DRF-style 404")

# A wrong key is refused, DRF style.
wrong = expect(requests.get(f"{BASE_URL}/files/", headers={"Authorization": "Token wrong"}), 401, "Wrong key")
check("detail" in wrong, "DRF-style 401")

print("cms: all examples passed")
