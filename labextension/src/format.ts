/**
 * How times, durations, log lines and failures read in the sidebar and the function page.
 */
import { IActivation } from './tokens';

/**
 * True when an activation's status is a failure of any kind: "application error",
 * "developer error" (OpenWhisk's "action developer error"), "internal error".
 */
export function isFailure(status: string): boolean {
  return status !== 'success' && status !== 'running';
}

/** A duration in ms as people read it. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return 'n/a';
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Seconds since the epoch as "5 min ago" (or "in 5 min" for a time to come). */
export function ago(seconds: number | null | undefined, now = Date.now()): string {
  if (!seconds) {
    return '';
  }
  const delta = now / 1000 - seconds;
  const words = span(Math.abs(delta));
  if (words === null) {
    return delta >= 0 ? 'just now' : 'in less than a minute';
  }
  return delta >= 0 ? `${words} ago` : `in ${words}`;
}

/** A span of seconds in words, or null under a minute. */
function span(seconds: number): string | null {
  if (seconds < 60) {
    return null;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  const days = Math.floor(seconds / 86400);
  return `${days} d`;
}

/** Seconds since the epoch as a local date and time. */
export function absolute(seconds: number | null | undefined): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '';
}

/** Epoch ms as a local 24-hour time of day, to the second ("14:05:09"). */
export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23'
  });
}

/** A digest cut to what people compare ("sha256:0123456789ab"). */
export function shortDigest(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

/** One log line as the page shows it: its short local time, stream and text. */
export interface ILogLine {
  time: string | null;
  stream: string | null;
  text: string;
}

/** OpenWhisk's log line: an ISO timestamp (padded), the stream, then the message. */
const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s+(stdout|stderr):\s?(.*)$/s;

/** A log line with its time as HH:MM:SS.mmm (local), not a full ISO timestamp that wraps. */
export function parseLogLine(line: string): ILogLine {
  const match = LOG_LINE.exec(line);
  if (!match) {
    return { time: null, stream: null, text: line };
  }
  const [, stamp, stream, text] = match;
  const date = new Date(stamp);
  const time = Number.isNaN(date.getTime())
    ? null
    : `${clock(date.getTime())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
  return { time, stream, text };
}

/** An activation's log lines for display, with local times like the rest of the page. */
export function logLines(activation: IActivation): ILogLine[] {
  return activation.logs.map(parseLogLine);
}

/** What a failed activation says first, and the traceback under it. */
export interface IFailure {
  /** "your function raised ValueError: bad threshold", or the server's own words. */
  headline: string;
  /** The traceback's lines (mapped to the cell's line numbers by the server). */
  traceback: string[];
}

/** A Python exception as the runtime reports it: "ValueError: message". */
const EXCEPTION_TEXT = /^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)):\s?(.*)$/s;

/**
 * What to show first for a failed activation: the exception in the person's words, then its
 * traceback. Uses the API's `error` (mapped to the cell) when it has one, else the result's
 * `error` text and the last traceback in the logs.
 */
export function failureOf(activation: IActivation): IFailure | null {
  if (!isFailure(activation.status)) {
    return null;
  }
  const error = activation.error;
  if (error?.headline) {
    const traceback = Array.isArray(error.traceback)
      ? error.traceback
      : error.traceback
        ? error.traceback.split('\n')
        : [];
    return { headline: error.headline, traceback };
  }
  const result = activation.result as { error?: unknown } | null;
  const text = result && typeof result === 'object' && typeof result.error === 'string' ? result.error.trim() : '';
  const match = EXCEPTION_TEXT.exec(text);
  const headline = match
    ? `your function raised ${match[1]}${match[2] ? `: ${match[2]}` : ''}`
    : text || `The activation ended with "${activation.status}".`;
  return { headline, traceback: tracebackInLogs(activation) };
}

/** The last "Traceback (most recent call last):" block in the logs. */
function tracebackInLogs(activation: IActivation): string[] {
  const texts = logLines(activation).map(line => line.text);
  const start = texts.map(text => text.startsWith('Traceback (most recent call last)')).lastIndexOf(true);
  return start < 0 ? [] : texts.slice(start);
}
