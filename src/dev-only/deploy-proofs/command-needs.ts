import { runCli } from '../../testing/run-cli.js';
import type { Invocation, SigningNeeds } from './signing-key-placement.js';

/** Left out of the probe: the settings asked about, and the repository so nothing can run. */
const WITHHELD = new Set([
  'BACKUP_SIGNING_KEY_FILE',
  'BACKUP_SIGNING_PASSPHRASE_FILE',
  'BACKUP_TRUSTED_SIGNERS_FILE',
  'BACKUP_REPOSITORY',
  'S3_BUCKET',
]);

/**
 * What an invocation's command needs, asked of the real program rather than restated here:
 * pms-backup checks its configuration before it does anything and lists every missing required
 * setting at once (exit 2), so running the command with the container's environment minus the
 * signing settings and the repository names exactly the ones it requires, and touches nothing.
 */
export async function probeSigningNeeds(invocation: Invocation, env: Readonly<Record<string, string>>): Promise<SigningNeeds> {
  // verify-server opens no repository and refuses to start with any key or credential in its
  // environment (verify-server.test.ts proves that refusal), so it neither signs nor checks.
  if (invocation.argv[0] === 'verify-server') return { signing: false, trust: false };
  const probe = Object.fromEntries(Object.entries(env).filter(([name]) => !WITHHELD.has(name)));
  const result = await runCli('pms-backup', invocation.argv, probe);
  const missing = new Set([...result.stderr.matchAll(/^\s+- ([A-Z0-9_]+) is not set: /gm)].map((m) => m[1]));
  // Without the repository every one of these commands must refuse: anything else means it ran.
  if (result.code !== 2 || !missing.has('BACKUP_REPOSITORY')) {
    throw new Error(
      `${invocation.owner} ${invocation.container}: pms-backup ${invocation.argv.join(' ')} without a repository exited ${result.code}, so its needs are unknown:\n${result.stderr}`,
    );
  }
  return { signing: missing.has('BACKUP_SIGNING_KEY_FILE'), trust: missing.has('BACKUP_TRUSTED_SIGNERS_FILE') };
}
