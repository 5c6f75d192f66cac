import type { Env } from './env-source.js';
import { secretFilePaths } from './secret-files.js';
import { type SettingName, settingNames, settingSpec } from './settings.js';

/** Names that carry a secret whatever program reads them (AWS SDK, libpq, tokens of any kind). */
const SECRET_NAME = /PASSWORD|PASSPHRASE|SECRET|TOKEN|PRIVATE|CREDENTIAL|^AWS_|^PGPASS/;

/**
 * The variables of `env` that hold a secret or name a file holding one: every secret setting of
 * ours (NAME or NAME_FILE), every non-public *_FILE and PGPASSFILE, and any name that looks like
 * a credential. Names only: the values are never looked at beyond "is it set".
 */
export function secretVariables(env: Env): string[] {
  const secretSettings = new Set<string>(
    settingNames()
      .filter((name: SettingName) => settingSpec(name).secret === true)
      .flatMap((name) => [name, `${name}_FILE`]),
  );
  const secretFiles = new Set(secretFilePaths(env));
  return Object.entries(env)
    .filter(([, value]) => value !== undefined && value !== '')
    .filter(
      ([name, value]) => secretSettings.has(name) || SECRET_NAME.test(name) || (name.endsWith('_FILE') && secretFiles.has(value as string)),
    )
    .map(([name]) => name)
    .sort();
}
