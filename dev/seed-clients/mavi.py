# The MAVI seed document's "Complete Example (Ready to Test)", as written there, with only
# BASE_URL and API_KEY changed (and the file path set), plus its Step 3 (get_metadata) so the
# script checks what the docs say to check. Run by dev/seed-clients/run.
import os
import sys
import time

import requests

BASE_URL = os.environ["MAVI_BASE_URL"]  # was "https://mavi-backend.memories.ai/serve/api/v2"
API_KEY = os.environ["MAVI_API_KEY"]  # was "sk-mai-this_a_test_string_please_use_your_generated_key_during_testing"
HEADERS = {
    "Authorization": f"{API_KEY}"
}

# Step 1: Get signed URL from /upload/signed-url
def get_signed_url(original_filename: str) -> tuple[str, str]:
    """Get a signed URL and asset_id for file upload"""
    url = f"{BASE_URL}/upload/signed-url"
    data = {"original_filename": original_filename}
    response = requests.post(url, json=data, headers=HEADERS)
    result = response.json()
    print(f"Signed URL response: {result}")
    return result['data']['signed_url'], result['data']['asset_id']

# Step 2: Upload file using the signed URL
def upload_by_signed_url(signed_url: str, file_path: str) -> tuple[int, str]:
    """
    Upload file using signed URL
    
    Args:
        signed_url: The signed URL obtained from /upload/signed-url
        file_path: Path to the local file to upload
    
    Returns:
        Tuple of (status_code, response_text)
    """
    with open(file_path, "rb") as f:
        files = {"file": (file_path, f)}
        resp = requests.post(signed_url, files=files)
    
    return resp.status_code, resp.text

# Step 3 (the docs call it without defining it): GET /{asset_id}/metadata
def get_metadata(asset_id: str) -> dict:
    return requests.get(f"{BASE_URL}/{asset_id}/metadata", headers=HEADERS).json()

# Complete workflow - ready to test
if __name__ == "__main__":
    # Replace with your actual file path
    file_path = sys.argv[1]  # was "path/to/your/video.mp4"
    original_filename = "video.mp4"
    
    # Get signed URL and asset_id
    print("Step 1: Getting signed URL...")
    signed_url, asset_id = get_signed_url(original_filename)
    print(f"Asset ID: {asset_id}")
    print(f"Signed URL: {signed_url[:100]}...")
    
    # Upload file
    print("\nStep 2: Uploading file...")
    status, response = upload_by_signed_url(signed_url, file_path)
    print(f"Upload status: {status}")
    print(f"Upload response: {response}")
    print(f"\nUse asset_id '{asset_id}' for subsequent API calls (e.g., /video/edit, /transcriptions)")

    # Step 3: Confirm upload is complete
    for _ in range(50):
        metadata = get_metadata(asset_id)
        status = metadata['data']['resource'][0]['upload_status']
        if status in ("SUCCESS", "FAILED"):
            break
        time.sleep(0.1)
    print(f"Upload status: {status}")  # Should be "SUCCESS"
    sys.exit(0 if status == "SUCCESS" else 1)
