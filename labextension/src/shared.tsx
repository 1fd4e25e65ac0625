/**
 * The sidebar's Shared section: functions other namespaces published (OpenWhisk published
 * packages), with Invoke and "Copy to notebook", and Publish / Unpublish for one's own.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useState } from 'react';

import { ago } from './format';
import { errorMessage, jsonBody, requestAPI } from './request';
import { IActivation, IFunctionInfo } from './tokens';

/** One published function (`GET shared`). */
export interface ISharedFunction {
  ref: string;
  owner: string;
  package: string;
  name: string;
  description: string;
  version: string | null;
  updated_ms: number | null;
  contract: {
    handler?: string;
    parameters?: { name: string; required?: boolean }[];
    sample_input?: Record<string, unknown> | null;
    memory_mb?: number | null;
    timeout_s?: number | null;
  };
  mine: boolean;
}

/** `POST shared/pull`: the copied bundle and the cell to derive from it. */
export interface IPulled {
  name: string;
  ref: string;
  version: string | null;
  path: string;
  cell: string;
}

interface ISharedProps {
  /** The caller's deployed functions, which it may publish. */
  functions: readonly IFunctionInfo[];
  /** Put a cell below the active one; false when no notebook is open. */
  insertCell: (text: string) => boolean;
}

/** The Shared section. */
export function SharedSection({ functions, insertCell }: ISharedProps): JSX.Element {
  const [shared, setShared] = useState<ISharedFunction[] | null>(null);
  const [error, setError] = useState('');
  const [notes, setNotes] = useState<Record<string, string>>({});
  const note = (ref: string, text: string) => setNotes(old => ({ ...old, [ref]: text }));

  const load = useCallback(async () => {
    try {
      const answer = await requestAPI<{ functions: ISharedFunction[] }>('shared');
      setShared(answer.functions);
      setError('');
    } catch (err) {
      setError(errorMessage(err));
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  const invoke = async (fn: ISharedFunction) => {
    note(fn.ref, 'Invoking…');
    try {
      const input = fn.contract.sample_input ?? {};
      const record = await requestAPI<IActivation>('shared/invoke', jsonBody('POST', { ref: fn.ref, input }));
      note(fn.ref, `${record.status}: ${JSON.stringify(record.result)}`);
    } catch (err) {
      note(fn.ref, errorMessage(err));
    }
  };
  const copy = async (fn: ISharedFunction) => {
    try {
      const pulled = await requestAPI<IPulled>('shared/pull', jsonBody('POST', { ref: fn.ref, as: `${fn.name}-copy` }));
      const placed = insertCell(pulled.cell);
      note(fn.ref, `Copied to ${pulled.path}${placed ? '; the %%faas cell is below the active cell' : '; open a notebook to get its cell'}`);
    } catch (err) {
      note(fn.ref, errorMessage(err));
    }
  };
  const unpublish = async (fn: ISharedFunction) => {
    try {
      await requestAPI(`shared?name=${encodeURIComponent(fn.name)}&package=${encodeURIComponent(fn.package)}`, {
        method: 'DELETE'
      });
    } catch (err) {
      setError(errorMessage(err));
    }
    void load();
  };

  const own = functions.filter(f => f.deployed);
  return (
    <section className="jp-faas-Shared" aria-label="Shared functions" data-testid="faas-shared">
      <header className="jp-faas-Header">
        <h3 className="jp-faas-Subtitle">Shared</h3>
        <Button small minimal data-testid="faas-shared-refresh" title="Reload the shared functions" onClick={() => void load()}>
          Reload
        </Button>
      </header>
      {own.length > 0 && <PublishForm names={own.map(f => f.name)} onPublished={load} />}
      {error && (
        <p className="jp-faas-Error" role="alert" data-testid="faas-shared-error">
          {error}
        </p>
      )}
      {shared === null ? (
        <p className="jp-faas-Empty">Loading…</p>
      ) : shared.length === 0 ? (
        <p className="jp-faas-Empty" data-testid="faas-shared-empty">
          Nothing is published yet. Publish one of your deployed functions to share it.
        </p>
      ) : (
        <ul className="jp-faas-List" aria-label="Shared functions">
          {shared.map(fn => (
            <li key={fn.ref} className="jp-faas-SharedItem" data-testid={`faas-shared-${fn.ref}`}>
              <div className="jp-faas-SharedHead">
                <span className="jp-faas-FunctionName">{fn.name}</span>
                <span className="jp-faas-SharedOwner">
                  by {fn.owner}
                  {fn.mine ? ' (you)' : ''} · {fn.package}
                </span>
              </div>
              {fn.description && <p className="jp-faas-SharedDescription">{fn.description}</p>}
              <p className="jp-faas-SharedContract" data-testid={`faas-shared-contract-${fn.ref}`}>
                input: {(fn.contract.parameters ?? []).map(p => p.name).join(', ') || 'any'}
                {fn.contract.sample_input ? ` · e.g. ${JSON.stringify(fn.contract.sample_input)}` : ''} · v{fn.version ?? '?'}
                {fn.updated_ms ? ` · ${ago(fn.updated_ms / 1000)}` : ''}
              </p>
              <div className="jp-faas-Actions">
                <Button small data-testid={`faas-shared-invoke-${fn.ref}`} onClick={() => void invoke(fn)}>
                  Invoke
                </Button>
                <Button small data-testid={`faas-shared-copy-${fn.ref}`} onClick={() => void copy(fn)}>
                  Copy to notebook
                </Button>
                {fn.mine && (
                  <Button small data-testid={`faas-shared-unpublish-${fn.ref}`} onClick={() => void unpublish(fn)}>
                    Unpublish
                  </Button>
                )}
              </div>
              {notes[fn.ref] && (
                <pre className="jp-faas-SharedNote" data-testid={`faas-shared-note-${fn.ref}`}>
                  {notes[fn.ref]}
                </pre>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Publish one of one's deployed functions, with a description. */
function PublishForm({ names, onPublished }: { names: string[]; onPublished: () => Promise<void> }): JSX.Element {
  const [name, setName] = useState(names[0]);
  const [description, setDescription] = useState('');
  const [message, setMessage] = useState('');
  const chosen = names.includes(name) ? name : names[0];
  const publish = async () => {
    try {
      const shared = await requestAPI<ISharedFunction>('shared', jsonBody('POST', { name: chosen, description }));
      setMessage(`Published ${shared.ref} (v${shared.version})`);
      await onPublished();
    } catch (err) {
      setMessage(errorMessage(err));
    }
  };
  return (
    <div className="jp-faas-PublishForm">
      <select aria-label="Function to publish" data-testid="faas-publish-name" value={chosen} onChange={e => setName(e.target.value)}>
        {names.map(n => (
          <option key={n}>{n}</option>
        ))}
      </select>
      <input
        aria-label="Description"
        placeholder="What it does"
        data-testid="faas-publish-description"
        value={description}
        onChange={e => setDescription(e.target.value)}
      />
      <Button small data-testid="faas-publish" onClick={() => void publish()}>
        Publish
      </Button>
      {message && <span data-testid="faas-publish-message">{message}</span>}
    </div>
  );
}
