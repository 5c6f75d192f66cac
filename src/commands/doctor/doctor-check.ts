/** One line of doctor's report. */
export interface DoctorCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** What to do about it (failed checks only). */
  readonly fix?: string;
}
