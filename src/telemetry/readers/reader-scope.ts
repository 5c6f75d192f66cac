import { PmsError } from '../../errors/catalogue.js';
import { normaliseNhsNumber } from '../validation/nhs-number.js';

/**
 * Which patients a reader may read. There is no default: a scope is always chosen explicitly,
 * either a list of patients or all of them, so nobody gets every patient by leaving a flag out.
 */
export type ReaderScope = { readonly allPatients: true } | { readonly allPatients: false; readonly patients: readonly string[] };

/** The scope from `--patient NHS… [--patient NHS…]` or `--all-patients`: exactly one of the two. */
export function parseReaderScope(options: { patient?: readonly string[]; allPatients?: boolean }): ReaderScope {
  const given = options.patient ?? [];
  if (options.allPatients === true && given.length > 0) {
    throw new PmsError('PMS_ERR_USAGE', 'give either --patient (one or more) or --all-patients, not both');
  }
  if (options.allPatients === true) return { allPatients: true };
  if (given.length === 0) {
    throw new PmsError('PMS_ERR_USAGE', 'a reader needs a scope: --patient NHS_NUMBER (repeat for more patients) or --all-patients');
  }
  const patients = new Set<string>();
  for (const [i, text] of given.entries()) {
    const nhs = normaliseNhsNumber(text);
    // The value is not echoed: it is (meant to be) a patient identifier.
    if (nhs === undefined) {
      throw new PmsError('PMS_ERR_USAGE', `--patient number ${i + 1} is not a valid NHS number (10 digits with a Modulus 11 check digit)`);
    }
    patients.add(nhs);
  }
  return { allPatients: false, patients: [...patients] };
}

/** "all patients" or "2 patients", for human output. */
export function describeScope(scope: ReaderScope): string {
  if (scope.allPatients) return 'all patients';
  return `${scope.patients.length} patient${scope.patients.length === 1 ? '' : 's'}`;
}
