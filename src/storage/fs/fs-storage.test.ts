import { strict as assert } from 'node:assert';
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isPmsError } from '../../errors/catalogue.js';
import { describeStorageContract } from '../../testing/storage-contract.js';
import { FsStorage } from './fs-storage.js';

const MiB = 1024 * 1024;

/** Every `.pms-tmp-*` file under `dir` (what a killed or failed writer could leave). */
function temporaryFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => name.split('/').pop()?.startsWith('.pms-tmp-'));
}

describeStorageContract('FsStorage', async () => {
  const root = mkdtempSync(join(tmpdir(), 'pms-fs-contract-'));
  return {
    storage: new FsStorage(root),
    putMemoryBound: 16 * MiB,
    atomicIfAbsent: true,
    listsInByteOrder: true,
    assertNoDebris: async () => assert.deepEqual(temporaryFiles(root), []),
    dispose: async () => rmSync(root, { recursive: true, force: true }),
  };
});

describe('FsStorage on disk', () => {
  let root: string;
  let storage: FsStorage;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'pms-fs-'));
    storage = new FsStorage(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('stores object key at <root>/<key> exactly, readable by owner only', async () => {
    await storage.putBytes('backups/2024-05-01T00-00-00Z/manifest.json', '{"ok":true}', { metadata: { sha256: 'x' } });
    const path = join(root, 'backups/2024-05-01T00-00-00Z/manifest.json');
    assert.equal(readFileSync(path, 'utf8'), '{"ok":true}');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(storage.location, `file://${root}`);
  });

  it('a writer killed with SIGKILL mid-put leaves only a hidden temporary file, which removeIncomplete deletes', async () => {
    const child = fork(fileURLToPath(new URL('../../testing/endless-writer-fixture.js', import.meta.url)), [root], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const leftovers = temporaryFiles(root).filter((name) => name.startsWith('killed/'));
    assert.equal(leftovers.length, 1, 'the partial data is in a temporary file');
    assert.ok(statSync(join(root, leftovers[0] ?? '')).size >= 2 * MiB);
    assert.equal(await storage.head('killed/object.bin'), undefined);
    for await (const info of storage.list('')) assert.ok(!info.key.includes('.pms-'), `list showed ${info.key}`);
    assert.equal(await storage.removeIncomplete(new Date(Date.now() - 3_600_000)), 0, 'recent temp files are left alone');
    assert.equal(await storage.removeIncomplete(new Date(Date.now() + 1000)), 1);
    assert.deepEqual(
      temporaryFiles(root).filter((name) => name.startsWith('killed/')),
      [],
    );
  });

  it('removeIncomplete never touches complete objects', async () => {
    await storage.putBytes('keep/me', 'data');
    mkdirSync(join(root, 'keep'), { recursive: true });
    writeFileSync(join(root, 'keep/.pms-tmp-stale'), 'partial');
    const old = new Date(Date.now() - 86_400_000);
    utimesSync(join(root, 'keep/.pms-tmp-stale'), old, old);
    assert.equal(await storage.removeIncomplete(new Date(Date.now() - 3_600_000)), 1);
    assert.equal((await storage.getBytes('keep/me')).toString(), 'data');
  });

  it('a missing root is PMS_ERR_REPO_UNAVAILABLE and is not created (an unmounted volume must not be written to)', async () => {
    const missing = join(root, 'not-mounted');
    const absent = new FsStorage(missing);
    await assert.rejects(absent.putBytes('a', 'x'), (error) => isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'));
    await assert.rejects(absent.get('a'), (error) => isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'));
    await assert.rejects(absent.probe(), (error) => isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'));
    await assert.rejects(absent.head('a'), (error) => isPmsError(error, 'PMS_ERR_REPO_UNAVAILABLE'));
    assert.throws(() => statSync(missing));
  });

  it('metadata recorded for a replaced file is not shown on its replacement', async () => {
    await storage.putBytes('swap/obj', 'one', { metadata: { generation: '1' } });
    // Someone replaces the file behind the driver's back (restore by hand, rsync...).
    writeFileSync(join(root, 'swap/obj.new'), 'two');
    const { renameSync } = await import('node:fs');
    renameSync(join(root, 'swap/obj.new'), join(root, 'swap/obj'));
    assert.deepEqual((await storage.head('swap/obj'))?.metadata, {});
  });
});
