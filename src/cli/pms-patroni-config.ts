import { renameSync, writeFileSync } from 'node:fs';
import { patroniConfig } from '../postgres/patroni/patroni-config.js';
import { readPatroniInputs } from '../postgres/patroni/patroni-inputs.js';
import { reportAndExit } from './exit-boundary.js';

/**
 * `pms-patroni-config FILE`: the postgres image's HA entrypoint (docker/patroni/entrypoint.sh) runs
 * this, then `exec patroni FILE`. The file holds the replication, rewind and REST API passwords, so
 * it is written 0600 into a memory emptyDir (like the mounted Secret it is made from), never to disk.
 */
function main(argv: readonly string[]): void {
  const output = argv[0];
  if (output === undefined || argv.length !== 1) {
    process.stderr.write('usage: pms-patroni-config OUTPUT_FILE\n');
    process.exit(2);
  }
  try {
    // JSON is YAML too, and needs no YAML library in the image (yaml is a dev dependency).
    const text = `${JSON.stringify(patroniConfig(readPatroniInputs(process.env)), null, 2)}\n`;
    const temporary = `${output}.tmp-${process.pid}`;
    writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, output);
  } catch (error) {
    reportAndExit(error);
  }
}

main(process.argv.slice(2));
