/**
 * The sidebar's work in the notebook's own kernel, whose live namespace holds the names a
 * cell uses: capturing a cell (sidebar_kernel.capture) and the container test with the
 * kernel's run beside it (sidebar_kernel.test).
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { ITestReport } from './tokens';

/** The kernel's capture answer (`jupyter_faas.sidebar_kernel.capture`). */
export interface ICaptureAnswer {
  ok: boolean;
  error?: string;
  reason?: string;
  owner?: IClaimOwner;
  bundle?: string;
  name?: string;
  code_sha256?: string;
}

/** Who deployed a name already (`POST claims` 409, or a capture refused as name-taken). */
export interface IClaimOwner {
  notebook?: string | null;
  cell_id?: string | null;
  version?: string | null;
}

/** What the capture in the kernel gets besides the cell. */
export interface ICaptureOptions {
  replace: boolean;
  cellId: string | null;
  notebook: string | null;
  testInput: Record<string, unknown> | null;
}

/** The longest the kernel may take to capture or test (it runs the cell first), in ms. */
const KERNEL_TIMEOUT_MS = 10 * 60 * 1000;

/** A capture the kernel refused because another cell deployed the name. */
export class NameTaken extends Error {
  constructor(
    message: string,
    readonly owner: IClaimOwner
  ) {
    super(message);
  }
}

/**
 * Run `code` in the kernel without storing history and return its answer: the bare JSON
 * text of the execute_result (not `silent`: a silent request gets no execute_result).
 * Kernel errors (jupyter-faas missing from the kernel's environment, say) are thrown.
 */
async function askKernel(kernel: Kernel.IKernelConnection, code: string, what: string): Promise<any> {
  const future = kernel.requestExecute({
    code,
    silent: false,
    store_history: false,
    allow_stdin: false,
    stop_on_error: false
  });
  let answerText: string | null = null;
  let failure: string | null = null;
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (KernelMessage.isExecuteResultMsg(msg) || KernelMessage.isDisplayDataMsg(msg)) {
      const data = msg.content.data;
      const json = data['application/json'];
      answerText = json !== undefined ? JSON.stringify(json) : String(data['text/plain'] ?? '');
    } else if (KernelMessage.isErrorMsg(msg)) {
      failure = `${msg.content.ename}: ${msg.content.evalue}`;
    }
  };
  let timer = 0;
  const timeout = new Promise<never>((_, reject) => {
    timer = window.setTimeout(
      () => reject(new Error(`The kernel did not finish ${what} within ${KERNEL_TIMEOUT_MS / 60000} minutes.`)),
      KERNEL_TIMEOUT_MS
    );
  });
  try {
    await Promise.race([future.done, timeout]);
  } finally {
    window.clearTimeout(timer);
  }
  if (failure !== null) {
    throw new Error(
      `${what[0].toUpperCase()}${what.slice(1)} in the kernel failed: ${failure}. Is jupyter-faas installed in the ` +
        "notebook's kernel environment?"
    );
  }
  if (answerText === null) {
    throw new Error(`The kernel gave no answer when ${what}.`);
  }
  try {
    return JSON.parse(answerText);
  } catch {
    throw new Error(
      `The kernel's answer when ${what} is not JSON: ${String(answerText).slice(0, 200)}. Do the kernel and the ` +
        'Jupyter server have the same jupyter-faas version?'
    );
  }
}

/** A Python expression for `value` (JSON text read by json.loads; a JSON string is a Python string). */
function pythonValue(value: unknown): string {
  return value === null || value === undefined ? 'None' : `_json.loads(${JSON.stringify(JSON.stringify(value))})`;
}

/**
 * Capture `source` as function `name` in the notebook's kernel (sidebar_kernel.capture).
 *
 * @throws NameTaken when another cell deployed `name` and `options.replace` is false.
 */
export async function captureInKernel(
  kernel: Kernel.IKernelConnection,
  name: string,
  source: string,
  options: ICaptureOptions
): Promise<ICaptureAnswer & { bundle: string }> {
  // A JSON string literal is also a Python string literal for the same text, whatever
  // quotes, backslashes or non-ASCII characters the cell holds.
  const code =
    'import json as _json, jupyter_faas.sidebar_kernel as _faas; ' +
    `_faas.capture(${JSON.stringify(name)}, ${JSON.stringify(source)}, None, None, ` +
    `replace=${options.replace ? 'True' : 'False'}, cell_id=${pythonValue(options.cellId)}, ` +
    `notebook=${pythonValue(options.notebook)}, test_input=${pythonValue(options.testInput)})`;
  const answer = (await askKernel(kernel, code, `capturing ${name}`)) as ICaptureAnswer;
  if (!answer.ok && answer.reason === 'name-taken' && answer.owner) {
    throw new NameTaken(answer.error ?? `${name} is deployed from another cell.`, answer.owner);
  }
  if (!answer.ok || !answer.bundle) {
    throw new Error(answer.error ?? `The kernel could not capture ${name}.`);
  }
  return answer as ICaptureAnswer & { bundle: string };
}

/**
 * The container test of `name` on `input` run from the notebook's kernel, with the kernel's
 * own run beside it and the verdict, as `%%faas` shows it (sidebar_kernel.test).
 *
 * @returns the report, or null when the kernel's jupyter-faas is older and has no such test.
 */
export async function testInKernel(
  kernel: Kernel.IKernelConnection,
  name: string,
  input: Record<string, unknown>
): Promise<ITestReport | null> {
  // The kernel's environment may hold another jupyter-faas version than the server's.
  const code =
    'import jupyter_faas.sidebar_kernel as _faas; ' +
    `(_faas.test(${JSON.stringify(name)}, ${JSON.stringify(JSON.stringify(input))}) ` +
    `if hasattr(_faas, "test") else _faas.CaptureReply("null"))`;
  const answer = await askKernel(kernel, code, `testing ${name}`);
  if (answer === null) {
    return null;
  }
  if (answer.ok === false && !answer.container) {
    throw new Error(answer.error ?? `The kernel could not test ${name}.`);
  }
  return answer as ITestReport;
}
