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
  export const pages = 'jupyter-faas:pages';
}

/** Command ids (labels are set where the commands are added). */
export namespace CommandIDs {
  export const deployCell = 'jupyter-faas:deploy-cell';
  export const openPanel = 'jupyter-faas:open-panel';
  export const openFunction = 'jupyter-faas:open-function';
}

/** The sidebar widget's id; the layout restorer stores it. */
export const SIDEBAR_ID = 'jupyter-faas:sidebar';

/** The cell metadata key holding deployment provenance (and the cell's test input). */
export const METADATA_KEY = 'faas';

/** The prefix of a function page's widget id (the function's name follows). */
export const PAGE_ID_PREFIX = 'jp-faas-function-';

/** Palette category of the commands. */
export const PALETTE_CATEGORY = 'Functions';

/** A function's life-cycle state, furthest step reached ('test-failed': its last container test failed). */
export type FunctionState = 'bundle' | 'built' | 'test-failed' | 'tested' | 'deployed';

/** What started an activation: a person (an API key), a schedule, a trigger, a sequence. */
export interface IActivationCause {
  kind: 'person' | 'schedule' | 'trigger' | 'sequence' | string;
  /** Short words for a badge: "guest", "schedule *\/5 * * * *", "trigger t1", "sequence pipe". */
  label: string;
  subject?: string | null;
  trigger?: string | null;
  cron?: string | null;
  sequence?: string | null;
  parent?: string | null;
}

/** A summary of one activation, as listed by the server. */
export interface IActivationSummary {
  activationId: string;
  name?: string;
  status: string;
  ok?: boolean;
  start: number;
  duration: number | null;
  cold: boolean;
  /** The function's version that ran, when known. */
  version?: string | null;
  cause?: IActivationCause | null;
}

/** A failure's parts, mapped to the cell by the server extension. */
export interface IActivationError {
  headline?: string;
  type?: string | null;
  message?: string | null;
  traceback?: string | string[] | null;
  frames?: { where: string; line: number; function: string; text: string }[];
}

/** A full activation record (`GET activations/{id}` or a blocking invoke). */
export interface IActivation extends IActivationSummary {
  ok: boolean;
  result: unknown;
  logs: string[];
  waitTime: number | null;
  initTime: number | null;
  error?: IActivationError | null;
}

/** One deploy of a function: what ran, from which code, when and by whom. */
export interface IVersion {
  version: string;
  time: number | null;
  who: string | null;
  image: string | null;
  digest: string | null;
  code_sha256: string | null;
  current: boolean;
  rollback_of?: string | null;
  cell_id?: string | null;
  notebook?: string | null;
}

/** The last container test this server ran of a function. */
export interface ITestSummary {
  ok: boolean;
  verdict: string;
  status: string;
  message: string;
  time: number;
}

/** What the function page shows beyond the list row. */
export interface IFunctionDetail extends IFunctionInfo {
  commands: { curl?: string; wsk?: string; web_url?: string | null };
  schedules?: ISchedule[];
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
  test?: ITestSummary | null;
  /** The last deploy's provenance (its notebook and cell when known). */
  provenance?: IProvenance | null;
  web_url?: string | null;
}

/** `GET functions`. */
export interface IFunctionList {
  functions: IFunctionInfo[];
  server_error?: string;
  /** Whose namespace the server acts on (null outside JupyterHub). */
  acting_as?: IActingAs | null;
}

/** On JupyterHub: the person the sidebar acts as; `guest_of` names the server's owner for a guest. */
export interface IActingAs {
  user: string;
  namespace: string | null;
  guest_of: string | null;
}

/** `GET status`: each deployed function's server state, cheap to poll. */
export interface IServerStatus {
  functions: Record<string, { version: string | null; last_activation: IActivationSummary | null }>;
  server_error?: string;
}

/** One progress event of a job; `status` ends or skips its step. */
export interface IJobEvent {
  step: string;
  message: string;
  progress: number | null;
  status?: 'running' | 'done' | 'failed' | 'skipped';
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
  cell_sha256?: string | null;
  cell_id?: string | null;
  notebook?: string | null;
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
  cell_id?: string | null;
  notebook?: string | null;
  /** The input the container test uses (set from the function page). */
  test_input?: Record<string, unknown>;
}

/** A container test's report (the test job's result), with the kernel's side when it ran. */
export interface ITestReport {
  ok?: boolean;
  verdict: string;
  message?: string;
  error?: IActivationError | null;
  differences?: string[];
  container: {
    status: string;
    result: unknown;
    logs: string[];
    seconds: number | null;
    peak_memory_bytes?: number | null;
  };
  kernel?: { ok: boolean; result: unknown; error?: string | null; seconds?: number | null } | null;
}

/** A cron schedule of a function. */
export interface ISchedule {
  trigger: string;
  action: string;
  cron: string;
  /** The next run, in epoch seconds and in words ("in 4 minutes, at 12:05 UTC"). */
  next_run?: { time: number; words: string } | null;
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
  /** Whose namespace the server acts on, from the last list (null outside JupyterHub). */
  readonly actingAs: IActingAs | null;
  readonly loading: boolean;
  readonly deployment: IDeployment | null;
  readonly activeCell: IActiveCellStatus;
  /** Names of functions whose cells in open notebooks changed since their deploy. */
  readonly changedFunctions: ReadonlySet<string>;
  refresh(): Promise<void>;
  refreshStatus(): Promise<void>;
  /** The list row of `name`, if listed. */
  info(name: string): IFunctionInfo | undefined;
  detail(name: string): IFunctionDetail | undefined;
  loadDetail(name: string): Promise<void>;
  versions(name: string): ReadonlyArray<IVersion> | undefined;
  loadVersions(name: string): Promise<void>;
  /** Make `version` the deployed code of `name` again (one step); the new current version. */
  rollback(name: string, version: string): Promise<IVersion>;
  /** The bundle's files as text, by file name. */
  bundleFiles(name: string): Promise<Record<string, string>>;
  /** Delete `name` everywhere: its schedules, action and bundle (the version history stays). */
  deleteFunction(name: string): Promise<void>;
  /** Run a container test of `bundle` on `input` (a job); its report. */
  testBundle(bundle: string, input: Record<string, unknown>): Promise<ITestReport>;
  activations(name: string): ReadonlyArray<IActivationSummary> | undefined;
  loadActivations(name: string): Promise<void>;
  activation(id: string): Promise<IActivation>;
  /** The last invoke's activation from this page, until the function is deployed again. */
  lastResult(name: string): IActivation | undefined;
  invoke(name: string, input: Record<string, unknown>): Promise<IActivation>;
  schedules(name: string): ReadonlyArray<ISchedule> | undefined;
  loadSchedules(name: string): Promise<void>;
  addSchedule(name: string, cron: string): Promise<void>;
  removeSchedule(name: string, cron: string): Promise<void>;
  beginDeployment(name: string): IDeployment;
  updateDeployment(update: Partial<IDeployment>): void;
  deployBundle(name: string, bundle: string, testInput: Record<string, unknown> | null): Promise<IDeployRecord>;
  setActiveCell(status: IActiveCellStatus): void;
  setChangedFunctions(names: Set<string>): void;
}

/** The model's token: the deploy and sidebar plugins share one model. */
export const IFunctionsModel = new Token<IFunctionsModel>(
  'jupyter-faas:IFunctionsModel',
  'The Functions sidebar model: functions, deploys, activations and schedules.'
);
