import * as keyModule from '../../crypto/keys.js';
import { inspectSigning } from '../../crypto/signing.js';
import { PmsError } from '../../errors/catalogue.js';
import { runBackupCommand } from '../../cli/backup-command.js';

export async function runKeys(options: { json?: boolean }): Promise<number> {
  return runBackupCommand({ name: 'keys', logStream: 'backup', needs: {} }, async ({ config }) => {
    const now = new Date();
    const publicKeys = config.keys.publicKeyFile ? await keyModule.describeKeyFile(config.keys.publicKeyFile, 'public', now) : [];
    const privateKeys = config.keys.privateKeyFile ? await keyModule.describeKeyFile(config.keys.privateKeyFile, 'private', now) : [];
    if (!config.keys.publicKeyFile && !config.keys.privateKeyFile && !config.keys.signingKeyFile && !config.keys.trustedSignersFile) {
      throw new PmsError(
        'PMS_ERR_CONFIG',
        'no keys configured: set BACKUP_GPG_PUBLIC_KEY_FILE, BACKUP_GPG_PRIVATE_KEY_FILE, BACKUP_SIGNING_KEY_FILE and/or BACKUP_TRUSTED_SIGNERS_FILE',
      );
    }
    const signing = await inspectSigning(config.keys, config.operations.keyExpiryWarnDays, now);
    const keyId = config.keys.keyId;
    const result = {
      keyId: keyId ?? null,
      keyIdMatches: keyId === undefined ? null : publicKeys.some((k) => keyModule.keyMatches(k, keyId)),
      public: publicKeys,
      private: privateKeys,
      signing: signing.signing,
      trustedSigners: signing.trusted,
      signingProblems: signing.problems,
    };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      const line = (k: keyModule.KeyDescription) =>
        `  ${k.fingerprint}  ${k.algorithm}${k.bits ? ` ${k.bits}` : ''}  created ${k.createdAt.slice(0, 10)}  ${k.expiresAt === null ? 'never expires' : `${k.expired ? 'EXPIRED' : 'expires'} ${k.expiresAt.slice(0, 10)}`}  ${k.userIds.join(', ')}`;
      process.stdout.write(
        [
          `public keys (${config.keys.publicKeyFile ?? 'BACKUP_GPG_PUBLIC_KEY_FILE not set'}): backups are encrypted to all of them`,
          ...publicKeys.map(line),
          `private keys (${config.keys.privateKeyFile ?? 'BACKUP_GPG_PRIVATE_KEY_FILE not set'}): restore and verify pick the one each backup needs`,
          ...privateKeys.map(line),
          `signing key (${config.keys.signingKeyFile ?? 'BACKUP_SIGNING_KEY_FILE not set'}): what this job writes is signed with it`,
          ...(signing.signing ? [`${line(signing.signing)}  ${signing.signing.trusted ? 'trusted' : 'NOT TRUSTED'}`] : []),
          `trusted signers (${config.keys.trustedSignersFile ?? 'BACKUP_TRUSTED_SIGNERS_FILE not set'}): only objects they signed are read`,
          ...signing.trusted.map(line),
          ...signing.problems.map((p) => `PROBLEM: ${p}`),
          keyId === undefined
            ? 'BACKUP_GPG_KEY_ID is not set'
            : `BACKUP_GPG_KEY_ID ${keyId}: ${result.keyIdMatches ? 'matches a public key' : 'MATCHES NO PUBLIC KEY'}`,
          '',
        ].join('\n'),
      );
    }
    const expired = publicKeys.some((k) => k.expired);
    return { exitCode: expired || result.keyIdMatches === false || signing.problems.length > 0 ? 1 : 0, audit: false };
  });
}
