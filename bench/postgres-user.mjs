// The OS user the throwaway PostgreSQL runs as (Debian's postgres), looked up on this machine:
// the benches used to hard-code 101:104, which holds only where postgres got those ids.
import { execFileSync } from 'node:child_process';

const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());

export const PG_UID = id('-u');
export const PG_GID = id('-g');
