/**
 * Remote artifact sources for LoRA adapters: `s3://` through the AWS SDK (`@aws-sdk/client-s3`) and
 * `hf://` through the Hugging Face hub client (`@huggingface/hub`). Both SDKs are imported lazily (this
 * module is itself imported lazily by `./fetcher.ts`), so nothing loads unless such a URL is fetched.
 *
 * Each function downloads every file of the artifact into `destDir` (a fresh temporary directory owned
 * by the caller, which renames it into place once complete) and returns the sha256 (hex) of every file,
 * by path relative to `destDir`, and the number of bytes written.
 *
 * ## s3://bucket/prefix
 * - Lists the objects under `prefix/` (ListObjectsV2, paginated) and downloads each with GetObject.
 *   `s3://bucket` (no prefix) takes the whole bucket. Keys ending in `/` (folder placeholders) are skipped.
 * - Credentials: `token` (from the adapter's named secret or env var) as `ACCESS_KEY_ID:SECRET_ACCESS_KEY`
 *   or JSON `{"accessKeyId","secretAccessKey","sessionToken"?,"region"?}`; without a token, env
 *   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`). None at all: a non-retriable error.
 * - Region: token JSON `region`, else `req.region`, else env `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
 * - Endpoint: `req.endpointUrl`, else env `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (the AWS SDK's own
 *   names); when set, path-style addressing is used (`http://host/bucket/key`), as MinIO and most
 *   S3-compatible stores expect.
 * - Errors: `ArtifactError` naming the URL, the S3 operation, the S3 error code and HTTP status (e.g.
 *   `NoSuchBucket (HTTP 404)`, `AccessDenied (HTTP 403)`); retriable only for 5xx, 408, 429 and network errors.
 *
 * ## hf://org/repo[@revision][/subdir]
 * - Lists the repo's files (recursive `listFiles`, optionally under `subdir`) at `revision` (default
 *   `main`) and downloads each with `downloadFile` (plain `resolve` download, no Xet protocol).
 *   Files under `subdir` land at their path relative to `subdir` (the adapter directory).
 * - Token: `token` (named secret or env var), else env `HF_TOKEN`; sent as `Authorization: Bearer`.
 *   No token is fine for public repos.
 * - Hub URL: `req.hubUrl`, else env `HF_ENDPOINT` (the hub client's convention), else `https://huggingface.co`.
 * - Errors: `ArtifactError` with the hub's HTTP status and message; an empty listing is an error.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArtifactError, retriableStatus, type ArtifactRequest, type FetchFn } from './fetcher.ts';

/** Result of a remote directory download: sha256 (hex) per relative path, and bytes written. */
export interface RemoteDownload {
  files: Record<string, string>;
  bytes: number;
}

type Env = Record<string, string | undefined>;

/** A relative path from the remote listing, checked to stay inside `destDir` (no `..`, not absolute). */
function safeRelative(url: string, rel: string): string {
  const n = normalize(rel);
  if (!rel || n.startsWith('..') || n.startsWith(sep) || n.split(sep).includes('..') || rel.includes('\0')) throw new ArtifactError(`${url}: refusing unsafe file path ${JSON.stringify(rel)} in the listing`, false);
  return n;
}

/** Streams `src` into `dest` (creating parent dirs), returning bytes and sha256. */
async function writeStream(src: Readable, dest: string): Promise<{ bytes: number; sha256: string }> {
  await mkdir(dirname(dest), { recursive: true });
  const h = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(src, tap, createWriteStream(dest));
  return { bytes, sha256: h.digest('hex') };
}

/** S3 credentials parsed from a token (see module docs). */
interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region?: string;
}

/**
 * Parses an S3 credential token: `ACCESS_KEY_ID:SECRET_ACCESS_KEY` or JSON
 * `{accessKeyId, secretAccessKey, sessionToken?, region?}`.
 * @throws ArtifactError (not retriable) when the token has neither form.
 */
function parseS3Token(token: string): S3Credentials {
  const t = token.trim();
  if (t.startsWith('{')) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(t) as Record<string, unknown>;
    } catch {
      throw new ArtifactError('s3 credentials: JSON token does not parse', false);
    }
    if (typeof o.accessKeyId !== 'string' || typeof o.secretAccessKey !== 'string') throw new ArtifactError('s3 credentials: JSON token needs string fields accessKeyId and secretAccessKey', false);
    return {
      accessKeyId: o.accessKeyId,
      secretAccessKey: o.secretAccessKey,
      ...(typeof o.sessionToken === 'string' ? { sessionToken: o.sessionToken } : {}),
      ...(typeof o.region === 'string' ? { region: o.region } : {}),
    };
  }
  const i = t.indexOf(':');
  if (i <= 0 || i === t.length - 1) throw new ArtifactError('s3 credentials: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY or a JSON object {accessKeyId, secretAccessKey}', false);
  return { accessKeyId: t.slice(0, i), secretAccessKey: t.slice(i + 1) };
}

/** Maps an AWS SDK error to an ArtifactError naming the operation, S3 error code and HTTP status. */
function s3Error(url: string, op: string, e: unknown): ArtifactError {
  if (e instanceof ArtifactError) return e;
  const err = e as { name?: string; message?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const status = err.$metadata?.httpStatusCode;
  const code = err.Code ?? err.name ?? 'Error';
  const msg = err.message && err.message !== code && err.message !== 'UnknownError' ? `: ${err.message}` : '';
  return new ArtifactError(`${url}: S3 ${op} failed: ${code}${status !== undefined ? ` (HTTP ${status})` : ''}${msg}`, retriableStatus(status));
}

/**
 * Downloads every object under an `s3://bucket/prefix` URL into `destDir` (see module docs).
 * `onDownload` is called once per object fetched (for the cache's download counter).
 * @throws ArtifactError on missing credentials, an S3 error, an empty prefix or an unsafe key.
 */
export async function downloadS3Prefix(req: ArtifactRequest, destDir: string, env: Env, onDownload: () => void): Promise<RemoteDownload> {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(req.url);
  if (!m || !m[1]) throw new ArtifactError(`${req.url}: expected s3://bucket/prefix`, false);
  const bucket = m[1];
  let prefix = decodeURIComponent(m[2] ?? '');
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  let creds: S3Credentials;
  if (req.token !== undefined) creds = parseS3Token(req.token);
  else if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) creds = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
  else throw new ArtifactError(`${req.url}: no S3 credentials: set the adapter's credentials (secret or env) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, false);
  const region = creds.region ?? req.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const endpoint = req.endpointUrl ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;

  const { S3Client, ListObjectsV2Command, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    region,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, ...(creds.sessionToken ? { sessionToken: creds.sessionToken } : {}) },
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    maxAttempts: 3,
  });
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }));
      } catch (e) {
        throw s3Error(req.url, 'ListObjectsV2', e);
      }
      for (const o of page.Contents ?? []) if (o.Key && !o.Key.endsWith('/')) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (keys.length === 0) throw new ArtifactError(`${req.url}: no objects under s3://${bucket}/${prefix}`, false);
    const files: Record<string, string> = {};
    let bytes = 0;
    for (const key of keys) {
      const rel = safeRelative(req.url, key.slice(prefix.length));
      onDownload();
      let body: Readable;
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (!out.Body) throw new ArtifactError(`${req.url}: S3 GetObject ${key}: empty body`);
        body = out.Body as Readable;
      } catch (e) {
        throw s3Error(req.url, `GetObject ${key}`, e);
      }
      try {
        const w = await writeStream(body, join(destDir, rel));
        files[rel.split(sep).join('/')] = w.sha256;
        bytes += w.bytes;
      } catch (e) {
        throw new ArtifactError(`${req.url}: S3 GetObject ${key}: interrupted (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    return { files, bytes };
  } finally {
    client.destroy();
  }
}

/** Parsed `hf://org/repo[@revision][/subdir]`. */
interface HfLocation {
  repo: string;
  revision: string;
  subdir: string;
}

/**
 * Parses `hf://org/repo[@revision][/subdir]` (revision default `main`; subdir default the repo root).
 * @throws ArtifactError (not retriable) when the URL has no `org/repo`.
 */
function parseHfUrl(url: string): HfLocation {
  const m = /^hf:\/\/([^/@]+)\/([^/@]+)(?:@([^/]+))?(?:\/(.*))?$/.exec(url);
  if (!m) throw new ArtifactError(`${url}: expected hf://org/repo[@revision][/subdir]`, false);
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ? decodeURIComponent(m[3]) : 'main', subdir: (m[4] ?? '').replace(/\/+$/, '') };
}

/** Maps a hub client error (HubApiError carries `statusCode`) to an ArtifactError. */
function hfError(url: string, what: string, e: unknown): ArtifactError {
  if (e instanceof ArtifactError) return e;
  const err = e as { statusCode?: number; message?: string };
  const status = err.statusCode;
  return new ArtifactError(`${url}: Hugging Face hub ${what} failed${status !== undefined ? ` (HTTP ${status})` : ''}: ${err.message ?? String(e)}`, retriableStatus(status));
}

/**
 * Downloads the files of an `hf://` URL into `destDir` (see module docs). `fetchFn` is the HTTP client
 * handed to the hub client (global fetch by default). `onDownload` is called once per file fetched.
 * @throws ArtifactError on a hub error (401/403/404 not retriable), an empty listing or an unsafe path.
 */
export async function downloadHfRepo(req: ArtifactRequest, destDir: string, env: Env, fetchFn: FetchFn, onDownload: () => void): Promise<RemoteDownload> {
  const loc = parseHfUrl(req.url);
  const accessToken = req.token ?? env.HF_TOKEN;
  const hubUrl = (req.hubUrl ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const hub = await import('@huggingface/hub');
  const repo = { type: 'model' as const, name: loc.repo };
  const common = { repo, revision: loc.revision, hubUrl, fetch: fetchFn as typeof fetch, ...(accessToken ? { accessToken } : {}) };
  const paths: string[] = [];
  try {
    for await (const f of hub.listFiles({ ...common, recursive: true, ...(loc.subdir ? { path: loc.subdir } : {}) })) if (f.type === 'file') paths.push(f.path);
  } catch (e) {
    throw hfError(req.url, `listing ${loc.repo}@${loc.revision}`, e);
  }
  if (paths.length === 0) throw new ArtifactError(`${req.url}: no files in ${loc.repo}@${loc.revision}${loc.subdir ? ` under ${loc.subdir}/` : ''}`, false);
  const files: Record<string, string> = {};
  let bytes = 0;
  for (const p of paths) {
    const relRaw = loc.subdir ? p.slice(loc.subdir.length + 1) : p;
    if (loc.subdir && !p.startsWith(`${loc.subdir}/`)) throw new ArtifactError(`${req.url}: hub listed ${p} outside ${loc.subdir}/`, false);
    const rel = safeRelative(req.url, relRaw);
    onDownload();
    let blob: Blob | null;
    try {
      blob = await hub.downloadFile({ ...common, path: p, xet: false });
    } catch (e) {
      throw hfError(req.url, `download of ${p}`, e);
    }
    if (!blob) throw new ArtifactError(`${req.url}: file ${p} listed but not found at ${loc.revision}`, false);
    try {
      const w = await writeStream(Readable.fromWeb(blob.stream() as import('node:stream/web').ReadableStream<Uint8Array>), join(destDir, rel));
      files[rel.split(sep).join('/')] = w.sha256;
      bytes += w.bytes;
    } catch (e) {
      throw hfError(req.url, `download of ${p}`, e);
    }
  }
  return { files, bytes };
}
