import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';

/** An `include` or `include_dir` of the restored postgresql.conf that this host cannot satisfy. */
export interface MissingInclude {
  readonly directive: 'include' | 'include_dir';
  /** As written in the file. */
  readonly path: string;
}

const DIRECTIVE = /^\s*(include_if_exists|include_dir|include)\s*=?\s*'((?:[^'\\]|''|\\.)*)'/;

/**
 * The includes of `<dataDir>/postgresql.conf` whose target is missing here. A Patroni member's
 * data directory holds Patroni's postgresql.conf, which includes the pod's own configuration
 * (e.g. /etc/postgresql/postgresql.conf from its ConfigMap): restored on another host, the server
 * refuses to start until that file exists. `include_if_exists` is skipped (PostgreSQL skips it
 * too). The file was checked by inspectExtracted (a regular file, no link) and is read without
 * following a link all the same.
 */
export async function missingConfigIncludes(dataDir: string): Promise<MissingInclude[]> {
  let text: string;
  try {
    const handle = await open(join(dataDir, 'postgresql.conf'), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return [];
  }
  const missing: MissingInclude[] = [];
  for (const line of text.split('\n')) {
    const match = DIRECTIVE.exec(line);
    if (!match || match[1] === 'include_if_exists') continue;
    const written = (match[2] ?? '').replace(/''/g, "'").replace(/\\(.)/g, '$1');
    const target = isAbsolute(written) ? written : join(dataDir, written);
    const present = await access(target).then(
      () => true,
      () => false,
    );
    if (!present) missing.push({ directive: match[1] as MissingInclude['directive'], path: written });
  }
  return missing;
}
