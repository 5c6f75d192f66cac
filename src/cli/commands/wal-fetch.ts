import { toPmsError } from '../exit-boundary.js';

/**
 * restore_command's exit status is a contract with PostgreSQL: 1 means "not archived" (end of
 * WAL: recovery finishes or promotes), while any status above 125 makes recovery stop. Every
 * failure that is not a clean "not found" therefore exits 200, so a network, key or integrity
 * problem can never be mistaken for the end of the archive and promote a server early.
 */
export const WAL_FETCH_EXIT = { fetched: 0, notFound: 1, fatal: 200 } as const;

export const WAL_FETCH_EXIT_HELP = `
Exit status (restore_command contract):
    0  the file was fetched, verified and written to <path> (temporary file + rename)
    1  the file is not in the archive (PostgreSQL treats this as the end of archived WAL)
  200  anything else: repository unreachable, credentials, key, decryption or integrity
       failure, WAL from a different system; above 125, so PostgreSQL stops recovery
       instead of promoting early onto a wrong timeline
`;

export async function runWalFetch(name: string, path: string): Promise<number> {
  try {
    const [{ loadBackupConfig, requireRepository }, { loadDecryptionKeys }, { openStorage }, { fetchWalFile }, { readControlSystemIdentifier }] = await Promise.all([
      import('../../config/config.js'),
      import('../../crypto/keys.js'),
      import('../../storage/open-storage.js'),
      import('../../wal/fetch-wal-file.js'),
      import('../../wal/wal-page-header.js'),
    ]);
    const config = loadBackupConfig(process.env, { repository: true, decryption: true });
    const systemIdentifier = await readControlSystemIdentifier(process.cwd());
    const keys = await loadDecryptionKeys(config.keys.privateKeyFile ?? '', config.keys.passphraseFile);
    const storage = openStorage(requireRepository(config));
    try {
      const result = await fetchWalFile({ storage, keys, name, destination: path, systemIdentifier });
      return result.outcome === 'fetched' ? WAL_FETCH_EXIT.fetched : WAL_FETCH_EXIT.notFound;
    } finally {
      await storage.close();
    }
  } catch (error) {
    const pms = toPmsError(error);
    process.stderr.write(`pms-backup wal-fetch ${name}: error ${pms.code}: ${pms.message}\n`);
    return WAL_FETCH_EXIT.fatal;
  }
}
