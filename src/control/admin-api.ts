/**
 * The controllers' admin API routes, as one request handler the gateway mounts under its admin
 * authentication (`Authorization: Bearer <adminKey>`):
 *
 *   GET    /admin/autoscalers            -> 200 {object: "list", data: PodAutoscaler[]}
 *   GET    /admin/autoscalers/{name}     -> 200 PodAutoscaler | 404
 *   PUT    /admin/autoscalers/{name}     body: PodAutoscaler spec (name taken from the path) -> 200 PodAutoscaler
 *   DELETE /admin/autoscalers/{name}     -> 200 {deleted: name} | 404
 *   GET    /admin/adapters               -> 200 {object: "list", data: ModelAdapter[]}
 *   GET    /admin/adapters/{name}        -> 200 ModelAdapter | 404
 *   POST   /admin/adapters               body: ModelAdapter spec -> 201 (created) / 200 (changed) ModelAdapter
 *   PUT    /admin/adapters/{name}        same, name from the path
 *   DELETE /admin/adapters/{name}        -> 200 {deleted: name} once unloaded from every endpoint | 404
 *
 * Errors use the OpenAI envelope (`ApiError`): 400 `invalid_resource` with `param` = the first bad
 * field path (the message lists them all) and nothing applied; 404 `resource_not_found`; 405; 413.
 * After an adapter is added or changed, a reconcile pass starts in the background (its progress shows
 * in `status`).
 *
 * Mounting (gateway): `const control = createControlAdminHandler({ autoscalers, adapters });` then, in
 * the admin branch after authentication, `if (await control(req, res)) return;`.
 */
import { ApiError } from '../openai/errors.ts';
import { readJsonObject, sendJson } from '../gateway/http-json.ts';
import type { RequestLike, ResponseLike } from '../gateway/http1.ts';
import type { AdapterManager } from './adapters/manager.ts';
import type { AutoscalerController } from './autoscaler/controller.ts';
import { ResourceValidationError } from './resources.ts';

/** The controllers the routes act on; a missing one answers 404 for its routes. */
export interface ControlAdminDeps {
  autoscalers?: AutoscalerController;
  adapters?: AdapterManager;
  /** Path prefix, default `/admin`. */
  prefix?: string;
  /** Largest accepted body in bytes, default 1 MiB. */
  maxBodyBytes?: number;
}

/**
 * Handles one request; resolves true when the path was one of these routes (a response was sent).
 * Takes the gateway's `Http1Request`/`Http1Response` or `node:http`'s objects (both fit the `*Like` subsets).
 */
export type ControlAdminHandler = (req: RequestLike, res: ResponseLike) => Promise<boolean>;

/** Maps controller errors to API errors (validation -> 400 with the field path). */
function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ResourceValidationError) return new ApiError(400, e.message, 'invalid_request_error', 'invalid_resource', e.issues[0]?.path || null);
  const err = e as Error & { path?: string };
  return new ApiError(400, err.message ?? String(e), 'invalid_request_error', 'invalid_resource', err.path ?? null);
}

/** Builds the handler (see module docs). */
export function createControlAdminHandler(deps: ControlAdminDeps): ControlAdminHandler {
  const prefix = deps.prefix ?? '/admin';
  const max = deps.maxBodyBytes ?? 1 << 20;
  const notFound = (what: string, name: string) => new ApiError(404, `no ${what} named ${name}`, 'invalid_request_error', 'resource_not_found', 'name');
  const notAllowed = (method: string, path: string) => new ApiError(405, `${method} not allowed on ${path}`, 'invalid_request_error', 'method_not_allowed');

  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const m = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(autoscalers|adapters)(?:/([^/]+))?/?$`).exec(path);
    if (!m) return false;
    const kind = m[1] as 'autoscalers' | 'adapters';
    const name = m[2] !== undefined ? decodeURIComponent(m[2]) : undefined;
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      if (kind === 'autoscalers') {
        const c = deps.autoscalers;
        if (!c) throw new ApiError(404, 'the autoscaler controller is not running', 'invalid_request_error', 'controller_disabled');
        if (name === undefined) {
          if (method !== 'GET') throw notAllowed(method, path);
          sendJson(res, 200, { object: 'list', data: c.list() });
        } else if (method === 'GET') {
          const pa = c.get(name);
          if (!pa) throw notFound('autoscaler', name);
          sendJson(res, 200, pa);
        } else if (method === 'PUT') {
          const body = await readJsonObject(req, max);
          if (body.name !== undefined && body.name !== name) throw new ApiError(400, `body name ${JSON.stringify(body.name)} differs from the path (${name})`, 'invalid_request_error', 'invalid_resource', 'name');
          sendJson(res, 200, c.apply({ ...body, name }, 'body'));
        } else if (method === 'DELETE') {
          if (!c.remove(name)) throw notFound('autoscaler', name);
          sendJson(res, 200, { deleted: name });
        } else throw notAllowed(method, path);
        return true;
      }
      const a = deps.adapters;
      if (!a) throw new ApiError(404, 'the adapter manager is not running', 'invalid_request_error', 'controller_disabled');
      if (name === undefined) {
        if (method === 'GET') sendJson(res, 200, { object: 'list', data: a.list() });
        else if (method === 'POST') {
          const body = await readJsonObject(req, max);
          const existed = typeof body.name === 'string' && a.get(body.name) !== undefined;
          const ad = a.apply(body, 'body');
          void a.reconcile().catch(() => undefined);
          sendJson(res, existed ? 200 : 201, ad);
        } else throw notAllowed(method, path);
      } else if (method === 'GET') {
        const ad = a.get(name);
        if (!ad) throw notFound('adapter', name);
        sendJson(res, 200, ad);
      } else if (method === 'PUT') {
        const body = await readJsonObject(req, max);
        if (body.name !== undefined && body.name !== name) throw new ApiError(400, `body name ${JSON.stringify(body.name)} differs from the path (${name})`, 'invalid_request_error', 'invalid_resource', 'name');
        const existed = a.get(name) !== undefined;
        const ad = a.apply({ ...body, name }, 'body');
        void a.reconcile().catch(() => undefined);
        sendJson(res, existed ? 200 : 201, ad);
      } else if (method === 'DELETE') {
        if (!(await a.remove(name))) throw notFound('adapter', name);
        sendJson(res, 200, { deleted: name });
      } else throw notAllowed(method, path);
      return true;
    } catch (e) {
      req.resume();
      const err = toApiError(e);
      sendJson(res, err.status, err.toBody());
      return true;
    }
  };
}
