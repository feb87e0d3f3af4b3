// Cabinet's TypeScript SDK (clients/typescript) as one ES module, for the web console (which has
// no bundler and may load scripts from its own origin only). GENERATED from clients/typescript/src
// by `npm run build:console` there (tsc, then scripts/bundle-console.mjs): do not edit it; run
// that and commit the result. dev/test-typescript-sdk fails when this file is stale.

// ---- errors.ts
/** Any answer from Cabinet (or from the storage a signed URL points at) that is not a success. */
export class CabinetError extends Error {
    /** HTTP status (0 when no answer came back). */
    status;
    /** The API's error code, e.g. `not_found`, `quota_exceeded`, `parts_missing`. */
    code;
    /** The parsed JSON body (or the raw text when it was not JSON). */
    body;
    /** The `X-Request-Id` of the answer, when there was one. */
    requestId;
    constructor(status, code, message, body, requestId = null) {
        super(message);
        this.name = new.target.name;
        this.status = status;
        this.code = code;
        this.body = body;
        this.requestId = requestId;
    }
}
/** 400 and 422: the request was malformed or its content refused (`invalid_query`, `checksum_mismatch`, …). */
export class InvalidRequestError extends CabinetError {
}
/** 401: missing, invalid or revoked key or token. */
export class UnauthorizedError extends CabinetError {
}
/** 403: the key's role or the access rules do not allow it. */
export class ForbiddenError extends CabinetError {
}
/** 404: no such file, folder, upload or workspace (or not visible to this key). */
export class NotFoundError extends CabinetError {
}
/** 409 and 412: conflicts (`name_conflict`, `parts_missing`, `folder_cycle`, …). */
export class ConflictError extends CabinetError {
    /** With `parts_missing`: the part numbers still to send. */
    get missingParts() {
        const detail = this.body?.error;
        return Array.isArray(detail?.missing_parts) ? detail.missing_parts : [];
    }
}
/** 413: the file or the body is larger than the server accepts. */
export class TooLargeError extends CabinetError {
}
/** 429: too many requests, or too many uploads at once; retry after `retryAfter` seconds. */
export class RateLimitedError extends CabinetError {
    /** Seconds to wait, from `Retry-After` (null when absent). */
    retryAfter;
    constructor(status, code, message, body, requestId, retryAfter) {
        super(status, code, message, body, requestId);
        this.retryAfter = retryAfter;
    }
}
/** 507: the workspace's storage quota would be exceeded. */
export class QuotaExceededError extends CabinetError {
}
/** 5xx (other than 507), or no answer at all; a 503 says when to retry in `retryAfter`. */
export class ServerError extends CabinetError {
    /** Seconds to wait, from `Retry-After` (null when absent). */
    retryAfter;
    constructor(status, code, message, body, requestId = null, retryAfter = null) {
        super(status, code, message, body, requestId);
        this.retryAfter = retryAfter;
    }
}
/**
 * An upload stopped by its `signal` (or by a failure) before it completed. The reservation and
 * the parts already received stay on the server: pass `uploadId` as `resumeUploadId` to send the
 * rest, or cancel it with `cabinet.uploads.cancel(uploadId)`.
 */
export class UploadInterruptedError extends Error {
    uploadId;
    /** False for a single-PUT upload: its reservation was cancelled; upload the file again. */
    resumable;
    constructor(uploadId, cause, resumable = true) {
        super(resumable
            ? `upload ${uploadId} was interrupted; resume it with {resumeUploadId: "${uploadId}"}`
            : `upload ${uploadId} was interrupted and cancelled (a single PUT cannot be resumed)`, { cause });
        this.name = "UploadInterruptedError";
        this.uploadId = uploadId;
        this.resumable = resumable;
    }
}
/** Builds the error class for a failed response. */
export async function errorFromResponse(response) {
    const text = await response.text().catch(() => "");
    let body = text;
    let code = `http_${response.status}`;
    let message = text.slice(0, 500) || response.statusText || `HTTP ${response.status}`;
    try {
        const parsed = JSON.parse(text);
        body = parsed;
        if (parsed && typeof parsed.error === "object" && parsed.error) {
            code = String(parsed.error.code ?? code);
            message = String(parsed.error.message ?? message);
        }
    }
    catch {
        // S3 answers XML: <Error><Code>…</Code><Message>…</Message></Error>
        const xmlCode = /<Code>([^<]*)<\/Code>/.exec(text);
        const xmlMessage = /<Message>([^<]*)<\/Message>/.exec(text);
        if (xmlCode)
            code = xmlCode[1];
        if (xmlMessage)
            message = xmlMessage[1];
    }
    return makeError(response.status, code, message, body, response.headers.get("x-request-id"), response.headers.get("retry-after"));
}
export function makeError(status, code, message, body, requestId = null, retryAfterHeader = null) {
    switch (status) {
        case 400:
        case 422:
            return new InvalidRequestError(status, code, message, body, requestId);
        case 401:
            return new UnauthorizedError(status, code, message, body, requestId);
        case 403:
            return new ForbiddenError(status, code, message, body, requestId);
        case 404:
            return new NotFoundError(status, code, message, body, requestId);
        case 409:
        case 412:
            return new ConflictError(status, code, message, body, requestId);
        case 413:
            return new TooLargeError(status, code, message, body, requestId);
        case 429:
            return new RateLimitedError(status, code, message, body, requestId, seconds(retryAfterHeader));
        case 507:
            return new QuotaExceededError(status, code, message, body, requestId);
        default:
            if (status >= 500 || status === 0)
                return new ServerError(status, code, message, body, requestId, seconds(retryAfterHeader));
            return new CabinetError(status, code, message, body, requestId);
    }
}
/** A `Retry-After` of seconds, as a number (null when absent or not a number). */
function seconds(retryAfterHeader) {
    const value = retryAfterHeader === null ? NaN : Number(retryAfterHeader);
    return Number.isFinite(value) ? value : null;
}

// ---- index.ts
/** Items of a list, fetched a page at a time as they are iterated, following `next_cursor`. */
export class PageIterator {
    fetchPage;
    constructor(fetchPage) {
        this.fetchPage = fetchPage;
    }
    /** The pages themselves. */
    async *pages() {
        let cursor;
        for (;;) {
            const page = await this.fetchPage(cursor);
            yield page;
            if (!page.hasMore || !page.nextCursor)
                return;
            cursor = page.nextCursor;
        }
    }
    async *[Symbol.asyncIterator]() {
        for await (const page of this.pages())
            yield* page.data;
    }
    /** Every item, in one array. */
    async toArray() {
        const all = [];
        for await (const item of this)
            all.push(item);
        return all;
    }
}
const MiB = 1024 * 1024;
const DEFAULT_THRESHOLD = 16 * MiB;
const DEFAULT_PART_SIZE = 16 * MiB;
const DEFAULT_HASH_LIMIT = 1024 * MiB;
const PART_URL_BATCH = 100;
const PART_ATTEMPTS = 3;
/** The longest a server's `Retry-After` is waited for before a retry, in seconds. */
const MAX_RETRY_AFTER = 60;
/** How long to wait before sending again after `error`: its `Retry-After` when the server gave one. */
function retryWait(error, attempt) {
    const retryAfter = error instanceof RateLimitedError || error instanceof ServerError ? error.retryAfter : null;
    return retryAfter !== null ? Math.min(retryAfter, MAX_RETRY_AFTER) * 1000 : 250 * 2 ** attempt;
}
/** Whether an upload URL refused with `error` takes the same bytes again: 429 and 503 leave the upload waiting for them. */
function leavesItWaiting(error) {
    return error instanceof CabinetError && (error.status === 429 || error.status === 503);
}
/** How often, and how far apart, a stopped upload's cancel is tried while its bytes still arrive. */
const CANCEL_RETRIES = 40;
const CANCEL_RETRY_PAUSE_MS = 50;
/** Lowercase hex SHA-256 of a blob, with WebCrypto (`crypto.subtle`). */
export async function sha256Hex(data) {
    const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
    const digest = await crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
async function toBlob(source, mimeType) {
    if (source instanceof Blob)
        return source;
    if (source instanceof ArrayBuffer)
        return new Blob([source], { type: mimeType ?? "" });
    if (ArrayBuffer.isView(source)) {
        const view = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
        return new Blob([view], { type: mimeType ?? "" });
    }
    if (typeof source.getReader === "function") {
        // The size must be declared when reserving: a stream is read to its end first.
        return new Response(source).blob();
    }
    throw new TypeError("upload: expected a Blob, File, ArrayBuffer, typed array or ReadableStream");
}
function isAbort(error, signal) {
    return (signal?.aborted === true ||
        (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")));
}
function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted)
            return reject(signal.reason);
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}
function enc(id) {
    return encodeURIComponent(id);
}
export class Cabinet {
    baseUrl;
    apiKey;
    workspaceId;
    fetchImpl;
    /** Whether whole-file PUTs may go through XMLHttpRequest for their progress (browsers, own fetch). */
    xhrProgress;
    constructor(options) {
        if (!options?.baseUrl)
            throw new TypeError("Cabinet: baseUrl is required");
        this.baseUrl = options.baseUrl.replace(/\/+$/, "");
        this.apiKey = options.apiKey;
        this.workspaceId = options.workspaceId;
        const f = options.fetch ?? globalThis.fetch;
        if (!f)
            throw new TypeError("Cabinet: no fetch available (Node >= 20 or a browser)");
        this.fetchImpl = f.bind(globalThis);
        this.xhrProgress = !options.fetch && typeof XMLHttpRequest !== "undefined";
    }
    /** Sends a request to the API and parses its JSON answer; failures throw a CabinetError subclass. */
    async request(method, path, options = {}) {
        const response = await this.send(method, path, options);
        if (response.status === 204)
            return undefined;
        const text = await response.text();
        return (text ? JSON.parse(text) : undefined);
    }
    /** Like `request`, but returns the successful Response unread. */
    async send(method, path, options = {}) {
        const url = new URL(this.baseUrl + path);
        for (const [key, value] of Object.entries(options.query ?? {})) {
            if (value === undefined || value === null)
                continue;
            url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
        }
        const headers = { Accept: "application/json" };
        if (this.apiKey)
            headers.Authorization = `Bearer ${this.apiKey}`;
        if (this.workspaceId)
            headers["X-Cabinet-Workspace"] = this.workspaceId;
        let body;
        if (options.body !== undefined) {
            headers["Content-Type"] = "application/json";
            body = JSON.stringify(options.body);
        }
        let response;
        try {
            response = await this.fetchImpl(url, { method, headers, body, signal: options.signal });
        }
        catch (error) {
            if (isAbort(error, options.signal))
                throw error;
            throw new ServerError(0, "network_error", `${method} ${path}: ${error?.message ?? error}`, null);
        }
        if (!response.ok)
            throw await errorFromResponse(response);
        return response;
    }
    // ----- files -----
    files = {
        /** Every file matching the filters, following the cursor (`limit` is the page size). */
        list: (query = {}) => this.paginate("/v1/files", query),
        /** Files and folders whose names contain `q`, following the cursor. */
        search: (q, query = {}) => this.search(q, query),
        get: (id, options = {}) => this.request("GET", `/v1/files/${enc(id)}`, options),
        update: (id, changes) => this.request("PATCH", `/v1/files/${enc(id)}`, { body: changes }),
        /** To the trash (or purged with `permanent`); `force` deletes a file something references. */
        delete: (id, options = {}) => this.request("DELETE", `/v1/files/${enc(id)}`, { query: options }),
        restore: (id) => this.request("POST", `/v1/files/${enc(id)}/restore`),
        /** Toggles the favorite mark. */
        favorite: (id) => this.request("POST", `/v1/files/${enc(id)}/favorite`),
        downloadUrl: (id, options = {}) => this.request("GET", `/v1/files/${enc(id)}/download-url`, {
            query: { expires_in: options.expiresIn, download: options.download, lasting: options.lasting },
        }),
        /** The file's bytes, as an unread Response (stream `body`, or `await .blob()`), from a signed URL. */
        download: async (id, options = {}) => {
            const { url } = await this.files.downloadUrl(id);
            const response = await this.fetchImpl(new URL(url, this.baseUrl), { signal: options.signal });
            if (!response.ok)
                throw await errorFromResponse(response);
            return response;
        },
    };
    /** Files and folders whose names contain `q`, following the cursor. */
    search(q, query = {}) {
        return this.paginate("/v1/search", { ...query, q });
    }
    // ----- folders -----
    folders = {
        list: (query = {}) => this.paginate("/v1/folders", query),
        create: (name, options = {}) => this.request("POST", "/v1/folders", { body: { name, parent_id: options.parentId ?? null } }),
        get: (id) => this.request("GET", `/v1/folders/${enc(id)}`),
        update: (id, changes) => this.request("PATCH", `/v1/folders/${enc(id)}`, { body: changes }),
        delete: (id, options = {}) => this.request("DELETE", `/v1/folders/${enc(id)}`, { query: options }),
        restore: (id) => this.request("POST", `/v1/folders/${enc(id)}/restore`),
    };
    // ----- trash -----
    trash = {
        /** What is in the trash (one page: the API has no cursor here; `limit` up to 500). */
        list: (query = {}) => new PageIterator(async () => {
            const page = await this.request("GET", "/v1/trash", { query: query });
            return { data: page.data, hasMore: false, nextCursor: null };
        }),
        /** Purges everything in the trash. */
        empty: () => this.request("DELETE", "/v1/trash"),
    };
    // ----- uploads -----
    uploads = {
        get: (id) => this.request("GET", `/v1/uploads/${enc(id)}`),
        /** Ends an open upload and releases its reservation (and its parts). */
        cancel: (id) => this.request("DELETE", `/v1/uploads/${enc(id)}`),
        parts: (id, options = {}) => this.request("GET", `/v1/uploads/${enc(id)}/parts`, options),
        complete: (id, options = {}) => this.request("POST", `/v1/uploads/${enc(id)}/complete`, options),
    };
    quota() {
        return this.request("GET", "/v1/quota");
    }
    paginate(path, query) {
        return new PageIterator(async (cursor) => {
            const page = await this.request("GET", path, { query: { ...query, cursor } });
            return { data: page.data, total: page.total, hasMore: page.has_more, nextCursor: page.next_cursor ?? null };
        });
    }
    /**
     * Uploads a file and returns it once the server has verified it (size, and SHA-256 when
     * declared). Up to `multipartThreshold` bytes: one PUT to the signed URL; above: parts sent in
     * parallel to their signed URLs, then completed. An aborted `signal` rejects with an
     * UploadInterruptedError whose `uploadId` resumes a multipart upload (`resumeUploadId`).
     */
    async upload(source, options = {}) {
        const { signal } = options;
        signal?.throwIfAborted();
        const blob = await toBlob(source, options.mimeType);
        const size = blob.size;
        if (options.resumeUploadId)
            return this.resume(options.resumeUploadId, blob, options);
        const name = options.name ?? blob.name;
        if (!name)
            throw new TypeError("upload: a name is required (options.name) for anything but a File");
        const threshold = options.multipartThreshold ?? DEFAULT_THRESHOLD;
        const multipart = size > threshold;
        let sha256;
        if (typeof options.sha256 === "string")
            sha256 = options.sha256.toLowerCase();
        else if (options.sha256 !== false && size <= (options.hashLimit ?? DEFAULT_HASH_LIMIT))
            sha256 = await sha256Hex(blob);
        signal?.throwIfAborted();
        const request = {
            name,
            size,
            folder_id: options.folder ?? null,
            mime_type: options.mimeType ?? (blob.type || null),
            sha256: sha256 ?? null,
            expires_in: options.expiresIn ?? null,
        };
        if (multipart)
            Object.assign(request, { multipart: true, part_size: options.partSize ?? DEFAULT_PART_SIZE });
        const ticket = await this.request("POST", "/v1/uploads", { body: request, signal });
        if (!ticket.multipart) {
            return this.sendWhole(ticket, blob, sha256, options);
        }
        return this.sendParts(ticket.id, blob, ticket.multipart.part_size, ticket.multipart.part_count, new Set(), sha256, options);
    }
    async resume(uploadId, blob, options) {
        const upload = await this.uploads.get(uploadId);
        if (upload.status === "SUCCESS" && upload.file)
            return this.verify(upload, blob.size, upload.sha256 ?? undefined);
        if (upload.size !== blob.size) {
            throw makeError(400, "size_mismatch", `upload ${uploadId} expects ${upload.size} bytes, this file has ${blob.size}`, null);
        }
        const parts = await this.uploads.parts(uploadId, { signal: options.signal });
        const received = new Set();
        for (const part of parts.parts) {
            const expected = Math.min(parts.part_size, blob.size - (part.part_number - 1) * parts.part_size);
            if (part.size === expected)
                received.add(part.part_number);
        }
        return this.sendParts(uploadId, blob, parts.part_size, parts.part_count, received, upload.sha256 ?? undefined, options);
    }
    async sendWhole(ticket, blob, sha256, options) {
        const { signal, onProgress } = options;
        const size = blob.size;
        if (!ticket.upload_url)
            throw makeError(0, "no_upload_url", `upload ${ticket.id}: the ticket has no upload_url`, ticket);
        onProgress?.({ uploadId: ticket.id, loaded: 0, total: size, sent: 0 });
        try {
            const method = ticket.method ?? "PUT";
            for (let attempt = 1;; attempt++) {
                try {
                    if (onProgress && this.xhrProgress) {
                        // fetch cannot report how much of a body went out; XMLHttpRequest can.
                        await this.putWithProgress(ticket.upload_url, method, ticket.headers ?? {}, blob, signal, (loaded) => onProgress({ uploadId: ticket.id, loaded, total: size, sent: loaded }));
                    }
                    else {
                        await this.putBytes(ticket.upload_url, method, ticket.headers ?? {}, blob, signal);
                    }
                    break;
                }
                catch (error) {
                    // 429 and 503 leave the upload waiting for its bytes: the same URL takes them again.
                    // After a network failure (the answer lost, or the request never reached the server)
                    // the upload is asked: one still waiting takes them again too.
                    if (!(error instanceof CabinetError) || attempt >= PART_ATTEMPTS)
                        throw error;
                    if (!leavesItWaiting(error) && !(error.status === 0 && (await this.stillWaiting(ticket.id))))
                        throw error;
                    await sleep(retryWait(error, attempt), signal);
                }
            }
        }
        catch (error) {
            // A single PUT cannot be resumed: release the reservation of one stopped, or still kept
            // waiting after a 429 or 503, which would hold it until it expired. After a network failure
            // the bytes may have landed (on S3, its answer lost): the upload is left for the reconciler.
            if (isAbort(error, signal) || leavesItWaiting(error))
                await this.cancelStopped(ticket.id);
            if (isAbort(error, signal))
                throw new UploadInterruptedError(ticket.id, error, false);
            throw error;
        }
        onProgress?.({ uploadId: ticket.id, loaded: size, total: size, sent: size });
        const upload = await this.uploads.complete(ticket.id);
        return this.verify(upload, size, sha256);
    }
    /** Whether the upload still waits for its bytes (false when that cannot be known). */
    async stillWaiting(uploadId) {
        try {
            return (await this.uploads.get(uploadId)).status === "WAITING";
        }
        catch {
            return false;
        }
    }
    /**
     * Cancels an upload whose single PUT was stopped. The server may not yet have seen the body end
     * (`upload_in_progress`): the cancel is tried again for about two seconds, so the reservation is
     * released before the caller hears of the stop. Other failures are left to the reservation's
     * expiry.
     */
    async cancelStopped(uploadId) {
        for (let attempt = 0; attempt < CANCEL_RETRIES; attempt++) {
            try {
                await this.uploads.cancel(uploadId);
                return;
            }
            catch (error) {
                if (!(error instanceof CabinetError && error.code === "upload_in_progress"))
                    return;
                await sleep(CANCEL_RETRY_PAUSE_MS);
            }
        }
    }
    async sendParts(uploadId, blob, partSize, partCount, received, sha256, options) {
        const { onProgress } = options;
        const userSignal = options.signal;
        // One part failing for good stops the others: an internal signal that follows the caller's.
        const stop = new AbortController();
        const onUserAbort = () => stop.abort(userSignal.reason);
        if (userSignal?.aborted)
            stop.abort(userSignal.reason);
        else
            userSignal?.addEventListener("abort", onUserAbort, { once: true });
        const signal = stop.signal;
        const size = blob.size;
        const concurrency = Math.max(1, options.concurrency ?? 4);
        const partBytes = (n) => Math.min(partSize, size - (n - 1) * partSize);
        let loaded = 0;
        for (const n of received)
            loaded += partBytes(n);
        let sent = 0;
        const report = () => onProgress?.({ uploadId, loaded, total: size, sent, partsDone: received.size, partCount });
        const sendMissing = async (missing) => {
            for (let start = 0; start < missing.length; start += PART_URL_BATCH) {
                signal?.throwIfAborted();
                const batch = missing.slice(start, start + PART_URL_BATCH);
                const { parts } = await this.request("POST", `/v1/uploads/${enc(uploadId)}/parts`, {
                    body: { part_numbers: batch },
                    signal,
                });
                const queue = [...parts];
                const worker = async () => {
                    for (let part = queue.shift(); part; part = queue.shift()) {
                        signal?.throwIfAborted();
                        const offset = (part.part_number - 1) * partSize;
                        const slice = blob.slice(offset, offset + part.size);
                        await this.putPart(part, slice, signal);
                        received.add(part.part_number);
                        loaded += part.size;
                        sent += part.size;
                        report();
                    }
                };
                await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, () => worker().catch((error) => {
                    if (!stop.signal.aborted)
                        stop.abort(error);
                    throw error;
                })));
            }
        };
        try {
            report();
            const missing = [];
            for (let n = 1; n <= partCount; n++)
                if (!received.has(n))
                    missing.push(n);
            await sendMissing(missing);
            for (let attempt = 0;; attempt++) {
                try {
                    const upload = await this.uploads.complete(uploadId, { signal });
                    return this.verify(upload, size, sha256);
                }
                catch (error) {
                    // Parts the server did not keep: send them again, then complete again.
                    if (error instanceof ConflictError && error.code === "parts_missing" && attempt < 2 && error.missingParts.length) {
                        for (const n of error.missingParts)
                            received.delete(n);
                        await sendMissing(error.missingParts);
                        continue;
                    }
                    throw error;
                }
            }
        }
        catch (error) {
            // Aborted, or the network or server failed past the retries: the upload stays open and
            // resumable. Refusals (4xx) are thrown as they are.
            if (userSignal?.aborted || error instanceof ServerError)
                throw new UploadInterruptedError(uploadId, error, true);
            throw error;
        }
        finally {
            userSignal?.removeEventListener("abort", onUserAbort);
        }
    }
    async putPart(part, slice, signal) {
        for (let attempt = 1;; attempt++) {
            try {
                await this.putBytes(part.url, part.method, part.headers, slice, signal);
                return;
            }
            catch (error) {
                const retriable = !isAbort(error, signal) && (error instanceof ServerError || error instanceof RateLimitedError);
                if (!retriable || attempt >= PART_ATTEMPTS)
                    throw error;
                await sleep(retryWait(error, attempt), signal);
            }
        }
    }
    /** PUTs bytes to a signed URL (Cabinet's own, or S3's): no API key, the ticket's headers exactly. */
    async putBytes(url, method, headers, body, signal) {
        let response;
        try {
            response = await this.fetchImpl(new URL(url, this.baseUrl), { method, headers, body, signal });
        }
        catch (error) {
            if (isAbort(error, signal))
                throw error;
            throw new ServerError(0, "network_error", `${method} upload: ${error?.message ?? error}`, null);
        }
        if (!response.ok)
            throw await errorFromResponse(response);
        await response.body?.cancel().catch(() => undefined);
    }
    /** `putBytes` through XMLHttpRequest, reporting the bytes sent as they go. */
    putWithProgress(url, method, headers, body, signal, progress) {
        return new Promise((resolve, reject) => {
            const xhr = new XMLHttpRequest();
            xhr.open(method, new URL(url, this.baseUrl).toString());
            for (const [name, value] of Object.entries(headers)) {
                try {
                    xhr.setRequestHeader(name, value);
                }
                catch {
                    // A header the browser sets itself (Content-Length).
                }
            }
            xhr.upload.onprogress = (event) => {
                if (event.lengthComputable)
                    progress(event.loaded);
            };
            xhr.onload = () => {
                if (xhr.status >= 200 && xhr.status < 300)
                    return resolve();
                const answered = new Headers();
                for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
                    const colon = line.indexOf(":");
                    if (colon > 0)
                        answered.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
                }
                errorFromResponse(new Response(xhr.responseText, { status: xhr.status, headers: answered })).then(reject, reject);
            };
            xhr.onerror = () => reject(new ServerError(0, "network_error", `${method} upload: the request failed`, null));
            xhr.onabort = () => reject(signal?.reason ?? new DOMException("the upload was aborted", "AbortError"));
            signal?.addEventListener("abort", () => xhr.abort(), { once: true });
            xhr.send(body);
        });
    }
    verify(upload, size, sha256) {
        const file = upload.file;
        if (upload.status !== "SUCCESS" || !file) {
            throw makeError(0, "upload_not_complete", `upload ${upload.id} ended ${upload.status}${upload.reason ? ` (${upload.reason})` : ""}`, upload);
        }
        if (file.size !== size || (sha256 && file.sha256 !== sha256)) {
            throw makeError(0, "verification_failed", `upload ${upload.id}: the stored file (${file.size} bytes, ${file.sha256}) is not the one sent`, upload);
        }
        return file;
    }
}
export default Cabinet;
