/** One line of doctor's report. */
export interface DoctorCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** What to do about it (failed and warning checks). */
  readonly fix?: string;
  /** Passed, but worth acting on (shown as WARN; the exit status stays 0). */
  readonly warning?: true;
}
