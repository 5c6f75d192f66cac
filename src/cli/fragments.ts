import { Option } from 'commander';

/** Shared option fragments so a flag means the same thing in every command (kysely-ctl). */
export const jsonOption = (): Option => new Option('--json', 'print machine-readable JSON on stdout');
export const dryRunOption = (): Option => new Option('--dry-run', 'show what would be done, change nothing');
