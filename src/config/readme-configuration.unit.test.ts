import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../testing/run-cli.js';
import { type SettingName, defaultText, settingNames, settingSpec, settingsReadBy } from './settings.js';

/** The rows of the table under `## pms-backup` → `### Configuration`: variable → default cell. */
function readmeRows(): Map<string, string> {
  const lines = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8').split('\n');
  const section = lines.indexOf('## `pms-backup`');
  assert.ok(section >= 0, 'README has a pms-backup section');
  const start = lines.indexOf('### Configuration', section);
  assert.ok(start > section, 'README has its Configuration subsection');
  const end = lines.findIndex((line, i) => i > start && /^#{2,3} /.test(line));
  const rows = new Map<string, string>();
  for (const line of lines.slice(start, end === -1 ? undefined : end)) {
    const cells = /^\|(.*)\|\s*$/
      .exec(line)?.[1]
      ?.split('|')
      .map((cell) => cell.trim());
    if (!cells || cells[0] === 'variable' || /^-+$/.test(cells[0] ?? '')) continue;
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0] ?? '')?.[1];
    assert.ok(name, `one variable per row, in backticks: ${line}`);
    assert.ok(!rows.has(name), `${name} is listed twice`);
    rows.set(name, cells[1] ?? '');
  }
  return rows;
}

const expectedRow = (name: SettingName) => `| \`${name}\` | ${defaultText(settingSpec(name))} | ${settingSpec(name).help} |`;

test('README’s configuration table lists exactly the pms-backup settings, with their defaults', () => {
  const rows = readmeRows();
  const known = new Set<string>(settingNames());
  for (const name of rows.keys()) assert.ok(known.has(name), `README lists ${name}, which is not in src/config/settings.ts`);
  const missing = settingsReadBy('pms-backup').filter((name) => !rows.has(name));
  assert.deepEqual(missing, [], `add to README:\n${missing.map(expectedRow).join('\n')}`);
  for (const [name, cell] of rows) {
    // Backticks are formatting: `5432` and 5432 are the same default.
    assert.equal(cell.replaceAll('`', ''), defaultText(settingSpec(name as SettingName)), `${name}: README default differs from the table`);
  }
});
