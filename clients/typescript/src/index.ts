// Cabinet's TypeScript client: a small hand-written layer over the types openapi-typescript
// generates from the native OpenAPI document (src/schema.d.ts). `fetch` only, no runtime
// dependencies: browsers and Node >= 20.
import type { components, operations } from "./schema.js";
import {
  CabinetError,
  ConflictError,
  errorFromResponse,
  makeError,
  RateLimitedError,
  ServerError,
  UploadInterruptedError,
} from "./errors.js";

export * from "./errors.js";
export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type FileJson = Schemas["FileJson"];
export type FolderJson = Schemas["FolderJson"];
export type ItemJson = Schemas["ItemJson"];
export type UploadJson = Schemas["UploadJson"];
export type UploadTicketJson = Schemas["UploadTicketJson"];
export type PartListJson = Schemas["PartListJson"];
export type PartUrlJson = Schemas["PartUrlJson"];
export type QuotaJson = Schemas["QuotaJson"];
export type DownloadUrlJson = Schemas["DownloadUrlJson"];
export type FavoriteJson = Schemas["FavoriteJson"];
export type RestoredFileJson = Schemas["RestoredFileJson"];
export type RestoredFolderJson = Schemas["RestoredFolderJson"];
export type UpdateFileRequest = Schemas["UpdateFileRequest"];
export type UpdateFolderRequest = Schemas["UpdateFolderRequest"];

type QueryOf<Op extends keyof operations> = operations[Op]["parameters"] extends { query?: infer Q } ? NonNullable<Q> : never;
/** Filters and sort of `GET /v1/files` (the cursor is followed for you). */
export type ListFilesQuery = Omit<QueryOf<"list_files">, "cursor" | "offset">;
/** Filters and sort of `GET /v1/search`, without `q` (given separately). */
export type SearchQuery = Omit<QueryOf<"search">, "cursor" | "offset" | "q">;
/** Filters and sort of `GET /v1/folders`. */
export type ListFoldersQuery = Omit<QueryOf<"list_folders">, "cursor" | "offset">;
export type TrashQuery = QueryOf<"list_trash">;

export interface CabinetOptions {
  /** The server, e.g. `https://files.example.com` (no trailing `/v1`). */
  baseUrl: string;
  /** An API key (`cab_…`) or an end-user token, sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** For keys with several workspaces: sent as `X-Cabinet-Workspace`. */
  workspaceId?: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  query?: Record<string, unknown>;
  body?: unknown;
  signal?: AbortSignal;
}

/** One page of a list: its items and the cursor of the next. */
export interface Page<T> {
  data: T[];
  total?: number;
  hasMore: boolean;
  nextCursor: string | null;
}

/** Items of a list, fetched a page at a time as they are iterated, following `next_cursor`. */
export class PageIterator<T> implements AsyncIterable<T> {
  constructor(private readonly fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {}

  /** The pages themselves. */
  async *pages(): AsyncGenerator<Page<T>> {
    let cursor: string | undefined;
    for (;;) {
      const page = await this.fetchPage(cursor);
      yield page;
      if (!page.hasMore || !page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const page of this.pages()) yield* page.data;
  }

  /** Every item, in one array. */
  async toArray(): Promise<T[]> {
    const all: T[] = [];
    for await (const item of this) all.push(item);
    return all;
  }
}

export type UploadSource = Blob | ArrayBuffer | ArrayBufferView | ReadableStream<Uint8Array>;

export interface UploadProgress {
  uploadId: string;
  /** Bytes the server holds for this upload, counting parts received before a resume. */
  loaded: number;
  /** The file's size. */
  total: number;
  /** Bytes this call has sent (without the parts a resumed upload already had). */
  sent: number;
  /** Multipart: parts received so far, and how many there are. */
  partsDone?: number;
  partCount?: number;
}

export interface UploadOptions {
  /** The file's name; defaults to a `File`'s own name. */
  name?: string;
  /** The folder to put it in (`fld_…`); the root when absent. */
  folder?: string | null;
  mimeType?: string;
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting stops the upload; multipart ones can then be resumed (see UploadInterruptedError). */
  signal?: AbortSignal;
  /** Multipart part size in bytes (5 MiB to 5 GiB; default 16 MiB). */
  partSize?: number;
  /** Parts sent at once (default 4). */
  concurrency?: number;
  /** Files larger than this go in parts (default 16 MiB). */
  multipartThreshold?: number;
  /** Resume this multipart upload: send only the parts the server does not have, then complete. */
  resumeUploadId?: string;
  /**
   * The SHA-256 (lowercase hex) to declare; the server refuses bytes that do not match. By
   * default it is computed with WebCrypto for files up to `hashLimit` bytes (default 1 GiB:
   * WebCrypto digests whole buffers); `false` declares none (the server still computes it).
   */
  sha256?: string | false;
  hashLimit?: number;
  /** Seconds the reservation stays open. */
  expiresIn?: number;
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
function retryWait(error: unknown, attempt: number): number {
  const retryAfter = error instanceof RateLimitedError || error instanceof ServerError ? error.retryAfter : null;
  return retryAfter !== null ? Math.min(retryAfter, MAX_RETRY_AFTER) * 1000 : 250 * 2 ** attempt;
}
/** Whether an upload URL refused with `error` takes the same bytes again: 429 and 503 leave the upload waiting for them. */
function leavesItWaiting(error: unknown): boolean {
  return error instanceof CabinetError && (error.status === 429 || error.status === 503);
}
/** How often, and how far apart, a stopped upload's cancel is tried while its bytes still arrive. */
const CANCEL_RETRIES = 40;
const CANCEL_RETRY_PAUSE_MS = 50;

/** Lowercase hex SHA-256 of a blob, with WebCrypto (`crypto.subtle`). */
export async function sha256Hex(data: Blob | ArrayBuffer | ArrayBufferView): Promise<string> {
  const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
  const digest = await crypto.subtle.digest("SHA-256", buffer as BufferSource);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function toBlob(source: UploadSource, mimeType?: string): Promise<Blob> {
  if (source instanceof Blob) return source;
  if (source instanceof ArrayBuffer) return new Blob([source], { type: mimeType ?? "" });
  if (ArrayBuffer.isView(source)) {
    const view = new Uint8Array(source.buffer as ArrayBuffer, source.byteOffset, source.byteLength);
    return new Blob([view], { type: mimeType ?? "" });
  }
  if (typeof (source as ReadableStream).getReader === "function") {
    // The size must be declared when reserving: a stream is read to its end first.
    return new Response(source as ReadableStream<Uint8Array>).blob();
  }
  throw new TypeError("upload: expected a Blob, File, ArrayBuffer, typed array or ReadableStream");
}

function isAbort(error: unknown, signal?: AbortSignal): boolean {
  return (
    signal?.aborted === true ||
    (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError"))
  );
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

export class Cabinet {
  readonly baseUrl: string;
  private readonly apiKey?: string;
  private readonly workspaceId?: string;
  private readonly fetchImpl: typeof fetch;
  /** Whether whole-file PUTs may go through XMLHttpRequest for their progress (browsers, own fetch). */
  private readonly xhrProgress: boolean;

  constructor(options: CabinetOptions) {
    if (!options?.baseUrl) throw new TypeError("Cabinet: baseUrl is required");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.workspaceId = options.workspaceId;
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("Cabinet: no fetch available (Node >= 20 or a browser)");
    this.fetchImpl = f.bind(globalThis);
    this.xhrProgress = !options.fetch && typeof XMLHttpRequest !== "undefined";
  }

  /** Sends a request to the API and parses its JSON answer; failures throw a CabinetError subclass. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Like `request`, but returns the successful Response unread. */
  async send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined || value === null) continue;
      url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    if (this.workspaceId) headers["X-Cabinet-Workspace"] = this.workspaceId;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await this.fetchImpl(url, { method, headers, body, signal: options.signal });
    } catch (error) {
      if (isAbort(error, options.signal)) throw error;
      throw new ServerError(0, "network_error", `${method} ${path}: ${(error as Error)?.message ?? error}`, null);
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  // ----- files -----

  readonly files = {
    /** Every file matching the filters, following the cursor (`limit` is the page size). */
    list: (query: ListFilesQuery = {}): PageIterator<FileJson> =>
      this.paginate<FileJson>("/v1/files", query as Record<string, unknown>),
    /** Files and folders whose names contain `q`, following the cursor. */
    search: (q: string, query: SearchQuery = {}): PageIterator<ItemJson> => this.search(q, query),
    get: (id: string, options: { signal?: AbortSignal } = {}): Promise<FileJson> =>
      this.request("GET", `/v1/files/${enc(id)}`, options),
    update: (id: string, changes: UpdateFileRequest): Promise<FileJson> =>
      this.request("PATCH", `/v1/files/${enc(id)}`, { body: changes }),
    /** To the trash (or purged with `permanent`); `force` deletes a file something references. */
    delete: (id: string, options: { permanent?: boolean; force?: boolean } = {}): Promise<unknown> =>
      this.request("DELETE", `/v1/files/${enc(id)}`, { query: options }),
    restore: (id: string): Promise<RestoredFileJson> => this.request("POST", `/v1/files/${enc(id)}/restore`),
    /** Toggles the favorite mark. */
    favorite: (id: string): Promise<FavoriteJson> => this.request("POST", `/v1/files/${enc(id)}/favorite`),
    downloadUrl: (
      id: string,
      options: { expiresIn?: number; download?: boolean; lasting?: boolean } = {},
    ): Promise<DownloadUrlJson> =>
      this.request("GET", `/v1/files/${enc(id)}/download-url`, {
        query: { expires_in: options.expiresIn, download: options.download, lasting: options.lasting },
      }),
    /** The file's bytes, as an unread Response (stream `body`, or `await .blob()`), from a signed URL. */
    download: async (id: string, options: { signal?: AbortSignal } = {}): Promise<Response> => {
      const { url } = await this.files.downloadUrl(id);
      const response = await this.fetchImpl(new URL(url, this.baseUrl), { signal: options.signal });
      if (!response.ok) throw await errorFromResponse(response);
      return response;
    },
  };

  /** Files and folders whose names contain `q`, following the cursor. */
  search(q: string, query: SearchQuery = {}): PageIterator<ItemJson> {
    return this.paginate<ItemJson>("/v1/search", { ...(query as Record<string, unknown>), q });
  }

  // ----- folders -----

  readonly folders = {
    list: (query: ListFoldersQuery = {}): PageIterator<FolderJson> =>
      this.paginate<FolderJson>("/v1/folders", query as Record<string, unknown>),
    create: (name: string, options: { parentId?: string | null } = {}): Promise<FolderJson> =>
      this.request("POST", "/v1/folders", { body: { name, parent_id: options.parentId ?? null } }),
    get: (id: string): Promise<FolderJson> => this.request("GET", `/v1/folders/${enc(id)}`),
    update: (id: string, changes: UpdateFolderRequest): Promise<FolderJson> =>
      this.request("PATCH", `/v1/folders/${enc(id)}`, { body: changes }),
    delete: (id: string, options: { recursive?: boolean; permanent?: boolean; force?: boolean } = {}): Promise<unknown> =>
      this.request("DELETE", `/v1/folders/${enc(id)}`, { query: options }),
    restore: (id: string): Promise<RestoredFolderJson> => this.request("POST", `/v1/folders/${enc(id)}/restore`),
  };

  // ----- trash -----

  readonly trash = {
    /** What is in the trash (one page: the API has no cursor here; `limit` up to 500). */
    list: (query: TrashQuery = {}): PageIterator<ItemJson> =>
      new PageIterator<ItemJson>(async () => {
        const page = await this.request<Schemas["TrashJson"]>("GET", "/v1/trash", { query: query as Record<string, unknown> });
        return { data: page.data, hasMore: false, nextCursor: null };
      }),
    /** Purges everything in the trash. */
    empty: (): Promise<unknown> => this.request("DELETE", "/v1/trash"),
  };

  // ----- uploads -----

  readonly uploads = {
    get: (id: string): Promise<UploadJson> => this.request("GET", `/v1/uploads/${enc(id)}`),
    /** Ends an open upload and releases its reservation (and its parts). */
    cancel: (id: string): Promise<unknown> => this.request("DELETE", `/v1/uploads/${enc(id)}`),
    parts: (id: string, options: { signal?: AbortSignal } = {}): Promise<PartListJson> =>
      this.request("GET", `/v1/uploads/${enc(id)}/parts`, options),
    complete: (id: string, options: { signal?: AbortSignal } = {}): Promise<UploadJson> =>
      this.request("POST", `/v1/uploads/${enc(id)}/complete`, options),
  };

  quota(): Promise<QuotaJson> {
    return this.request("GET", "/v1/quota");
  }

  private paginate<T>(path: string, query: Record<string, unknown>): PageIterator<T> {
    return new PageIterator<T>(async (cursor) => {
      const page = await this.request<{ data: T[]; total?: number; has_more: boolean; next_cursor?: string | null }>(
        "GET",
        path,
        { query: { ...query, cursor } },
      );
      return { data: page.data, total: page.total, hasMore: page.has_more, nextCursor: page.next_cursor ?? null };
    });
  }

  /**
   * Uploads a file and returns it once the server has verified it (size, and SHA-256 when
   * declared). Up to `multipartThreshold` bytes: one PUT to the signed URL; above: parts sent in
   * parallel to their signed URLs, then completed. An aborted `signal` rejects with an
   * UploadInterruptedError whose `uploadId` resumes a multipart upload (`resumeUploadId`).
   */
  async upload(source: UploadSource, options: UploadOptions = {}): Promise<FileJson> {
    const { signal } = options;
    signal?.throwIfAborted();
    const blob = await toBlob(source, options.mimeType);
    const size = blob.size;

    if (options.resumeUploadId) return this.resume(options.resumeUploadId, blob, options);

    const name = options.name ?? (blob as File).name;
    if (!name) throw new TypeError("upload: a name is required (options.name) for anything but a File");
    const threshold = options.multipartThreshold ?? DEFAULT_THRESHOLD;
    const multipart = size > threshold;
    let sha256: string | undefined;
    if (typeof options.sha256 === "string") sha256 = options.sha256.toLowerCase();
    else if (options.sha256 !== false && size <= (options.hashLimit ?? DEFAULT_HASH_LIMIT)) sha256 = await sha256Hex(blob);
    signal?.throwIfAborted();

    const request: Schemas["CreateUploadRequest"] = {
      name,
      size,
      folder_id: options.folder ?? null,
      mime_type: options.mimeType ?? (blob.type || null),
      sha256: sha256 ?? null,
      expires_in: options.expiresIn ?? null,
    } as Schemas["CreateUploadRequest"];
    if (multipart) Object.assign(request, { multipart: true, part_size: options.partSize ?? DEFAULT_PART_SIZE });
    const ticket = await this.request<UploadTicketJson>("POST", "/v1/uploads", { body: request, signal });

    if (!ticket.multipart) {
      return this.sendWhole(ticket, blob, sha256, options);
    }
    return this.sendParts(ticket.id, blob, ticket.multipart.part_size, ticket.multipart.part_count, new Set(), sha256, options);
  }

  private async resume(uploadId: string, blob: Blob, options: UploadOptions): Promise<FileJson> {
    const upload = await this.uploads.get(uploadId);
    if (upload.status === "SUCCESS" && upload.file) return this.verify(upload, blob.size, upload.sha256 ?? undefined);
    if (upload.size !== blob.size) {
      throw makeError(400, "size_mismatch", `upload ${uploadId} expects ${upload.size} bytes, this file has ${blob.size}`, null);
    }
    const parts = await this.uploads.parts(uploadId, { signal: options.signal });
    const received = new Set<number>();
    for (const part of parts.parts) {
      const expected = Math.min(parts.part_size, blob.size - (part.part_number - 1) * parts.part_size);
      if (part.size === expected) received.add(part.part_number);
    }
    return this.sendParts(uploadId, blob, parts.part_size, parts.part_count, received, upload.sha256 ?? undefined, options);
  }

  private async sendWhole(ticket: UploadTicketJson, blob: Blob, sha256: string | undefined, options: UploadOptions): Promise<FileJson> {
    const { signal, onProgress } = options;
    const size = blob.size;
    if (!ticket.upload_url) throw makeError(0, "no_upload_url", `upload ${ticket.id}: the ticket has no upload_url`, ticket);
    onProgress?.({ uploadId: ticket.id, loaded: 0, total: size, sent: 0 });
    try {
      const method = ticket.method ?? "PUT";
      for (let attempt = 1; ; attempt++) {
        try {
          if (onProgress && this.xhrProgress) {
            // fetch cannot report how much of a body went out; XMLHttpRequest can.
            await this.putWithProgress(ticket.upload_url, method, ticket.headers ?? {}, blob, signal, (loaded) =>
              onProgress({ uploadId: ticket.id, loaded, total: size, sent: loaded }),
            );
          } else {
            await this.putBytes(ticket.upload_url, method, ticket.headers ?? {}, blob, signal);
          }
          break;
        } catch (error) {
          // 429 and 503 leave the upload waiting for its bytes: the same URL takes them again.
          // After a network failure (the answer lost, or the request never reached the server)
          // the upload is asked: one still waiting takes them again too.
          if (!(error instanceof CabinetError) || attempt >= PART_ATTEMPTS) throw error;
          if (!leavesItWaiting(error) && !(error.status === 0 && (await this.stillWaiting(ticket.id)))) throw error;
          await sleep(retryWait(error, attempt), signal);
        }
      }
    } catch (error) {
      // A single PUT cannot be resumed: release the reservation of one stopped, or still kept
      // waiting after a 429 or 503, which would hold it until it expired. After a network failure
      // the bytes may have landed (on S3, its answer lost): the upload is left for the reconciler.
      if (isAbort(error, signal) || leavesItWaiting(error)) await this.cancelStopped(ticket.id);
      if (isAbort(error, signal)) throw new UploadInterruptedError(ticket.id, error, false);
      throw error;
    }
    onProgress?.({ uploadId: ticket.id, loaded: size, total: size, sent: size });
    const upload = await this.uploads.complete(ticket.id);
    return this.verify(upload, size, sha256);
  }

  /** Whether the upload still waits for its bytes (false when that cannot be known). */
  private async stillWaiting(uploadId: string): Promise<boolean> {
    try {
      return (await this.uploads.get(uploadId)).status === "WAITING";
    } catch {
      return false;
    }
  }

  /**
   * Cancels an upload whose single PUT was stopped. The server may not yet have seen the body end
   * (`upload_in_progress`): the cancel is tried again for about two seconds, so the reservation is
   * released before the caller hears of the stop. Other failures are left to the reservation's
   * expiry.
   */
  private async cancelStopped(uploadId: string): Promise<void> {
    for (let attempt = 0; attempt < CANCEL_RETRIES; attempt++) {
      try {
        await this.uploads.cancel(uploadId);
        return;
      } catch (error) {
        if (!(error instanceof CabinetError && error.code === "upload_in_progress")) return;
        await sleep(CANCEL_RETRY_PAUSE_MS);
      }
    }
  }

  private async sendParts(
    uploadId: string,
    blob: Blob,
    partSize: number,
    partCount: number,
    received: Set<number>,
    sha256: string | undefined,
    options: UploadOptions,
  ): Promise<FileJson> {
    const { onProgress } = options;
    const userSignal = options.signal;
    // One part failing for good stops the others: an internal signal that follows the caller's.
    const stop = new AbortController();
    const onUserAbort = () => stop.abort(userSignal!.reason);
    if (userSignal?.aborted) stop.abort(userSignal.reason);
    else userSignal?.addEventListener("abort", onUserAbort, { once: true });
    const signal = stop.signal;
    const size = blob.size;
    const concurrency = Math.max(1, options.concurrency ?? 4);
    const partBytes = (n: number) => Math.min(partSize, size - (n - 1) * partSize);
    let loaded = 0;
    for (const n of received) loaded += partBytes(n);
    let sent = 0;
    const report = () =>
      onProgress?.({ uploadId, loaded, total: size, sent, partsDone: received.size, partCount });

    const sendMissing = async (missing: number[]) => {
      for (let start = 0; start < missing.length; start += PART_URL_BATCH) {
        signal?.throwIfAborted();
        const batch = missing.slice(start, start + PART_URL_BATCH);
        const { parts } = await this.request<Schemas["PartUrlsJson"]>("POST", `/v1/uploads/${enc(uploadId)}/parts`, {
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
        await Promise.all(
          Array.from({ length: Math.min(concurrency, queue.length) }, () =>
            worker().catch((error) => {
              if (!stop.signal.aborted) stop.abort(error);
              throw error;
            }),
          ),
        );
      }
    };

    try {
      report();
      const missing: number[] = [];
      for (let n = 1; n <= partCount; n++) if (!received.has(n)) missing.push(n);
      await sendMissing(missing);
      for (let attempt = 0; ; attempt++) {
        try {
          const upload = await this.uploads.complete(uploadId, { signal });
          return this.verify(upload, size, sha256);
        } catch (error) {
          // Parts the server did not keep: send them again, then complete again.
          if (error instanceof ConflictError && error.code === "parts_missing" && attempt < 2 && error.missingParts.length) {
            for (const n of error.missingParts) received.delete(n);
            await sendMissing(error.missingParts);
            continue;
          }
          throw error;
        }
      }
    } catch (error) {
      // Aborted, or the network or server failed past the retries: the upload stays open and
      // resumable. Refusals (4xx) are thrown as they are.
      if (userSignal?.aborted || error instanceof ServerError) throw new UploadInterruptedError(uploadId, error, true);
      throw error;
    } finally {
      userSignal?.removeEventListener("abort", onUserAbort);
    }
  }

  private async putPart(part: PartUrlJson, slice: Blob, signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.putBytes(part.url, part.method, part.headers, slice, signal);
        return;
      } catch (error) {
        const retriable = !isAbort(error, signal) && (error instanceof ServerError || error instanceof RateLimitedError);
        if (!retriable || attempt >= PART_ATTEMPTS) throw error;
        await sleep(retryWait(error, attempt), signal);
      }
    }
  }

  /** PUTs bytes to a signed URL (Cabinet's own, or S3's): no API key, the ticket's headers exactly. */
  private async putBytes(url: string, method: string, headers: Record<string, string>, body: Blob, signal?: AbortSignal): Promise<void> {
    let response: Response;
    try {
      response = await this.fetchImpl(new URL(url, this.baseUrl), { method, headers, body, signal });
    } catch (error) {
      if (isAbort(error, signal)) throw error;
      throw new ServerError(0, "network_error", `${method} upload: ${(error as Error)?.message ?? error}`, null);
    }
    if (!response.ok) throw await errorFromResponse(response);
    await response.body?.cancel().catch(() => undefined);
  }

  /** `putBytes` through XMLHttpRequest, reporting the bytes sent as they go. */
  private putWithProgress(
    url: string,
    method: string,
    headers: Record<string, string>,
    body: Blob,
    signal: AbortSignal | undefined,
    progress: (loaded: number) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, new URL(url, this.baseUrl).toString());
      for (const [name, value] of Object.entries(headers)) {
        try {
          xhr.setRequestHeader(name, value);
        } catch {
          // A header the browser sets itself (Content-Length).
        }
      }
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) progress(event.loaded);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve();
        const answered = new Headers();
        for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
          const colon = line.indexOf(":");
          if (colon > 0) answered.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        errorFromResponse(new Response(xhr.responseText, { status: xhr.status, headers: answered })).then(reject, reject);
      };
      xhr.onerror = () => reject(new ServerError(0, "network_error", `${method} upload: the request failed`, null));
      xhr.onabort = () => reject(signal?.reason ?? new DOMException("the upload was aborted", "AbortError"));
      signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(body);
    });
  }

  private verify(upload: UploadJson, size: number, sha256: string | undefined): FileJson {
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
export { CabinetError };
