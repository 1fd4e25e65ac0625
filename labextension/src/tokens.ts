/**
 * Ids, the model's token and the shapes of the server extension's REST API
 * (`faas/api/`, described in the project's docs); one place for every name.
 */
import { ISignal } from '@lumino/signaling';
import { Token } from '@lumino/coreutils';

/** Plugin ids. */
export namespace PluginIDs {
  export const model = 'jupyter-faas:model';
  export const sidebar = 'jupyter-faas:sidebar-plugin';
  export const deploy = 'jupyter-faas:deploy';
}

/** Command ids (labels are set where the commands are added). */
export namespace CommandIDs {
  export const deployCell = 'jupyter-faas:deploy-cell';
  export const openPanel = 'jupyter-faas:open-panel';
}

/** The sidebar widget's id; the layout restorer stores it. */
export const SIDEBAR_ID = 'jupyter-faas:sidebar';

/** The cell metadata key holding deployment provenance. */
export const METADATA_KEY = 'faas';

/** Palette category of the commands. */
export const PALETTE_CATEGORY = 'Functions';

/** A function's life-cycle state, furthest step reached. */
export type FunctionState = 'bundle' | 'built' | 'tested' | 'deployed';

/** A summary of one activation, as listed by the server. */
export interface IActivationSummary {
  activationId: string;
  name?: string;
  status: string;
  start: number;
  duration: number | null;
  cold: boolean;
}

/** A full activation record (`GET activations/{id}` or a blocking invoke). */
export interface IActivation extends IActivationSummary {
  ok: boolean;
  result: unknown;
  logs: string[];
  waitTime: number | null;
  initTime: number | null;
}

/** Where and when a function was deployed. */
export interface IDeployedInfo {
  version: string | null;
  time: number | null;
  server: string | null;
  namespace: string | null;
}

/** One row of `GET functions`. */
export interface IFunctionInfo {
  name: string;
  bundle: string | null;
  state: FunctionState;
  image: string | null;
  digest: string | null;
  deployed: IDeployedInfo | null;
  last_activation: IActivationSummary | null;
}

/** `GET functions`. */
export interface IFunctionList {
  functions: IFunctionInfo[];
  server_error?: string;
}

/** One progress event of a job. */
export interface IJobEvent {
  step: string;
  message: string;
  progress: number | null;
}

/** The JSON error body of every failing route. */
export interface IErrorBody {
  error: string;
  reason: string;
}

/** Actions a job can run. */
export type JobAction = 'build' | 'test' | 'push' | 'deploy';

/** `GET jobs/{id}?after=N`. */
export interface IJobStatus {
  id: string;
  action: JobAction;
  bundle: string;
  status: 'running' | 'done' | 'failed';
  events: IJobEvent[];
  next: number;
  result: any | null;
  error: IErrorBody | null;
}

/** The record a deploy job returns; also the base of the cell's provenance. */
export interface IDeployRecord {
  name: string;
  server: string;
  namespace: string | null;
  version: string | null;
  image: string;
  digest: string;
  code_sha256: string;
  time: number;
}

/** What the sidebar writes into `cell.metadata.faas` after a deploy. */
export interface IProvenance {
  name: string;
  image: string;
  digest: string;
  server: string;
  namespace: string | null;
  version: string | null;
  time: number;
  cell_sha256: string;
}

/** A cron schedule of a function. */
export interface ISchedule {
  trigger: string;
  action: string;
  cron: string;
}

/** One step of the deploy pipeline as the sidebar shows it. */
export interface IDeployStep {
  step: 'capture' | JobAction;
  status: 'waiting' | 'running' | 'done' | 'failed' | 'skipped';
  message: string;
  progress: number | null;
}

/** The deploy the sidebar is showing (the latest one). */
export interface IDeployment {
  name: string;
  status: 'running' | 'done' | 'failed';
  steps: IDeployStep[];
  log: IJobEvent[];
  record: IDeployRecord | null;
  error: string | null;
}

/** Deployment status of the active notebook cell, for the sidebar's header. */
export interface IActiveCellStatus {
  /** Function name from the cell's provenance or its `%%faas NAME` line, if any. */
  name: string | null;
  /** `deployed`: provenance matches the source; `changed`: it does not; `none`: never deployed. */
  state: 'none' | 'deployed' | 'changed';
  provenance: IProvenance | null;
}

/** The sidebar's model: server data, the running deploy, per-function results. */
export interface IFunctionsModel {
  /** Emitted whenever anything the view shows changes. */
  readonly changed: ISignal<IFunctionsModel, void>;
  readonly functions: ReadonlyArray<IFunctionInfo>;
  readonly serverError: string | null;
  readonly loadError: string | null;
  readonly loading: boolean;
  readonly deployment: IDeployment | null;
  readonly activeCell: IActiveCellStatus;
  /** Names of functions whose cells in open notebooks changed since their deploy. */
  readonly changedFunctions: ReadonlySet<string>;
  refresh(): Promise<void>;
  activations(name: string): ReadonlyArray<IActivationSummary> | undefined;
  loadActivations(name: string): Promise<void>;
  activation(id: string): Promise<IActivation>;
  invoke(name: string, input: Record<string, unknown>): Promise<IActivation>;
  schedules(name: string): ReadonlyArray<ISchedule> | undefined;
  loadSchedules(name: string): Promise<void>;
  addSchedule(name: string, cron: string): Promise<void>;
  removeSchedule(name: string, cron: string): Promise<void>;
  beginDeployment(name: string): IDeployment;
  updateDeployment(update: Partial<IDeployment>): void;
  deployBundle(name: string, bundle: string): Promise<IDeployRecord>;
  setActiveCell(status: IActiveCellStatus): void;
  setChangedFunctions(names: Set<string>): void;
}

/** The model's token: the deploy and sidebar plugins share one model. */
export const IFunctionsModel = new Token<IFunctionsModel>(
  'jupyter-faas:IFunctionsModel',
  'The Functions sidebar model: functions, deploys, activations and schedules.'
);
