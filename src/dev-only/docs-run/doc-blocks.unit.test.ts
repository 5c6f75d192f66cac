import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../testing/run-cli.js';
import { readDocBlocks, runnableSections, skippedBlocks } from './doc-blocks.js';

const doc = (name: string) => join(REPO_ROOT, name);

/**
 * Every shell block of the operators' documents that is NOT executed by a docs test, by section and
 * first line. A new or changed block fails here until it is either marked `bash runbook` (and run)
 * or added to this list on purpose.
 */
const NOT_EXECUTED: Record<string, string[]> = {
  'docs/runbook.md': [
    // Need the Kubernetes cluster: the restore shell and the pms_restore login (npm run
    // test:containers makes the same pod from the rendered manifests and enables the login alike).
    'Before you start: NS=patient-monitoring',
    `Before you start: kubectl -n "$NS" exec statefulset/postgres -c postgres -- psql -Xq -U postgres -d postgres -c 'ALTER ROLE pms_restore NOLOGIN PASSWORD NULL'`,
  ],
  // No commands of its own: its restore procedure is the runbook's (executed there).
  'docs/pitr.md': [],
  // Every block runs (runbook.test.ts, after the runbook's "Before you start").
  'docs/break-glass.md': [],
  // Need the Kubernetes cluster (runbook.test.ts provides the files they fetch); the rest runs.
  'docs/key-rotation.md': [
    "Steps (annually, or when the expiry alert fires): kubectl get secret pms-backup-secrets -n patient-monitoring -o jsonpath='{.data.gpg-private-key}' | base64 -d > old-private.key",
    "Steps (annually, or when the expiry alert fires): kubectl patch secret pms-backup-secrets -n patient-monitoring --type='json' -p='[",
    'Steps (annually, or when the expiry alert fires): kubectl create job --from=cronjob/pms-backup pms-backup-rotation-check -n patient-monitoring',
    'Rotating a signing key: kubectl get configmap pms-trusted-signers -n patient-monitoring \\',
    'Rotating a signing key: kubectl create configmap pms-trusted-signers -n patient-monitoring --dry-run=client -o yaml \\',
    'Rotating a signing key: sha256sum trusted-signers.asc',
    'Rotating a signing key: kubectl create secret generic pms-backup-signing -n patient-monitoring --dry-run=client -o yaml \\',
    'Rotating a signing key: kubectl create job --from=cronjob/pms-backup pms-backup-signing-check -n patient-monitoring',
    'Rotating a signing key: kubectl -n patient-monitoring exec statefulset/postgres -c postgres -- pms-backup keys',
  ],
  // The correction examples run (telemetry-corrections.test.ts, each reply compared); these are
  // command references and sample output, covered by the commands' own tests.
  'docs/telemetry.md': [
    '(preamble): pms-telemetry migrate [--json]',
    "Readers: scopes and the access trail: pms-telemetry reader register --name ward-7-dashboard --patient '999 000 0018' --patient 9990000026",
    'Readers: scopes and the access trail: pms-telemetry access-log --patient 9990000018 --since 2025-03-01',
    'Readers: scopes and the access trail: TIME                      READER            PATIENT     OUTCOME    ROWS',
    'Tests and benchmark: npx tsc -p .',
  ],
  'README.md': [
    // Checked below against package.json: running them would run the demo and the whole suite.
    'Quick start: npm ci && npm run demo    # the whole chain locally, no cloud account, ~30 s',
    // Placeholders for a production host and bucket.
    '`pms-backup`: export POSTGRES_HOST=db.internal POSTGRES_USER=pms_backup POSTGRES_PASSWORD_FILE=/run/secrets/postgres-password',
  ],
};

describe('docs that run: which blocks run', () => {
  test('a block marked `bash runbook` runs, other shell blocks and unlabelled ones do not, indented fences included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pms-doc-blocks-'));
    try {
      const file = join(dir, 'doc.md');
      writeFileSync(
        file,
        [
          'intro',
          '```bash',
          'kubectl get pods',
          '```',
          '## One',
          '```bash runbook',
          'echo one',
          '```',
          '```json',
          '{"not": "a command"}',
          '```',
          '## Two',
          '1. Step:',
          '',
          '   ```bash runbook',
          '   echo two',
          '     indented',
          '   ```',
          '```',
          'plain',
          '```',
        ].join('\n'),
      );
      assert.deepEqual(runnableSections(file), [
        { title: 'One', blocks: ['echo one'] },
        { title: 'Two', blocks: ['echo two\n  indented'] },
      ]);
      assert.deepEqual(skippedBlocks(file), ['(preamble): kubectl get pods', 'Two: plain']);
      assert.deepEqual(
        readDocBlocks(file).map((b) => b.line),
        [2, 6, 15, 19],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [name, expected] of Object.entries(NOT_EXECUTED)) {
    test(`${name}: exactly the listed shell blocks are not executed`, () => {
      assert.deepEqual(skippedBlocks(doc(name)), expected);
    });
  }

  test('docs/runbook.md: every section with commands runs them (the runbook test names each section)', () => {
    const titles = runnableSections(doc('docs/runbook.md')).map((s) => s.title);
    assert.deepEqual(titles, [
      'Before you start',
      'Is my backup good?',
      'Full restore',
      'After a failed or killed restore',
      'Point-in-time recovery',
      'Partial recovery: one table',
      'Partial recovery: one patient, and copying the rows back safely',
      'Cross-region disaster recovery',
      'Lost key (break-glass key)',
    ]);
    const testSource = readFileSync(join(REPO_ROOT, 'src', 'dev-only', 'docs-run', 'runbook.test.ts'), 'utf8');
    for (const title of titles) assert.ok(testSource.includes(`'${title}'`), `runbook.test.ts runs "${title}"`);
  });

  test("README's quick start: each npm command is one package.json defines, with the meaning the README gives it", () => {
    const block = readDocBlocks(doc('README.md')).find((b) => b.section === 'Quick start');
    assert.ok(block);
    const scripts = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const commands = block.code
      .split('\n')
      .flatMap((line) => (line.split('#')[0] ?? '').split('&&'))
      .map((c) => c.trim())
      .filter(Boolean);
    assert.deepEqual(commands, ['npm ci', 'npm run demo', 'npm run demo -- --ha', 'npm run test:unit', 'npm test']);
    assert.match(scripts['demo'] ?? '', /node dist\/dev-only\/demo\/run-demo\.js$/);
    assert.match(scripts['test:unit'] ?? '', /run-test-layers\.js unit$/);
    assert.match(scripts['test'] ?? '', /run-test-layers\.js all$/);
  });
});
