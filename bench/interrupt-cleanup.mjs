// A bench stopped by Ctrl-C or SIGTERM must not leave its servers, pushers and prefetchers
// running over a deleted directory (they held ports, memory and CPU for the next bench's
// figures). This stops everything that belongs to the bench's work directory, then runs the
// bench's own cleanup and exits with the signal's status.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Postmasters of every data directory up to `depth` levels under `root` (their postmaster.pid). */
function postmasters(root, depth = 3) {
  const pids = [];
  const walk = (dir, level) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name === 'postmaster.pid' && entry.isFile()) {
        const pid = Number(readFileSync(join(dir, entry.name), 'utf8').split('\n')[0]);
        if (Number.isInteger(pid) && pid > 1) pids.push(pid);
      } else if (entry.isDirectory() && level < depth && entry.name !== 'pg_wal' && entry.name !== 'base') {
        walk(join(dir, entry.name), level + 1);
      }
    }
  };
  walk(root, 0);
  return pids;
}

/** Processes (not this one) whose command line names a path under `root`: pushers, prefetchers, tools. */
function processesUnder(root) {
  const pids = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(root)) pids.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** On SIGINT or SIGTERM: stop what runs under `root` (servers: immediate shutdown), then `cleanup()`, then exit. */
export function cleanUpOnInterrupt(root, cleanup) {
  let stopping = false;
  const onSignal = async (name, status) => {
    if (stopping) return;
    stopping = true;
    console.error(`${name}: stopping the bench's servers and removing ${root}`);
    // The bench's own steps fail as their servers go (and its finally may race this cleanup):
    // those failures are expected now and must not end the process before the cleanup is done.
    const expected = (error) => console.error(`(after ${name}) ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    process.on('uncaughtException', expected);
    process.on('unhandledRejection', expected);
    for (const pid of postmasters(root)) signal(pid, 'SIGQUIT');
    for (const pid of processesUnder(root)) signal(pid, 'SIGKILL');
    try {
      await cleanup();
    } catch (error) {
      console.error(`cleanup after ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    process.exit(status);
  };
  process.once('SIGINT', () => void onSignal('SIGINT', 130));
  process.once('SIGTERM', () => void onSignal('SIGTERM', 143));
}
