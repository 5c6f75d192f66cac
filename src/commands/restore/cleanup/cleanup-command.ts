import { createInterface } from 'node:readline/promises';
import { loadBackupConfig } from '../../../config/config.js';
import { PmsError } from '../../../errors/catalogue.js';
import { type Leftover, describeLeftover, findStagingDatabases, findThrowawayDirectories, removeLeftover } from './leftovers.js';

/**
 * `pms-backup restore --cleanup`: what a killed restore or verify left behind (a staging
 * database with partial patient data, a throwaway server's directory), found, shown with its
 * age, and removed after confirmation. Anything in use (a session connected, a server running,
 * younger than five minutes) is left alone.
 */
export async function runCleanup(options: { json: boolean; yes: boolean }): Promise<number> {
  const config = loadBackupConfig(process.env);
  const found: Leftover[] = [...(await findStagingDatabases(config.postgres)), ...findThrowawayDirectories()];
  const orphaned = found.filter((l) => l.orphaned);
  const inUse = found.filter((l) => !l.orphaned);
  if (!options.json) {
    for (const l of inUse) process.stdout.write(`left alone (in use or too recent): ${describeLeftover(l)}\n`);
    if (orphaned.length === 0) process.stdout.write('nothing to clean up\n');
    for (const l of orphaned) process.stdout.write(`left over: ${describeLeftover(l)}\n`);
  }
  if (orphaned.length > 0 && !options.yes) await confirm(orphaned.length);
  const removed: Leftover[] = [];
  for (const leftover of orphaned) {
    await removeLeftover(config.postgres, leftover);
    removed.push(leftover);
    if (!options.json) process.stdout.write(`removed ${describeLeftover(leftover)}\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ ok: true, removed, leftAlone: inUse }, null, 2)}\n`);
  return 0;
}

async function confirm(count: number): Promise<void> {
  if (!process.stdin.isTTY)
    throw new PmsError('PMS_ERR_USAGE', `restore --cleanup would remove ${count} leftover(s): confirm on a terminal, or pass --yes`);
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`remove these ${count} leftover(s)? type yes to confirm: `);
    if (answer.trim() !== 'yes') throw new PmsError('PMS_ERR_ABORTED', 'restore --cleanup: not confirmed, nothing removed');
  } finally {
    prompt.close();
  }
}
