/** The API's error body: `{"error": {"code", "message", …}}`. */
export interface ErrorBody {
  error: { code: string; message: string; missing_parts?: number[] | null; [extra: string]: unknown };
}

/** Any answer from Cabinet (or from the storage a signed URL points at) that is not a success. */
export class CabinetError extends Error {
  /** HTTP status (0 when no answer came back). */
  readonly status: number;
  /** The API's error code, e.g. `not_found`, `quota_exceeded`, `parts_missing`. */
  readonly code: string;
  /** The parsed JSON body (or the raw text when it was not JSON). */
  readonly body: unknown;
  /** The `X-Request-Id` of the answer, when there was one. */
  readonly requestId: string | null;

  constructor(status: number, code: string, message: string, body: unknown, requestId: string | null = null) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.body = body;
    this.requestId = requestId;
  }
}

/** 400 and 422: the request was malformed or its content refused (`invalid_query`, `checksum_mismatch`, …). */
export class InvalidRequestError extends CabinetError {}
/** 401: missing, invalid or revoked key or token. */
export class UnauthorizedError extends CabinetError {}
/** 403: the key's role or the access rules do not allow it. */
export class ForbiddenError extends CabinetError {}
/** 404: no such file, folder, upload or workspace (or not visible to this key). */
export class NotFoundError extends CabinetError {}
/** 409 and 412: conflicts (`name_conflict`, `parts_missing`, `folder_cycle`, …). */
export class ConflictError extends CabinetError {
  /** With `parts_missing`: the part numbers still to send. */
  get missingParts(): number[] {
    const detail = (this.body as ErrorBody | undefined)?.error;
    return Array.isArray(detail?.missing_parts) ? detail!.missing_parts! : [];
  }
}
/** 413: the file or the body is larger than the server accepts. */
export class TooLargeError extends CabinetError {}
/** 429: too many requests, or too many uploads at once; retry after `retryAfter` seconds. */
export class RateLimitedError extends CabinetError {
  /** Seconds to wait, from `Retry-After` (null when absent). */
  readonly retryAfter: number | null;
  constructor(status: number, code: string, message: string, body: unknown, requestId: string | null, retryAfter: number | null) {
    super(status, code, message, body, requestId);
    this.retryAfter = retryAfter;
  }
}
/** 507: the workspace's storage quota would be exceeded. */
export class QuotaExceededError extends CabinetError {}
/** 5xx (other than 507), or no answer at all; a 503 says when to retry in `retryAfter`. */
export class ServerError extends CabinetError {
  /** Seconds to wait, from `Retry-After` (null when absent). */
  readonly retryAfter: number | null;
  constructor(status: number, code: string, message: string, body: unknown, requestId: string | null = null, retryAfter: number | null = null) {
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
  readonly uploadId: string;
  /** False for a single-PUT upload: its reservation was cancelled; upload the file again. */
  readonly resumable: boolean;
  constructor(uploadId: string, cause: unknown, resumable = true) {
    super(
      resumable
        ? `upload ${uploadId} was interrupted; resume it with {resumeUploadId: "${uploadId}"}`
        : `upload ${uploadId} was interrupted and cancelled (a single PUT cannot be resumed)`,
      { cause },
    );
    this.name = "UploadInterruptedError";
    this.uploadId = uploadId;
    this.resumable = resumable;
  }
}

/** Builds the error class for a failed response. */
export async function errorFromResponse(response: Response): Promise<CabinetError> {
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  let code = `http_${response.status}`;
  let message = text.slice(0, 500) || response.statusText || `HTTP ${response.status}`;
  try {
    const parsed = JSON.parse(text) as Partial<ErrorBody>;
    body = parsed;
    if (parsed && typeof parsed.error === "object" && parsed.error) {
      code = String(parsed.error.code ?? code);
      message = String(parsed.error.message ?? message);
    }
  } catch {
    // S3 answers XML: <Error><Code>…</Code><Message>…</Message></Error>
    const xmlCode = /<Code>([^<]*)<\/Code>/.exec(text);
    const xmlMessage = /<Message>([^<]*)<\/Message>/.exec(text);
    if (xmlCode) code = xmlCode[1];
    if (xmlMessage) message = xmlMessage[1];
  }
  return makeError(response.status, code, message, body, response.headers.get("x-request-id"), response.headers.get("retry-after"));
}

export function makeError(
  status: number,
  code: string,
  message: string,
  body: unknown,
  requestId: string | null = null,
  retryAfterHeader: string | null = null,
): CabinetError {
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
      if (status >= 500 || status === 0) return new ServerError(status, code, message, body, requestId, seconds(retryAfterHeader));
      return new CabinetError(status, code, message, body, requestId);
  }
}

/** A `Retry-After` of seconds, as a number (null when absent or not a number). */
function seconds(retryAfterHeader: string | null): number | null {
  const value = retryAfterHeader === null ? NaN : Number(retryAfterHeader);
  return Number.isFinite(value) ? value : null;
}
