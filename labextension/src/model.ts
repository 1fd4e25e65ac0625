/**
 * The Functions sidebar's model: what the server knows about functions, the deploy in
 * progress, activations and schedules. Views listen to `changed`.
 */
import { Signal } from '@lumino/signaling';

import { APIError, errorMessage, jsonBody, requestAPI } from './request';
import {
  IActivation,
  IActivationSummary,
  IActiveCellStatus,
  IDeployment,
  IDeployRecord,
  IDeployStep,
  IFunctionInfo,
  IFunctionList,
  IFunctionsModel,
  IJobEvent,
  IJobStatus,
  ISchedule,
  JobAction
} from './tokens';

/** The longest a job is followed before the sidebar gives up waiting (ms). */
const JOB_DEADLINE_MS = 60 * 60 * 1000;

/** Consecutive failed polls of a job before the sidebar reports it lost. */
const JOB_POLL_RETRIES = 5;

/** How many activations are listed per function. */
const ACTIVATION_LIMIT = 20;

/** The steps a sidebar deploy goes through, in order. */
const DEPLOY_STEPS: IDeployStep['step'][] = ['capture', 'build', 'test', 'push', 'deploy'];

/** Container test statuses that stop a deploy. */
const TEST_PASSED = 'success';

export class FunctionsModel implements IFunctionsModel {
  get changed(): Signal<this, void> {
    return this._changed;
  }

  get functions(): ReadonlyArray<IFunctionInfo> {
    return this._functions;
  }

  get serverError(): string | null {
    return this._serverError;
  }

  get loadError(): string | null {
    return this._loadError;
  }

  get loading(): boolean {
    return this._loading;
  }

  get deployment(): IDeployment | null {
    return this._deployment;
  }

  get activeCell(): IActiveCellStatus {
    return this._activeCell;
  }

  get changedFunctions(): ReadonlySet<string> {
    return this._changedFunctions;
  }

  /** Reload the function list; errors are kept in `loadError`, never thrown. */
  async refresh(): Promise<void> {
    this._loading = true;
    this._changed.emit();
    try {
      const list = await requestAPI<IFunctionList>('functions');
      this._functions = list.functions;
      this._serverError = list.server_error ?? null;
      this._loadError = null;
    } catch (error) {
      this._loadError = errorMessage(error);
    } finally {
      this._loading = false;
      this._changed.emit();
    }
  }

  activations(name: string): ReadonlyArray<IActivationSummary> | undefined {
    return this._activations.get(name);
  }

  async loadActivations(name: string): Promise<void> {
    const query = new URLSearchParams({ name, limit: String(ACTIVATION_LIMIT) });
    const answer = await requestAPI<{ activations: IActivationSummary[] }>(`activations?${query}`);
    this._activations.set(name, answer.activations);
    this._changed.emit();
  }

  async activation(id: string): Promise<IActivation> {
    return requestAPI<IActivation>(`activations/${encodeURIComponent(id)}`);
  }

  /** Invoke blocking; the activation list and the function row are refreshed after. */
  async invoke(name: string, input: Record<string, unknown>): Promise<IActivation> {
    try {
      return await requestAPI<IActivation>('invoke', jsonBody('POST', { name, input, async: false }));
    } finally {
      void this.loadActivations(name).catch(() => undefined);
      void this.refresh();
    }
  }

  schedules(name: string): ReadonlyArray<ISchedule> | undefined {
    return this._schedules.get(name);
  }

  async loadSchedules(name: string): Promise<void> {
    const answer = await requestAPI<{ schedules: ISchedule[] }>(
      `schedules?${new URLSearchParams({ name })}`
    );
    this._schedules.set(name, answer.schedules);
    this._changed.emit();
  }

  async addSchedule(name: string, cron: string): Promise<void> {
    await requestAPI<{ trigger: string }>('schedules', jsonBody('POST', { name, cron }));
    await this.loadSchedules(name);
  }

  async removeSchedule(name: string, cron: string): Promise<void> {
    await requestAPI<{ removed: string[] }>(`schedules?${new URLSearchParams({ name, cron })}`, {
      method: 'DELETE'
    });
    await this.loadSchedules(name);
  }

  /** Start showing a new deploy of `name` (its capture step running). */
  beginDeployment(name: string): IDeployment {
    this._deployment = {
      name,
      status: 'running',
      steps: DEPLOY_STEPS.map(step => ({
        step,
        status: step === 'capture' ? 'running' : 'waiting',
        message: step === 'capture' ? 'Capturing the cell in the kernel' : '',
        progress: null
      })),
      log: [],
      record: null,
      error: null
    };
    this._changed.emit();
    return this._deployment;
  }

  updateDeployment(update: Partial<IDeployment>): void {
    if (this._deployment) {
      this._deployment = { ...this._deployment, ...update };
      this._changed.emit();
    }
  }

  /**
   * Build, test in a container, push and deploy a captured bundle, following each job's
   * events live in `deployment`. A failing container test stops before anything is pushed.
   *
   * @returns the deploy record.
   * @throws Error with the failing step's message (also stored in `deployment.error`).
   */
  async deployBundle(name: string, bundle: string): Promise<IDeployRecord> {
    this._setStep('capture', { status: 'done', message: `Captured ${bundle}`, progress: 1 });
    try {
      await this._runJob('build', bundle);
      // The test input is the bundle's own (`%%faas NAME --test '{...}'`), else {}.
      const tested = await this._runJob('test', bundle);
      const container = tested.result?.container ?? {};
      if (container.status !== TEST_PASSED) {
        const logs: string[] = container.logs ?? [];
        throw new Error(
          `The container test of ${name} ended ` +
            `with "${container.status}"; nothing was deployed.` +
            (logs.length ? `\nLogs:\n${logs.join('\n')}` : '') +
            '\nFix the cell, or give a test input with `%%faas NAME --test \'{...}\'`.'
        );
      }
      this._setStep('test', {
        status: 'done',
        message: `Passed in ${Number(container.seconds ?? 0).toFixed(2)} s`,
        progress: 1
      });
      const deployed = await this._runJob('deploy', bundle);
      const record = deployed.result as IDeployRecord;
      this._setStep('deploy', {
        status: 'done',
        message: `Deployed ${record.name} version ${record.version}`,
        progress: 1
      });
      // Push has no events when the registry had the image already.
      const steps = (this._deployment?.steps ?? []).map(s =>
        s.status === 'waiting' ? { ...s, status: 'skipped' as const, message: 'Not needed' } : s
      );
      this.updateDeployment({ status: 'done', record, steps });
      return record;
    } catch (error) {
      const message = errorMessage(error);
      this._failRunningStep(message);
      this.updateDeployment({ status: 'failed', error: message });
      throw error;
    } finally {
      void this.refresh();
      void this.loadActivations(name).catch(() => undefined);
    }
  }

  setActiveCell(status: IActiveCellStatus): void {
    const old = this._activeCell;
    if (
      old.name === status.name &&
      old.state === status.state &&
      old.provenance?.time === status.provenance?.time
    ) {
      return;
    }
    this._activeCell = status;
    this._changed.emit();
  }

  setChangedFunctions(names: Set<string>): void {
    const old = this._changedFunctions;
    if (old.size === names.size && [...names].every(name => old.has(name))) {
      return;
    }
    this._changedFunctions = names;
    this._changed.emit();
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  /** POST a job and follow its events (long polls) until it finishes. */
  private async _runJob(action: JobAction, bundle: string): Promise<IJobStatus> {
    this._setStep(action, { status: 'running', message: `Starting ${action}`, progress: 0 });
    const { id } = await requestAPI<{ id: string }>('jobs', jsonBody('POST', { action, bundle }));
    const deadline = Date.now() + JOB_DEADLINE_MS;
    let after = 0;
    let failures = 0;
    while (!this._disposed && Date.now() < deadline) {
      let status: IJobStatus;
      try {
        status = await requestAPI<IJobStatus>(`jobs/${encodeURIComponent(id)}?after=${after}`);
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures >= JOB_POLL_RETRIES || (error instanceof APIError && error.status === 404)) {
          throw error;
        }
        await new Promise(resolve => setTimeout(resolve, 1000 * failures));
        continue;
      }
      after = status.next;
      this._addEvents(status.events);
      if (status.status === 'failed') {
        throw new Error(status.error?.error ?? `The ${action} job failed.`);
      }
      if (status.status === 'done') {
        return status;
      }
    }
    throw new Error(`The ${action} job ${id} did not finish within ${JOB_DEADLINE_MS / 60000} minutes.`);
  }

  /** Append job events to the log and move each named step's progress. */
  private _addEvents(events: IJobEvent[]): void {
    if (!this._deployment || events.length === 0) {
      return;
    }
    for (const event of events) {
      const known = this._deployment.steps.find(s => s.step === event.step);
      if (known) {
        // A job's events can name earlier steps (deploy builds and pushes): those move too.
        // A progress-only event (no message) moves the bar and keeps the step's last words.
        this._setStep(known.step, {
          status: known.status === 'waiting' || known.status === 'skipped' ? 'running' : known.status,
          message: event.message || known.message,
          progress: event.progress
        });
      }
    }
    const said = events.filter(event => event.message);
    this.updateDeployment({ log: [...this._deployment.log, ...said] });
  }

  private _setStep(step: IDeployStep['step'], update: Partial<IDeployStep>): void {
    if (!this._deployment) {
      return;
    }
    const steps = this._deployment.steps.map(s => (s.step === step ? { ...s, ...update } : s));
    // Reaching a step finishes every earlier one still running (push has no job of its own).
    const index = DEPLOY_STEPS.indexOf(step);
    const settled = steps.map((s, i) =>
      i < index && s.status === 'running' ? { ...s, status: 'done' as const } : s
    );
    this.updateDeployment({ steps: settled });
  }

  private _failRunningStep(message: string): void {
    if (!this._deployment) {
      return;
    }
    const steps = this._deployment.steps;
    const running = steps.find(s => s.status === 'running') ?? steps.find(s => s.status === 'waiting');
    if (running) {
      this._setStep(running.step, { status: 'failed', message: message.split('\n')[0] });
    }
  }

  private _changed = new Signal<this, void>(this);
  private _functions: IFunctionInfo[] = [];
  private _serverError: string | null = null;
  private _loadError: string | null = null;
  private _loading = false;
  private _deployment: IDeployment | null = null;
  private _activeCell: IActiveCellStatus = { name: null, state: 'none', provenance: null };
  private _changedFunctions: Set<string> = new Set();
  private _activations = new Map<string, IActivationSummary[]>();
  private _schedules = new Map<string, ISchedule[]>();
  private _disposed = false;
}
