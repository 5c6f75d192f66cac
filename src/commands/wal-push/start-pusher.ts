import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { acceptedNames } from '../../config/settings.js';
import { PmsError, type ErrorCode } from '../../errors/catalogue.js';
import { childEnv } from '../../process/child-env.js';
import { SEGMENT_WORKER_ENV, SEGMENT_WORKER_NODE_FLAGS } from '../../process/segment-worker-flags.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'pms-backup.js');

/** What the pusher needs of our environment: the settings table's names, the AWS SDK's own, HOME. */
export function pusherSettings(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const names = acceptedNames();
  const settings: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value !== undefined && (names.has(name) || name.startsWith('AWS_') || name === 'HOME')) settings[name] = value;
  }
  return settings;
}

/**
 * Starts the background pusher for `walDir`, detached (its own session: it outlives this
 * archive_command call and PostgreSQL's signals to it), with the allowlisted child environment
 * and its settings on stdin. Resolves once it listens (or another pusher already does).
 */
export async function startPusher(walDir: string, options: { readAhead: number; concurrency: number }): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      ...SEGMENT_WORKER_NODE_FLAGS,
      CLI,
      'wal-pusher',
      walDir,
      '--read-ahead',
      String(options.readAhead),
      '--concurrency',
      String(options.concurrency),
    ],
    { detached: true, env: childEnv(SEGMENT_WORKER_ENV), cwd: dirname(walDir), stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const answer = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('error', reject);
    child.once('close', (code) => resolve(out.trim() || `exited with status ${code}`));
  });
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(JSON.stringify(pusherSettings()));
  const line = await answer;
  child.stdout!.destroy();
  child.unref();
  if (line === 'ready' || line === 'busy') return;
  let reported: { code?: string; message?: string } = {};
  try {
    reported = JSON.parse(line) as typeof reported;
  } catch {
    reported = { message: line };
  }
  const code = (reported.code?.startsWith('PMS_ERR_') ? reported.code : 'PMS_ERR_INTERNAL') as ErrorCode;
  throw new PmsError(code, `the background pusher could not start: ${reported.message ?? 'no reason given'}`);
}
