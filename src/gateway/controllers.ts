/**
 * Runs the controllers next to the gateway in standalone mode: the autoscaler
 * (`src/control/autoscaler/controller.ts`) scaling managed/simulated models through the fleet
 * registry, and the LoRA adapter manager (`src/control/adapters/manager.ts`) loading adapters on
 * the fleet's endpoints. Their admin routes (`/admin/autoscalers`, `/admin/adapters`) are mounted
 * on the gateway's admin API. Documents from the fleet file (`autoscalers`, `adapters`) are applied
 * at start; an invalid one aborts the start with its field path.
 *
 * The request path is wired to both (`Gateway.setControlHooks`): the gateway's cold-start queue is the
 * autoscaler's `queuedRequests` signal and a request for a model at zero replicas calls
 * `autoscalers.wake(model)`; a request naming a declared LoRA adapter that no endpoint has calls
 * `adapters.ensure(name)`, and every routed adapter request calls `adapters.touch(name, endpoint)`.
 */
import { join } from 'node:path';
import { ArtifactCache } from '../control/adapters/fetcher.ts';
import { AdapterManager } from '../control/adapters/manager.ts';
import { createControlAdminHandler } from '../control/admin-api.ts';
import { AutoscalerController, type Timers } from '../control/autoscaler/controller.ts';
import type { FleetConfig } from '../fleet/config.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import type { Gateway } from './server.ts';

export interface RunningControllers {
  autoscalers: AutoscalerController;
  adapters: AdapterManager;
  stop(): void;
}

/**
 * Starts both controllers and mounts their admin routes.
 * @throws Error naming the fleet file's `autoscalers.N` / `adapters.N` entry that is invalid.
 */
export function startControllers(cfg: FleetConfig, fleet: FleetRegistry, gateway: Gateway, stateDir: string, onDecision?: (msg: string, f: Record<string, unknown>) => void): RunningControllers {
  const clock = { now: () => Date.now() };
  // Wall-clock timers shared by both controllers, unref'd so they never keep the process alive.
  const timers: Timers = {
    setInterval: (fn, ms) => {
      const h = setInterval(fn, ms);
      h.unref();
      return h;
    },
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  };
  const autoscalers = new AutoscalerController({
    clock,
    timers,
    actuator: {
      currentReplicas: (model) => fleet.source(model)?.desired() ?? fleet.endpointsOf(model).length,
      setReplicas: (model, n) => fleet.scaleModel(model, n),
    },
    signals: {
      observe: (model, nowMs) => {
        if (!fleet.modelConfig(model)) return undefined;
        const a = gateway.takeArrivals(model);
        return { nowMs, replicas: fleet.endpointsOf(model), arrivedRequests: a.requests, arrivedTokens: a.tokens, queuedRequests: gateway.queuedRequests(model) };
      },
    },
    onDecision: (d) => onDecision?.('autoscaler decision', { ...d }),
  });
  const adapters = new AdapterManager({
    clock,
    timers,
    http: fetch,
    endpoints: () => fleet.list(),
    cache: new ArtifactCache(join(stateDir, 'adapters')),
    onChange: (a) => onDecision?.('adapter', { adapter: a.spec.name, baseModel: a.spec.baseModel, phase: a.status.phase, endpoints: a.status.endpoints, lastError: a.status.lastError }),
  });
  cfg.autoscalers.forEach((doc, i) => autoscalers.apply(doc, `autoscalers.${i}`));
  cfg.adapters.forEach((doc, i) => adapters.apply(doc, `adapters.${i}`));
  gateway.mountAdmin(createControlAdminHandler({ autoscalers, adapters }));
  gateway.setControlHooks({
    scalesToZero: (model) => autoscalers.scalesToZero(model),
    wake: (model) => {
      autoscalers.wake(model);
    },
    adapterBaseModel: (name) => {
      const a = adapters.get(name);
      return a && a.status.phase !== 'Deleting' ? a.spec.baseModel : undefined;
    },
    adapterEndpoints: (name) => adapters.endpointsFor(name),
    ensureAdapter: (name) => adapters.ensure(name),
    touchAdapter: (name, endpointId) => adapters.touch(name, endpointId),
  });
  autoscalers.start();
  adapters.start();
  // Fleet-file adapters are placed now rather than at the first periodic pass (10 s later).
  if (cfg.adapters.length) void adapters.reconcile().catch(() => undefined);
  return {
    autoscalers,
    adapters,
    stop: () => {
      autoscalers.stop();
      adapters.stop();
    },
  };
}
