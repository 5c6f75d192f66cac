import { readFileSync } from 'node:fs';
import { runTool } from '../process/tool-process.js';

/**
 * Debian's `chromium` in headless mode, as the report tests use it. Root needs --no-sandbox;
 * every name resolves to nothing, and Chromium's own background traffic is switched off so the
 * NetLog shows what the page asked for.
 */
const FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--host-resolver-rules=MAP * ~NOTFOUND',
];

export async function chromiumAvailable(): Promise<boolean> {
  return runTool('chromium', ['--version']).then(
    () => true,
    () => false,
  );
}

/** The DOM after load, serialized; with netLog, every network event goes to that file. */
export async function dumpDom(file: string, options: { netLog?: string; userDataDir: string }): Promise<string> {
  const { stdout } = await runTool('chromium', [
    ...FLAGS,
    `--user-data-dir=${options.userDataDir}`,
    ...(options.netLog ? [`--log-net-log=${options.netLog}`] : []),
    '--dump-dom',
    `file://${file}`,
  ]);
  return stdout;
}

export async function screenshot(
  file: string,
  png: string,
  options: { width: number; height: number; userDataDir: string },
): Promise<void> {
  await runTool('chromium', [
    ...FLAGS,
    `--user-data-dir=${options.userDataDir}`,
    `--window-size=${options.width},${options.height}`,
    '--hide-scrollbars',
    `--screenshot=${png}`,
    `file://${file}`,
  ]);
}

/**
 * URLs a page loaded from file:// tried to fetch, from Chromium's NetLog: requests started on
 * behalf of a file:// document (its network isolation key), other than file:// itself.
 */
export function pageRequests(netLogFile: string): string[] {
  const log = JSON.parse(readFileSync(netLogFile, 'utf8')) as {
    constants: { logEventTypes: Record<string, number> };
    events: Array<{ type: number; params?: { url?: string; network_isolation_key?: string; initiator?: string } }>;
  };
  const start = log.constants.logEventTypes['URL_REQUEST_START_JOB'];
  return log.events
    .filter((e) => e.type === start && e.params?.url && !e.params.url.startsWith('file:'))
    .filter((e) => (e.params?.network_isolation_key ?? '').includes('file://') || e.params?.initiator === 'null')
    .map((e) => e.params!.url!);
}
