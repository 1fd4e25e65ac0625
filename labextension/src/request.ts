/**
 * The one helper that talks to the server extension's REST API.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IErrorBody } from './tokens';

/**
 * A failed API call: `message` is the server's actionable text, `reason` its machine reason,
 * `body` the whole error answer (some carry more fields: `suggestion`, `owner`).
 */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly reason: string,
    readonly body: unknown = null
  ) {
    super(message);
    this.name = 'APIError';
  }
}

/**
 * Call `faas/api/<endPoint>` on the Jupyter server and return its JSON body.
 *
 * @param endPoint - the route below `faas/api/`, query string included.
 * @param init - fetch options; a JSON body is sent as given.
 * @returns the parsed JSON answer.
 * @throws APIError with the server's message (or a network/parse message).
 */
export async function requestAPI<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'faas', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(
      `Cannot reach the Jupyter server (${String(error)}). Is it still running?`,
      0,
      'network'
    );
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const body = data as Partial<IErrorBody> | null;
    if (response.status === 404 && !body?.reason) {
      throw new APIError(
        'The jupyter-faas server extension is not enabled on this Jupyter server. ' +
          'Enable it with `jupyter server extension enable jupyter_faas` and restart.',
        404,
        'extension-missing'
      );
    }
    throw new APIError(
      body?.error ?? `The server answered ${response.status} ${response.statusText}.`,
      response.status,
      body?.reason ?? 'http',
      body
    );
  }
  if (data === null) {
    throw new APIError(`The server sent a body that is not JSON from ${endPoint}.`, response.status, 'bad-json');
  }
  return data as T;
}

/** `init` for a JSON request. */
export function jsonBody(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } };
}

/** The message to show for any error thrown by API calls or kernel work. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
