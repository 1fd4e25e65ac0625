/**
 * The Functions sidebar's model: what the server knows about functions, the deploy in
 * progress, activations and schedules. Views listen to `changed`.
 */
import { Signal } from '@lumino/signaling';

import { APIError, errorMessage, jsonBody, requestAPI } from './request';
import {
  IActingAs,
  IActivation,
  IActivationSummary,
  IActiveCellStatus,
  IDeployment,
  IDeployRecord,
  IDeployStep,
  IFunctionDetail,
  IFunctionInfo,
  IFunctionList,
  IFunctionsModel,
  IJobEvent,
  IJobStatus,
  ISchedule,
  IServerStatus,
  ITestReport,
  IVersion,
  JobAction
} from './tokens';

/** The longest a job is followed before the sidebar gives up waiting (ms). */
const JOB_DEADLINE_MS = 60 * 60 * 1000;

/** Consecutive failed polls of a job before the sidebar reports it lost. */
const JOB_POLL_RETRIES = 5;

/** How many activations are listed (and drawn) per function. */
const ACTIVATION_LIMIT = 50;

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

  get actingAs(): IActingAs | null {
    return this._actingAs;
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
      this._actingAs = list.acting_as ?? null;
      this._loadError = null;
    } catch (error) {
      this._loadError = errorMessage(error);
    } finally {
      this._loading = false;
      this._changed.emit();
    }
  }

  /**
   * Follow the server cheaply (`GET status`, no folder scan): new runs update the rows'
   * last run; a function deployed, removed or at another version elsewhere reloads the list.
   */
  async refreshStatus(): Promise<void> {
    let status: IServerStatus;
    try {
      status = await requestAPI<IServerStatus>('status');
    } catch {
      return this.refresh();
    }
    const onServer = Object.keys(status.functions);
    const listed = this._functions.filter(f => f.deployed);
    const stale =
      (status.server_error ?? null) !== this._serverError ||
      onServer.length !== listed.length ||
      onServer.some(name => this.info(name)?.deployed?.version !== status.functions[name].version);
    if (stale) {
      return this.refresh();
    }
    let changed = false;
    this._functions = this._functions.map(row => {
      const last = status.functions[row.name]?.last_activation ?? null;
      if (last?.activationId === row.last_activation?.activationId) {
        return row;
      }
      changed = true;
      return { ...row, last_activation: last };
    });
    if (changed) {
      this._changed.emit();
    }
  }

  info(name: string): IFunctionInfo | undefined {
    return this._functions.find(f => f.name === name);
  }

  detail(name: string): IFunctionDetail | undefined {
    return this._details.get(name);
  }

  async loadDetail(name: string): Promise<void> {
    const detail = await requestAPI<IFunctionDetail>(`functions/${encodeURIComponent(name)}`);
    this._details.set(name, detail);
    this._changed.emit();
  }

  versions(name: string): ReadonlyArray<IVersion> | undefined {
    return this._versions.get(name);
  }

  async loadVersions(name: string): Promise<void> {
    const answer = await requestAPI<{ versions: IVersion[] }>(
      `functions/${encodeURIComponent(name)}/versions`
    );
    this._versions.set(name, answer.versions);
    this._changed.emit();
  }

  async rollback(name: string, version: string): Promise<IVersion> {
    try {
      const record = await requestAPI<IVersion>(
        `functions/${encodeURIComponent(name)}/rollback`,
        jsonBody('POST', { version })
      );
      this._lastResults.delete(name);
      return record;
    } finally {
      await Promise.all([
        this.loadVersions(name).catch(() => undefined),
        this.loadDetail(name).catch(() => undefined),
        this.refresh()
      ]);
    }
  }

  async bundleFiles(name: string): Promise<Record<string, string>> {
    const answer = await requestAPI<{ files: Record<string, string> }>(
      `functions/${encodeURIComponent(name)}/bundle`
    );
    return answer.files;
  }

  async deleteFunction(name: string): Promise<void> {
    try {
      await requestAPI<unknown>(`functions/${encodeURIComponent(name)}`, { method: 'DELETE' });
    } finally {
      this._details.delete(name);
      this._versions.delete(name);
      this._activations.delete(name);
      await this.refresh();
    }
  }

  async testBundle(bundle: string, input: Record<string, unknown>): Promise<ITestReport> {
    try {
      const job = await this._followJob('test', bundle, input, () => undefined);
      return job.result as ITestReport;
    } finally {
      void this.refresh();
    }
  }

  activations(name: string): ReadonlyArray<IActivationSummary> | undefined {
    return this._activations.get(name);
  }

  async loadActivations(name: string): Promise<void> {
    const query = new URLSearchParams({ name, limit: String(ACTIVATION_LIMIT) });
    const answer = await requestAPI<{ activations: IActivationSummary[] }>(`activations?${query}`);
    const old = this._activations.get(name);
    // Polled every few seconds: views re-render only when something changed.
    if (old && sameActivations(old, answer.activations)) {
      return;
    }
    this._activations.set(name, answer.activations);
    this._changed.emit();
  }

  async activation(id: string): Promise<IActivation> {
    return requestAPI<IActivation>(`activations/${encodeURIComponent(id)}`);
  }

  lastResult(name: string): IActivation | undefined {
    return this._lastResults.get(name);
  }

  /** Invoke blocking; the activation list and the function row are refreshed after. */
  async invoke(name: string, input: Record<string, unknown>): Promise<IActivation> {
    try {
      const activation = await requestAPI<IActivation>('invoke', jsonBody('POST', { name, input, async: false }));
      this._lastResults.set(name, activation);
      return activation;
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
    this._job = null;
    this._failedStep = null;
    this._logged = new Set();
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
   * @param testInput - the container test's input (the cell's), else the bundle's own.
   * @returns the deploy record.
   * @throws Error with the failing step's message (also stored in `deployment.error`).
   */
  async deployBundle(
    name: string,
    bundle: string,
    testInput: Record<string, unknown> | null
  ): Promise<IDeployRecord> {
    this._setStep('capture', { status: 'done', message: `Captured ${bundle}`, progress: 1 });
    try {
      await this._runJob('build', bundle);
      const tested = await this._runJob('test', bundle, testInput);
      const report = (tested.result ?? {}) as Partial<ITestReport>;
      const container = report.container ?? { status: 'no result', logs: [], seconds: null, result: null };
      if (container.status !== TEST_PASSED) {
        // The exception first (mapped to the cell), then what it means and what to do.
        const headline = report.error?.headline ?? report.message;
        const traceback = report.error?.traceback;
        const detail = Array.isArray(traceback) ? traceback.join('\n') : (traceback ?? container.logs.join('\n'));
        this._setStep('test', { status: 'failed', message: headline ?? `Ended with "${container.status}"` });
        throw new Error(
          (headline ? `${headline}\n` : '') +
            `The container test of ${name} ended with "${container.status}"; nothing was deployed.` +
            `\nFix the cell, or set the test input on ${name}'s page (Test tab), then deploy again.` +
            (detail ? `\n\n${detail}` : '')
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
      // The previous version's result no longer describes the function.
      this._lastResults.delete(name);
      this.updateDeployment({ status: 'done', record, steps });
      return record;
    } catch (error) {
      const message = errorMessage(error);
      this._failSteps(message);
      this.updateDeployment({ status: 'failed', error: message });
      throw error;
    } finally {
      this._job = null;
      void this.refresh();
      void this.loadActivations(name).catch(() => undefined);
      void this.loadVersions(name).catch(() => undefined);
      void this.loadDetail(name).catch(() => undefined);
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

  /** Run one job of the deploy, its step (and the earlier steps it names) moving live. */
  private async _runJob(
    action: JobAction,
    bundle: string,
    input: Record<string, unknown> | null = null
  ): Promise<IJobStatus> {
    this._job = action;
    this._setStep(action, { status: 'running', message: `Starting ${action}`, progress: null });
    return this._followJob(action, bundle, input, events => this._addEvents(events));
  }

  /** POST a job and follow its events (long polls) until it finishes. */
  private async _followJob(
    action: JobAction,
    bundle: string,
    input: Record<string, unknown> | null,
    onEvents: (events: IJobEvent[]) => void
  ): Promise<IJobStatus> {
    const body: Record<string, unknown> = { action, bundle };
    if (input !== null) {
      body.input = input;
    }
    const { id } = await requestAPI<{ id: string }>('jobs', jsonBody('POST', body));
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
      onEvents(status.events);
      if (status.status === 'failed') {
        throw new Error(status.error?.error ?? `The ${action} job failed.`);
      }
      if (status.status === 'done') {
        return status;
      }
    }
    throw new Error(`The ${action} job ${id} did not finish within ${JOB_DEADLINE_MS / 60000} minutes.`);
  }

  /**
   * Append job events to the log and move each named step. A later job's events about a
   * step already done (a test job reusing the image it just built) are neither shown on
   * that step nor logged again; the log never repeats a step's line.
   */
  private _addEvents(events: IJobEvent[]): void {
    if (!this._deployment || events.length === 0) {
      return;
    }
    const current = this._job ? DEPLOY_STEPS.indexOf(this._job) : -1;
    const fresh: IJobEvent[] = [];
    for (const event of events) {
      const known = this._deployment.steps.find(s => s.step === event.step);
      const earlierAndDone = known && known.status === 'done' && DEPLOY_STEPS.indexOf(known.step) < current;
      if (known && !earlierAndDone) {
        this._failedStep = known.step;
        // An event's own status ends or skips its step; a progress-only event (no message)
        // moves the bar and keeps the step's last words.
        const status =
          event.status ?? (known.status === 'waiting' || known.status === 'skipped' ? 'running' : known.status);
        this._setStep(known.step, {
          status,
          message: event.message || known.message,
          progress: status === 'done' ? 1 : event.progress
        });
      }
      const key = `${event.step}\u0000${event.message}`;
      if (event.message && !earlierAndDone && !this._logged.has(key)) {
        this._logged.add(key);
        fresh.push(event);
      }
    }
    if (fresh.length) {
      this.updateDeployment({ log: [...this._deployment.log, ...fresh] });
    }
  }

  private _setStep(step: IDeployStep['step'], update: Partial<IDeployStep>): void {
    if (!this._deployment) {
      return;
    }
    const steps = this._deployment.steps.map(s => (s.step === step ? { ...s, ...update } : s));
    // Reaching a step finishes every earlier one still running (push has no job of its own).
    const index = DEPLOY_STEPS.indexOf(step);
    const settled = steps.map((s, i) =>
      i < index && s.status === 'running' ? { ...s, status: 'done' as const, progress: 1 } : s
    );
    this.updateDeployment({ steps: settled });
  }

  /**
   * Mark a failed deploy's steps: the step the failing job last spoke of fails with the
   * message, every other step still running (the job's own, e.g. deploy after a failed
   * push) fails as stopped by it, and steps never reached stay waiting.
   */
  private _failSteps(message: string): void {
    if (!this._deployment) {
      return;
    }
    const steps = this._deployment.steps;
    const culprit =
      steps.find(s => s.status === 'failed') ??
      steps.find(s => s.step === this._failedStep && s.status === 'running') ??
      steps.find(s => s.status === 'running') ??
      steps.find(s => s.status === 'waiting');
    if (!culprit) {
      return;
    }
    const firstLine = message.split('\n')[0];
    const updated = steps.map(s => {
      if (s === culprit) {
        // A step the job itself failed keeps the job's words for it.
        return { ...s, status: 'failed' as const, message: s.status === 'failed' ? s.message : firstLine };
      }
      if (s.status === 'running') {
        return { ...s, status: 'failed' as const, message: `Stopped: ${culprit.step} failed` };
      }
      return s;
    });
    this.updateDeployment({ steps: updated });
  }

  private _changed = new Signal<this, void>(this);
  private _functions: IFunctionInfo[] = [];
  private _serverError: string | null = null;
  private _loadError: string | null = null;
  private _actingAs: IActingAs | null = null;
  private _loading = false;
  private _deployment: IDeployment | null = null;
  private _activeCell: IActiveCellStatus = { name: null, state: 'none', provenance: null };
  private _changedFunctions: Set<string> = new Set();
  private _activations = new Map<string, IActivationSummary[]>();
  private _schedules = new Map<string, ISchedule[]>();
  private _details = new Map<string, IFunctionDetail>();
  private _lastResults = new Map<string, IActivation>();
  private _versions = new Map<string, IVersion[]>();
  /** The deploy's job now running, and the step its events last named. */
  private _job: JobAction | null = null;
  private _failedStep: IDeployStep['step'] | null = null;
  /** Lines already in the deploy's log (step and message). */
  private _logged = new Set<string>();
  private _disposed = false;
}

/** True when two activation lists hold the same records in the same states. */
function sameActivations(a: ReadonlyArray<IActivationSummary>, b: ReadonlyArray<IActivationSummary>): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => x.activationId === b[i].activationId && x.status === b[i].status && x.duration === b[i].duration)
  );
}
