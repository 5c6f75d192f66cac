import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const boundary = fileURLToPath(new URL('./exit-boundary.js', import.meta.url));
const catalogue = fileURLToPath(new URL('../errors/catalogue.js', import.meta.url));

// A command whose library leaves a rejected promise unawaited (the base-backup race seen in CI
// under load) ends with the typed error in the usual format and exit status, not Node's crash.
for (const json of [false, true]) {
  test(`an unhandled rejection inside a command action is reported as its typed error${json ? ' (--json)' : ''}`, () => {
    const script = `
      const { action } = await import(${JSON.stringify(boundary)});
      const { PmsError } = await import(${JSON.stringify(catalogue)});
      await action(async () => {
        Promise.reject(new PmsError('PMS_ERR_CONFIG', 'the cluster has 1 tablespace(s) outside the data directory'));
        await new Promise((resolve) => setTimeout(resolve, 5000));
      })({ json: ${json} });
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr, 'error PMS_ERR_CONFIG: the cluster has 1 tablespace(s) outside the data directory\n');
    if (json) assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'PMS_ERR_CONFIG');
  });
}
