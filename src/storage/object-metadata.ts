import { PmsError } from '../errors/catalogue.js';

/** S3 caps user metadata at 2 KiB; the filesystem driver keeps the same limit so both behave alike. */
const MAX_METADATA_BYTES = 2048;

/**
 * Checks user metadata before anything is written. Keys are lower-case because S3 lower-cases
 * header names on the way back; values are printable ASCII because S3 sends them as HTTP
 * headers, where anything else is mangled or rejected. Failing here keeps both backends equal.
 */
export function checkMetadata(metadata: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
  if (metadata === undefined) return {};
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata)) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
      throw new PmsError('PMS_ERR_USAGE', `metadata name ${JSON.stringify(name)} is invalid: use lower-case letters, digits, - and _`);
    }
    if (typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value)) {
      throw new PmsError('PMS_ERR_USAGE', `metadata ${name} is invalid: values must be printable ASCII strings`);
    }
    bytes += name.length + value.length;
  }
  if (bytes > MAX_METADATA_BYTES) {
    throw new PmsError('PMS_ERR_USAGE', `metadata is ${bytes} bytes: at most ${MAX_METADATA_BYTES} are allowed`);
  }
  return { ...metadata };
}
