"""schemathesis hooks for dev/fuzz: mint real signed URLs for the storage and public routes.

The storage endpoint takes no key: the signed query is the credential, so a case schemathesis
generates on its own can only ever get 403. For every positive case of a storage operation this
hook first asks the API (with the fuzz run's bearer key) for a URL that fits the case, then fills
the case's path and query from it, so the generated body is really received, counted and
verified:

- PUT  /storage/v1/uploads/{ws}/{id}              a fresh upload declared with the body's size
- POST /storage/v1/uploads/{ws}/{id}              the same, sized to the multipart `file` field
- PUT  /storage/v1/uploads/{ws}/{id}/parts/{n}    a fresh multipart upload of one part of that size
- GET  /storage/v1/files/{ws}/{id}                a download URL of a real file
- GET  /storage/v1/thumbnails/{ws}/{id}/{size}    a real PNG's thumbnail URL
- GET  /public/v1/files/{ws}/{id}                 a real file whose read rule is `public`
- GET  /public/v1/files/{ws}/{id}/{version}       that file's `public_url`, at its version

Negative cases (schemathesis broke the request on purpose) stay unsigned: they must be refused.
Every signed call is written to $CABINET_FUZZ_SIGNED_LOG ("METHOD PATH STATUS"), so dev/fuzz can
fail when the storage routes were never reached or never accepted anything.
"""

import base64
import os
import struct
import zlib
from urllib.parse import parse_qsl, urlsplit

import requests
import schemathesis

BASE = os.environ["CABINET_FUZZ_URL"]
# The mount of the document being fuzzed (empty for the native one): its paths are relative to it.
MOUNT = os.environ.get("CABINET_FUZZ_MOUNT", "")
KEY = os.environ["CABINET_FUZZ_KEY"]
LOG = os.environ["CABINET_FUZZ_SIGNED_LOG"]
API = requests.Session()
API.headers["Authorization"] = f"Bearer {KEY}"

_cache = {}
# The cases this hook signed, held so their ids are not reused while the run lasts.
_signed = {}


def _api(method, path, **kwargs):
    response = API.request(method, BASE + path, timeout=30, **kwargs)
    if response.status_code >= 300:
        raise RuntimeError(f"fuzz hook: {method} {path} answered {response.status_code}: {response.text}")
    return response.json()


def _png():
    """A valid 8x8 RGB PNG, so the thumbnail route has something to render."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"".join(bytes([x * 30, y * 30, 128]) for x in range(8)) for y in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _file(kind):
    """A real file, made once per run: `plain` bytes, an `image`, or a `public` one."""
    if kind not in _cache:
        content = _png() if kind == "image" else f"cabinet fuzz {kind} file\n".encode()
        name = "fuzz.png" if kind == "image" else f"fuzz-{kind}.txt"
        made = _api(
            "POST",
            "/v1/files",
            json={"name": name, "content_base64": base64.b64encode(content).decode()},
        )
        if kind == "public":
            _api("PUT", f"/v1/files/{made['id']}/access-rules", json={"read": "public"})
        _cache[kind] = made
    return _cache[kind]


def _fill(case, url, headers=None):
    """Point the case at `url`: its path parameters from the path, its query verbatim."""
    parts = urlsplit(url)
    template = case.operation.path.strip("/").split("/")
    actual = parts.path.strip("/").split("/")
    if len(template) != len(actual):
        raise RuntimeError(f"fuzz hook: {url} does not fit {case.operation.path}")
    case.path_parameters = {
        t[1:-1]: a for t, a in zip(template, actual) if t.startswith("{") and t.endswith("}")
    }
    # The signature covers the query exactly as signed: keep its order and spelling.
    case.query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if headers:
        case.headers = {**(case.headers or {}), **headers}


def _body_size(case):
    """How many bytes of the upload the case will send: its raw body, or its multipart `file`
    field, measured on the request exactly as schemathesis serializes it."""
    prepared = case.as_transport_kwargs(base_url=BASE)
    headers = {k.lower(): v for k, v in (prepared.get("headers") or {}).items()}
    if prepared.get("files"):
        # A multipart body requests will encode: encode it the same way to measure it.
        request = requests.Request("POST", BASE, files=prepared["files"], data=prepared.get("data")).prepare()
        data, headers = request.body, {k.lower(): v for k, v in request.headers.items()}
    else:
        data = prepared.get("data")
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode()
    content_type = headers.get("content-type", "")
    if "multipart/form-data" not in content_type:
        return len(data)
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    for part in data.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return len(content[: -len(b"\r\n")] if content.endswith(b"\r\n") else content)
    return None


def _upload_ticket(size, multipart=False):
    return _api(
        "POST",
        "/v1/uploads",
        json={"name": "fuzz.bin", "size": size, "multipart": multipart},
    )


# Multipart forms whose handler streams `file` straight to storage and reads only the fields
# before it, as their request bodies say. OpenAPI cannot order a form's parts, so every case
# (positive or negative) sends `file` last, as a client following the document does.
FILE_LAST = {
    ("POST", "/v1/files"),
    ("POST", "/compat/cms/files"),
    ("POST", "/compat/cms/files/"),
    ("POST", "/compat/mavi/serve/api/v2/upload"),
}


def _path(case):
    """The operation's whole path, as the router mounts it (its document's paths are relative to
    the document's mount)."""
    return MOUNT + case.operation.path


def _integers(value):
    """JSON Schema counts 886.0 as an integer, and no keyword says "written without a fraction";
    Cabinet's JSON reads integers as integers (serde, like most typed servers). Send an integral
    float as the integer it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


@schemathesis.hook
def before_call(context, case, **kwargs):
    path = _path(case)
    method = case.operation.method.upper()
    if isinstance(case.body, (dict, list)):
        case.body = _integers(case.body)
    # A long poll holds its request up to `wait` seconds when nothing happens: the run would spend
    # its time waiting. A valid wait becomes 0 (same answer, at once); an invalid one stays, to be refused.
    if (method, path) == ("GET", "/v1/events") and isinstance(case.query, dict):
        wait = case.query.get("wait")
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= 60:
            case.query["wait"] = 0
    if (method, path) in FILE_LAST and isinstance(case.body, dict) and "file" in case.body:
        case.body = {**{k: v for k, v in case.body.items() if k != "file"}, "file": case.body["file"]}
    if not (path.startswith("/storage/v1/") or path.startswith("/public/v1/")):
        return
    meta = case.meta
    if meta is not None and (
        not meta.generation.mode.is_positive
        or any(not component.mode.is_positive for component in meta.components.values())
    ):
        return
    if path == "/storage/v1/uploads/{workspace_id}/{upload_id}":
        size = _body_size(case)
        if size is None:
            return
        ticket = _upload_ticket(size)
        _fill(case, ticket["upload_url"])
    elif path == "/storage/v1/uploads/{workspace_id}/{upload_id}/parts/{part_number}":
        size = _body_size(case)
        if not size:
            return  # a multipart upload has at least one byte
        ticket = _upload_ticket(size, multipart=True)
        parts = _api("POST", f"/v1/uploads/{ticket['id']}/parts", json={"part_numbers": [1]})
        _fill(case, parts["parts"][0]["url"], parts["parts"][0].get("headers"))
    elif path == "/storage/v1/files/{workspace_id}/{file_id}":
        url = _api("GET", f"/v1/files/{_file('plain')['id']}/download-url")["url"]
        _fill(case, url)
    elif path == "/storage/v1/thumbnails/{workspace_id}/{file_id}/{size}":
        url = _api("GET", f"/v1/files/{_file('image')['id']}")["thumbnail_url"]
        if not url:
            raise RuntimeError("fuzz hook: the PNG has no thumbnail_url")
        _fill(case, url)
    elif path == "/public/v1/files/{workspace_id}/{file_id}":
        made = _file("public")
        case.path_parameters = {"workspace_id": made["workspace_id"], "file_id": made["id"]}
    elif path == "/public/v1/files/{workspace_id}/{file_id}/{version}":
        url = _api("GET", f"/v1/files/{_file('public')['id']}")["public_url"]
        if not url:
            raise RuntimeError("fuzz hook: the public file has no public_url")
        _fill(case, url)
    else:
        raise RuntimeError(f"fuzz hook: no way to sign {method} {path}; teach dev/fuzz_hooks.py")
    _signed[id(case)] = case


# Refusals of schema-valid requests that no OpenAPI 3.1 keyword can rule out, by operation and
# the refusal's error code: a rule across two parameters, about the clock, or about stored state.
# Only `positive_data_acceptance`, only these codes; every other refusal still fails the run.
INEXPRESSIBLE = {
    # A cursor is one the list returned (it encodes that list's sort and last item): the document
    # gives its format, not which strings the server issued; and a cursor excludes `offset`.
    ("GET", "/v1/files"): {"invalid_cursor", "invalid_paging"},
    ("GET", "/v1/folders"): {"invalid_cursor", "invalid_paging"},
    ("GET", "/v1/folders/{id}/children"): {"invalid_cursor", "invalid_paging"},
    ("GET", "/v1/search"): {"invalid_cursor", "invalid_paging"},
    # `from` before `to` and before now.
    ("GET", "/v1/usage"): {"invalid_range"},
    # Whether a stored file is an image is a property of its bytes, not of the request.
    ("GET", "/v1/files/{id}/thumbnail"): {"thumbnail_unsupported", "image_undecodable"},
    # At most 10,000 parts (`size` over `part_size`, a quotient of two fields); a size within the
    # workspace's own `max_file_bytes`, a setting of the workspace.
    ("POST", "/v1/uploads"): {"too_many_parts", "file_too_large"},
    # A permalink (`lasting`) has no expiry, so it takes no `expires_in`: a rule across two
    # parameters.
    ("GET", "/v1/files/{id}/download-url"): {"invalid_expires_in"},
    # A webhook receiver's host must be a public address (unless the server allows private ones),
    # which depends on DNS; the URL must also parse as one; a workspace has at most 20 webhooks.
    ("POST", "/v1/webhooks"): {"webhook_url_not_public", "invalid_webhook_url", "too_many_webhooks"},
    ("PATCH", "/v1/webhooks/{id}"): {"webhook_url_not_public", "invalid_webhook_url"},
    # Part numbers run to the upload's own part count.
    ("POST", "/v1/uploads/{id}/parts"): {"invalid_part_number"},
    # Mavera's cursor is the id of the last item of the previous page: one in this workspace (and
    # folder), which the document can give the format of, not the existence.
    ("GET", "/compat/mavera/api/v1/files"): {"invalid_field:cursor"},
    ("GET", "/compat/mavera/api/v1/folders"): {"invalid_field:cursor"},
    ("GET", "/compat/mavera/api/v1/folders/{id}"): {"invalid_field:cursor"},
    # `url` names an upload that must have received its bytes, and `file_size` must be the size
    # that upload declared.
    ("POST", "/compat/mavera/api/v1/files"): {"invalid_field:url", "invalid_field:file_size"},
    # A size within the workspace's own `max_file_bytes`, a setting of the workspace.
    ("POST", "/compat/mavera/api/v1/files/upload-url"): {"invalid_field:file_size"},
    # A file holds at most 50 tags: counted over comma-separated lists and repeated form fields
    # together, a sum no schema keyword bounds.
    ("PATCH", "/compat/cms/files/{api_id}"): {"field:tags"},
    ("PATCH", "/compat/cms/files/{api_id}/"): {"field:tags"},
    # An upload names its organization in the body, the query or a header: one of three places.
    # Its `api_id` must be one no other file of the organization has: stored state. Its tags, at
    # most 50, are counted as the PATCH's are.
    ("POST", "/compat/cms/files"): {"field:organization_id", "field:api_id", "field:tags"},
    ("POST", "/compat/cms/files/"): {"field:organization_id", "field:api_id", "field:tags"},
    # A date-range bound's day is within its month (2025-02-30 has the documented shape).
    ("GET", "/compat/cms/files"): {
        "field:created_at_after",
        "field:created_at_before",
        "field:created_at__gte",
        "field:created_at__lte",
    },
    ("GET", "/compat/cms/files/"): {
        "field:created_at_after",
        "field:created_at_before",
        "field:created_at__gte",
        "field:created_at__lte",
    },
}


def _error_code(response):
    """The refusal's error code, as `code:param` when the dialect names the parameter (Mavera), or
    `field:<name>` for the CMS dialect's `{"<name>": ["message"]}`."""
    try:
        body = response.json()
    except Exception:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}:{error['param']}" if error.get("param") else error.get("code")
    fields = [name for name, messages in body.items() if isinstance(messages, list)]
    return f"field:{fields[0]}" if len(fields) == 1 else None


# The coverage phase's scenarios that build a valid object (the others break one on purpose).
VALID_OBJECT_SCENARIOS = {"valid_object", "object_only_required", "object_required_and_optional"}


def _mislabelled_multipart(case):
    """schemathesis 4.32.5's coverage phase emits the valid property combinations of a multipart
    body in negative mode too: its validator does not count the generated file (a `Binary`, not
    a `str`) as the `type: string` a `format: binary` field is, so such a value is never
    recognised as valid and is sent as "invalid". The fuzzing phase likewise sends a multipart
    body it did not mutate at all (no mutations recorded) as negative. Nothing in such a case is
    invalid."""
    if case.media_type != "multipart/form-data":
        return False
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    if getattr(data, "mutations", ()):
        return False
    scenario = getattr(data, "scenario", None)
    return scenario is None or scenario.value in VALID_OBJECT_SCENARIOS


FORM_MEDIA_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}
# Operations whose body may be a form of text fields only (no file).
TEXT_FORMS = {("PATCH", "/compat/cms/files/{api_id}"), ("PATCH", "/compat/cms/files/{api_id}/")}


def _a_violation_no_text_form_can_carry(failure, case):
    """Every field of a form is text: a negative case that gives a field another JSON type (an
    object, a number, null, a list in one field) sends that value's text, which is a valid value of
    a text field (the CMS PATCH's `tags: {}` arrives as the tag `{}`). Only "schema-violating
    request accepted", only for the CMS PATCH sent as a form; its JSON body keeps the check, and
    the form's field names (`propertyNames`) are checked by the server whatever this says."""
    if type(failure).__name__ != "AcceptedNegativeData" or case.media_type not in FORM_MEDIA_TYPES:
        return False
    return (case.operation.method.upper(), _path(case)) in TEXT_FORMS


@schemathesis.hook
def filter_failure(context, failure, case, response):
    kind = type(failure).__name__
    codes = INEXPRESSIBLE.get((case.operation.method.upper(), _path(case)), set())
    if kind == "RejectedPositiveData" and _error_code(response) in codes:
        return False
    if kind == "AcceptedNegativeData" and _mislabelled_multipart(case):
        return False
    if _a_violation_no_text_form_can_carry(failure, case):
        return False
    if _a_404_about_another_resource(failure, case, response):
        return False
    return _not_about_a_signed_case(failure, case)


def _a_404_about_another_resource(failure, case, response):
    """The stateful phase reads any 404 right after a creation as "the created resource is gone".
    A request on the new file or folder may name another one in its body (a `folder_id` trashed or
    purged earlier in the scenario), and its 404 is about that one. Only that check, only on the
    file and folder routes, and only when the created resource answers to its own GET."""
    if type(failure).__name__ != "EnsureResourceAvailability" or response is None or response.status_code != 404:
        return False
    path = _path(case)
    resource_id = (case.path_parameters or {}).get("id")
    for collection in ("/v1/files/{id}", "/v1/folders/{id}"):
        if resource_id and path.startswith(collection):
            there = API.get(BASE + collection.replace("{id}", str(resource_id)), timeout=30)
            return there.status_code == 200
    return False


def _not_about_a_signed_case(failure, case):
    """A signed case no longer carries the path and query schemathesis generated: when those were
    its negative part (a broken `sig`, `max` or `expires`), the hook replaced them with a valid
    signature, so "invalid data accepted" is about data never sent. Only that check, only on
    cases this hook signed (whose body was positive, or it would not have signed them)."""
    return not (id(case) in _signed and type(failure).__name__ == "AcceptedNegativeData")


@schemathesis.hook
def after_call(context, case, response):
    if id(case) in _signed:
        with open(LOG, "a") as log:
            log.write(f"{case.operation.method.upper()} {case.operation.path} {response.status_code}\n")
