# The Mavera seed document's Python examples, as written there, with only the base URL and the key
# changed. The docs call get_upload_url, upload_to_storage and create_file_record without showing
# them; they are written here from the API reference (reference.md §1.5.1-1.5.2). "folder_xyz"
# and the elided `json={...}` are filled with real values (the quota check's file is over the
# small workspace's 1000 bytes but within Mavera's 10 MB per file, so the quota is what refuses it). Run by dev/seed-clients/run.
import hashlib
import os
import sys
import time

import requests

BASE = os.environ["MAVERA_BASE_URL"]  # was "https://app.mavera.io/api/v1"
headers = {"Authorization": f"Bearer {os.environ['MAVERA_API_KEY']}"}
workspace_id = os.environ["MAVERA_WORKSPACE_ID"]
file_path = sys.argv[1]
file_size = os.path.getsize(file_path)


def get_upload_url(file_path, workspace_id):
    with open(file_path, "rb") as f:
        checksum = hashlib.sha256(f.read()).hexdigest()
    return requests.post(f"{BASE}/files/upload-url", headers=headers, json={
        "file_name": os.path.basename(file_path), "file_type": "text/plain",
        "file_size": os.path.getsize(file_path), "workspace_id": workspace_id, "checksum": checksum,
    }).json()


def upload_to_storage(upload_url, file_path, upload_headers=None):
    with open(file_path, "rb") as f:
        response = requests.put(upload_url, data=f.read(), headers=upload_headers or {})
    response.raise_for_status()


def create_file_record(upload_response, file_path):
    response = requests.post(f"{BASE}/files", headers=headers, json={
        "name": os.path.basename(file_path), "type": "text/plain", "url": upload_response["public_url"],
        "workspace_id": workspace_id, "file_size": os.path.getsize(file_path),
    })
    response.raise_for_status()
    return response.json()


# (from the docs) The presigned URL expires after 1 hour. If upload fails, request a new URL:
def upload_with_retry(file_path, workspace_id, max_retries=3):
    for attempt in range(max_retries):
        try:
            # Get fresh upload URL
            upload_response = get_upload_url(file_path, workspace_id)
            # Upload to presigned URL
            upload_to_storage(upload_response["upload_url"], file_path, upload_response["headers"])
            # Create record
            return create_file_record(upload_response, file_path)
        except Exception as e:
            if attempt == max_retries - 1:
                raise
            time.sleep(2 ** attempt)  # Exponential backoff


record = upload_with_retry(file_path, workspace_id)
print(f"Created file {record['id']} ({record['size']} bytes)")

# (from the docs) Toggle favorite on a file
result = requests.post(
    f"{BASE}/files/{record['id']}/favorite",
    headers=headers
).json()
print(f"File is now favorite: {result['is_favorite']}")
# List only favorites
favorites = requests.get(
    f"{BASE}/files",
    headers=headers,
    params={"is_favorite": "true"}
).json()
print(f"Favorites: {len(favorites['data'])}")

# (from the docs) Upload to a specific folder
folder = requests.post(f"{BASE}/folders", headers=headers, json={"name": "Reports", "workspace_id": workspace_id}).json()
upload_response = requests.post(
    f"{BASE}/files/upload-url",
    headers=headers,
    json={
        "file_name": "report.pdf",
        "file_type": "application/pdf",
        "file_size": file_size,
        "workspace_id": workspace_id,
        "folder_id": folder["id"]  # Optional folder (was "folder_xyz")
    })
print(f"Upload URL for the folder: {upload_response.json()['object']}")

# (from the docs) The upload-url endpoint will return an error if quota would be exceeded
response = requests.post(
    f"{BASE}/files/upload-url",
    headers={"Authorization": f"Bearer {os.environ['MAVERA_SMALL_API_KEY']}"},
    json={"file_name": "big.bin", "file_type": "application/octet-stream", "file_size": 5000,
          "workspace_id": os.environ["MAVERA_SMALL_WORKSPACE_ID"]})
if "error" in response.json():
    error = response.json()["error"]
    if "storage" in error["message"].lower():
        print("Storage quota exceeded!")
