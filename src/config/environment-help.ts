import {
  type Group,
  type Need,
  type Program,
  type SettingName,
  defaultText,
  settingNames,
  settingSpec,
  settingsReadBy,
} from './settings.js';

const GROUP_TITLES: Record<Group, string> = {
  postgres: 'PostgreSQL',
  repository: 'Repository',
  keys: 'OpenPGP keys',
  operations: 'Retention, logs and monitor thresholds',
  dr: 'Disaster-recovery copy (copy, monitor)',
  metrics: 'Metrics (Pushgateway)',
  telemetry: 'Ingest API',
  'postgres-image': 'The postgres image',
};

const NEED_TEXT: Record<Need, string> = {
  repository: 'required by every command using the repository',
  encryption: 'required to encrypt (create, base-backup, wal-push)',
  decryption: 'required to decrypt (restore, verify, wal-fetch)',
  signing: 'required to sign (create, base-backup, wal-push, restore, verify, prune, copy)',
  trust: 'required to read the repository (every command but keys and doctor)',
  postgres: 'checked for commands that connect (create, base-backup, restore, doctor)',
};

function describe(name: SettingName, width: number): string {
  const spec = settingSpec(name);
  const notes = [
    defaultText(spec) === '' ? undefined : `default ${defaultText(spec)}`,
    spec.secret ? `secret: or ${name}_FILE` : spec.file ? `or ${name}_FILE` : undefined,
    spec.requiredFor === undefined ? undefined : NEED_TEXT[spec.requiredFor],
  ].filter((note) => note !== undefined);
  return wrap(`  ${name.padEnd(width)}  `, `${spec.help}${notes.length > 0 ? ` [${notes.join('; ')}]` : ''}`);
}

/** Wraps `text` at word boundaries after `lead`, continuation lines indented to match, as commander wraps its own help. */
function wrap(lead: string, text: string, columns = 110): string {
  const lines: string[] = [];
  let line = lead;
  for (const word of text.split(' ')) {
    if (line.length > lead.length && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = ' '.repeat(lead.length) + word;
    } else line = line.length > lead.length ? `${line} ${word}` : line + word;
  }
  lines.push(line);
  return lines.join('\n');
}

/** The "Environment:" section of `<program> --help`, one line per setting, from the settings table. */
export function describeEnvironment(program: Program): string {
  const names = settingsReadBy(program);
  const width = Math.max(...names.map((name) => name.length));
  const lines = ['Environment (read once at start-up; every problem is listed at once, exit 2; values of secrets are never printed):'];
  let group: Group | undefined;
  for (const name of names) {
    const spec = settingSpec(name);
    if (spec.group !== group) {
      group = spec.group;
      lines.push(` ${GROUP_TITLES[group]}`);
    }
    lines.push(describe(name, width));
  }
  const foreign = settingNames().filter((name) => settingSpec(name).readBy.length === 0);
  const prefixes = program === 'pms-backup' ? 'BACKUP_* and POSTGRES_*' : 'TELEMETRY_* and POSTGRES_*';
  lines.push(
    wrap(
      ' ',
      `Any other ${prefixes} variable is refused as a likely typo; the postgres image's ${foreign.join(', ')} are accepted and ignored.`,
    ),
  );
  return lines.join('\n');
}
